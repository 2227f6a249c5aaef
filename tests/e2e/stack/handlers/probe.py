"""A queue consumer that writes every delivery it sees to DynamoDB (the only state shared between
instances), then behaves as each message asks: fail, raise, sleep."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import boto3

LEDGER = boto3.resource("dynamodb").Table(os.environ["LEDGER_TABLE"])
# Per instance: a test can tell instances apart by what each has counted.
INVOCATIONS = 0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS  # noqa: PLW0603
    INVOCATIONS += 1
    records = event["Records"]
    keys = [json.loads(r["body"])["key"] for r in records]
    failures = []
    for record in records:
        body = json.loads(record["body"])
        count = int(record["attributes"]["ApproximateReceiveCount"])
        LEDGER.put_item(
            Item={
                "pk": body["run"],
                "sk": f"{body['key']}#{count}#{uuid.uuid4().hex}",
                "key": body["key"],
                "message_id": record["messageId"],
                "receive_count": count,
                "pid": os.getpid(),
                "instance_invocations": INVOCATIONS,
                "batch_keys": keys,
                "started_ms": int(time.time() * 1000),
                "remaining_ms": context.get_remaining_time_in_millis(),
                "source_arn": record["eventSourceARN"],
            }
        )
    for record in records:
        body = json.loads(record["body"])
        first = record["attributes"]["ApproximateReceiveCount"] == "1"
        if body.get("sleep") and (first or not body.get("sleep_first_only")):
            time.sleep(float(body["sleep"]))
        if body.get("raise") and first:
            raise RuntimeError("the whole batch fails")
        if body.get("fail") == "always" or (body.get("fail") == "first" and first):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def scheduled(event: dict[str, Any], context: Any) -> None:
    LEDGER.put_item(
        Item={
            "pk": "schedule",
            "sk": f"{int(time.time() * 1000)}#{uuid.uuid4().hex}",
            "event": json.dumps(event),
            "pid": os.getpid(),
        }
    )
