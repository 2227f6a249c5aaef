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
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    DRAIN_EVERY,
    WARM_UP,
    drain,
    emulator_stats,
    in_process,
    lift_limits,
    ms,
    print_json,
    queue_settled,
    rest_event,
    running_stack,
    stack_aws,
    tree_cpu_s,
)
from local.demo import Demo

RECEIVER = "ReferralSignupFunction"
RECEIVER_GOAL_P99_MS = 50.0
LATENCY_GOAL_P95_S = 5.0


# -- in process ------------------------------------------------------------------------------------
def webhook_event(account_id: str, secret: str) -> dict[str, Any]:
    """The REST proxy event the local API Gateway builds for the Referral Factory emulator's webhook."""
    from shared.records.accounts import WEBHOOK_HEADER_NAME

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
    headers = {"user-agent": "python-httpx/0.28", WEBHOOK_HEADER_NAME.lower(): secret}
    return rest_event(
        RECEIVER,
        "/webhooks/referral-factory/{account_id}",
        f"/webhooks/referral-factory/{account_id}",
        headers,
        body,
        path_params={"account_id": account_id},
    )


def measure_in_process(invocations: int) -> dict[str, Any]:
    """The receiver and a decorated no-op, interleaved, against moto in this process."""
    with in_process(RECEIVER) as rig:
        from aws_lambda_powertools.logging import correlation_paths

        from shared import keys
        from shared.aws import queues
        from shared.aws.store import Store
        from shared.observability import logger, metrics
        from shared.records.accounts import hash_secret

        account_id, secret = "acc_bench", secrets.token_urlsafe(24)
        store, queue_url = Store(rig.provisioned.refs["MainTable"]), rig.provisioned.refs["SignupQueue"]
        pk, sk = keys.account_key(account_id)
        store.put({"pk": pk, "sk": sk, "webhook_secret_hash": hash_secret(secret)})
        event = webhook_event(account_id, secret)

        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
        @metrics.log_metrics
        def aws_calls(event: dict[str, Any], context: Any) -> dict[str, Any]:
            """Only the receiver's two AWS calls (moto here), to show what its own code adds."""
            store.get(pk, sk, consistent=False)
            queues.send(queue_url, {"kind": "bench"})
            return {"statusCode": 200, "body": "{}"}

        for _ in range(WARM_UP):
            rig.timed(rig.handler, event)
        queued = int(
            rig.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        if queued != WARM_UP:
            raise RuntimeError(f"{WARM_UP} webhooks queued {queued} messages")
        handlers = {"receiver": rig.handler, "noop": rig.noop, "aws_calls": aws_calls}
        samples: dict[str, list[float]] = {name: [] for name in handlers}
        # Interleaved so machine noise hits all alike.
        for i in range(invocations):
            if i % DRAIN_EVERY == 0:
                drain(rig.sqs, queue_url)
            for name, handler in handlers.items():
                samples[name].append(rig.timed(handler, event))
    receiver_ms, noop_ms = ms(samples["receiver"], 50, 99), ms(samples["noop"], 50, 99)
    return {
        "invocations": invocations,
        "receiver_ms": receiver_ms,
        "noop_ms": noop_ms,
        "aws_calls_only_ms": ms(samples["aws_calls"], 50, 99),
        "ratio_p50": round(receiver_ms["p50"] / noop_ms["p50"], 2),
        "ratio_p99": round(receiver_ms["p99"] / noop_ms["p99"], 2),
        "goal_p99_ms": RECEIVER_GOAL_P99_MS,
        "meets_goal": receiver_ms["p99"] <= RECEIVER_GOAL_P99_MS,
    }


# -- through the stack -----------------------------------------------------------------------------
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


def measure_stack(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    import boto3

    from local.demo import ready_for_signups

    log_path = Path(tempfile.mkdtemp(prefix="bench-signup-")) / "stack.log"
    print(f"starting the stack (its log: {log_path})", file=sys.stderr)
    stack = running_stack(log_path, env, "--schedule-interval", "3600")
    with stack as info, httpx.Client(timeout=30) as http:
        demo = Demo(info, None, http)
        ready_for_signups(demo)
        aws = stack_aws(info)
        lift_limits(http, demo, aws, args.product_rf_limit)
        sqs = boto3.client("sqs", **aws)
        queue_url = sqs.get_queue_url(QueueName="local-SignupQueue")["QueueUrl"]
        before, cpu_before = emulator_stats(http, demo), tree_cpu_s(int(info["pid"]))
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
        after = emulator_stats(http, demo)
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

    latency = {k: round(v / 1000, 2) for k, v in ms(latencies, 50, 95).items()} if latencies else {}
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

    def measure() -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not args.skip_in_process:
            print(f"in process: {args.invocations} invocations each", file=sys.stderr)
            result["in_process"] = measure_in_process(args.invocations)
        if not args.skip_stack:
            result["stack"] = measure_stack(args, stack_env)
        return result

    return print_json(measure)


if __name__ == "__main__":
    sys.exit(main())
