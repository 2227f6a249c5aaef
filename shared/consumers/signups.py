"""The signup queue's consumer: Referral Factory events, connection changes and scheduled catch-ups.

Work that cannot happen now (a rate budget spent, another worker holding a push, Intercom's search
not yet trustworthy, a service failing for a while) goes back to the queue with a delay instead of
sleeping in a billed Lambda (shared/consumers/handback.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shared import keys, messages
from shared.aws import queues
from shared.clients.intercom import parse_timestamp
from shared.consumers.handback import Handler, dispatch, handler
from shared.flows.signup_push import PushContext, SignupPusher
from shared.observability import logger, metrics
from shared.records.campaigns import CampaignStore
from shared.records.referrals import (
    DISCONNECTED,
    HELD_UNTIL_RETRY,
    NOT_PUSHED,
    PUSH_PENDING,
    PUSHED,
    WAITING,
    Referral,
    ReferralEvent,
    Referrals,
)
from shared.wiring import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from shared.records.accounts import Account
    from shared.settings import SignupProcessorSettings
    from shared.wiring import Services

# Catch-ups look this far behind their previous run: webhooks can arrive late, clocks drift.
CATCH_UP_OVERLAP_S = 3600
CATCH_UP_MAX_PAGES = 20


def _pusher(svc: Services, account: Account) -> SignupPusher:
    return SignupPusher(
        PushContext(
            account=account,
            referrals=Referrals(svc.store),
            campaigns=CampaignStore(svc.store),
            connections=svc.connections(),
            rf=svc.referral_factory_for(account),
            intercom_for=svc.intercom_for,
        )
    )


def _rf_event(message: messages.RfWebhook, svc: Services, settings: SignupProcessorSettings) -> None:
    rf_user_id = message.rf_user_id
    if rf_user_id and message.campaign_id and message.event == "user.join":
        # Duplicates end here, at no cost to Referral Factory's budget, and before the account is
        # read and its key decrypted: every user a contact sync creates comes back this way.
        known = Referrals(svc.store).get(message.account_id, message.campaign_id, rf_user_id)
        if known and known.intercom_status in PUSHED:
            return
    account = svc.accounts.get(message.account_id)
    pusher = _pusher(svc, account)
    if not rf_user_id:
        # The receiver queues a user without an id only with the email and the campaign (message_for).
        found = pusher.ctx.rf.get_user(str(message.email), campaign_id=int(str(message.campaign_id)))
        rf_user_id = str(found.id)
    if message.event == "user.join":
        record = pusher.on_join(rf_user_id, via=message.via or "webhook")
        logger.info(
            "signup handled",
            extra={
                "account_id": account.account_id,
                "rf_user_id": rf_user_id,
                "intercom_status": record.intercom_status,
            },
        )
        metrics.add_metric(name=f"Signup_{record.intercom_status}", unit="Count", value=1)
    else:
        pusher.on_counts_changed(rf_user_id, message.event)


def _reconnected(
    message: messages.ConnectionConnected, svc: Services, settings: SignupProcessorSettings
) -> None:
    """Push every signup that waited for the workspace now connected (one message each: nothing is
    lost), and those whose campaign moved away from the workspace they waited for (the push records
    them `not_pushed`, saying why). Signups waiting for another of the account's workspaces wait on."""
    account_id, workspace_id = message.account_id, message.workspace_id
    uses = svc.connections().campaign_workspaces(account_id)
    waiting = [
        r
        for r in Referrals(svc.store).waiting_for_connection(account_id)
        if r.workspace_id in (None, workspace_id) or uses.get(r.campaign_id) != r.workspace_id
    ]
    queues.send_batch(
        settings.signup_queue_url,
        [
            messages.RfWebhook(
                account_id=account_id,
                event="user.join",
                rf_user_id=record.rf_user_id,
                campaign_id=record.campaign_id,
                via="reconnect",
            ).body()
            for record in waiting
        ],
    )
    logger.info("waiting signups released", extra={"account_id": account_id, "count": len(waiting)})


def _disconnected(
    message: messages.ConnectionDisconnected, svc: Services, settings: SignupProcessorSettings
) -> None:
    """The account disconnected a workspace on purpose: signups still waiting for it (revoked before)
    are not pushed on their own any more (no user data syncs once disconnected); `retry` pushes them
    after connecting again. An event from before several workspaces names none: every waiting one."""
    referrals = Referrals(svc.store)
    waiting = [
        r
        for r in referrals.waiting_for_connection(message.account_id)
        if message.workspace_id is None or r.workspace_id in (None, message.workspace_id)
    ]
    for record in waiting:
        referrals.update(
            record,
            {"intercom_status": NOT_PUSHED, "held_because": DISCONNECTED},
            ReferralEvent(kind=DISCONNECTED, via="disconnect", details={"waited_for": record.workspace_id}),
        )
    logger.info("waiting signups held", extra={"account_id": message.account_id, "count": len(waiting)})


def _missed(record: Referral | None) -> bool:
    """Whether the catch-up pushes a listed user: never seen, not pushed for a reason that may have
    gone (settings saved since), still pending (its message lost) or waiting. Not one held until a
    retry (disconnected on purpose, its workspace changed), nor a failed one (its cause needs fixing)."""
    if record is None:
        return True
    if record.intercom_status == NOT_PUSHED:
        return record.held_because not in HELD_UNTIL_RETRY
    return record.intercom_status in (PUSH_PENDING, WAITING)


def _catch_up(message: messages.CatchUp, svc: Services, settings: SignupProcessorSettings) -> None:
    """List the campaign's recent users and push any signup the webhooks missed."""
    account_id, campaign_id = message.account_id, message.campaign_id
    account = svc.accounts.get(account_id)
    rf = svc.referral_factory_for(account)
    referrals = Referrals(svc.store)
    mark_pk, mark_sk = keys.catch_up_mark_key(account_id, campaign_id)
    mark = svc.store.get(mark_pk, mark_sk) or {}
    since = int(mark.get("last_run_at") or 0) - CATCH_UP_OVERLAP_S
    started = int(time.time())
    missed = []
    for page_number in range(1, CATCH_UP_MAX_PAGES + 1):
        page = rf.list_users(int(campaign_id), page=page_number)
        for user in page.items:
            if _missed(referrals.get(account_id, campaign_id, str(user.id))):
                missed.append(user)
        oldest = parse_timestamp(page.items[-1].signed_up_at) if page.items else None
        if not page.has_more or (oldest is not None and oldest < since):
            break
    queues.send_batch(
        settings.signup_queue_url,
        [
            messages.RfWebhook(
                account_id=account_id,
                event="user.join",
                rf_user_id=str(u.id),
                campaign_id=campaign_id,
                via="catch_up",
            ).body()
            for u in missed
        ],
    )
    svc.store.put({"pk": mark_pk, "sk": mark_sk, "last_run_at": started})
    CampaignStore(svc.store).ensure_qualification_sweep(account_id, campaign_id)
    logger.info(
        "catch-up done", extra={"account_id": account_id, "campaign_id": campaign_id, "queued": len(missed)}
    )


# Pushes check the connection themselves, so a revoked one needs nothing here.
IGNORED_KINDS = (messages.CONNECTION_REVOKED,)
HANDLERS: dict[str, Handler[Any, SignupProcessorSettings, None]] = {
    messages.RF_WEBHOOK: handler(messages.RfWebhook, _rf_event),
    messages.CONNECTION_CONNECTED: handler(messages.ConnectionConnected, _reconnected),
    messages.CONNECTION_DISCONNECTED: handler(messages.ConnectionDisconnected, _disconnected),
    messages.CATCH_UP: handler(messages.CatchUp, _catch_up),
}


def handle_record(record: SQSRecord, settings: SignupProcessorSettings) -> None:
    svc = services(settings)
    dispatch(
        record.body,
        HANDLERS,
        svc,
        settings,
        queue="signup",
        queue_url=settings.signup_queue_url,
        ignored=IGNORED_KINDS,
    )
