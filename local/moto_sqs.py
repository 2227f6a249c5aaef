"""SQS in the embedded AWS at a cost that does not grow with the queue's backlog.

moto's SQS walks every message of a queue several times per request, and reads the clock for each
one through a datetime round trip (about 10 µs a call):

- every received message checks its retention period through `get_queue_attributes`, which builds
  all of the queue's attributes three times over, and each build counts the visible, in-flight and
  delayed messages in three passes;
- every sent message builds the attributes once more (to read `ContentBasedDeduplication`).

With a backlog of 1,000 messages that is tens of milliseconds of CPU per message received, so a
queue that falls behind falls further behind: a local stack at 50 webhooks a second spent most of
its CPU here. SQS itself does none of this per message.

Here the clock is `time.time()`, the counts take one pass each with the clock read once, the
retention check reads the queue's retention period directly, and attribute names are converted
once. What each request answers is unchanged, except the order in which a standard queue with
message groups hands its messages out: fairly between groups, as SQS fair queues do (`fair_order`).
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from typing import Any


def _now_s(dt: Any = None) -> float:
    if dt is not None:
        from moto.core.utils import unix_time

        return unix_time(dt)
    return time.time()


def _now_ms(dt: Any = None) -> float:
    return _now_s(dt) * 1000.0


def fair_order(visible: list[Any], in_flight: list[Any]) -> list[Any]:
    """SQS fair queues, as the embedded AWS serves them: on a standard queue whose messages carry a
    `MessageGroupId`, a group that already has messages in flight waits behind groups that have fewer,
    so one tenant's backlog cannot hold another's few messages back. Each visible message ranks by
    its group's messages in flight plus those of its group ahead of it; ties keep arrival order.
    Messages without a group form one group of their own. (AWS describes the effect, less dwell time
    for the quiet groups, not an algorithm: this round robin is the simplest that has it.)"""
    if all(m.group_id is None for m in visible):
        return visible
    busy = Counter(m.group_id for m in in_flight)
    ahead: Counter[str | None] = Counter()
    ranks = []
    for index, message in enumerate(visible):
        group = message.group_id
        ranks.append((busy[group] + ahead[group], index))
        ahead[group] += 1
    return [visible[index] for _, index in sorted(ranks)]


def apply() -> None:
    """Patch moto's SQS in this process (the embedded AWS's); idempotent."""
    from moto.sqs import models

    if getattr(models, "backlog_independent", False):
        return
    models.backlog_independent = True  # type: ignore[attr-defined]
    # The module's own names: Message.visible/delayed, receive and the retention check read these.
    models.unix_time = _now_s
    models.unix_time_millis = _now_ms
    # Attribute names to Python names, worked out once per name rather than per request (40 µs each).
    models.camelcase_to_underscores = functools.lru_cache(maxsize=256)(models.camelcase_to_underscores)

    Queue = models.Queue

    # On unless the process is told otherwise (`bench.fairness --baseline` measures without it).
    fair = os.environ.get("LOCAL_SQS_FAIR_QUEUES", "1") != "0"

    def messages(self: Any) -> list[Any]:
        now = _now_ms()
        visible = [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]
        if not fair or self.fifo_queue or len(visible) < 2:
            return visible
        return fair_order(visible, [m for m in self._messages if not now > m.visible_at])

    def delayed(self: Any) -> int:
        now = _now_ms()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = _now_ms()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def visible(self: Any) -> int:
        now = _now_ms()
        return sum(1 for m in self._messages if now > m.visible_at and not now < m.delayed_until)

    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages = property(visible)  # type: ignore[assignment,method-assign]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > _now_s())

    models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
