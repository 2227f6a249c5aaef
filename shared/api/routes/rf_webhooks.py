"""Referral Factory → product webhooks: the account's secret checked in constant time, the body
read in any of the accepted shapes, the event queued; answered at once."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from shared import messages, settings
from shared.api.docs import FORM, JSON, RF_SECRET, raw_body_doc
from shared.api.resolver import json_object, raw_body
from shared.api.resolver import router as new_router
from shared.aws import queues
from shared.domain.errors import BadRequest, Unauthorized, ValidationFailed, field_error
from shared.observability import logger, metrics
from shared.records.accounts import WEBHOOK_HEADER_NAME, webhook_secret_ok

router = new_router()

EVENTS = ("user.join", "user.qualified", "reward.issued")


def _settings() -> settings.SignupReceiverSettings:
    return settings.load(settings.SignupReceiverSettings)


def _secret_ok(account_id: str, presented: str | None) -> bool:
    from shared.aws.store import Store  # boto3 only once a request needs it: keeps the cold start small

    return webhook_secret_ok(Store(_settings().table_name), account_id, presented)


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The event in any shape Referral Factory may send: JSON with the user at the top level or under
    `user` / `data`, or a form with the user's scalar fields."""
    if "application/x-www-form-urlencoded" in content_type:
        try:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("The form body cannot be read.", code="malformed_body") from exc
        return {"event": form.pop("event", None), "user": form, "campaign": None}
    data = json_object(body, not_json="The body is neither JSON nor a form.", not_json_code="malformed_body")
    user = next((data[k] for k in ("user", "data") if isinstance(data.get(k), dict)), data)
    campaign = data.get("campaign") if isinstance(data.get("campaign"), dict) else None
    return {"event": data.get("event"), "user": user, "campaign": campaign}


def message_for(account_id: str, parsed: dict[str, Any]) -> dict[str, Any]:
    """The body of a `messages.RfWebhook`, built as a dict: the receiver passes the user's email on
    as it came, and only the consumer reads the message as its model."""
    user = parsed["user"]
    event = parsed["event"] or "user.join"
    campaign = parsed["campaign"] or {}
    campaign_id = user.get("campaign_id") or campaign.get("id")
    problems = []
    if event not in EVENTS:
        problems.append(field_error("event", f"must be one of {', '.join(EVENTS)}"))
    if not user.get("id") and not (user.get("email") and campaign_id):
        problems.append(field_error("user.id", "is required (or user.email with the campaign id)"))
    if problems:
        raise ValidationFailed("The webhook does not name a Referral Factory user.", details=problems)
    return {
        "kind": messages.RF_WEBHOOK,
        "account_id": account_id,
        "event": event,
        "rf_user_id": str(user["id"]) if user.get("id") else None,
        "email": user.get("email"),
        "campaign_id": str(campaign_id) if campaign_id else None,
        "via": "webhook",
        "received_at": int(time.time()),
    }


@router.post(
    "/webhooks/referral-factory/<account_id>",
    security=RF_SECRET,
    openapi_extensions=raw_body_doc(
        "A Referral Factory webhook: a user object, as JSON or a form.", JSON, FORM
    ),
)
def receive(account_id: str) -> dict[str, str]:
    headers = router.current_event.headers
    if not _secret_ok(
        account_id, headers.get(WEBHOOK_HEADER_NAME.lower()) or headers.get(WEBHOOK_HEADER_NAME)
    ):
        metrics.add_metric(name="WebhookBadSecret", unit="Count", value=1)
        raise Unauthorized(f"The {WEBHOOK_HEADER_NAME} header does not carry this account's secret.")
    parsed = parse_body(raw_body(router.current_event.raw_event), headers.get("content-type") or "")
    message = message_for(account_id, parsed)
    queues.send(_settings().signup_queue_url, message)
    logger.info("referral factory event queued", extra={"account_id": account_id, "event": message["event"]})
    return {"status": "queued"}
