"""Sync workers: link one page of contacts to Referral Factory users and write back what differs."""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from shared import settings
from shared.aws import queues
from shared.flows.sync import Engine, handle_worker_record
from shared.observability import logger, metrics, tracer
from shared.wiring import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = settings.load(settings.ContactSyncSettings)
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    engine = Engine(services(SETTINGS), SETTINGS, queues, remaining_ms=context.get_remaining_time_in_millis)
    return dict(
        process_partial_response(
            event=event,
            record_handler=lambda record: handle_worker_record(record, engine),
            processor=processor,
            context=context,
        )
    )


lifecycle.init_done()
