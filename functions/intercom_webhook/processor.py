"""Intercom events behind the queue: contact notifications (qualification, merges, removals), the
scheduled qualification sweeps and uninstall notices."""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from shared import settings
from shared.consumers.intercom_events import handle_record
from shared.flows import qualify as qualifier
from shared.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = settings.load(settings.IntercomEventsSettings)
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Before any record: an in-progress qualification then expires when this invocation would time out.
    qualifier.register_lambda_context(context)
    return dict(
        process_partial_response(
            event=event,
            record_handler=lambda record: handle_record(record, SETTINGS),
            processor=processor,
            context=context,
        )
    )


lifecycle.init_done()
