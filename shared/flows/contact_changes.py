"""What a queued Intercom contact notification does to the referrals linked to its contact.

Updates and creations are observations for the qualifier (a contact holding no qualifying value of
any campaign is not even looked up); `contact.merged` moves the referral to the
surviving contact; `contact.deleted` and `contact.archived` (minimal bodies) are recorded in the
referral's history. A contact no referral is linked to ends here, at no cost to either service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.clients.intercom import parse_timestamp
from shared.domain.contact import Contact
from shared.flows.qualify import NO_REFERRAL
from shared.observability import logger, metrics
from shared.records.connections import NOT_CONNECTED
from shared.records.referrals import ReferralEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.clients.intercom import IntercomClient
    from shared.flows.qualify import Qualifier
    from shared.messages import IntercomNotification
    from shared.records.referrals import Referral, Referrals

MERGED = "contact.merged"
NOTHING_TO_LOOK_AT = "no_qualifying_value"
REMOVED = {"contact.deleted": "contact_deleted", "contact.archived": "contact_archived"}


def handle_notification(
    message: IntercomNotification,
    referrals: Referrals,
    qualifier: Callable[[], Qualifier],
    intercom: Callable[[], IntercomClient | None],
) -> str:
    """The outcome for one notification (a metric and a log line each)."""
    topic = message.topic
    workspace = message.app_id
    account_id = message.account_id
    item = Contact.model_validate(message.item)
    if topic == MERGED:
        return _merged(item, referrals, workspace, account_id)
    if topic not in REMOVED and not message.trimmed and not qualifier().worth_a_look(item):
        # No qualifying value for any campaign: nothing to look up (most updates end here).
        return NOTHING_TO_LOOK_AT
    linked = [r for r in referrals.by_contact(workspace, item.id) if r.account_id == account_id]
    if not linked:
        return NO_REFERRAL
    if topic in REMOVED:
        return _removed(REMOVED[topic], linked, referrals, item.id)
    if message.trimmed:
        # Too big for the queue: read the contact as it is now.
        client = intercom()
        if client is None:
            return NOT_CONNECTED
        item = client.get_contact(item.id)
    observed_at = parse_timestamp(item.updated_at)
    outcomes = [qualifier().observe(r, item, via="webhook", observed_at=observed_at) for r in linked]
    return outcomes[0] if len(outcomes) == 1 else ",".join(sorted(set(outcomes)))


def _merged(item: Contact, referrals: Referrals, workspace: str, account_id: str) -> str:
    survivor = item.id
    gone = item.merged_from.id if item.merged_from else None
    if not gone:
        return "merge_without_merged_from"
    moved = 0
    for record in referrals.by_contact(workspace, str(gone)):
        if record.account_id != account_id:
            continue
        fresh = referrals.get(account_id, record.campaign_id, record.rf_user_id)
        if fresh is None or fresh.intercom_contact_id != str(gone):
            continue  # moved already (a repeat) or since
        referrals.update(
            fresh,
            {"intercom_contact_id": survivor, "workspace_id": workspace},
            ReferralEvent(
                kind="contact_merged", via="webhook", details={"from": str(gone), "into": survivor}
            ),
        )
        moved += 1
    logger.info("merge handled", extra={"from": gone, "into": survivor, "referrals_moved": moved})
    metrics.add_metric(name="ReferralsMovedByMerge", unit="Count", value=moved)
    return "merged" if moved else NO_REFERRAL


def _removed(kind: str, linked: list[Referral], referrals: Referrals, contact_id: str) -> str:
    for record in linked:
        fresh = referrals.get(record.account_id, record.campaign_id, record.rf_user_id)
        if fresh is None:
            continue
        if any(e.kind == kind and e.details.get("contact_id") == contact_id for e in fresh.events):
            continue  # recorded already
        referrals.update(
            fresh, {}, ReferralEvent(kind=kind, via="webhook", details={"contact_id": contact_id})
        )
    return kind
