"""A referrer's referral counts in Intercom: the one writer of them to the referrer's contact.

The push (a friend joined), the qualifier (a friend qualified) and the sync engine (counts a pass
finds still pending) all write through here, only where the campaign's `sync.return_mapping` maps the
counts, only values that changed, and only into the campaign's workspace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.domain.field_mapping import set_attribute
from shared.observability import logger
from shared.records.connections import usable
from shared.records.referrals import COUNTS, EXISTING_SKIPPED

if TYPE_CHECKING:
    from shared.clients.intercom import IntercomClient
    from shared.domain.contact import ContactBody
    from shared.domain.rf_user import RfUser
    from shared.records.campaigns import CampaignStore
    from shared.records.connections import Connection, Connections
    from shared.records.referrals import Referral, Referrals

# Writes of one referrer's counts before leaving the rest to the next change (see `Counts.write`).
COUNT_WRITE_ROUNDS = 3


@dataclass
class Counts:
    account_id: str
    referrals: Referrals
    campaigns: CampaignStore
    connections: Connections
    intercom_for: Callable[[Connection], IntercomClient]

    def referrer_of(self, invited: Referral, rf_user: Callable[[str], RfUser]) -> Referral:
        """The invited referral's referrer record, created from its Referral Factory user (`rf_user`,
        read only then) on first sight."""
        campaign_id, referrer_id = invited.campaign_id, str(invited.referrer_rf_user_id)
        referrer = self.referrals.get(self.account_id, campaign_id, referrer_id)
        if referrer is None:
            referrer = self.referrals.ensure(self.account_id, campaign_id, rf_user(referrer_id))
        return referrer

    def write(self, referrer: Referral | None) -> bool:
        """Write the referrer's counts to its Intercom contact where the campaign's
        `sync.return_mapping` maps them; only values that changed are written. True if it wrote.

        Two writers for the same referrer (two friends processed at once) may each read a different
        count, and the older one's PUT may land last. So after its PUT a writer reads the record
        again and writes once more if the counts moved on: whichever PUT lands last, its writer
        then saw the latest counts, and a count that changes later brings its own writer."""
        if not referrer or not referrer.intercom_contact_id:
            return False  # pending until the referrer has a contact
        if referrer.intercom_status == EXISTING_SKIPPED:
            # `duplicates: skip` never touches an existing contact, counts included.
            self.referrals.counts_settled(referrer)
            return False
        settings = self.campaigns.settings(self.account_id, referrer.campaign_id)
        mapping = settings.sync.return_mapping if settings and settings.sync else {}
        fields = {f: mapping[f] for f in COUNTS if f in mapping}
        written = referrer.written_counts
        wanted = {attribute: referrer.counts[f] for f, attribute in fields.items()}
        changed = {k: v for k, v in wanted.items() if written.get(k) != v}
        if not changed:
            self.referrals.counts_settled(referrer)
            return False
        connection = self.connections.for_campaign(self.account_id, referrer.campaign_id)
        if not usable(connection) or referrer.workspace_id not in (None, connection.workspace_id):
            # Pending: the first pass after a reconnect writes them (a contact in a workspace the
            # campaign no longer uses is not written at all).
            return False
        client = self.intercom_for(connection)
        for _ in range(COUNT_WRITE_ROUNDS):
            body: ContactBody = {}
            for attribute, value in changed.items():
                set_attribute(body, attribute, value)
            client.update_contact(str(referrer.intercom_contact_id), body)
            written = {**written, **changed}
            referrer = self.referrals.update(referrer, {"written_counts": written})
            now = {attribute: referrer.counts[f] for f, attribute in fields.items()}
            # Compared with what this writer sent, not with `written_counts`: another writer may have
            # recorded the latest counts before this writer's older PUT landed.
            changed = {k: v for k, v in now.items() if wanted.get(k) != v}
            if not changed:
                self.referrals.counts_settled(referrer)
                return True
            wanted = now
        logger.warning(
            "referrer's counts kept changing while being written; the next change writes them",
            extra={"account_id": self.account_id, "rf_user_id": referrer.rf_user_id},
        )
        return True
