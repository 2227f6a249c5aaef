"""The account's referrals: listed with their states (filtered by them), and a push tried again."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from shared import keys, messages, settings
from shared.api.docs import ACCOUNT_KEY, answers
from shared.api.pagination import decode_cursor, page
from shared.api.resolver import json_response
from shared.api.resolver import router as new_router
from shared.aws import queues
from shared.domain.errors import Conflict, NotFound
from shared.records.accounts import Account
from shared.records.connections import NOT_CONNECTED, REVOKED, usable
from shared.records.referrals import (
    RETRYABLE,
    IntercomStatus,
    QualificationStatus,
    ReferralEvent,
    Referrals,
    public_view,
)
from shared.wiring import Services, services

router = new_router()


def _settings() -> settings.AccountApiSettings:
    return settings.load(settings.AccountApiSettings)


def _services() -> Services:
    return services(_settings())


def _account() -> Account:
    return _services().accounts.authenticate(router.current_event.headers.get("authorization"))


@router.get("/v1/referrals", security=ACCOUNT_KEY)
def list_referrals(
    *,
    campaign_id: Annotated[str | None, Query()] = None,
    email: Annotated[str | None, Query()] = None,
    intercom_status: Annotated[IntercomStatus | None, Query()] = None,
    status: Annotated[QualificationStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    account = _account()
    referrals = Referrals(_services().store)
    partition = (
        keys.email_index_key(account.account_id, email) if email else keys.referrals_pk(account.account_id)
    )
    start = decode_cursor(cursor, partition=partition, partition_key="gsi2pk" if email else "pk")
    items, last = referrals.page(
        account.account_id,
        campaign_id=campaign_id,
        email=email,
        intercom_status=intercom_status,
        status=status,
        limit=limit,
        start_key=start,
    )
    # A referral the product has not tried to push yet carries its campaign's workspace.
    workspaces = _services().connections().campaign_workspaces(account.account_id) if items else {}
    return page([public_view(i, workspaces.get(i.campaign_id)) for i in items], last)


@router.post(
    "/v1/referrals/<rf_user_id>/retry",
    responses=answers(202, description="The push is queued again: the referral, now pending."),
    security=ACCOUNT_KEY,
)
def retry_referral(rf_user_id: str, campaign_id: Annotated[str, Query(min_length=1)]) -> Response[Any]:
    """Push a `failed`, `not_pushed` or `waiting_for_connection` referral again, with the campaign's
    settings as they are now, through the signup queue (its email de-duplication included) → 202."""
    account = _account()
    svc = _services()
    referrals = Referrals(svc.store)
    record = referrals.get(account.account_id, campaign_id, rf_user_id)
    if record is None:
        raise NotFound(f"No referral {rf_user_id} in campaign {campaign_id}.", code="referral_not_found")
    if record.intercom_status not in RETRYABLE:
        raise _not_retryable(rf_user_id, record.intercom_status)
    connection = svc.connections().for_campaign(account.account_id, campaign_id)
    if not usable(connection):
        why = (
            f"Intercom revoked the connection of workspace {connection.workspace_id}"
            if connection is not None and connection.status == REVOKED
            else "The campaign's Intercom workspace is not connected"
        )
        raise Conflict(f"{why}: connect it (POST /v1/intercom/connect), then retry.", code=NOT_CONNECTED)
    previous = record.intercom_status
    requested = referrals.request_retry(
        record, ReferralEvent(kind="retry_requested", via="api", details={"previous": previous})
    )
    if requested is None:  # another retry, or a push, got there first
        current = referrals.get(account.account_id, campaign_id, rf_user_id) or record
        raise _not_retryable(rf_user_id, current.intercom_status)
    push = messages.RfWebhook(
        account_id=account.account_id,
        event="user.join",
        rf_user_id=rf_user_id,
        campaign_id=campaign_id,
        via="retry",
    )
    try:
        queues.send(_settings().signup_queue_url, push.body())
    except Exception:
        referrals.retry_not_queued(record, previous)
        raise
    return json_response(public_view(requested, connection.workspace_id), status_code=202)


def _not_retryable(rf_user_id: str, status: str) -> Conflict:
    return Conflict(
        f"Referral {rf_user_id} is {status}; only a failed, not_pushed or waiting_for_connection "
        "referral can be retried.",
        code="not_retryable",
    )
