"""How close the clients get to each service's rate limit when several workers share one budget.

    python -m bench.clients [--workers 4] [--intercom-limit-per-10s 100] [--intercom-seconds 30]
                            [--rf-limit-per-minute 600] [--rf-seconds 60] [--workspaces 1]

Starts moto in server mode (the budgets' DynamoDB, visible to every process, as in AWS), the Intercom
and Referral Factory emulators, then, for each service, `--workers` separate processes that call the
service as fast as their shared budget lets them. A worker that would wait longer than the retry
policy's `max_wait_s` gets `RateLimited` and sleeps the `retry_after` it carries, as a queue worker
would hand its message back with that delay. Measurements start on a window boundary and cover whole
windows, so a window's budget is never counted twice. Prints one JSON line per service on stdout:
`{"service", "workers", "limit_per_s", "achieved_per_s", "ratio", "responses_429", "seconds"}`.

`--workspaces N` connects N Intercom workspaces of one account, `--workers` processes on each at once:
each workspace has its own budget (as it has its own limit at Intercom), so each should get its full
limit however busy the others are. Then there is one Intercom line per workspace, with its
`"workspace"`, its own ratio against the limit, and `responses_429` counted over all of them (the
emulator counts 429s for all workspaces together).

The Intercom emulator's default 1,666 calls per 10 s is more than a 2-core machine serves alongside
everything else here, so the Intercom limit defaults to 100 per 10 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from shared.clients.errors import RateLimited

INTERCOM = "intercom"
REFERRAL_FACTORY = "referral_factory"
WINDOW_S = {INTERCOM: 10.0, REFERRAL_FACTORY: 60.0}
WORKSPACE = "benchws1"


def workspace_ids(count: int) -> list[str]:
    return [f"benchws{n}" for n in range(1, count + 1)]


CAMPAIGN = 9001
RF_API_KEY = "rf-bench-key"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; it shares nothing else with the others."""

    service: str
    base_url: str
    credential: str
    table: str
    aws_endpoint: str
    start_at: float
    stop_at: float
    max_calls: int | None = None
    warm_up: bool = False
    rf_per_minute: int | None = None
    # Referral Factory's window as the product paces it: its minute unless a test shortens it.
    rf_window_s: float = WINDOW_S[REFERRAL_FACTORY]
    # The Intercom workspace whose token `credential` is, and whose budget the worker spends.
    workspace: str = WORKSPACE


@dataclass
class WorkerResult:
    call_times: list[float] = field(default_factory=list)
    handed_back: int = 0


def _call(spec: WorkerSpec) -> Callable[[], Any]:
    # Imported here so the spawned process reads AWS_ENDPOINT_URL before any boto3 session exists.
    from shared.clients.intercom import IntercomClient
    from shared.clients.rate_budget import intercom_budget, referral_factory_budget
    from shared.clients.referral_factory import ReferralFactoryClient

    if spec.service == INTERCOM:
        intercom = IntercomClient(
            spec.credential, base_url=spec.base_url, budget=intercom_budget(spec.table, spec.workspace)
        )
        return intercom.me
    rf = ReferralFactoryClient(
        spec.credential,
        base_url=spec.base_url,
        budget=referral_factory_budget(
            spec.table, spec.credential, per_minute=spec.rf_per_minute, window_s=spec.rf_window_s
        ),
    )
    return lambda: rf.get_campaign(CAMPAIGN)


def run_worker(spec: WorkerSpec) -> WorkerResult:
    """One worker process: call the service until `stop_at` (or `max_calls`), recording when each
    call completed after `start_at`."""
    os.environ["AWS_ENDPOINT_URL"] = spec.aws_endpoint
    call = _call(spec)
    if spec.warm_up:
        call()  # the first answer teaches every worker the workspace's limit
    time.sleep(max(0.0, spec.start_at - time.time()))
    result = WorkerResult()
    while time.time() < spec.stop_at and (spec.max_calls is None or len(result.call_times) < spec.max_calls):
        try:
            call()
        except RateLimited as exc:
            result.handed_back += 1
            time.sleep(max(0.0, min(exc.retry_after, spec.stop_at - time.time())))
            continue
        result.call_times.append(time.time())
    return result


def provision_table(aws_endpoint: str, stack: str = "bench") -> str:
    """Create the template's tables in the moto server under `stack`'s names; returns the main table's
    name. (Moto servers in one process share their state: tests pass a name of their own.)"""
    os.environ["AWS_ENDPOINT_URL"] = aws_endpoint
    import boto3

    from local.provision import provision

    return provision(boto3.session.Session(), stack=stack).refs["MainTable"]


def next_boundary(window_s: float, at_least: float) -> float:
    return math.ceil((time.time() + at_least) / window_s) * window_s


def intercom_token(control: httpx.Client, workspace: str = WORKSPACE) -> str:
    """A workspace token through the emulator's scripted OAuth path and the client's own exchange."""
    from shared.clients.intercom import exchange_code

    r = control.get(
        "/oauth",
        params={"client_id": CLIENT_ID, "state": "b", "workspace": workspace, "auto_approve": "true"},
    )
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    return exchange_code(
        code, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=str(control.base_url)
    )


def summarise(
    service: str,
    results: list[WorkerResult],
    *,
    limit: int,
    start_at: float,
    stop_at: float,
    responses_429: int,
) -> dict[str, Any]:
    seconds = stop_at - start_at
    calls = sum(1 for r in results for t in r.call_times if start_at <= t < stop_at)
    limit_per_s = limit / WINDOW_S[service]
    achieved = calls / seconds
    return {
        "service": service,
        "workers": len(results),
        "limit_per_s": round(limit_per_s, 3),
        "achieved_per_s": round(achieved, 3),
        "ratio": round(achieved / limit_per_s, 3),
        "responses_429": responses_429,
        "seconds": round(seconds, 1),
    }


def report(
    service: str,
    specs: list[WorkerSpec],
    results: list[WorkerResult],
    *,
    limit: int,
    start_at: float,
    stop_at: float,
    responses_429: int,
) -> list[dict[str, Any]]:
    """The service's line; for Intercom with several workspaces, one line per workspace, each against
    its own limit."""
    workspaces = sorted({s.workspace for s in specs}) if service == INTERCOM else []
    if len(workspaces) < 2:
        return [
            summarise(
                service, results, limit=limit, start_at=start_at, stop_at=stop_at, responses_429=responses_429
            )
        ]
    lines = []
    for workspace in workspaces:
        group = [r for s, r in zip(specs, results, strict=True) if s.workspace == workspace]
        line = summarise(
            service, group, limit=limit, start_at=start_at, stop_at=stop_at, responses_429=responses_429
        )
        lines.append({**line, "workspace": workspace})
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--intercom-limit-per-10s", type=int, default=100)
    parser.add_argument("--intercom-seconds", type=float, default=30)
    parser.add_argument("--rf-limit-per-minute", type=int, default=600)
    parser.add_argument("--rf-seconds", type=float, default=60)
    parser.add_argument(
        "--workspaces", type=int, default=1, help="Intercom workspaces of one account, --workers on each"
    )
    args = parser.parse_args(argv)
    workspaces = workspace_ids(args.workspaces)

    # Never a real account: the budgets live in the moto server started here.
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

    from local.emulators.intercom import create_app as intercom_app
    from local.emulators.referral_factory.app import create_app as rf_app
    from local.emulators.server import serve_in_thread

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws_endpoint = f"http://{host}:{port}"
    table = provision_table(aws_endpoint)

    intercom = serve_in_thread(
        intercom_app(
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": ["https://bench.example/callback"],
                "rate_limit_per_10s": args.intercom_limit_per_10s,
            }
        )
    )
    rf = serve_in_thread(rf_app({"rate_limit_per_minute": args.rf_limit_per_minute}))
    with (
        httpx.Client(base_url=intercom.base_url, timeout=30) as ic,
        httpx.Client(base_url=rf.base_url, timeout=30) as rc,
    ):
        tokens = {}
        for workspace in workspaces:
            ic.post("/_emulator/workspaces", json={"id_code": workspace, "name": workspace, "region": "US"})
            tokens[workspace] = intercom_token(ic, workspace)
        rc.post(
            "/_emulator/accounts", json={"api_key": RF_API_KEY, "campaigns": [{"id": CAMPAIGN, "name": "B"}]}
        )

        # Both start on a minute boundary (a 10-second one too), far enough ahead to spawn the workers.
        start_at = next_boundary(WINDOW_S[REFERRAL_FACTORY], at_least=8)
        stops = {
            INTERCOM: start_at + math.ceil(args.intercom_seconds / 10) * 10,
            REFERRAL_FACTORY: start_at + math.ceil(args.rf_seconds / 60) * 60,
        }
        print(
            f"intercom limit {args.intercom_limit_per_10s}/10 s per workspace ({len(workspaces)} of one "
            f"account), referral factory {args.rf_limit_per_minute}/min, {args.workers} workers each; "
            f"starting in {start_at - time.time():.0f} s",
            file=sys.stderr,
        )
        specs = {
            INTERCOM: [
                WorkerSpec(
                    INTERCOM,
                    intercom.base_url,
                    tokens[workspace],
                    table,
                    aws_endpoint,
                    start_at,
                    stops[INTERCOM],
                    warm_up=i == 0,
                    workspace=workspace,
                )
                for workspace in workspaces
                for i in range(args.workers)
            ],
            REFERRAL_FACTORY: [
                WorkerSpec(
                    REFERRAL_FACTORY,
                    f"{rf.base_url}/api/v2",
                    RF_API_KEY,
                    table,
                    aws_endpoint,
                    start_at,
                    stops[REFERRAL_FACTORY],
                    rf_per_minute=args.rf_limit_per_minute,
                )
                for _ in range(args.workers)
            ],
        }
        workers = sum(len(group) for group in specs.values())
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {
                service: [pool.submit(run_worker, s) for s in group] for service, group in specs.items()
            }
            time.sleep(max(0.0, start_at - time.time()))
            before = {
                INTERCOM: ic.get("/_emulator/stats").json(),
                REFERRAL_FACTORY: rc.get("/_emulator/stats").json(),
            }
            results = {service: [f.result() for f in group] for service, group in futures.items()}
        after = {
            INTERCOM: ic.get("/_emulator/stats").json(),
            REFERRAL_FACTORY: rc.get("/_emulator/stats").json(),
        }

    limits = {INTERCOM: args.intercom_limit_per_10s, REFERRAL_FACTORY: args.rf_limit_per_minute}
    for service in (INTERCOM, REFERRAL_FACTORY):
        for line in report(
            service,
            specs[service],
            results[service],
            limit=limits[service],
            start_at=start_at,
            stop_at=stops[service],
            responses_429=after[service]["responses_429"] - before[service]["responses_429"],
        ):
            print(json.dumps(line), flush=True)
        handed_back = sum(r.handed_back for r in results[service])
        print(f"{service}: {handed_back} waits handed back instead of slept", file=sys.stderr)
    intercom.stop()
    rf.stop()
    moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
