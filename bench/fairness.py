"""Fair tenants: a small account's sync is not held behind a large account's backlog.

    python -m bench.fairness [--big 5000] [--small 200] [--small-rf-per-minute 600] [--baseline]

Starts the local stack in this process (as `bench.sync` does) and sets up two accounts as the demo
does, each with its own Referral Factory key, workspace and campaign. The big account's limits are
lifted (the Referral Factory emulator unlimited, its own budget for its key at 1,000,000 a minute,
Intercom's limit at 1,000,000 per 10 s), so its sync takes every worker the stack has; the small
account keeps the product's budget of `--small-rf-per-minute` for its key. The big account's sync
starts first; once it has processed `--head-start` contacts, the small account's sync starts, and the
benchmark polls both (`GET /v1/syncs/{id}` every 0.25 s).

- `small.elapsed_s`: the small sync, from its `POST` to the first poll that sees it `completed`.
- `small.bound_s`: its own rate-limit bound: the Referral Factory calls it needs (one user created per
  contact, plus the campaign's one history read) at `--small-rf-per-minute` a minute.
- `small.elapsed_to_bound`: the goal is at most 1.5.
- `baseline` (`--baseline`): the same two syncs on a second stack whose embedded SQS ignores message
  groups (`LOCAL_SQS_FAIR_QUEUES=0`: first in, first out, as a standard queue without fair queues),
  measured in the same run, so `fair_vs_baseline` compares the two on the same machine.

The big sync is cancelled once the small one ends (its remaining minutes measure nothing here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx

from bench.sync import LIFTED, POLL_S, Bench, Emulators, log, running_stack

if TYPE_CHECKING:
    from collections.abc import Iterator

    from local.stack import Stack

GOAL_ELAPSED_TO_BOUND = 1.5
RF_WINDOW_S = 60.0
# The campaign's one read of Referral Factory's users (shared/flows/history.py).
HISTORY_READS = 1


class Account:
    """One tenant of the stack: its own Referral Factory key, workspace, campaign and syncs."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.bench = bench
        self.name = name

    def start_sync(self) -> tuple[str, float]:
        demo = self.bench.demo
        started = time.time()
        response = self.bench.http.post(
            f"{demo.api}/v1/campaigns/{demo.state['campaign_id']}/syncs",
            json={"audience": "users"},
            headers=demo.account(),
        )
        if response.status_code != 202:
            raise RuntimeError(f"{self.name}: POST .../syncs -> {response.status_code}: {response.text}")
        return response.json()["sync_id"], started

    def sync(self, sync_id: str) -> dict[str, Any]:
        demo = self.bench.demo
        return self.bench.http.get(f"{demo.api}/v1/syncs/{sync_id}", headers=demo.account()).json()

    def cancel(self, sync_id: str) -> None:
        demo = self.bench.demo
        self.bench.http.post(f"{demo.api}/v1/syncs/{sync_id}/cancel", headers=demo.account())


def two_accounts(
    stack: Stack, info: dict[str, str], http: httpx.Client, big: int, small: int
) -> tuple[Account, Account]:
    emulators = Emulators(http, info["intercom"], info["referral_factory"])
    limits = emulators.configure(None, LIFTED)
    log(f"emulator limits: {limits}")
    large = Account(Bench(stack, info, http, record=False), "big")
    large.bench.setup(big)
    large.bench.lift_rf_budget(LIFTED)
    little = Account(Bench(stack, info, http, record=False), "small")
    little.bench.setup(small)
    return large, little


def measure(stack: Stack, info: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    with httpx.Client(timeout=60) as http:
        large, little = two_accounts(stack, info, http, args.big, args.small)
        big_id, big_started = large.start_sync()
        deadline = time.time() + args.timeout
        while True:
            big = large.sync(big_id)
            if big["processed"] >= args.head_start or big["status"] not in ("queued", "running"):
                break
            if time.time() > deadline:
                raise RuntimeError(f"the big sync made no headway: {big}")
            time.sleep(POLL_S)
        log(f"big sync running: {big['processed']}/{big['total']}; starting the small one")
        big_at_small_start = big["processed"]
        small_id, small_started = little.start_sync()
        while True:
            small = little.sync(small_id)
            now = time.time()
            if small["status"] not in ("queued", "running"):
                break
            if now > deadline:
                raise RuntimeError(f"the small sync did not finish in {args.timeout:.0f} s: {small}")
            time.sleep(POLL_S)
        small_elapsed = now - small_started
        big = large.sync(big_id)
        large.cancel(big_id)
        log(
            f"small sync {small['status']} in {small_elapsed:.1f} s; big at {big['processed']}/{big['total']}"
        )
        rf_calls = int(small["created"]) + HISTORY_READS
        bound_s = rf_calls * RF_WINDOW_S / args.small_rf_per_minute
        return {
            "small": {
                "status": small["status"],
                "contacts": small["total"],
                "processed": small["processed"],
                "elapsed_s": round(small_elapsed, 1),
                "rf_calls_needed": rf_calls,
                "rf_limit_per_minute": args.small_rf_per_minute,
                "bound_s": round(bound_s, 1),
                "elapsed_to_bound": round(small_elapsed / bound_s, 3),
            },
            "big": {
                "contacts": big["total"],
                "processed_when_small_started": big_at_small_start,
                "processed_when_small_ended": big["processed"],
                "elapsed_when_small_ended_s": round(now - big_started, 1),
                "status_then": big["status"],
            },
        }


@contextlib.contextmanager
def stack_with(fair: bool, log_level: str) -> Iterator[tuple[Stack, dict[str, str]]]:
    # Read by the embedded AWS's process when it starts (local/moto_sqs.py).
    previous = os.environ.get("LOCAL_SQS_FAIR_QUEUES")
    os.environ["LOCAL_SQS_FAIR_QUEUES"] = "1" if fair else "0"
    try:
        with running_stack(None, log_level) as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("LOCAL_SQS_FAIR_QUEUES", None)
        else:
            os.environ["LOCAL_SQS_FAIR_QUEUES"] = previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=5000, help="contacts of the big account's sync")
    parser.add_argument("--small", type=int, default=200, help="contacts of the small account's sync")
    parser.add_argument("--small-rf-per-minute", type=int, default=600)
    parser.add_argument(
        "--head-start", type=int, default=300, help="big contacts processed before the small sync"
    )
    parser.add_argument("--baseline", action="store_true", help="also run both syncs with fair queues off")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--function-log-level", default="WARNING")
    args = parser.parse_args(argv)

    import logging
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})

    runs: dict[str, Any] = {}
    for label, fair in [("fair", True)] + ([("baseline", False)] if args.baseline else []):
        log(f"-- {label}: fair queues {'on' if fair else 'off'}")
        with stack_with(fair, args.function_log_level) as (stack, info):
            runs[label] = measure(stack, info, args)
    fair_ratio = runs["fair"]["small"]["elapsed_to_bound"]
    result: dict[str, Any] = {
        "bench": "fairness",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "big_contacts": args.big,
        "small_contacts": args.small,
        **runs,
        "goal": {"small_elapsed_to_bound": GOAL_ELAPSED_TO_BOUND, "met": fair_ratio <= GOAL_ELAPSED_TO_BOUND},
    }
    if args.baseline:
        result["fair_vs_baseline"] = round(
            runs["fair"]["small"]["elapsed_s"] / runs["baseline"]["small"]["elapsed_s"], 3
        )
    print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
