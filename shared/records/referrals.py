"""The product's referral records: one per Referral Factory user the product has seen in a campaign,
linked to the Intercom contact, with its push outcome, qualification state, counts and history.

Keyed by account, then campaign and user (shared/records/keys.py, docs/data-model.md); GSI1 finds a
record by its Intercom contact, GSI2 by email, and the sparse GSI3 lists a campaign's referrers whose
counts are not yet written to Intercom.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from shared.aws.store import Attr, ConditionFailed
from shared.domain.qualification import CREATED, EXISTING_UPDATED, PENDING, QUALIFIED
from shared.records import keys

if TYPE_CHECKING:
    from shared.aws.store import Store

PERSON_INVITED, PERSON_REFERRING = "person_invited", "person_referring"
# intercom_status values (the contract's; `created` and `existing_updated`, which can qualify, and the
# `status` values `pending` and `qualified` are the domain's: shared/domain/qualification.py)
EXISTING_SKIPPED = "existing_skipped"
NOT_PUSHED, WAITING, FAILED = "not_pushed", "waiting_for_connection", "failed"
PUSHED = (CREATED, EXISTING_SKIPPED, EXISTING_UPDATED)

PUBLIC_FIELDS = (
    "rf_user_id",
    "campaign_id",
    "email",
    "type",
    "intercom_contact_id",
    "intercom_status",
    "can_qualify",
    "status",
    "qualified_at",
    "sale_value",
    "events",
)


COUNTS = ("referrals_count", "converted_referrals_count")


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    view = {field: item.get(field) for field in PUBLIC_FIELDS}
    view["can_qualify"] = bool(item.get("can_qualify"))
    view["events"] = list(item.get("events") or [])
    return view


class Referrals:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def get(self, account_id: str, campaign_id: str, rf_user_id: str) -> dict[str, Any] | None:
        return self.store.get(*keys.referral_key(account_id, campaign_id, rf_user_id))

    def ensure(self, account_id: str, campaign_id: str, user: dict[str, Any]) -> dict[str, Any]:
        """The record for a Referral Factory user, created (pending, not pushed) on first sight."""
        item = self._new(account_id, campaign_id, user)
        try:
            self.store.put(item, if_absent=True)
        except ConditionFailed:
            # Records are never deleted, so the one that refused our put is there to read.
            return self.store.get(item["pk"], item["sk"]) or item
        return item

    def create_linked(
        self,
        account_id: str,
        campaign_id: str,
        user: dict[str, Any],
        *,
        workspace_id: str,
        contact_id: str,
        changes: dict[str, Any],
        event: dict[str, Any],
    ) -> dict[str, Any] | None:
        """A new record already linked to its Intercom contact, in one write (what `ensure` then
        `update` would make in two); None when the user's record exists, to be updated instead."""
        item = {
            **self._new(account_id, campaign_id, user),
            **changes,
            "intercom_contact_id": contact_id,
            "workspace_id": workspace_id,
        }
        item["gsi1pk"] = keys.contact_index_key(workspace_id, contact_id)
        item["gsi1sk"] = keys.contact_index_sort_key(account_id, campaign_id, item["rf_user_id"])
        item["events"] = [{"at": int(self.clock()), **event}]
        try:
            self.store.put(item, if_absent=True)
        except ConditionFailed:
            return None
        return item

    def _new(self, account_id: str, campaign_id: str, user: dict[str, Any]) -> dict[str, Any]:
        rf_user_id = str(user["id"])
        pk, sk = keys.referral_key(account_id, campaign_id, rf_user_id)
        email = str(user.get("email") or "")
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "account_id": account_id,
            "campaign_id": campaign_id,
            "rf_user_id": rf_user_id,
            "email": email,
            "type": PERSON_INVITED if user.get("referrer_id") else PERSON_REFERRING,
            "referrer_rf_user_id": str(user["referrer_id"]) if user.get("referrer_id") else None,
            "intercom_contact_id": None,
            "intercom_status": NOT_PUSHED,
            "can_qualify": False,
            "status": PENDING,
            "qualified_at": None,
            "sale_value": None,
            "referrals_count": 0,
            "converted_referrals_count": 0,
            "events": [],
            "created_at": int(self.clock()),
            "gsi2pk": keys.email_index_key(account_id, email),
            "gsi2sk": keys.email_index_sort_key(campaign_id, rf_user_id),
        }
        return item

    def update(
        self, record: dict[str, Any], changes: dict[str, Any], event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Apply `changes` and append `event` to the history, in one write."""
        sets = dict(changes)
        if changes.get("intercom_contact_id"):
            workspace = changes.get("workspace_id") or record.get("workspace_id")
            if workspace:
                sets["gsi1pk"] = keys.contact_index_key(workspace, changes["intercom_contact_id"])
                sets["gsi1sk"] = keys.contact_index_sort_key(
                    record["account_id"], record["campaign_id"], record["rf_user_id"]
                )
        appended = {"events": [{"at": int(self.clock()), **event}]} if event is not None else None
        return self.store.update(record["pk"], record["sk"], sets, append=appended)

    def claim_push(self, record: dict[str, Any], lease_s: int) -> dict[str, Any] | None:
        """Take the right to create this record's contact. Returns the record as it was before (its
        `push_claimed_at` tells of an earlier attempt), or None while another worker's lease runs."""
        now = int(self.clock())
        try:
            before = self.store.update(
                record["pk"],
                record["sk"],
                {"push_claimed_at": now},
                condition=Attr("push_claimed_at").not_exists() | Attr("push_claimed_at").lt(now - lease_s),
            )
        except ConditionFailed:
            return None
        return {**before, "push_claimed_at": record.get("push_claimed_at")}

    def by_contact(self, workspace_id: str, contact_id: str) -> list[dict[str, Any]]:
        items, _ = self.store.query(keys.contact_index_key(workspace_id, contact_id), index="gsi1")
        return items

    def page(
        self,
        account_id: str,
        *,
        campaign_id: str | None,
        email: str | None,
        limit: int,
        start_key: dict[str, Any] | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        if email:
            return self.store.query(
                keys.email_index_key(account_id, email),
                index="gsi2",
                sk_prefix=keys.campaign_prefix(campaign_id) if campaign_id else None,
                limit=limit,
                start_key=start_key,
            )
        return self.store.query(
            keys.referrals_pk(account_id),
            sk_prefix=keys.campaign_prefix(campaign_id) if campaign_id else None,
            limit=limit,
            start_key=start_key,
        )

    def count_for_referrer(
        self, invited: dict[str, Any], referrer: dict[str, Any], *, converted: bool
    ) -> bool:
        """Add the invited referral to its referrer's counts exactly once (a transaction marks the
        invited record as counted). True if this call counted it."""
        flag = "counted_converted" if converted else "counted_referral"
        counter = "converted_referrals_count" if converted else "referrals_count"
        # The referrer joins its campaign's pending counts (gsi3) until the writer has them in Intercom.
        pending = {
            "gsi3pk": keys.counts_pending_key(str(referrer["account_id"]), str(referrer["campaign_id"])),
            "gsi3sk": keys.counts_pending_sort_key(referrer["rf_user_id"]),
        }
        try:
            self.store.transact(
                [
                    {"update": (invited["pk"], invited["sk"]), "set": {flag: True}, "unless": flag},
                    {"update": (referrer["pk"], referrer["sk"]), "add": {counter: 1}, "set": pending},
                ]
            )
        except ConditionFailed:
            return False
        return True

    def counts_pending(self, account_id: str, campaign_id: str) -> Iterator[dict[str, Any]]:
        """The campaign's referrers whose counts changed since they were last written, as they are now."""
        for key in self.store.query_all(keys.counts_pending_key(account_id, campaign_id), index="gsi3"):
            record = self.store.get(key["pk"], key["sk"])
            if record is not None:
                yield record

    def counts_settled(self, referrer: dict[str, Any]) -> None:
        """Take the referrer out of the pending counts, unless its counts changed since it was read (the
        change's own writer then has it to do, and the next pass finds it still pending)."""
        if not referrer.get("gsi3pk"):
            return
        unchanged = Attr(COUNTS[0]).eq(int(referrer.get(COUNTS[0]) or 0)) & Attr(COUNTS[1]).eq(
            int(referrer.get(COUNTS[1]) or 0)
        )
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                referrer["pk"], referrer["sk"], {}, remove=("gsi3pk", "gsi3sk"), condition=unchanged
            )

    def mark_qualified(
        self, record: dict[str, Any], changes: dict[str, Any], event: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Move a pending referral to qualified with `changes` and `event`, in one conditional write:
        None if it was qualified already (by another worker). The event is appended in the same write,
        so a concurrent writer's event is never overwritten."""
        if record.get("status") != PENDING:
            return None
        try:
            return self.store.update(
                record["pk"],
                record["sk"],
                {**changes, "status": QUALIFIED},
                condition=Attr("status").eq(PENDING),
                append={"events": [{"at": int(self.clock()), **event}]},
            )
        except ConditionFailed:
            return None
