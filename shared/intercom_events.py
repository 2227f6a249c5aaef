"""Dispatch of the Intercom events queue by message kind."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shared.observability import logger, metrics
from shared.pending import ConsumerNotImplemented
from shared.routes.intercom_webhooks import UNINSTALL_KIND
from shared.services import services
from shared.uninstall import handle_uninstall

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from shared.settings import IntercomEventsSettings


def handle_record(record: SQSRecord, settings: IntercomEventsSettings) -> str:
    message = json.loads(record.body)
    kind = message.get("kind")
    if kind == UNINSTALL_KIND:
        svc = services(settings)
        connections = svc.connections(publish_to=(settings.signup_queue_url, settings.sync_queue_url))
        outcome = handle_uninstall(str(message["app_id"]), connections, svc.intercom_for)
        logger.info("uninstall notice handled", extra={"app_id": message["app_id"], "outcome": outcome})
        metrics.add_metric(name=f"Uninstall_{outcome}", unit="Count", value=1)
        return outcome
    # Topic notifications (qualification, merges) arrive with issue #9; until then they stay queued.
    raise ConsumerNotImplemented(f"Intercom event kind {kind!r} is handled by issue #9")
