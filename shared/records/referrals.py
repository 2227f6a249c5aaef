"""The product's referral records: one per Referral Factory user the product has seen in a campaign,
linked to the Intercom contact, with its push outcome, qualification state, counts and history.

Keyed by account, then campaign and user (shared/keys.py, docs/data-model.md); GSI1 finds a
record by its Intercom contact, GSI2 by email, and the sparse GSI3 lists a campaign's referrers whose
counts are not yet written to Intercom.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.aws.store import Attr, ConditionFailed
from shared.domain.qualification import CREATED, EXISTING_UPDATED, PENDING, QUALIFIED

if TYPE_CHECKING:
    from shared.aws.store import Store
    from shared.domain.rf_user import RfUser

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

# A value of a contact's qualification attribute as Intercom sends it (stored as seen, or normalised).
AttributeValue = str | int | float | bool | None


class ReferralEvent(BaseModel):
    """One entry of a referral's history. Written as it was given (a `details` left out stays out),
    with `at` stamped by `Referrals` in the write that appends it."""

    model_config = ConfigDict(extra="allow")

    at: int = 0
    kind: str
    via: str
    details: dict[str, Any] = Field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class Referral(BaseModel):
    """A referral record. Attributes it does not name (written by other code, or an older version)
    are kept, and writes carry only the attributes set on it, so what is stored keeps its shape."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    campaign_id: str
    rf_user_id: str
    email: str = ""
    type: str = PERSON_REFERRING
    referrer_rf_user_id: str | None = None
    created_at: int | None = None
    # The push: its claim, its Intercom contact and outcome.
    push_claimed_at: int | None = None
    intercom_contact_id: str | None = None
    workspace_id: str | None = None
    intercom_status: str = NOT_PUSHED
    pushed_at: int | None = None
    # The Referral Factory user's link and code and first name, as a contact sync linked it.
    rf_url: str | None = None
    rf_code: str | None = None
    first_name: str | None = None
    created_by_sync: str | None = None
    written_by_sync: str | None = None
    # Qualification (docs/data-model.md).
    can_qualify: bool = False
    status: str = PENDING
    qualified_at: int | None = None
    sale_value: int | float | None = None
    qualification_seen_value: AttributeValue = None
    qualification_seen_at: int | None = None
    qualify_attempted_at: int | None = None
    # Counts: this referrer's, what of them Intercom has (by Intercom attribute), and whether this
    # invited referral was counted in its referrer's.
    referrals_count: int = 0
    converted_referrals_count: int = 0
    written_counts: dict[str, int] = Field(default_factory=dict)
    counted_referral: bool = False
    counted_converted: bool = False
    converted_count_written: bool = False
    events: list[ReferralEvent] = Field(default_factory=list)
    # Keys (shared/keys.py): the table's, by contact (gsi1), by email (gsi2), pending counts
    # (gsi3, sparse).
    pk: str | None = None
    sk: str | None = None
    gsi1pk: str | None = None
    gsi1sk: str | None = None
    gsi2pk: str | None = None
    gsi2sk: str | None = None
    gsi3pk: str | None = None
    gsi3sk: str | None = None

    @property
    def key(self) -> keys.Key:
        return keys.referral_key(self.account_id, self.campaign_id, self.rf_user_id)

    @property
    def counts(self) -> dict[str, int]:
        """The referrer's counts by name (`COUNTS`)."""
        return {
            "referrals_count": self.referrals_count,
            "converted_referrals_count": self.converted_referrals_count,
        }

    def stored(self) -> dict[str, Any]:
        """The item as written: the attributes set on this record, and none it only defaults."""
        return self.model_dump(exclude_unset=True)


class ReferralChanges(TypedDict, total=False):
    """What `Referrals.update` may set on a referral, each with its type."""

    intercom_contact_id: str
    workspace_id: str
    intercom_status: str
    can_qualify: bool
    qualification_seen_value: AttributeValue
    qualification_seen_at: int
    pushed_at: int
    qualify_attempted_at: int
    qualified_at: int
    sale_value: int | float | None
    written_counts: dict[str, int]
    converted_count_written: bool
    rf_url: str | None
    rf_code: str | None
    first_name: str | None
    created_by_sync: str | None
    written_by_sync: str


def public_view(record: Referral) -> dict[str, Any]:
    view: dict[str, Any] = {field: getattr(record, field) for field in PUBLIC_FIELDS}
    view["can_qualify"] = bool(record.can_qualify)
    view["events"] = [event.stored() for event in record.events]
    return view


class Referrals:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def get(self, account_id: str, campaign_id: str, rf_user_id: str) -> Referral | None:
        item = self.store.get(*keys.referral_key(account_id, campaign_id, rf_user_id))
        return Referral.model_validate(item) if item is not None else None

    def ensure(self, account_id: str, campaign_id: str, user: RfUser) -> Referral:
        """The record for a Referral Factory user, created (pending, not pushed) on first sight."""
        record = self._new(account_id, campaign_id, user)
        try:
            self.store.put(record.stored(), if_absent=True)
        except ConditionFailed:
            # Records are never deleted, so the one that refused our put is there to read.
            return self.get(account_id, campaign_id, record.rf_user_id) or record
        return record

    def create_linked(
        self,
        account_id: str,
        campaign_id: str,
        user: RfUser,
        *,
        workspace_id: str,
        contact_id: str,
        changes: ReferralChanges,
        event: ReferralEvent,
    ) -> Referral | None:
        """A new record already linked to its Intercom contact, in one write (what `ensure` then
        `update` would make in two); None when the user's record exists, to be updated instead."""
        new = self._new(account_id, campaign_id, user)
        record = new.model_copy(
            update={
                **changes,
                "intercom_contact_id": contact_id,
                "workspace_id": workspace_id,
                "gsi1pk": keys.contact_index_key(workspace_id, contact_id),
                "gsi1sk": keys.contact_index_sort_key(account_id, campaign_id, new.rf_user_id),
                "events": [self._stamped(event)],
            }
        )
        try:
            self.store.put(record.stored(), if_absent=True)
        except ConditionFailed:
            return None
        return record

    def _new(self, account_id: str, campaign_id: str, user: RfUser) -> Referral:
        rf_user_id = str(user.id)
        pk, sk = keys.referral_key(account_id, campaign_id, rf_user_id)
        email = str(user.email or "")
        # Every attribute a new record is stored with, None and empty ones included.
        return Referral(
            pk=pk,
            sk=sk,
            account_id=account_id,
            campaign_id=campaign_id,
            rf_user_id=rf_user_id,
            email=email,
            type=PERSON_INVITED if user.referrer_id else PERSON_REFERRING,
            referrer_rf_user_id=str(user.referrer_id) if user.referrer_id else None,
            intercom_contact_id=None,
            intercom_status=NOT_PUSHED,
            can_qualify=False,
            status=PENDING,
            qualified_at=None,
            sale_value=None,
            referrals_count=0,
            converted_referrals_count=0,
            events=[],
            created_at=int(self.clock()),
            gsi2pk=keys.email_index_key(account_id, email),
            gsi2sk=keys.email_index_sort_key(campaign_id, rf_user_id),
        )

    def _stamped(self, event: ReferralEvent) -> ReferralEvent:
        return event.model_copy(update={"at": int(self.clock())})

    def update(
        self, record: Referral, changes: ReferralChanges, event: ReferralEvent | None = None
    ) -> Referral:
        """Apply `changes` and append `event` to the history, in one write."""
        sets: dict[str, Any] = dict(changes)
        contact_id = changes.get("intercom_contact_id")
        if contact_id:
            workspace = changes.get("workspace_id") or record.workspace_id
            if workspace:
                sets["gsi1pk"] = keys.contact_index_key(workspace, contact_id)
                sets["gsi1sk"] = keys.contact_index_sort_key(
                    record.account_id, record.campaign_id, record.rf_user_id
                )
        appended = {"events": [self._stamped(event).stored()]} if event is not None else None
        return Referral.model_validate(self.store.update(*record.key, sets, append=appended))

    def claim_push(self, record: Referral, lease_s: int) -> Referral | None:
        """Take the right to create this record's contact. Returns the record as it was before (its
        `push_claimed_at` tells of an earlier attempt), or None while another worker's lease runs."""
        now = int(self.clock())
        try:
            before = self.store.update(
                *record.key,
                {"push_claimed_at": now},
                condition=Attr("push_claimed_at").not_exists() | Attr("push_claimed_at").lt(now - lease_s),
            )
        except ConditionFailed:
            return None
        return Referral.model_validate({**before, "push_claimed_at": record.push_claimed_at})

    def by_contact(self, workspace_id: str, contact_id: str) -> list[Referral]:
        items, _ = self.store.query(keys.contact_index_key(workspace_id, contact_id), index="gsi1")
        return [Referral.model_validate(item) for item in items]

    def waiting_for_connection(self, account_id: str) -> list[Referral]:
        """The account's signups held until Intercom is connected (`WAITING`)."""
        return [
            Referral.model_validate(item)
            for item in self.store.query_all(keys.referrals_pk(account_id))
            if item.get("intercom_status") == WAITING
        ]

    def in_campaign(self, account_id: str, campaign_id: str) -> Iterator[Referral]:
        """Every referral of a campaign (one query, paged by DynamoDB)."""
        for item in self.store.query_all(
            keys.referrals_pk(account_id), sk_prefix=keys.campaign_prefix(campaign_id)
        ):
            yield Referral.model_validate(item)

    def page(
        self,
        account_id: str,
        *,
        campaign_id: str | None,
        email: str | None,
        limit: int,
        start_key: dict[str, Any] | None,
    ) -> tuple[list[Referral], dict[str, Any] | None]:
        if email:
            items, last = self.store.query(
                keys.email_index_key(account_id, email),
                index="gsi2",
                sk_prefix=keys.campaign_prefix(campaign_id) if campaign_id else None,
                limit=limit,
                start_key=start_key,
            )
        else:
            items, last = self.store.query(
                keys.referrals_pk(account_id),
                sk_prefix=keys.campaign_prefix(campaign_id) if campaign_id else None,
                limit=limit,
                start_key=start_key,
            )
        return [Referral.model_validate(item) for item in items], last

    def count_for_referrer(self, invited: Referral, referrer: Referral, *, converted: bool) -> bool:
        """Add the invited referral to its referrer's counts exactly once (a transaction marks the
        invited record as counted). True if this call counted it."""
        flag = "counted_converted" if converted else "counted_referral"
        counter = "converted_referrals_count" if converted else "referrals_count"
        # The referrer joins its campaign's pending counts (gsi3) until the writer has them in Intercom.
        pending = {
            "gsi3pk": keys.counts_pending_key(referrer.account_id, referrer.campaign_id),
            "gsi3sk": keys.counts_pending_sort_key(referrer.rf_user_id),
        }
        try:
            self.store.transact(
                [
                    {"update": invited.key, "set": {flag: True}, "unless": flag},
                    {"update": referrer.key, "add": {counter: 1}, "set": pending},
                ]
            )
        except ConditionFailed:
            return False
        return True

    def counts_pending(self, account_id: str, campaign_id: str) -> Iterator[Referral]:
        """The campaign's referrers whose counts changed since they were last written, as they are now."""
        for key in self.store.query_all(keys.counts_pending_key(account_id, campaign_id), index="gsi3"):
            item = self.store.get(key["pk"], key["sk"])
            if item is not None:
                yield Referral.model_validate(item)

    def counts_settled(self, referrer: Referral) -> None:
        """Take the referrer out of the pending counts, unless its counts changed since it was read (the
        change's own writer then has it to do, and the next pass finds it still pending)."""
        if not referrer.gsi3pk:
            return
        unchanged = Attr(COUNTS[0]).eq(referrer.referrals_count) & Attr(COUNTS[1]).eq(
            referrer.converted_referrals_count
        )
        with contextlib.suppress(ConditionFailed):
            self.store.update(*referrer.key, {}, remove=("gsi3pk", "gsi3sk"), condition=unchanged)

    def mark_qualified(
        self, record: Referral, changes: ReferralChanges, event: ReferralEvent
    ) -> Referral | None:
        """Move a pending referral to qualified with `changes` and `event`, in one conditional write:
        None if it was qualified already (by another worker). The event is appended in the same write,
        so a concurrent writer's event is never overwritten."""
        if record.status != PENDING:
            return None
        try:
            item = self.store.update(
                *record.key,
                {**changes, "status": QUALIFIED},
                condition=Attr("status").eq(PENDING),
                append={"events": [self._stamped(event).stored()]},
            )
        except ConditionFailed:
            return None
        return Referral.model_validate(item)
