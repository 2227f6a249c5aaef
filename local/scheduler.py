"""The template's schedules, fired by the stack: moto stores EventBridge rules but never fires them.

Each `Type: Schedule` event invokes its function asynchronously every `interval_s` with the event
EventBridge sends. Ticks are on a fixed cadence: a tick whose previous invocation is still running
fires anyway (EventBridge does not wait either; the function's concurrency decides).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.lambda_runtime import ACCOUNT_ID, REGION, FunctionError, PoolClosed

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("local.scheduler")


@dataclass(frozen=True)
class Schedule:
    function: str
    rule: str
    expression: str


def scheduled_event(rule: str, now: datetime | None = None) -> dict[str, Any]:
    at = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        schedules: list[Schedule],
        invoke: Callable[[str, dict[str, Any]], Any],
        interval_s: float,
    ) -> None:
        self.schedules = schedules
        self.interval_s = interval_s
        self._invoke = invoke
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def start(self) -> None:
        if not self.schedules:
            return
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)

    def fire_now(self) -> None:
        for schedule in self.schedules:
            threading.Thread(
                target=self._fire, args=(schedule,), name=f"schedule:{schedule.function}", daemon=True
            ).start()

    def _run(self) -> None:
        # Like EventBridge, the first tick comes one interval after the rule exists, not at once.
        while not self._stop.wait(self.interval_s):
            self.fire_now()

    def _fire(self, schedule: Schedule) -> None:
        self.fired += 1
        try:
            result = self._invoke(schedule.function, scheduled_event(schedule.rule))
        except PoolClosed:
            return
        except FunctionError as exc:
            log.warning(
                "%s (%s) failed: %s: %s", schedule.function, schedule.rule, exc.error_type, exc.message
            )
            return
        log.info("%s fired by %s: %s", schedule.function, schedule.expression, result)
