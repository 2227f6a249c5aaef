"""Queue consumers whose issue has not landed: they fail every record so SQS keeps it (and after
`maxReceiveCount`, the DLQ holds it for a redrive once the consumer exists). Nothing is dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from shared.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext


class ConsumerNotImplemented(Exception):
    pass


def not_implemented_consumer(issue: int) -> Any:
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        logger.warning("consumer not implemented; record kept", extra={"message_id": record.message_id})
        raise ConsumerNotImplemented(f"this consumer arrives with issue #{issue}")

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handler
