"""Dispatch of the Intercom events queue by message kind: uninstall notices, contact notifications
(qualification, merges, removals), company notifications (company qualification) and the scheduled
qualification sweeps.

Work that cannot happen now (a rate budget spent, another worker qualifying the same referral,
Referral Factory failing for a while) goes back to the queue with a delay instead of sleeping in a
billed Lambda or waiting out the queue's visibility timeout (shared/consumers/handback.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from shared import caches, messages
from shared.aws import queues
from shared.clients.errors import ConnectionRevoked
from shared.consumers.handback import Handler, dispatch, handler
from shared.flows.companies import COMPANY_TOPICS, CompanyObserver, handle_company_notification
from shared.flows.contact_changes import handle_notification
from shared.flows.qualify import Qualifier, QualifyContext
from shared.flows.sweep import sweep
from shared.flows.uninstall import handle_uninstall
from shared.observability import logger, metrics
from shared.records.campaigns import QUALIFICATION_SWEEP_INTERVAL_S, CampaignStore
from shared.records.companies import CompanyValues
from shared.records.connections import ACCESS_REVOKED, NOT_CONNECTED, usable
from shared.records.referrals import Referrals
from shared.wiring import services

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from shared.clients.intercom import IntercomClient
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.records.accounts import Account
    from shared.records.connections import Connections
    from shared.settings import IntercomEventsSettings
    from shared.wiring import Services

# One client per account key in a warm process: its key is decrypted once and its budget's reservations
# are reused across messages. Bounded, and keyed by a digest of the stored (encrypted) key: no key
# material sits in a cache key.
RF_CLIENTS_MAX = 32
_rf_clients: caches.LRU[tuple[str, str], ReferralFactoryClient] = caches.LRU(
    f"{__name__}._rf_clients", RF_CLIENTS_MAX
)


def _rf_client(svc: Services, account: Account) -> ReferralFactoryClient:
    stored = json.dumps([account.rf_api_key, account.rf_api_base], sort_keys=True, default=str)
    key = (account.account_id, hashlib.sha256(stored.encode()).hexdigest())
    return _rf_clients.get_or_build(key, lambda: svc.referral_factory_for(account))


def _qualifier(
    svc: Services,
    settings: IntercomEventsSettings,
    account_id: str,
    workspace_id: str,
    connections: Connections,
) -> Callable[[], Qualifier]:
    """The qualifier of the account's campaigns bound to the workspace, built on first need (most
    notifications have no referral)."""
    built: list[Qualifier] = []

    def get() -> Qualifier:
        if not built:
            built.append(
                Qualifier(
                    QualifyContext(
                        account_id=account_id,
                        workspace_id=workspace_id,
                        account_loader=lambda: svc.accounts.get(account_id),
                        referrals=Referrals(svc.store),
                        campaigns=CampaignStore(svc.store),
                        connections=connections,
                        rf_factory=lambda account: _rf_client(svc, account),
                        intercom_for=svc.intercom_for,
                        idempotency_table=settings.idempotency_table_name,
                    )
                )
            )
        return built[0]

    return get


def _intercom(
    svc: Services, connections: Connections, account_id: str, workspace_id: str
) -> IntercomClient | None:
    connection = connections.get(account_id, workspace_id)
    if not usable(connection):
        return None
    return svc.intercom_for(connection)


def _uninstall(message: messages.IntercomUninstall, svc: Services, settings: IntercomEventsSettings) -> str:
    outcome = handle_uninstall(message.app_id, svc.connections(), svc.intercom_for)
    logger.info("uninstall notice handled", extra={"app_id": message.app_id, "outcome": outcome})
    metrics.add_metric(name=f"Uninstall_{outcome}", unit="Count", value=1)
    return outcome


def _notification(
    message: messages.IntercomNotification, svc: Services, settings: IntercomEventsSettings
) -> str:
    # The workspace the notification came from: only the campaigns bound to it are touched.
    account_id, workspace_id = message.account_id, message.app_id
    connections = svc.connections()
    qualifier = _qualifier(svc, settings, account_id, workspace_id, connections)
    try:
        if message.topic in COMPANY_TOPICS:
            outcome = handle_company_notification(
                message,
                lambda: CompanyObserver(
                    account_id, workspace_id, CompanyValues(svc.store), Referrals(svc.store), qualifier()
                ),
            )
        else:
            outcome = handle_notification(
                message,
                Referrals(svc.store),
                qualifier,
                lambda: _intercom(svc, connections, account_id, workspace_id),
            )
    except ConnectionRevoked:
        connections.revoked_by_intercom(account_id, workspace_id)
        outcome = ACCESS_REVOKED
    logger.info(
        "notification handled",
        extra={
            "topic": message.topic,
            "notification_id": message.notification_id,
            "outcome": outcome,
            # From the receiver's answer to now: how far behind the queue is.
            "waited_s": round(time.time() - float(message.received_at or time.time()), 3),
        },
    )
    metrics.add_metric(name="NotificationHandled", unit="Count", value=1)
    return outcome


def _sweep(message: messages.QualificationSweep, svc: Services, settings: IntercomEventsSettings) -> str:
    account_id = message.account_id
    connections = svc.connections()
    connection = connections.for_campaign(account_id, message.campaign_id)
    if not usable(connection):
        # The mark stays where it was: after a reconnect the sweep looks back over the gap.
        return NOT_CONNECTED
    referrals = Referrals(svc.store)
    qualifier = _qualifier(svc, settings, account_id, connection.workspace_id, connections)()
    try:
        result = sweep(
            message,
            store=svc.store,
            referrals=referrals,
            qualifier=qualifier,
            intercom=svc.intercom_for(connection),
            workspace_id=connection.workspace_id,
            interval_s=QUALIFICATION_SWEEP_INTERVAL_S,
            companies=CompanyObserver(
                account_id, connection.workspace_id, CompanyValues(svc.store), referrals, qualifier
            ),
        )
    except ConnectionRevoked:
        connections.revoked_by_intercom(account_id, connection.workspace_id)
        return ACCESS_REVOKED
    if result.continuation is not None:
        queues.send(settings.intercom_events_queue_url, result.continuation.body())
        return "continued"
    return "swept"


HANDLERS: dict[str, Handler[Any, IntercomEventsSettings, str]] = {
    messages.INTERCOM_UNINSTALL: handler(messages.IntercomUninstall, _uninstall),
    messages.INTERCOM_NOTIFICATION: handler(messages.IntercomNotification, _notification),
    messages.QUALIFICATION_SWEEP: handler(messages.QualificationSweep, _sweep),
}


def handle_record(record: SQSRecord, settings: IntercomEventsSettings) -> str | None:
    svc = services(settings)
    return dispatch(
        record.body,
        HANDLERS,
        svc,
        settings,
        queue="Intercom events",
        queue_url=settings.intercom_events_queue_url,
    )
