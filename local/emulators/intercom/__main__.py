"""`python -m local.emulators.intercom --port 3001 [--config FILE_OR_JSON]` serves the emulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn

from local.emulators.intercom.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Intercom emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--config", help="initial configuration: a JSON file or a JSON object")
    args = parser.parse_args()
    config = None
    if args.config:
        text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
        config = json.loads(text)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
