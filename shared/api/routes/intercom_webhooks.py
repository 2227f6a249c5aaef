"""Intercom → product webhooks: verified over the raw body, enqueued, answered at once.

Never answers 410 (Intercom would disable the subscription): unknown things get 200.

Topic notifications are routed to the account by `app_id` and deduplicated by notification id (a
conditional put in the idempotency table that expires after days: Intercom retries once, a minute
later) before they are queued; everything else happens behind the queue. boto3 is imported on the
first request, not at import, so the receiver's cold start stays small.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any, cast

from shared import caches, messages, settings
from shared.api.docs import INTERCOM_SIGNED, INTERCOM_UNINSTALL_SIGNED, raw_body_doc
from shared.api.resolver import json_object, raw_body
from shared.api.resolver import router as new_router
from shared.aws import queues
from shared.aws.app_secret import app_credentials
from shared.domain.errors import BadRequest, Unauthorized
from shared.domain.signatures import valid_body_signature, valid_hub_signature
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from shared.aws.crypto import SecretBox
    from shared.aws.seen import SeenIds

router = new_router()

# What the processor acts on (qualification, merges, removals, company qualification); other topics
# are answered and dropped.
HANDLED_TOPICS = frozenset(
    {
        "contact.user.created",
        "contact.user.updated",
        "contact.lead.updated",
        "contact.lead.signed_up",
        "contact.merged",
        "contact.deleted",
        "contact.archived",
        "company.updated",
        "company.contact.attached",
    }
)
# Its item holds the company and the contact (Intercom documents no shape: "Company, Contact").
CONTACT_ATTACHED = "company.contact.attached"
DEDUPE_TTL_S = 3 * 86400
# A workspace's account, remembered this long by a warm receiver (routing changes only on connect or
# disconnect; the processor re-checks the connection before writing to Intercom).
ROUTE_CACHE_S = 60.0
# SQS takes 256 KiB; a bigger contact travels without its attributes and is read back from Intercom.
MAX_ITEM_BYTES = 200_000
# Sub-objects Intercom sends as lists with their own URLs: nothing here needs them.
_DROPPED_KEYS = ("tags", "notes", "companies", "social_profiles", "opted_in_subscription_types")

_routes: dict[str, tuple[str, float]] = {}
caches.register(f"{__name__}._routes", _routes.clear)


def _settings() -> settings.IntercomWebhookSettings:
    return settings.load(settings.IntercomWebhookSettings)


def _account_for(app_id: str) -> str | None:
    cached = _routes.get(app_id)
    now = time.monotonic()
    if cached and cached[1] > now:
        return cached[0]
    from shared.aws.store import Store
    from shared.records.connections import Connections

    # Routing reads no token: the connection's key box is never touched.
    connections = Connections(Store(_settings().table_name), cast("SecretBox", None), lambda _e: None)
    account_id = connections.account_for_workspace(app_id)
    if account_id is not None:
        _routes[app_id] = (account_id, now + ROUTE_CACHE_S)
    return account_id


def _seen() -> SeenIds:
    from shared.aws.seen import SeenIds

    return SeenIds(_settings().idempotency_table_name, "intercom-notification")


def _first_sight(notification_id: str) -> bool:
    """Record the notification id; False when it was recorded before (a repeat)."""
    return _seen().first_sight(notification_id, DEDUPE_TTL_S)


def _forget(notification_id: str) -> None:
    _seen().forget(notification_id)


def _slim(item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The contact (or company) as the processor needs it, and whether its attributes had to be left
    out (the processor then reads it back)."""
    slim = {k: v for k, v in item.items() if k not in _DROPPED_KEYS}
    if len(json.dumps(slim, separators=(",", ":"))) <= MAX_ITEM_BYTES:
        return slim, False
    keep = ("type", "id", "role", "email", "created_at", "updated_at", "merged_from", "deleted", "archived")
    return {k: slim[k] for k in keep if k in slim}, True


def _slim_item(topic: str, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    if topic != CONTACT_ATTACHED:
        return _slim(item)
    company, company_trimmed = _slim(item["company"])
    contact, _ = _slim(item["contact"])  # only its id is read
    return {"company": company, "contact": {"type": "contact", "id": contact["id"]}}, company_trimmed


def _has_id(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("id"))


def _notification(data: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    topic, app_id, notification_id = data.get("topic"), data.get("app_id"), data.get("id")
    item = (data.get("data") or {}).get("item") if isinstance(data.get("data"), dict) else None
    if not all(isinstance(v, str) and v for v in (topic, app_id, notification_id)):
        raise BadRequest("The notification needs topic, app_id and id.", code="malformed_body")
    if not isinstance(item, dict):
        raise BadRequest("The notification has no data.item.", code="malformed_body")
    if topic == CONTACT_ATTACHED and not (_has_id(item.get("company")) and _has_id(item.get("contact"))):
        raise BadRequest(
            "The notification's item needs a company and a contact with ids.", code="malformed_body"
        )
    if topic != CONTACT_ATTACHED and not _has_id(item):
        raise BadRequest("The notification has no data.item with an id.", code="malformed_body")
    return str(topic), str(app_id), str(notification_id), item


@router.post(
    "/webhooks/intercom",
    security=INTERCOM_SIGNED,
    openapi_extensions=raw_body_doc("An Intercom topic notification (notification_event)."),
)
def notification() -> dict[str, str]:
    body = raw_body(router.current_event.raw_event)
    secret = app_credentials(_settings().intercom_app_secret_arn).client_secret
    if not valid_hub_signature(body, router.current_event.headers.get("x-hub-signature"), secret):
        metrics.add_metric(name="WebhookBadSignature", unit="Count", value=1)
        raise Unauthorized("The notification's X-Hub-Signature does not match.", code="bad_signature")
    data = json_object(body, not_json="The body is not valid JSON.")
    if data.get("topic") == "ping":
        return {"status": "pong"}
    topic, app_id, notification_id, item = _notification(data)
    if topic not in HANDLED_TOPICS:
        metrics.add_metric(name="WebhookTopicIgnored", unit="Count", value=1)
        return {"status": "ignored"}
    account_id = _account_for(app_id)
    if account_id is None:
        # Not ours (any more): 200, so Intercom neither retries nor disables the subscription.
        metrics.add_metric(name="WebhookUnknownWorkspace", unit="Count", value=1)
        logger.info("notification for an unknown workspace", extra={"app_id": app_id, "topic": topic})
        return {"status": "ignored"}
    if not _first_sight(notification_id):
        metrics.add_metric(name="WebhookDuplicate", unit="Count", value=1)
        return {"status": "duplicate"}
    contact, trimmed = _slim_item(topic, item)
    # A `messages.IntercomNotification`, built as a dict: the receiver passes the contact and the
    # notification's time on as they came (no validation per request); the consumer reads the model.
    message = {
        "kind": messages.INTERCOM_NOTIFICATION,
        "account_id": account_id,
        "app_id": app_id,
        "notification_id": notification_id,
        "topic": topic,
        "item": contact,
        "trimmed": trimmed,
        "created_at": data.get("created_at"),
        "received_at": time.time(),
    }
    try:
        queues.send(_settings().intercom_events_queue_url, message)
    except Exception:
        # Not queued: Intercom's retry (after our 5xx) must not be dropped as a repeat.
        with contextlib.suppress(Exception):
            _forget(notification_id)
        raise
    return {"status": "queued"}


@router.post(
    "/webhooks/intercom/uninstall",
    security=INTERCOM_UNINSTALL_SIGNED,
    openapi_extensions=raw_body_doc("Intercom's uninstall notice: `{app_id}`."),
)
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
    app_id = json_object(body, not_json="The body is not valid JSON.").get("app_id")
    if not isinstance(app_id, str) or not app_id:
        raise BadRequest("The uninstall notice has no app_id.", code="malformed_body")
    # Acting needs a call to Intercom (GET /me) to confirm; that happens behind the queue.
    queues.send(
        _settings().intercom_events_queue_url,
        {"kind": messages.INTERCOM_UNINSTALL, "app_id": app_id, "received_at": int(time.time())},
    )
    logger.info("uninstall notice queued", extra={"app_id": app_id})
    return {"status": "queued"}
