"""Many workers share one Referral Factory key's budget against the emulator counting the minute as a
sliding window or from the first call: none of them meets a 429, and no window anywhere holds more
than the limit (the emulator's `peak_calls_in_any_window`, counted where the calls arrive).

Workers are threads, each with its own budget object and its own grants as separate Lambda instances
have, sharing only the budget's item in DynamoDB (moto, each request made atomic as in DynamoDB); and
then separate processes sharing a moto server.
The window is shortened to seconds in both the emulator (`rate_limit_window_s`) and the product
(`Pace.window_s`); the margins the product keeps for a call's way to the service are the production
ones."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import httpx
import pytest
from moto.server import ThreadedMotoServer

from bench.clients import CAMPAIGN as BENCH_CAMPAIGN
from bench.clients import REFERRAL_FACTORY, RF_API_KEY, WorkerSpec, provision_table, run_worker
from local import moto_dynamodb
from local.emulators.referral_factory.app import create_app
from local.emulators.server import RunningServer, serve_in_thread
from local.provision import Provisioned
from shared.clients.errors import RateLimited
from shared.clients.rate_budget import SlidingBudget, referral_factory_key
from shared.clients.referral_factory import ReferralFactoryClient
from shared.domain.pacing import Pace

LIMIT = 8
WINDOW_S = 2.0
WORKERS = 8
CALLS_EACH = 3
CAMPAIGN = 7301


@pytest.fixture(scope="module", autouse=True)
def atomic_dynamodb() -> None:
    """moto's conditional writes check and then write, so two threads can both pass the check; DynamoDB
    makes each request atomic, and so does the embedded AWS's patch (local/moto_dynamodb.py)."""
    moto_dynamodb.apply()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app({"rate_limit_per_minute": LIMIT, "rate_limit_window_s": WINDOW_S}))
    yield running
    running.stop()


def run_workers(base_url: str, table: str, api_key: str) -> list[list[float]]:
    """Every worker makes CALLS_EACH calls, sleeping out a `RateLimited` hand-back as a queue worker
    would; returns when each call completed, per worker."""
    start = threading.Barrier(WORKERS)
    done: list[list[float]] = [[] for _ in range(WORKERS)]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            budget = SlidingBudget(table, referral_factory_key(api_key), pace=Pace(LIMIT, window_s=WINDOW_S))
            rf = ReferralFactoryClient(api_key, base_url=f"{base_url}/api/v2", budget=budget)
            start.wait()
            while len(done[index]) < CALLS_EACH:
                try:
                    rf.get_campaign(CAMPAIGN)
                except RateLimited as exc:
                    time.sleep(exc.retry_after)
                    continue
                done[index].append(time.monotonic())
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    return done


@pytest.mark.parametrize("mode", ["sliding", "first_hit"])
def test_concurrent_workers_never_exceed_the_limit_in_any_window(
    mode: str, server: RunningServer, aws: Provisioned
) -> None:
    api_key = f"rf-pacing-{mode}"
    with httpx.Client(base_url=server.base_url, timeout=30) as control:
        control.post("/_emulator/reset").raise_for_status()
        control.put("/_emulator/config", json={"rate_limit_window": mode}).raise_for_status()
        control.post(
            "/_emulator/accounts", json={"api_key": api_key, "campaigns": [{"id": CAMPAIGN, "name": "P"}]}
        ).raise_for_status()
        started = time.monotonic()
        done = run_workers(server.base_url, aws.refs["MainTable"], api_key)
        elapsed = time.monotonic() - started
        stats = control.get("/_emulator/stats").json()

    calls = WORKERS * CALLS_EACH
    assert all(len(times) == CALLS_EACH for times in done)
    assert stats["responses_429"] == 0
    assert stats["requests"] == {"GET /api/v2/campaigns/{id}": calls}, "each call sent once"
    assert stats["peak_calls_in_any_window"] <= LIMIT
    # The pace is not timid: it used the whole limit at once, and the calls took about the windows
    # they needed, not far more.
    assert stats["peak_calls_in_any_window"] >= LIMIT - 1
    windows_needed = math.ceil(calls / LIMIT) - 1
    assert elapsed >= windows_needed * WINDOW_S


PROCESSES = 4
CALLS_PER_PROCESS = 6


def test_worker_processes_sharing_the_budget_through_dynamodb_never_exceed_the_limit() -> None:
    """Separate processes, as Lambda instances are, share nothing but the table in a moto server."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    app = create_app(
        {"rate_limit_per_minute": LIMIT, "rate_limit_window_s": WINDOW_S, "rate_limit_window": "sliding"}
    )
    emulator = serve_in_thread(app)
    try:
        with httpx.Client(base_url=emulator.base_url, timeout=30) as control:
            control.post(
                "/_emulator/accounts",
                json={"api_key": RF_API_KEY, "campaigns": [{"id": BENCH_CAMPAIGN, "name": "B"}]},
            ).raise_for_status()
            with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=get_context("spawn")) as pool:
                table = pool.submit(provision_table, endpoint, f"t{uuid.uuid4().hex[:8]}").result()
                start_at = time.time() + 3  # time for every process to start
                specs = [
                    WorkerSpec(
                        REFERRAL_FACTORY,
                        f"{emulator.base_url}/api/v2",
                        RF_API_KEY,
                        table,
                        endpoint,
                        start_at,
                        stop_at=start_at + 60,
                        max_calls=CALLS_PER_PROCESS,
                        rf_per_minute=LIMIT,
                        rf_window_s=WINDOW_S,
                    )
                    for _ in range(PROCESSES)
                ]
                results = list(pool.map(run_worker, specs))
            stats = control.get("/_emulator/stats").json()
    finally:
        emulator.stop()
        app.state.emulator.close()
        moto.stop()

    assert [len(r.call_times) for r in results] == [CALLS_PER_PROCESS] * PROCESSES
    assert stats["responses_429"] == 0
    assert stats["requests"] == {"GET /api/v2/campaigns/{id}": PROCESSES * CALLS_PER_PROCESS}
    assert LIMIT - 1 <= stats["peak_calls_in_any_window"] <= LIMIT
