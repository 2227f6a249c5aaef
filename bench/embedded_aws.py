"""The embedded AWS's CPU per request: plain moto against the stack's patched moto, in one run.

    python -m bench.embedded_aws [--rounds 400] [--backlog 1000]

Each variant is moto's server in a child process of its own:
- `plain`: moto as installed;
- `patched`: with `local/moto_dynamodb.py`, `local/moto_sqs.py` and `local/moto_server.py`, as
  `python -m local up` runs it.

The same requests go to each: per round a conditional PutItem of a referral-like item (a nested map
and a list of maps), a GetItem, a Query of its partition, an SQS SendMessage, and every third round a
ReceiveMessage of up to 10 and their DeleteMessageBatch. Reported: the server process's CPU
(user + system, from /proc) per request, wall time per request as the client saw it, and the ratio
plain / patched. Then a queue with `--backlog` messages waiting: the seconds to receive and delete
half of them, in each variant (moto's SQS walks the whole queue per request; SQS does not).

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from typing import Any

from bench.harness import tree_cpu_s
from local.services import free_ports

VARIANTS = ("plain", "patched")


def _serve(variant: str, port: int, ready: Any) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    if variant == "patched":
        from local import moto_dynamodb, moto_server, moto_sqs

        moto_dynamodb.apply()
        moto_sqs.apply()
        moto_server.apply()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    ready.set()
    while True:
        time.sleep(60)


def _delete(sqs: Any, queue: str, messages: list[dict[str, Any]]) -> int:
    if messages:
        entries = [{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue, Entries=entries)
    return len(messages)


def _clients(port: int) -> tuple[Any, Any]:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    url = f"http://127.0.0.1:{port}"
    return session.client("dynamodb", endpoint_url=url), session.client("sqs", endpoint_url=url)


def _mix(ddb: Any, sqs: Any, rounds: int) -> int:
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    event = {"M": {"kind": {"S": "linked"}, "at": {"N": "1700000000"}}}
    requests = 0
    for i in range(rounds):
        key = {"pk": {"S": f"REFERRALS#acc{i % 40}"}, "sk": {"S": f"1#{i}"}}
        item: dict[str, Any] = {**key, "email": {"S": f"u{i}@bench.example"}, "status": {"S": "pending"}}
        item["events"] = {"L": [event] * 5}
        item["written_counts"] = {"M": {"referrals_count": {"N": "3"}}}
        ddb.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(pk)")
        ddb.get_item(TableName="t", Key=key)
        ddb.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": key["pk"]},
            Limit=5,
        )
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"i": i, "pad": "x" * 800}))
        requests += 4
        if i % 3 == 2:
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])
            _delete(sqs, queue, received.get("Messages", []))
            requests += 2
    return requests


def _backlog(sqs: Any, backlog: int) -> float:
    queue = sqs.create_queue(QueueName="backlog")["QueueUrl"]
    for start in range(0, backlog, 10):
        entries = [{"Id": str(j), "MessageBody": "x" * 500} for j in range(min(10, backlog - start))]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    started, taken = time.perf_counter(), 0
    while taken < backlog // 2:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        taken += _delete(sqs, queue, messages)
    return time.perf_counter() - started


def measure(variant: str, rounds: int, backlog: int) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    port = free_ports(1)[0]
    server = spawn.Process(target=_serve, args=(variant, port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"the {variant} server did not start")
        assert server.pid is not None
        ddb, sqs = _clients(port)
        cpu_before, started = tree_cpu_s(server.pid), time.perf_counter()
        requests = _mix(ddb, sqs, rounds)
        wall, cpu = time.perf_counter() - started, tree_cpu_s(server.pid) - cpu_before
        return {
            "requests": requests,
            "server_cpu_ms_per_request": round(cpu / requests * 1000, 2),
            "wall_ms_per_request": round(wall / requests * 1000, 2),
            "backlog_half_received_s": round(_backlog(sqs, backlog), 2),
        }
    finally:
        server.kill()
        server.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--backlog", type=int, default=1000)
    args = parser.parse_args(argv)
    results = {variant: measure(variant, args.rounds, args.backlog) for variant in VARIANTS}
    plain, patched = results["plain"], results["patched"]
    result = {
        "bench": "embedded_aws",
        "rounds": args.rounds,
        "backlog": args.backlog,
        **results,
        "cpu_ratio_plain_to_patched": round(
            plain["server_cpu_ms_per_request"] / patched["server_cpu_ms_per_request"], 2
        ),
        "backlog_ratio_plain_to_patched": round(
            plain["backlog_half_received_s"] / max(patched["backlog_half_received_s"], 0.001), 1
        ),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
