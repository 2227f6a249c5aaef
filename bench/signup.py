"""Signup push: how fast the webhook receiver answers, and how long a signup takes to become a contact.

    python -m bench.signup [--invocations 500] [--signups 200] [--rate 5] [--friends-per-referrer 9]
                           [--poll-ms 200] [--product-rf-limit 100000] [--skip-in-process] [--skip-stack]

In process: the real receiver (`functions/referral_signup/app.handler`, imported with its template
environment against moto in process, as the functional tests load it) answers `--invocations` valid
Referral Factory webhooks, interleaved with a no-op handler wearing the same Powertools decorators;
p50/p99 of each and their ratio, measured in the same run (goal: the receiver's p99 ≤ 50 ms).

Through the stack: `python -m local up` on free ports, an account set up as the demo sets it up
(webhooks to the product, a connected empty workspace, the contract's example settings), the Referral
Factory emulator's limit lifted (`rate_limit_per_minute: null`) and with it the product's own budget
for the account's key (600 a minute unless the account record says otherwise; `--product-rf-limit 0`
keeps it, to see what the real limit allows); then `--signups` people join through
`POST /_emulator/signups` at `--rate` a second (one referrer, then its friends), each join sending a
real `user.join` webhook. The Intercom emulator's contact listing is polled every `--poll-ms`, so a
latency is from the signup call to the first poll answer that lists the contact (an upper bound by up
to one poll). Goals: p95 ≤ 5 s, contacts made = signups, no duplicates. Also reported: each referrer's
`referrals_count` in Intercom against its friends, and the calls each signup cost at both services.

Prints one JSON document on stdout; narration and the stack's log go to stderr and a temporary file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local import template as tmpl
from local.demo import Demo

RECEIVER = "ReferralSignupFunction"
RECEIVER_GOAL_P99_MS = 50.0
LATENCY_GOAL_P95_S = 5.0
WARM_UP = 20
DRAIN_EVERY = 20
READY_TIMEOUT_S = 90.0
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
}


def percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _ms(values: list[float], *pcts: int) -> dict[str, float]:
    return {f"p{p}": round(percentile(values, p) * 1000, 2) for p in pcts}


# -- in process ------------------------------------------------------------------------------------
def webhook_event(account_id: str, secret: str) -> dict[str, Any]:
    """The REST proxy event the local API Gateway builds for the Referral Factory emulator's webhook."""
    from starlette.requests import Request

    from local.apigw import ApiRoute, build_event
    from shared.accounts import WEBHOOK_HEADER_NAME

    user = {
        "id": 4242,
        "campaign_id": 77,
        "referrer_id": 4241,
        "code": "aB3dE5fG",
        "url": "https://referral-factory.com/x?code=aB3dE5fG",
        "first_name": "Fred",
        "email": "fred@bench.example",
        "type": "person_invited",
        "source": "Referred",
        "qualified": False,
        "signed_up_at": "2026-01-01T00:00:00.000000Z",
    }
    body = json.dumps({"event": "user.join", "campaign": {"id": 77, "name": "Bench"}, "user": user}).encode()
    path = f"/webhooks/referral-factory/{account_id}"
    headers = {
        "host": "127.0.0.1:3000",
        "content-type": "application/json",
        "user-agent": "python-httpx/0.28",
        WEBHOOK_HEADER_NAME.lower(): secret,
    }
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "scheme": "http",
        "server": ("127.0.0.1", 3000),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
    }
    route = ApiRoute.of("/webhooks/referral-factory/{account_id}", "ANY", RECEIVER)
    return build_event(Request(scope), body, route, {"account_id": account_id}, str(uuid.uuid4()))


def drain(sqs: Any, queue_url: str) -> None:
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


def measure_in_process(invocations: int) -> dict[str, Any]:
    """The receiver and a decorated no-op, interleaved, against moto in this process."""
    os.environ.update(FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from local.lambda_runtime import LambdaContext
    from local.provision import parameter_defaults, provision, resolve_environment

    with mock_aws():
        import boto3

        provisioned = provision(boto3.session.Session(), stack="bench")
        fn = tmpl.functions()[RECEIVER]
        os.environ.update(resolve_environment(fn, provisioned, parameter_defaults()))
        package = fn.code_uri.strip("/").replace("/", ".")
        receiver = importlib.import_module(f"{package}.{fn.handler.rpartition('.')[0]}").handler
        from aws_lambda_powertools.logging import correlation_paths

        from shared import aws, queues
        from shared.accounts import hash_secret
        from shared.observability import logger, metrics
        from shared.store import Store

        aws.reset()

        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
        @metrics.log_metrics
        def noop(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

        account_id, secret = "acc_bench", secrets.token_urlsafe(24)
        Store(provisioned.refs["MainTable"]).put(
            {"pk": f"ACCOUNT#{account_id}", "sk": "META", "webhook_secret_hash": hash_secret(secret)}
        )
        event = webhook_event(account_id, secret)
        store, queue_url = Store(provisioned.refs["MainTable"]), provisioned.refs["SignupQueue"]

        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
        @metrics.log_metrics
        def aws_calls(event: dict[str, Any], context: Any) -> dict[str, Any]:
            """Only the receiver's two AWS calls (moto here), to show what its own code adds."""
            store.get(f"ACCOUNT#{account_id}", "META", consistent=False)
            queues.send(queue_url, {"kind": "bench"})
            return {"statusCode": 200, "body": "{}"}

        def context() -> LambdaContext:
            return LambdaContext(
                function_name=RECEIVER,
                invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{RECEIVER}",
                memory_limit_in_mb=512,
                aws_request_id=str(uuid.uuid4()),
                deadline_ms=int(time.time() * 1000) + 5000,
            )

        def timed(handler: Callable[[dict[str, Any], Any], Any]) -> float:
            ctx = context()
            started = time.perf_counter()
            result = handler(event, ctx)
            elapsed = time.perf_counter() - started
            if result["statusCode"] != 200:
                raise RuntimeError(f"the handler answered {result}")
            return elapsed

        sqs = boto3.client("sqs")
        for _ in range(WARM_UP):
            timed(receiver)
        queued = int(
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        if queued != WARM_UP:
            raise RuntimeError(f"{WARM_UP} webhooks queued {queued} messages")
        handlers = {"receiver": receiver, "noop": noop, "aws_calls": aws_calls}
        samples: dict[str, list[float]] = {name: [] for name in handlers}
        # Interleaved so machine noise hits all alike.
        for i in range(invocations):
            if i % DRAIN_EVERY == 0:
                # moto's SendMessage slows as a queue grows (a real queue does not): keep it short.
                drain(sqs, queue_url)
            for name, handler in handlers.items():
                samples[name].append(timed(handler))
    receiver_ms, noop_ms = _ms(samples["receiver"], 50, 99), _ms(samples["noop"], 50, 99)
    return {
        "invocations": invocations,
        "receiver_ms": receiver_ms,
        "noop_ms": noop_ms,
        "aws_calls_only_ms": _ms(samples["aws_calls"], 50, 99),
        "ratio_p50": round(receiver_ms["p50"] / noop_ms["p50"], 2),
        "ratio_p99": round(receiver_ms["p99"] / noop_ms["p99"], 2),
        "goal_p99_ms": RECEIVER_GOAL_P99_MS,
        "meets_goal": receiver_ms["p99"] <= RECEIVER_GOAL_P99_MS,
    }


# -- through the stack -----------------------------------------------------------------------------
def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every live process under it, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                parents[int(entry.name)] = int(fields[1])
                times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, pending = {pid}, [pid]
    while pending:
        parent = pending.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                pending.append(child)
    return sum(times.get(p, 0.0) for p in tree)


@contextlib.contextmanager
def running_stack(log_path: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`python -m local up` on free ports until the block ends; yields its ready line (with its pid)."""
    api, intercom, rf, aws = free_ports(4)
    command = [sys.executable, "-m", "local", "up", "--api-port", str(api), "--intercom-port", str(intercom)]
    command += ["--rf-port", str(rf), "--aws-port", str(aws), "--schedule-interval", "3600"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=tmpl.ROOT, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"the stack did not start; its log: {log_path}")
        yield {**json.loads(line), "pid": str(process.pid)}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Signup:
    email: str
    referrer_email: str | None
    sent_at: float = 0.0
    arrived_at: float | None = None


@dataclass
class SignupRun:
    people: list[Signup]
    load_at_start: float = 0.0
    errors: list[str] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    cpu_s: float = 0.0


def plan(count: int, friends_per_referrer: int) -> list[Signup]:
    tag = secrets.token_hex(3)
    people: list[Signup] = []
    referrer: str | None = None
    for i in range(count):
        email = f"bench{i:04d}.{tag}@signup-bench.example"
        if i % (friends_per_referrer + 1) == 0:
            referrer = email
            people.append(Signup(email, None))
        else:
            people.append(Signup(email, referrer))
    return people


def sign_up(http: httpx.Client, demo: Demo, run: SignupRun, rate: float) -> None:
    """Each person joins at their slot, `1 / rate` s apart; a friend names their referrer's code."""
    rf, rf_key, campaign_id = demo.rf, demo.state["rf_api_key"], int(demo.state["campaign_id"])
    codes: dict[str, str] = {}
    started = time.monotonic()
    for i, person in enumerate(run.people):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        body: dict[str, Any] = {
            "api_key": rf_key,
            "campaign_id": campaign_id,
            "first_name": f"Bench{i}",
            "email": person.email,
        }
        if person.referrer_email:
            body["referrer_code"] = codes[person.referrer_email]
        person.sent_at = time.monotonic()
        response = http.post(f"{rf}/_emulator/signups", json=body)
        if response.status_code != 201:
            run.errors.append(f"{person.email}: {response.status_code} {response.text[:200]}")
            continue
        data = response.json()
        codes[person.email] = (data.get("data") or data)["code"]
    run.finished_at = time.monotonic()


def listing(http: httpx.Client, intercom: str, workspace: str) -> list[dict[str, Any]]:
    response = http.get(f"{intercom}/_emulator/workspaces/{workspace}/contacts")
    response.raise_for_status()
    return list(response.json()["data"])


def queue_settled(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return all(
        attributes[k] == "0" for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


def lift_limits(http: httpx.Client, demo: Demo, aws: dict[str, str], product_rf_limit: int) -> None:
    """The Referral Factory emulator's limit off; the account's own budget for its key raised too."""
    http.put(f"{demo.rf}/_emulator/config", json={"rate_limit_per_minute": None}).raise_for_status()
    if product_rf_limit:
        import boto3

        # The product spends its own budget per key before each call (Referral Factory's documented
        # 600 a minute); an account's record may say otherwise, and nothing else can.
        boto3.client("dynamodb", **aws).update_item(
            TableName="local-MainTable",
            Key={"pk": {"S": f"ACCOUNT#{demo.state['account_id']}"}, "sk": {"S": "META"}},
            UpdateExpression="SET rf_rate_limit_per_minute = :limit",
            ExpressionAttributeValues={":limit": {"N": str(product_rf_limit)}},
        )


def watch(http: httpx.Client, demo: Demo, run: SignupRun, args: argparse.Namespace) -> None:
    """Sign up `run.people` in a thread; note when each first shows in the workspace's listing."""
    by_email = {p.email: p for p in run.people}
    signer = threading.Thread(target=sign_up, args=(http, demo, run, args.rate), daemon=True)
    run.started_at = time.monotonic()
    signer.start()
    deadline = run.started_at + args.signups / args.rate + args.timeout
    pending = set(by_email)
    while (pending or signer.is_alive()) and time.monotonic() < deadline:
        for contact in listing(http, demo.intercom, demo.state["workspace"]):
            email = contact.get("email")
            if email in pending and by_email[email].sent_at:
                by_email[email].arrived_at = time.monotonic()
                pending.discard(email)
        time.sleep(args.poll_ms / 1000)
    signer.join()


def stats(http: httpx.Client, demo: Demo) -> dict[str, dict[str, Any]]:
    return {
        name: http.get(f"{base}/_emulator/stats").json()
        for name, base in (("rf", demo.rf), ("ic", demo.intercom))
    }


def measure_stack(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    import boto3

    from local.demo import ready_for_signups

    log_path = Path(tempfile.mkdtemp(prefix="bench-signup-")) / "stack.log"
    print(f"starting the stack (its log: {log_path})", file=sys.stderr)
    with running_stack(log_path, env) as info, httpx.Client(timeout=30) as http:
        demo = Demo(info, None, http)
        ready_for_signups(demo)
        aws = {"endpoint_url": info["aws"], "region_name": "us-east-1"}
        aws |= {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        lift_limits(http, demo, aws, args.product_rf_limit)
        sqs = boto3.client("sqs", **aws)
        queue_url = sqs.get_queue_url(QueueName="local-SignupQueue")["QueueUrl"]
        before, cpu_before = stats(http, demo), tree_cpu_s(int(info["pid"]))
        run = SignupRun(plan(args.signups, args.friends_per_referrer), load_at_start=os.getloadavg()[0])
        print(f"{args.signups} signups at {args.rate}/s", file=sys.stderr)
        watch(http, demo, run, args)
        # Whatever is still in the queue could yet make a duplicate: wait for it before counting.
        settle_deadline = time.monotonic() + 30
        while not queue_settled(sqs, queue_url) and time.monotonic() < settle_deadline:
            time.sleep(0.5)
        emails = {p.email for p in run.people}
        final = [c for c in listing(http, demo.intercom, demo.state["workspace"]) if c.get("email") in emails]
        run.cpu_s = tree_cpu_s(int(info["pid"])) - cpu_before
        after = stats(http, demo)
    return summarise(run, final, before, after, args)


def summarise(
    run: SignupRun,
    final: list[dict[str, Any]],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    per_email: dict[str, list[dict[str, Any]]] = {}
    for contact in final:
        per_email.setdefault(contact["email"], []).append(contact)
    friends: dict[str, int] = {}
    for person in run.people:
        if person.referrer_email:
            friends[person.referrer_email] = friends.get(person.referrer_email, 0) + 1
    referrers = [p.email for p in run.people if p.referrer_email is None]
    counts_right = sum(
        1
        for email in referrers
        if per_email.get(email)
        and int((per_email[email][0].get("custom_attributes") or {}).get("referrals_count") or 0)
        == friends.get(email, 0)
    )
    latencies = [p.arrived_at - p.sent_at for p in run.people if p.arrived_at is not None]
    signups = len(run.people) - len(run.errors)
    duplicates = sum(len(v) - 1 for v in per_email.values())

    def delta(service: str, key: str) -> int:
        return int(after[service][key]) - int(before[service][key])

    def per_signup(service: str) -> float:
        calls = sum(after[service]["requests"].values()) - sum(before[service]["requests"].values())
        return round(calls / max(signups, 1), 2)

    latency = {k: round(v / 1000, 2) for k, v in _ms(latencies, 50, 95).items()} if latencies else {}
    return {
        "signups": signups,
        "referrers": len(referrers),
        "friends": len(run.people) - len(referrers),
        "rate_per_s": args.rate,
        "achieved_rate_per_s": round(len(run.people) / max(run.finished_at - run.started_at, 1e-9), 2),
        "product_rf_budget_per_minute": args.product_rf_limit or 600,
        "signup_to_contact_s": {**latency, "max": round(max(latencies), 2) if latencies else None},
        "poll_interval_ms": args.poll_ms,
        "goal_p95_s": LATENCY_GOAL_P95_S,
        "contacts_made": len(per_email),
        "duplicates": duplicates,
        "never_arrived_in_time": len(run.people) - len(latencies),
        "meets_goal": bool(latencies)
        and latency["p95"] <= LATENCY_GOAL_P95_S
        and len(per_email) == signups
        and duplicates == 0,
        "referrer_counts_right": f"{counts_right}/{len(referrers)}",
        "webhooks": {"delivered": delta("rf", "webhooks_sent"), "failed": delta("rf", "webhooks_failed")},
        "referral_factory_calls_per_signup": per_signup("rf"),
        "intercom_calls_per_signup": per_signup("ic"),
        "responses_429": {
            "referral_factory": delta("rf", "responses_429"),
            "intercom": delta("ic", "responses_429"),
        },
        # What a signup costs the whole stack (product, moto, emulators), whatever else the machine runs.
        "stack_cpu_s_per_signup": round(run.cpu_s / max(signups, 1), 3),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(run.load_at_start, 2)},
        "signup_errors": run.errors[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=500)
    parser.add_argument("--signups", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="signups a second")
    parser.add_argument("--friends-per-referrer", type=int, default=9)
    parser.add_argument("--poll-ms", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds after the last signup")
    parser.add_argument(
        "--product-rf-limit",
        type=int,
        default=100_000,
        help="the account's own Referral Factory budget a minute, lifted like the emulator's (0: the"
        " product's default, 600)",
    )
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-stack", action="store_true")
    args = parser.parse_args(argv)
    # The stack gets the environment this run started with, not the receiver's from the first part.
    stack_env = dict(os.environ)

    # The receiver logs and prints its metrics to stdout, as Lambda wants; this JSON document owns it.
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    result: dict[str, Any] = {}
    try:
        if not args.skip_in_process:
            print(f"in process: {args.invocations} invocations each", file=sys.stderr)
            result["in_process"] = measure_in_process(args.invocations)
        if not args.skip_stack:
            result["stack"] = measure_stack(args, stack_env)
    except Exception:
        # Powertools' logger takes over uncaught exceptions and would log this one to stdout.
        traceback.print_exc()
        return 1
    out.write(json.dumps(result, indent=2) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
