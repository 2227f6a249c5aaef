"""Intercom → product webhooks: verified over the raw body, enqueued, answered at once.

Never answers 410 (Intercom would disable the subscription): unknown things get 200.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shared import queues, settings
from shared.app_secret import app_credentials
from shared.errors import BadRequest, Unauthorized
from shared.http_api import raw_body
from shared.observability import logger, metrics
from shared.signatures import valid_body_signature, valid_hub_signature

router = APIGatewayRouter()

UNINSTALL_KIND = "intercom.uninstall"


@cache
def _settings() -> settings.IntercomWebhookSettings:
    return settings.load(settings.IntercomWebhookSettings)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest("The body is not valid JSON.", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="malformed_body")
    return data


@router.post("/webhooks/intercom/uninstall")
def uninstall() -> dict[str, str]:
    body = raw_body(router.current_event.raw_event)
    headers = router.current_event.headers
    secret = app_credentials(_settings().intercom_app_secret_arn).client_secret
    signed = valid_body_signature(body, headers.get("x-body-signature"), secret) or valid_hub_signature(
        body, headers.get("x-hub-signature"), secret
    )
    if not signed:
        metrics.add_metric(name="WebhookBadSignature", unit="Count", value=1)
        raise Unauthorized("The uninstall notice's signature does not match.", code="bad_signature")
    app_id = _parse(body).get("app_id")
    if not isinstance(app_id, str) or not app_id:
        raise BadRequest("The uninstall notice has no app_id.", code="malformed_body")
    # Acting needs a call to Intercom (GET /me) to confirm; that happens behind the queue.
    queues.send(
        _settings().intercom_events_queue_url,
        {"kind": UNINSTALL_KIND, "app_id": app_id, "received_at": int(time.time())},
    )
    logger.info("uninstall notice queued", extra={"app_id": app_id})
    return {"status": "queued"}
