"""A contact sync through the whole local stack, against the rate limits it is paced by.

    python -m bench.sync [--contacts 2000] [--rf-limit-per-minute 600] [--intercom-limit-per-10s 1666]
                         [--window clock|first_hit|sliding] [--unlimited] [--no-resync] [--no-record]
                         [--no-align]

Starts the local stack in this process (as `python -m local up` does: the embedded AWS, both
emulators, the API adapter, the SQS pollers and a warm process per Lambda instance), sets the
emulators' limits, sets up an account as the demo does (Referral Factory account with webhooks to the
product, a connected workspace, the first campaign configured with the contract's example settings),
generates `--contacts` Intercom users, then runs `POST /v1/campaigns/{id}/syncs {"audience": "users"}`
and polls `GET /v1/syncs/{id}` until it completes; then an unchanged re-sync. Prints one JSON document.

What each number is and how it is measured:

- `elapsed_s`: from the `POST` to the first poll (every 0.25 s) that sees `completed`.
- `bound_s`: the rate-limit bound, from the emulator's configured limit read back in this run:
  Referral Factory calls made during the sync / (limit per 60 s), and the same for Intercom (per 10 s);
  the larger is the bound. `--window` sets how the Referral Factory emulator counts its minute
  (`clock`, the default: windows aligned to the minute; `first_hit`: a window opened by the first
  call; `sliding`: any 60 s); the product paces so that no 60 s anywhere holds more than the limit,
  which holds under all three. With `clock` the sync is started just after a minute boundary
  (`--no-align` starts it at once): its first window is a whole one. The limit's first minute goes in
  a burst, so a sync may beat the steady bound by up to one window; `window_floor_s` is that floor,
  (ceil(calls / limit) - 1) windows, the earliest the last call could be admitted.
- `rf_peak_calls_in_any_window`: the most calls the Referral Factory emulator saw from the key within
  any 60 s (closed), over the whole run from setup to the re-sync (`/_emulator/stats`); goal: the limit.
- calls per contact: the emulators' `/_emulator/stats` deltas over the sync, divided by the contacts;
  `after_echoes` also counts the calls made once the queues drained after the sync (the product's
  own handling of the webhooks the sync's writes caused, which come from both services).
- `responses_429`: the emulators' `responses_429` deltas.
- DynamoDB: every request moto served while the sync ran, from moto's request recorder
  (`/moto-api/recorder/`): writes are PutItem, UpdateItem, DeleteItem and each item of
  BatchWriteItem and TransactWriteItems; reads are GetItem, Query, Scan and each item of
  BatchGetItem and TransactGetItems. Capacity units assume items under 1 KB (writes) and 4 KB (reads):
  1 WRU per write, 2 per transactional write; 0.5 RRU per eventually consistent read, 1 per strongly
  consistent one, 2 per transactional one (a Query or Scan counted as one read).
- Lambda: every invocation of a function instance while the sync ran and its duration as the stack
  saw it (send to reply), rounded up to the millisecond as Lambda bills it, at the template's memory
  size. Invocations of ContactSyncFunction are the benchmark's own polling and are left out of the
  cost. Durations on a laptop running everything at once are longer than in Lambda; the estimate is
  an upper bound on that score.
- `peak_rss_mb`: VmHWM of each SyncWorkerFunction instance process (/proc/<pid>/status).
- `estimated_cost_per_100k_usd`: Lambda GB-seconds and requests, SQS requests (a message sent costs
  its SendMessage, one ReceiveMessage and its share of one DeleteMessageBatch; the idle long polls of
  Lambda's pollers cost by the hour, not by the contact, and are left out), DynamoDB on-demand
  WRU/RRU and KMS requests, scaled to 100,000 contacts. Prices are the constants below.

Sync, bound and cost cover the first sync; the re-sync reports calls, 429s and writes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import itertools
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

    from local.stack import Stack

# Unit prices, us-east-1, on-demand, as published on 2025-01 (no free tier); Lambda's for arm64,
# which the template deploys (x86_64 costs 0.0000166667 per GB-s):
# https://aws.amazon.com/lambda/pricing/
LAMBDA_GB_S_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
# https://aws.amazon.com/sqs/pricing/ (standard queues, first 100 TB tier; one request per 64 KB)
SQS_REQUEST_USD = 0.40 / 1_000_000
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (since the 2024-11 price cut)
DYNAMODB_WRU_USD = 0.625 / 1_000_000
DYNAMODB_RRU_USD = 0.125 / 1_000_000
# https://aws.amazon.com/kms/pricing/
KMS_REQUEST_USD = 0.03 / 10_000

RF_WINDOW_S = 60.0
# "Lifted": the Referral Factory emulator unlimited and the account's own budget for its key this
# high; the Intercom emulator this high rather than unlimited, since without its rate-limit headers
# the product keeps a new workspace's first-window budget (10 per 10 s) for good.
LIFTED = 1_000_000
INTERCOM_WINDOW_S = 10.0
POLL_S = 0.25
GENERATE_CHUNK = 5000
SETTLE_S = 1.5
GOALS = {
    "elapsed_to_bound": 1.15,
    "first_intercom_calls_per_contact": 1.01,
    # Besides the campaign's one history read (below): one user created per contact.
    "first_rf_calls_per_contact": 1.0,
    # The campaign's users read once, paged (shared/flows/history.py): at most this many pages.
    "first_rf_history_reads": 1,
    "resync_intercom_calls_per_contact": 0.01,
    "resync_rf_calls_per_contact": 0.0,
    "responses_429": 2,
    # Referral Factory blocks IPs that keep exceeding its limit: none at all, however it counts.
    "rf_responses_429": 0,
}
WINDOW_MODES = ("clock", "first_hit", "sliding")
# Referral Factory's user listing: only the counts' history pass calls it, once per campaign.
RF_HISTORY_ROUTE = "GET /api/v2/users"
# The benchmark's own polling of the sync's status; not part of what a sync costs.
OBSERVER_FUNCTIONS = frozenset({"ContactSyncFunction"})
SYNC_WORKER = "SyncWorkerFunction"

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
DYNAMODB_READS = {"GetItem", "Query", "Scan"}


def log(text: str) -> None:
    sys.stderr.write(f"bench.sync: {text}\n")
    sys.stderr.flush()


# -- Lambda invocations --------------------------------------------------------------------------
@dataclass
class Invocations:
    """Every instance invocation the stack makes, with its duration (recorded in this process)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[tuple[str, float]] = field(default_factory=list)

    def install(self) -> None:
        from local import lambda_runtime

        original = lambda_runtime.Instance.invoke
        invocations = self

        def timed(instance: Any, event: Any, timeout_s: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return original(instance, event, timeout_s)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                with invocations.lock:
                    invocations.records.append((instance.spec.name, elapsed_ms))

        lambda_runtime.Instance.invoke = timed  # type: ignore[method-assign,assignment]

    def mark(self) -> int:
        with self.lock:
            return len(self.records)

    def since(self, mark: int) -> list[tuple[str, float]]:
        with self.lock:
            return list(self.records[mark:])


def lambda_summary(records: list[tuple[str, float]], memory_mb: int) -> dict[str, Any]:
    by_function: dict[str, dict[str, Any]] = {}
    for name, ms in records:
        entry = by_function.setdefault(name, {"invocations": 0, "billed_ms": 0})
        entry["invocations"] += 1
        entry["billed_ms"] += math.ceil(ms)
    billed = [e for n, e in by_function.items() if n not in OBSERVER_FUNCTIONS]
    gb_s = sum(e["billed_ms"] for e in billed) / 1000 * memory_mb / 1024
    return {
        "memory_mb": memory_mb,
        "invocations": sum(e["invocations"] for e in billed),
        "gb_s": round(gb_s, 3),
        "by_function": dict(sorted(by_function.items())),
    }


# -- moto's request recorder ---------------------------------------------------------------------
def recorded_requests(aws_url: str, http: httpx.Client) -> list[dict[str, Any]]:
    """The recorded requests. moto's threads append to the file without a lock, so two entries may
    share a line: each is decoded where it starts."""
    text = http.get(f"{aws_url}/moto-api/recorder/download-recording", timeout=300).text
    decoder = json.JSONDecoder()
    entries: list[dict[str, Any]] = []
    position = text.find("{")
    while position != -1:
        try:
            entry, end = decoder.raw_decode(text, position)
        except ValueError:
            end = position + 1  # a torn entry: skip to the next one
        else:
            if isinstance(entry, dict):
                entries.append(entry)
        position = text.find('{"headers"', end)
    return entries


def _target(entry: dict[str, Any]) -> tuple[str, str]:
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    target = headers.get("x-amz-target", "")
    if target:
        service, _, action = target.partition(".")
        return service, action
    return "", ""


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry.get("body") or ""
    if entry.get("body_encoded"):
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _items(action: str, body: dict[str, Any]) -> int:
    """How many items one DynamoDB request reads or writes."""
    if action in ("BatchWriteItem", "BatchGetItem"):
        tables = (body.get("RequestItems") or {}).values()
        return sum(len(v) if isinstance(v, list) else len(v.get("Keys") or []) for v in tables)
    if action in ("TransactWriteItems", "TransactGetItems"):
        return len(body.get("TransactItems") or [])
    return 1


def dynamodb_capacity(action: str, body: dict[str, Any]) -> tuple[int, float, int, float]:
    """(writes, WRU, reads, RRU) of one DynamoDB request, for items under 1 KB / 4 KB."""
    n = _items(action, body)
    if action in DYNAMODB_WRITES or action == "BatchWriteItem":
        return n, float(n), 0, 0.0
    if action == "TransactWriteItems":
        return n, 2.0 * n, 0, 0.0
    if action in DYNAMODB_READS or action == "BatchGetItem":
        per_read = 1.0 if body.get("ConsistentRead") else 0.5
        return 0, 0.0, n, per_read * n
    if action == "TransactGetItems":
        return 0, 0.0, n, 2.0 * n
    return 0, 0.0, 0, 0.0


def _caller(entry: dict[str, Any]) -> str:
    agent = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}.get("user-agent", "")
    app = next((part[4:] for part in agent.split() if part.startswith("app/")), None)
    return app or "stack (pollers)"


def aws_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """DynamoDB capacity, SQS and KMS requests from the recorded requests."""
    actions: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    writes = reads = 0
    wru = rru = 0.0
    sqs_sent = kms = 0
    for entry in entries:
        service, action = _target(entry)
        callers[_caller(entry)] += 1
        if service.startswith("DynamoDB"):
            actions[action] += 1
            w, wu, r, ru = dynamodb_capacity(action, _body(entry))
            writes, wru, reads, rru = writes + w, wru + wu, reads + r, rru + ru
        elif service == "AmazonSQS" and action == "SendMessage":
            sqs_sent += 1
        elif service == "AmazonSQS" and action == "SendMessageBatch":
            sqs_sent += len(_body(entry).get("Entries") or [])
        elif service == "TrentService":
            kms += 1
    return {
        "dynamodb": {
            "writes": writes,
            "reads": reads,
            "wru": wru,
            "rru": rru,
            "requests_by_action": dict(actions.most_common()),
        },
        "requests_by_caller": dict(callers.most_common()),
        "sqs_messages_sent": sqs_sent,
        # A message costs its SendMessage, a ReceiveMessage and a DeleteMessage(Batch) at most.
        "sqs_requests_billed": 3 * sqs_sent,
        "kms_requests": kms,
    }


# -- the run -------------------------------------------------------------------------------------
@dataclass
class Emulators:
    http: httpx.Client
    intercom: str
    rf: str

    def stats(self) -> dict[str, dict[str, Any]]:
        return {
            "intercom": self.http.get(f"{self.intercom}/_emulator/stats").json(),
            "rf": self.http.get(f"{self.rf}/_emulator/stats").json(),
        }

    def configure(
        self, rf_per_minute: int | None, intercom_per_10s: int | None, window: str = "clock"
    ) -> dict[str, Any]:
        rf = self.http.put(
            f"{self.rf}/_emulator/config",
            json={"rate_limit_per_minute": rf_per_minute, "rate_limit_window": window},
        )
        ic = self.http.put(f"{self.intercom}/_emulator/config", json={"rate_limit_per_10s": intercom_per_10s})
        rf.raise_for_status()
        ic.raise_for_status()
        # Read back: the limits the bound is computed from are the ones the emulators enforce.
        rf_config = self.http.get(f"{self.rf}/_emulator/config").json()
        return {
            "rf_per_minute": rf_config["rate_limit_per_minute"],
            "rf_window": rf_config["rate_limit_window"],
            "intercom_per_10s": self.http.get(f"{self.intercom}/_emulator/config").json()[
                "rate_limit_per_10s"
            ],
        }


def calls(before: dict[str, Any], after: dict[str, Any]) -> int:
    return int(sum(after["requests"].values()) - sum(before["requests"].values()))


def by_route(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    return {
        route: n - int(before["requests"].get(route, 0))
        for route, n in sorted(after["requests"].items())
        if n - int(before["requests"].get(route, 0))
    }


def queues_idle(stack: Stack) -> bool:
    sqs = stack.aws.client("sqs")
    for logical, url in stack.provisioned.refs.items():
        if logical not in stack.provisioned.queue_names:
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if any(
            int(attrs[k])
            for k in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        ):
            return False
    return True


def wait_idle(stack: Stack, timeout_s: float) -> float:
    """Wait until every queue stays empty for SETTLE_S; returns the seconds waited."""
    started = time.monotonic()
    idle_since: float | None = None
    while time.monotonic() - started < timeout_s:
        if queues_idle(stack):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= SETTLE_S:
                break
        else:
            idle_since = None
        time.sleep(0.25)
    return time.monotonic() - started


def _cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(stack: Stack) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process of the stack, grouped: this process (API adapter, pollers,
    the benchmark), each service, each function's instances."""
    parts: dict[str, dict[int, float]] = {"stack process": {os.getpid(): _cpu_s(os.getpid()) or 0.0}}
    for kind, service in stack.services.items():
        pid = service.process.pid
        if pid is not None:
            parts[f"service:{kind}"] = {pid: _cpu_s(pid) or 0.0}
    for name, pool in stack.pools.items():
        parts[name] = {pid: cpu for pid in pool.pids() if (cpu := _cpu_s(pid)) is not None}
    return parts


def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    spent = {
        part: round(sum(cpu - before.get(part, {}).get(pid, 0.0) for pid, cpu in pids.items()), 1)
        for part, pids in after.items()
    }
    return dict(sorted(((k, v) for k, v in spent.items() if v >= 0.1), key=lambda kv: -kv[1]))


def peak_rss_mb(stack: Stack) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for pid in stack.pools[SYNC_WORKER].pids():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[str(pid)] = round(int(line.split()[1]) / 1024, 1)
    return peaks


@dataclass
class SyncRun:
    sync: dict[str, Any]
    elapsed_s: float
    started_at: float
    stats_before: dict[str, Any]
    stats_done: dict[str, Any]
    stats_settled: dict[str, Any]
    lambda_records: list[tuple[str, float]]
    aws: dict[str, Any] | None
    cpu_s: dict[str, float]
    load_average: tuple[float, float]
    rf_samples: list[tuple[float, int]]
    progress: list[tuple[float, int]]
    stopped: bool


class Bench:
    def __init__(self, stack: Stack, info: dict[str, str], http: httpx.Client, record: bool) -> None:
        from local.demo import Demo

        self.stack = stack
        self.http = http
        self.emulators = Emulators(http, info["intercom"], info["referral_factory"])
        self.demo = Demo(info, stack, http, out=io.StringIO())
        self.invocations = Invocations()
        self.record = record

    @property
    def api(self) -> str:
        return self.demo.api

    def setup(self, contacts: int) -> None:
        from local.demo import ready_for_signups

        ready_for_signups(self.demo)
        workspace = self.demo.state["workspace"]
        for start in range(0, contacts, GENERATE_CHUNK):
            count = min(GENERATE_CHUNK, contacts - start)
            response = self.http.post(
                f"{self.emulators.intercom}/_emulator/workspaces/{workspace}/contacts",
                json={"generate": {"count": count, "role": "user"}},
                timeout=300,
            )
            response.raise_for_status()
        log(f"{contacts} users in workspace {workspace}; campaign {self.demo.state['campaign_id']}")

    def lift_rf_budget(self, per_minute: int) -> None:
        """The account's own Referral Factory budget (600 a minute unless its record says otherwise)."""
        from shared import keys

        pk, sk = keys.account_key(self.demo.state["account_id"])
        self.stack.aws.client("dynamodb").update_item(
            TableName=self.stack.provisioned.refs["MainTable"],
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET rf_rate_limit_per_minute = :limit",
            ExpressionAttributeValues={":limit": {"N": str(per_minute)}},
        )

    def _recorder(self, action: str) -> None:
        if self.record:
            response = self.http.post(f"{self.demo.info['aws']}/moto-api/recorder/{action}")
            response.raise_for_status()

    def run_sync(self, timeout_s: float, stop_after_s: float | None = None) -> SyncRun:
        """Run a sync to its end (or cancel it after `stop_after_s`) and measure it."""
        campaign = self.demo.state["campaign_id"]
        self._recorder("reset-recording")
        self._recorder("start-recording")
        before = self.emulators.stats()
        mark = self.invocations.mark()
        cpu_before = cpu_by_part(self.stack)
        load_before = os.getloadavg()[0]
        started = time.time()
        response = self.http.post(
            f"{self.api}/v1/campaigns/{campaign}/syncs",
            json={"audience": "users"},
            headers=self.demo.account(),
        )
        if response.status_code != 202:
            raise RuntimeError(f"POST .../syncs -> {response.status_code}: {response.text}")
        sync_id = response.json()["sync_id"]
        last_report = last_sample = 0.0
        rf_samples: list[tuple[float, int]] = [(started, sum(before["rf"]["requests"].values()))]
        progress: list[tuple[float, int]] = []
        stopped = False
        while True:
            sync = self.http.get(f"{self.api}/v1/syncs/{sync_id}", headers=self.demo.account()).json()
            now = time.time()
            if now - last_sample >= 1:
                last_sample = now
                rf_samples.append((now, sum(self.emulators.stats()["rf"]["requests"].values())))
            if sync["status"] not in ("queued", "running"):
                break
            if now - started > timeout_s:
                raise RuntimeError(f"the sync did not finish in {timeout_s:.0f} s: {sync}")
            if stop_after_s is not None and now - started > stop_after_s:
                stopped = True
                self.http.post(f"{self.api}/v1/syncs/{sync_id}/cancel", headers=self.demo.account())
                log(f"stopped after {now - started:.0f} s: {sync['processed']}/{sync['total']} processed")
                break
            if now - last_report >= 10:
                last_report = now
                progress.append((round(now - started, 1), int(sync["processed"])))
                log(f"{now - started:5.0f} s: {sync['processed']}/{sync['total']} processed")
            time.sleep(POLL_S)
        elapsed = now - started
        progress.append((round(elapsed, 1), int(sync["processed"])))
        done = self.emulators.stats()
        rf_samples.append((time.time(), sum(done["rf"]["requests"].values())))
        records = self.invocations.since(mark)
        cpu = cpu_delta(cpu_before, cpu_by_part(self.stack))
        load = (round(load_before, 2), round(os.getloadavg()[0], 2))
        wait_idle(self.stack, timeout_s=120)
        settled = self.emulators.stats()
        self._recorder("stop-recording")
        aws = aws_summary(recorded_requests(self.demo.info["aws"], self.http)) if self.record else None
        log(f"sync {sync_id} {sync['status']} in {elapsed:.1f} s: {json.dumps(_counters(sync))}")
        return SyncRun(
            sync=sync,
            elapsed_s=elapsed,
            started_at=started,
            stats_before=before,
            stats_done=done,
            stats_settled=settled,
            lambda_records=records,
            aws=aws,
            cpu_s=cpu,
            load_average=load,
            rf_samples=rf_samples,
            progress=progress,
            stopped=stopped,
        )


def _counters(sync: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "total", "processed", "created", "updated", "skipped", "failed")
    return {k: sync[k] for k in keys}


def wait_for_window(window_s: float, lead_s: float = 0.2) -> None:
    """Sleep until just after the next boundary of the service's fixed windows."""
    now = time.time()
    boundary = math.ceil(now / window_s) * window_s
    if boundary - now < 5:  # too close to set up the start; a whole window later
        boundary += window_s
    log(f"starting on the next minute boundary, in {boundary - now:.0f} s")
    time.sleep(boundary - now + lead_s)


def calls_per_window(samples: list[tuple[float, int]], window_s: float) -> list[int]:
    """Calls the service counted in each of its fixed windows the sync overlapped (from the stats
    sampled about once a second, so a boundary may be off by a second's worth of calls)."""
    if len(samples) < 2:
        return []
    first, last = samples[0][0], samples[-1][0]
    bounds = [first]
    edge = math.floor(first / window_s) * window_s + window_s
    while edge < last:
        bounds.append(edge)
        edge += window_s
    bounds.append(last)

    def count_at(t: float) -> int:
        return next((n for at, n in samples if at >= t), samples[-1][1])

    return [count_at(b) - count_at(a) for a, b in itertools.pairwise(bounds)]


def describe(
    run: SyncRun, contacts: int, limits: dict[str, Any], memory_mb: int, *, first: bool, lifted: bool = False
) -> dict[str, Any]:
    ic_calls = calls(run.stats_before["intercom"], run.stats_done["intercom"])
    rf_calls = calls(run.stats_before["rf"], run.stats_done["rf"])
    ic_all = calls(run.stats_before["intercom"], run.stats_settled["intercom"])
    rf_all = calls(run.stats_before["rf"], run.stats_settled["rf"])
    # Per contact processed: all of them, unless the run was stopped early.
    n = max(int(run.sync["processed"]), 1)
    rf_routes = by_route(run.stats_before["rf"], run.stats_done["rf"])
    history_reads = rf_routes.get(RF_HISTORY_ROUTE, 0)
    result: dict[str, Any] = {
        "sync": _counters(run.sync),
        "elapsed_s": round(run.elapsed_s, 1),
        "intercom_calls_per_contact": round(ic_calls / n, 4),
        "rf_calls_per_contact": round(rf_calls / n, 4),
        # The campaign's history read is a fixed cost per campaign, not per contact.
        "rf_history_reads": history_reads,
        "rf_calls_per_contact_besides_history": round((rf_calls - history_reads) / n, 4),
        "after_echoes": {
            "intercom_calls_per_contact": round(ic_all / n, 4),
            "rf_calls_per_contact": round(rf_all / n, 4),
        },
        "intercom_calls": by_route(run.stats_before["intercom"], run.stats_done["intercom"]),
        "rf_calls": rf_routes,
        "responses_429": {
            "intercom": run.stats_settled["intercom"]["responses_429"]
            - run.stats_before["intercom"]["responses_429"],
            "rf": run.stats_settled["rf"]["responses_429"] - run.stats_before["rf"]["responses_429"],
        },
    }
    if run.aws is not None:
        result["dynamodb_writes_per_contact"] = round(run.aws["dynamodb"]["writes"] / n, 3)
        result["dynamodb_reads_per_contact"] = round(run.aws["dynamodb"]["reads"] / n, 3)
    if first and lifted:
        limits = {"rf_per_minute": None, "intercom_per_10s": None}  # no rate-limit bound to compare with
    if first:
        bounds = []
        rf_limit, ic_limit = limits["rf_per_minute"], limits["intercom_per_10s"]
        if rf_limit:
            bounds.append(
                rate_bound("referral_factory", rf_calls, rf_limit, RF_WINDOW_S)
                | {"calls_per_window": calls_per_window(run.rf_samples, RF_WINDOW_S)}
            )
        if ic_limit:
            bounds.append(rate_bound("intercom", ic_calls, ic_limit, INTERCOM_WINDOW_S))
        if bounds:
            binding = max(bounds, key=lambda b: b["bound_s"])
            result["bound"] = {"binding": binding["service"], "services": bounds}
            result["bound_s"] = binding["bound_s"]
            result["elapsed_to_bound"] = round(run.elapsed_s / binding["bound_s"], 3)
        result["contacts_per_s"] = round(n / run.elapsed_s, 1)
        if run.stopped:
            result["stopped_early"] = {"after_s": round(run.elapsed_s, 1), "processed": n, "of": contacts}
        result["progress"] = [{"s": t, "processed": p} for t, p in run.progress]
        result["cpu_s_during_sync"] = {"total": round(sum(run.cpu_s.values()), 1), **run.cpu_s}
        result["load_average_1min"] = {"at_start": run.load_average[0], "at_end": run.load_average[1]}
        result["lambda"] = lambda_summary(run.lambda_records, memory_mb)
        if run.aws is not None:
            result["aws_requests"] = {k: v for k, v in run.aws.items() if k != "dynamodb"}
            result["dynamodb"] = run.aws["dynamodb"]
            result["estimated_cost_per_100k_usd"] = cost_per_100k(result["lambda"], run.aws, n)
    return result


def rate_bound(service: str, calls: int, limit: int, window_s: float) -> dict[str, Any]:
    """The least time `calls` can take at `limit` a fixed window, and the floor a burst allows."""
    return {
        "service": service,
        "calls": calls,
        "limit": f"{limit}/{window_s:g}s",
        "bound_s": round(calls * window_s / limit, 1),
        "window_floor_s": (math.ceil(calls / limit) - 1) * window_s,
    }


def cost_per_100k(lam: dict[str, Any], aws: dict[str, Any], contacts: int) -> dict[str, Any]:
    scale = 100_000 / max(contacts, 1)
    parts = {
        "lambda_compute": lam["gb_s"] * LAMBDA_GB_S_USD,
        "lambda_requests": lam["invocations"] * LAMBDA_REQUEST_USD,
        "sqs": aws["sqs_requests_billed"] * SQS_REQUEST_USD,
        "dynamodb_writes": aws["dynamodb"]["wru"] * DYNAMODB_WRU_USD,
        "dynamodb_reads": aws["dynamodb"]["rru"] * DYNAMODB_RRU_USD,
        "kms": aws["kms_requests"] * KMS_REQUEST_USD,
    }
    scaled = {k: round(v * scale, 4) for k, v in parts.items()}
    return {"total": round(sum(scaled.values()), 4), **scaled}


def goals(
    first: dict[str, Any],
    resync: dict[str, Any] | None,
    *,
    applicable: bool,
    peak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not applicable:
        return {"targets": GOALS, "met": None, "why": "limits lifted or stopped early: throughput only"}
    checks: dict[str, Any] = {}
    if "elapsed_to_bound" in first:
        checks["elapsed_to_bound"] = first["elapsed_to_bound"] <= GOALS["elapsed_to_bound"]
    checks["first_intercom_calls_per_contact"] = (
        first["intercom_calls_per_contact"] <= GOALS["first_intercom_calls_per_contact"]
    )
    checks["first_rf_calls_per_contact"] = (
        first["rf_calls_per_contact_besides_history"] <= GOALS["first_rf_calls_per_contact"]
    )
    # The first sync of a new campaign finds no earlier users: one page.
    checks["first_rf_history_reads"] = first["rf_history_reads"] <= GOALS["first_rf_history_reads"]
    runs = [first] + ([resync] if resync else [])
    checks["responses_429"] = all(sum(r["responses_429"].values()) <= GOALS["responses_429"] for r in runs)
    checks["rf_responses_429"] = all(r["responses_429"]["rf"] <= GOALS["rf_responses_429"] for r in runs)
    if peak is not None:
        checks["rf_peak_calls_in_any_window"] = peak["calls"] <= peak["limit"]
    if resync:
        checks["resync_intercom_calls_per_contact"] = (
            resync["intercom_calls_per_contact"] <= GOALS["resync_intercom_calls_per_contact"]
        )
        checks["resync_rf_calls_per_contact"] = (
            resync["rf_calls_per_contact"] <= GOALS["resync_rf_calls_per_contact"]
        )
    return {"targets": GOALS, "met": checks, "all_met": all(checks.values())}


@contextlib.contextmanager
def running_stack(
    record_path: Path | None, function_log_level: str
) -> Iterator[tuple[Stack, dict[str, str]]]:
    from local import template as tmpl
    from local.services import free_ports
    from local.stack import Stack, StackOptions

    class BenchStack(Stack):
        def function_environment(self, fn: tmpl.Function) -> dict[str, str]:
            # The functions log each contact at INFO; at 2,000 a second that is what the CPU does.
            env = super().function_environment(fn)
            # botocore puts this in each request's User-Agent: the recording tells who asked.
            return {**env, "POWERTOOLS_LOG_LEVEL": function_log_level, "AWS_SDK_UA_APP_ID": fn.name}

    if record_path is not None:
        # Read by the embedded AWS's process when it starts; recording itself is switched on per sync.
        os.environ["MOTO_RECORDER_FILEPATH"] = str(record_path)
    api, intercom, rf, aws = free_ports(4)
    options = StackOptions(
        api_port=api, intercom_port=intercom, rf_port=rf, aws_port=aws, schedule_interval_s=3600
    )
    stack = BenchStack(options)
    try:
        info = stack.start()
        warm(stack)
        yield stack, info
    finally:
        stack.stop()


def warm(stack: Stack, attempts: int = 3) -> None:
    """Every instance the stack keeps warm, started: on a busy machine an init can exceed Lambda's
    10 s and fail, and a sync page given to a failed instance waits out the visibility timeout."""
    from local.lambda_runtime import FunctionError
    from local.stack import DEFAULT_CONSUMER_CONCURRENCY

    for name, fn in stack.functions.items():
        count = (1 if fn.routes else 0) + sum(
            c.max_concurrency or DEFAULT_CONSUMER_CONCURRENCY for c in fn.consumers
        )
        for attempt in range(attempts):
            try:
                stack.pools[name].warm(count)
                break
            except FunctionError as exc:
                log(f"{name}: an instance did not start ({exc}); attempt {attempt + 1} of {attempts}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--rf-limit-per-minute", type=int, default=600)
    parser.add_argument("--intercom-limit-per-10s", type=int, default=1666)
    parser.add_argument(
        "--window",
        choices=WINDOW_MODES,
        default="clock",
        help="how the Referral Factory emulator counts its minute (rate_limit_window)",
    )
    parser.add_argument(
        "--unlimited",
        action="store_true",
        help="lift both services' limits and the account's Referral Factory budget (throughput only)",
    )
    parser.add_argument(
        "--stop-after", type=float, help="cancel the first sync after this many seconds and report so far"
    )
    parser.add_argument("--no-resync", action="store_true", help="skip the unchanged re-sync")
    parser.add_argument(
        "--no-record", action="store_true", help="do not record moto's requests (no DynamoDB or cost figures)"
    )
    parser.add_argument(
        "--no-align", action="store_true", help="start at once, not on a minute boundary (--window clock)"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a sync may take")
    parser.add_argument(
        "--function-log-level", default="WARNING", help="the functions' POWERTOOLS_LOG_LEVEL (template: INFO)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import logging
    import signal

    # SIGTERM stops the stack as Ctrl-C does: no instance outlives the benchmark.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # Never a real account: everything talks to the embedded AWS started here.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        record_path = None if args.no_record else Path(tmp) / "moto-recording.jsonl"
        with (
            running_stack(record_path, args.function_log_level) as (stack, info),
            httpx.Client(timeout=60) as http,
        ):
            bench = Bench(stack, info, http, record=record_path is not None)
            bench.invocations.install()
            if args.unlimited:
                limits = bench.emulators.configure(None, LIFTED, args.window)
            else:
                limits = bench.emulators.configure(
                    args.rf_limit_per_minute, args.intercom_limit_per_10s, args.window
                )
            log(f"limits: {limits}")
            setup_started = time.perf_counter()
            bench.setup(args.contacts)
            setup_s = time.perf_counter() - setup_started
            log(f"set up in {setup_s:.1f} s")
            if args.unlimited:
                bench.lift_rf_budget(LIFTED)
            memory_mb = stack.pools[SYNC_WORKER].spec.memory_mb
            aligned = not args.no_align and bool(limits["rf_per_minute"]) and args.window == "clock"
            if aligned:
                wait_for_window(RF_WINDOW_S)
            first_run = bench.run_sync(args.timeout, args.stop_after)
            first = describe(first_run, args.contacts, limits, memory_mb, first=True, lifted=args.unlimited)
            first["peak_rss_mb"] = peak_rss_mb(stack)
            resync = None
            if not args.no_resync and not first_run.stopped:
                resync_run = bench.run_sync(args.timeout)
                resync = describe(resync_run, args.contacts, limits, memory_mb, first=False)
            peak = None
            if limits["rf_per_minute"]:
                seen = bench.emulators.stats()["rf"]["peak_calls_in_any_window"]
                peak = {"calls": seen, "limit": limits["rf_per_minute"], "window_s": RF_WINDOW_S}
            result = {
                "bench": "sync",
                "contacts": args.contacts,
                "limits": {**limits, "lifted": args.unlimited},
                "setup_s": round(setup_s, 1),
                "aligned_start": aligned,
                "rf_peak_calls_in_any_window": peak,
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "first_sync": first,
                "resync": resync,
                "goals": goals(
                    first, resync, applicable=not (args.unlimited or first_run.stopped), peak=peak
                ),
            }
    print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
