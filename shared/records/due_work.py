"""Due work: the one schedule's view of what must run now (ongoing syncs, sweeps, catch-ups).

Each kind of recurring work is an item in the main table, indexed on GSI1 under `DUE` by its next
run time. The scheduler sends each due item's message to its queue and moves `next_run_at` forward
with a conditional write, so two overlapping scheduler runs never fire the same item twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from shared import keys
from shared.aws.store import Attr, ConditionFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shared.aws.store import Store


class DueItem(BaseModel):
    """Recurring work: `message` goes to the logical queue `queue` (`shared.messages`) as a `kind`
    message every `interval_s` seconds. Its keys are built by `due_item` (shared/keys.py)."""

    model_config = ConfigDict(extra="allow")

    pk: str
    sk: str
    kind: str
    queue: str
    # The message's own fields, whatever its kind (fire_due adds `kind` and `scheduled_at`).
    message: dict[str, Any]
    interval_s: int
    next_run_at: int
    # Written by the scheduler's claim: absent until the work first ran.
    last_run_at: int | None = None
    gsi1pk: str
    gsi1sk: str

    def item(self) -> dict[str, Any]:
        """As stored: the attributes it was built or read with."""
        return self.model_dump(exclude_unset=True)


def due_item(
    work_id: str,
    *,
    kind: str,
    queue: str,
    message: dict[str, Any],
    interval_s: int,
    next_run_at: int,
    last_run_at: int | None = None,
) -> DueItem:
    """The item that makes `message` go to the logical queue `queue` every `interval_s` seconds;
    `last_run_at` when the work already ran (or is replaced by a new item that keeps that run)."""
    pk, sk = keys.due_key(work_id)
    ran = {"last_run_at": last_run_at} if last_run_at is not None else {}
    return DueItem(
        pk=pk,
        sk=sk,
        kind=kind,
        queue=queue,
        message=message,
        interval_s=interval_s,
        next_run_at=next_run_at,
        gsi1pk=keys.DUE_PARTITION,
        gsi1sk=keys.due_sort_key(next_run_at, work_id),
        **ran,
    )


@dataclass(frozen=True)
class FireResult:
    fired: int
    skipped: int


def fire_due(
    store: Store,
    now: int,
    send: Callable[[str, dict[str, Any]], object],
    queues: Mapping[str, str],
) -> FireResult:
    """Send every due item's message, then claim its next run."""
    fired = skipped = 0
    start: dict[str, Any] | None = None
    while True:
        items, start = store.query(
            keys.DUE_PARTITION, index="gsi1", sk_lte=keys.due_sort_key(now, "~"), start_key=start
        )
        for due in map(DueItem.model_validate, items):
            work_id = keys.due_work_id(due.pk)
            next_run = max(due.next_run_at + due.interval_s, now + 1)
            try:
                # Claim first: a crash after the claim loses one run (the next comes one interval
                # later); a crash before it only delays this one to the next tick.
                store.update(
                    due.pk,
                    due.sk,
                    {
                        "next_run_at": next_run,
                        "gsi1sk": keys.due_sort_key(next_run, work_id),
                        "last_run_at": now,
                    },
                    condition=Attr("next_run_at").eq(due.next_run_at),
                )
            except ConditionFailed:
                skipped += 1
                continue
            queue_url = queues.get(due.queue)
            if queue_url is None:
                skipped += 1
                continue
            send(queue_url, {**due.message, "kind": due.kind, "scheduled_at": now})
            fired += 1
        if not start:
            return FireResult(fired, skipped)
