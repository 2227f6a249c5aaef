"""The one EventBridge schedule: fires every due item recorded in DynamoDB."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shared import queues, settings
from shared.due_work import fire_due
from shared.observability import logger, metrics, tracer
from shared.store import Store

SETTINGS = settings.load(settings.SchedulerSettings)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    s = SETTINGS
    result = fire_due(
        Store(s.table_name),
        int(time.time()),
        queues.send,
        {
            "signup": s.signup_queue_url,
            "sync": s.sync_queue_url,
            "intercom_events": s.intercom_events_queue_url,
        },
    )
    metrics.add_metric(name="DueWorkFired", unit="Count", value=result.fired)
    return {"fired": result.fired, "skipped": result.skipped}
