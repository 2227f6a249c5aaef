"""`python -m local up`: the whole product on one machine (contract: interfaces.md §2).

stdout carries exactly one line, the ready line, so scripts can read it. stderr tells the story: the
stack's own steps, the demo's narration and the console's address. The functions' JSON logs go to a
file that the ready line names (`"logs"`), or to stderr as well with `--verbose`. SIGINT or SIGTERM
stops every process and frees every port, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from local import template as tmpl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local stack and serve until SIGINT/SIGTERM")
    up.add_argument("--api-port", type=int, default=3000)
    up.add_argument("--intercom-port", type=int, default=3001)
    up.add_argument("--rf-port", type=int, default=3002)
    up.add_argument("--aws-port", type=int, default=3003)
    up.add_argument("--admin-token", help="bearer token for /admin routes (random if absent)")
    up.add_argument("--demo", action="store_true", help="run the demo scenario, then keep serving")
    up.add_argument(
        "--schedule-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often the template's schedules fire locally (default 60)",
    )
    up.add_argument(
        "--template", type=Path, default=tmpl.TEMPLATE, help="SAM template to run (default: the product's)"
    )
    up.add_argument(
        "--api-concurrency",
        type=int,
        default=4,
        help="most instances one API function runs at once (default 4)",
    )
    up.add_argument(
        "--lazy-consumers",
        action="store_true",
        help="start queue consumers' instances at their first batch instead of before the ready line",
    )
    up.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    up.add_argument(
        "--logs",
        type=Path,
        metavar="PATH",
        help="file the functions' JSON logs go to (default: rf-intercom-local-<api-port>.log in the"
        " temporary directory, emptied at start)",
    )
    up.add_argument(
        "--verbose",
        action="store_true",
        help="the functions' JSON logs go to stderr with everything else instead of to a file",
    )
    return parser


def function_log_path(args: argparse.Namespace) -> Path | None:
    """Where the functions' logs go: None (stderr) with --verbose, else a file emptied for this run."""
    if args.verbose:
        return None
    path: Path = args.logs or Path(tempfile.gettempdir()) / f"rf-intercom-local-{args.api_port}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path.resolve()


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return
        logging.getLogger("local").info("%s: shutting down", signal.Signals(signum).name)
        stop.set()

    # Before the heavy imports: a signal during start-up must still stop the stack cleanly.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from local.stack import Stack, StackError, StackOptions

    options = StackOptions(
        api_port=args.api_port,
        intercom_port=args.intercom_port,
        rf_port=args.rf_port,
        aws_port=args.aws_port,
        schedule_interval_s=args.schedule_interval,
        template_path=args.template,
        api_concurrency=args.api_concurrency,
        warm_consumers=not args.lazy_consumers,
        function_log_path=function_log_path(args),
    )
    if args.admin_token:
        options.admin_token = args.admin_token
    stack = Stack(options)
    try:
        info = stack.start()
    except StackError as exc:
        logging.getLogger("local").error("the stack did not start: %s", exc)
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise
    if stop.is_set():
        # Told to stop while starting: a ready line now would announce a stack about to vanish.
        stack.stop()
        return 0
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    tell_where_to_look(info, demo=args.demo)
    if args.demo and not stop.is_set():
        from local.demo import run_demo

        threading.Thread(target=run_demo, args=(info, stack, stop), name="demo", daemon=True).start()
    while not stop.wait(0.5):
        pass
    stack.stop()
    return 0


def tell_where_to_look(info: dict[str, str], *, demo: bool) -> None:
    """After the ready line, on stderr: the console and the functions' logs."""
    lines = [f"console: {info['api']}/console (sign in with an account API key"]
    lines[0] += "; the demo prints a link that signs its account in)" if demo else ")"
    if "logs" in info:
        lines.append(f"function logs: {info['logs']} (--verbose shows them here instead)")
    sys.stderr.write("".join(f"==> {line}\n" for line in lines))
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Each request to moto or an emulator is not news.
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
