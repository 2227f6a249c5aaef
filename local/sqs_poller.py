"""Lambda's SQS event source mapping, against any SQS endpoint.

Each concurrent consumer is a poller thread that long-polls the queue, gathers a batch (up to the
batch size, for at most the batching window once the first message is in), invokes the function
with the SQS event Lambda builds, and deletes what succeeded: with `ReportBatchItemFailures` all but
the reported `batchItemFailures`; a function error or timeout deletes nothing. What is not deleted
becomes visible again when the queue's visibility timeout runs out, and SQS itself moves a message
to the DLQ once it has been received `maxReceiveCount` times. The pollers never touch visibility.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.lambda_runtime import REGION, FunctionError, PoolClosed

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("local.sqs")

# SQS hands out at most 10 messages per ReceiveMessage.
_RECEIVE_MAX = 10
# Long-poll wait: short enough that shutdown never waits long on an idle queue.
_IDLE_WAIT_S = 1


@dataclass(frozen=True)
class SqsSource:
    """One `Type: SQS` event of a function, resolved to a queue."""

    function: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    batching_window_s: float = 0
    report_failures: bool = False
    concurrency: int = 2


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message as a record of Lambda's SQS event."""
    attributes = {
        k: v
        for k, v in (message.get("Attributes") or {}).items()
        if k
        in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "AWSTraceHeader",
            "MessageGroupId",
            "MessageDeduplicationId",
            "SequenceNumber",
        )
    }
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode("ascii") if binary is not None else None,
            "stringListValues": value.get("StringListValues") or [],
            "binaryListValues": [
                base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType"),
        }
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message.get("Body", "").encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(result: Any, message_ids: list[str], report_failures: bool) -> set[str]:
    """Which records of a batch that returned normally count as failed."""
    if not report_failures or result is None:
        return set()
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    found: set[str] = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not item or item not in message_ids:
            # Lambda treats a null, empty or unknown identifier as a failure of the whole batch.
            return set(message_ids)
        found.add(item)
    return found


class SqsPoller:
    """The pollers of one event source: `concurrency` threads, each feeding one instance at a time."""

    def __init__(
        self,
        source: SqsSource,
        invoke: Callable[[dict[str, Any]], Any],
        sqs_client: Callable[[], Any],
    ) -> None:
        self.source = source
        self._invoke = invoke
        self._client_factory = sqs_client
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.source.concurrency):
            thread = threading.Thread(target=self._run, name=f"sqs:{self.source.function}:{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        client = self._client_factory()
        while not self._stop.is_set():
            try:
                batch = self._collect(client)
                if batch and not self._stop.is_set():
                    self._process(client, batch)
            except PoolClosed:
                return
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("poller for %s failed; retrying", self.source.function)
                self._stop.wait(1)

    def _receive(self, client: Any, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = client.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(_RECEIVE_MAX, count)),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def _collect(self, client: Any) -> list[dict[str, Any]]:
        size = self.source.batch_size
        batch = self._receive(client, size, _IDLE_WAIT_S)
        if not batch:
            return []
        deadline = time.monotonic() + self.source.batching_window_s
        while len(batch) < size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Short receives, so the window closes on time rather than on a whole-second wait.
            more = self._receive(client, size - len(batch), 0)
            if more:
                batch.extend(more)
            else:
                self._stop.wait(min(remaining, 0.05))
        return batch

    def _process(self, client: Any, messages: list[dict[str, Any]]) -> None:
        source = self.source
        event = {"Records": [lambda_record(m, source.queue_arn) for m in messages]}
        ids = [m["MessageId"] for m in messages]
        try:
            result = self._invoke(event)
        except FunctionError as exc:
            log.warning(
                "%s: batch of %d failed (%s: %s); records return after the visibility timeout",
                source.function,
                len(ids),
                exc.error_type,
                exc.message,
            )
            return
        failed = failed_ids(result, ids, source.report_failures)
        if failed:
            log.info("%s: %d of %d records failed and stay queued", source.function, len(failed), len(ids))
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), _RECEIVE_MAX):
            chunk = done[start : start + _RECEIVE_MAX]
            client.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
