"""The SQS adapter: sending messages, one at a time or in batches of ten.

botocore is reached on the first send, not at import: the webhook receivers import this module and
keep their cold start small (docs/cold-starts.md)."""

from __future__ import annotations

import json
from typing import Any


class QueueSendFailed(Exception):
    """SQS refused some messages; the caller must not acknowledge what it was given."""


def send(queue_url: str, body: dict[str, Any], *, delay_seconds: int = 0, group: str | None = None) -> str:
    from shared.aws import boto

    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": json.dumps(body, separators=(",", ":"))}
    if delay_seconds:
        kwargs["DelaySeconds"] = min(delay_seconds, 900)
    if group:
        kwargs["MessageGroupId"] = group
    return str(boto.client("sqs").send_message(**kwargs)["MessageId"])


def send_batch(queue_url: str, bodies: list[dict[str, Any]], *, group: str | None = None) -> None:
    """`group` is the MessageGroupId: on a standard queue SQS serves groups fairly (fair queues)."""
    from shared.aws import boto

    sqs = boto.client("sqs")
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries: list[dict[str, Any]] = [
            {"Id": str(i), "MessageBody": json.dumps(b, separators=(",", ":"))} for i, b in enumerate(chunk)
        ]
        if group:
            for entry in entries:
                entry["MessageGroupId"] = group
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise QueueSendFailed(f"{len(failed)} of {len(chunk)} messages were not accepted by SQS")
