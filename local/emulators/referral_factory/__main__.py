"""`python -m local.emulators.referral_factory --port 3002`: serve the emulator on its own."""

from __future__ import annotations

import argparse
import json

import uvicorn

from local.emulators.referral_factory import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    parser.add_argument(
        "--config",
        default="{}",
        help="initial config as JSON, e.g. '{\"rate_limit_per_minute\": null}'",
    )
    parser.add_argument("--public-base-url", help="base of the users' referral links")
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    if args.public_base_url:
        config["public_base_url"] = args.public_base_url
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
