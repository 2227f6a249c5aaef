"""The one EventBridge schedule: fires every due item recorded in DynamoDB."""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

import time
from typing import TYPE_CHECKING, Any

from shared import messages, settings
from shared.aws import queues
from shared.aws.store import Store
from shared.observability import logger, metrics, tracer
from shared.records.due_work import fire_due

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
            messages.SIGNUP_QUEUE: s.signup_queue_url,
            messages.SYNC_QUEUE: s.sync_queue_url,
            messages.INTERCOM_EVENTS_QUEUE: s.intercom_events_queue_url,
        },
    )
    metrics.add_metric(name="DueWorkFired", unit="Count", value=result.fired)
    return {"fired": result.fired, "skipped": result.skipped}


lifecycle.init_done()
