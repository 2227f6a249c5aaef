"""What a queued Intercom contact notification does to the referrals linked to its contact.

Updates and creations are observations for the qualifier (a contact holding no qualifying value of
any campaign is not even looked up); `contact.merged` moves the referral to the
surviving contact; `contact.deleted` and `contact.archived` (minimal bodies) are recorded in the
referral's history. A contact no referral is linked to ends here, at no cost to either service.
Only referrals of campaigns bound to the notification's workspace are touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.clients.errors import UpstreamNotFound
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
# Read back, the contact was gone: deleted, or merged into one since deleted.
CONTACT_GONE = "contact_gone"
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

    def ours(record: Referral) -> bool:
        return record.account_id == account_id and qualifier().bound_here(record.campaign_id)

    if topic == MERGED:
        return _merged(item, referrals, workspace, ours)
    if topic not in REMOVED and not message.trimmed and not qualifier().worth_a_look(item):
        # No qualifying value for any campaign: nothing to look up (most updates end here).
        return NOTHING_TO_LOOK_AT
    linked = [r for r in referrals.by_contact(workspace, item.id) if ours(r)]
    if not linked:
        return NO_REFERRAL
    if topic in REMOVED:
        return _removed(REMOVED[topic], linked, referrals, item.id)
    if message.trimmed:
        # Too big for the queue: read the contact as it is now.
        read = _read_back(intercom, item.id, linked, referrals, workspace=workspace, ours=ours)
        if isinstance(read, str):
            return read
        item, linked = read
    observed_at = parse_timestamp(item.updated_at)
    outcomes = [qualifier().observe(r, item, via="webhook", observed_at=observed_at) for r in linked]
    return outcomes[0] if len(outcomes) == 1 else ",".join(sorted(set(outcomes)))


def _read_back(
    intercom: Callable[[], IntercomClient | None],
    asked: str,
    linked: list[Referral],
    referrals: Referrals,
    *,
    workspace: str,
    ours: Callable[[Referral], bool],
) -> tuple[Contact, list[Referral]] | str:
    """The contact as it is now with the referrals to observe on it, or the outcome when there is none."""
    client = intercom()
    if client is None:
        return NOT_CONNECTED
    try:
        item = client.get_contact(asked)
    except UpstreamNotFound:
        # Not an error to retry: its deletion (or merge) notification says what happened.
        return CONTACT_GONE
    if item.id == asked:
        return item, linked
    # Merged away since (2.16's 410 led to the survivor): do what `contact.merged` does, in case that
    # notification was lost; when it does come, it finds nothing left to move.
    _move(referrals, workspace, ours, gone=asked, survivor=item.id, via="read")
    # From the table (the contact index may lag): the same referrals, now on the survivor.
    fresh = [referrals.get(r.account_id, r.campaign_id, r.rf_user_id) for r in linked]
    moved = [r for r in fresh if r is not None and r.intercom_contact_id == item.id]
    return (item, moved) if moved else NO_REFERRAL


def _merged(item: Contact, referrals: Referrals, workspace: str, ours: Callable[[Referral], bool]) -> str:
    gone = item.merged_from.id if item.merged_from else None
    if not gone:
        return "merge_without_merged_from"
    moved = _move(referrals, workspace, ours, gone=str(gone), survivor=item.id, via="webhook")
    return "merged" if moved else NO_REFERRAL


def _move(
    referrals: Referrals,
    workspace: str,
    ours: Callable[[Referral], bool],
    *,
    gone: str,
    survivor: str,
    via: str,
) -> int:
    """Link the referrals of a contact merged away to its survivor; returns how many moved."""
    moved = 0
    for record in referrals.by_contact(workspace, gone):
        if not ours(record):
            continue
        fresh = referrals.get(record.account_id, record.campaign_id, record.rf_user_id)
        if fresh is None or fresh.intercom_contact_id != str(gone):
            continue  # moved already (a repeat) or since
        referrals.update(
            fresh,
            {"intercom_contact_id": survivor, "workspace_id": workspace},
            ReferralEvent(kind="contact_merged", via=via, details={"from": gone, "into": survivor}),
        )
        moved += 1
    logger.info("merge handled", extra={"from": gone, "into": survivor, "referrals_moved": moved, "via": via})
    metrics.add_metric(name="ReferralsMovedByMerge", unit="Count", value=moved)
    return moved


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
