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
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.aws.store import Attr, ConditionFailed
from shared.domain.qualification import CREATED, EXISTING_UPDATED, PENDING, QUALIFIED

if TYPE_CHECKING:
    from shared.aws.store import Store
    from shared.domain.rf_user import RfUser

PERSON_INVITED, PERSON_REFERRING = "person_invited", "person_referring"
# intercom_status values (the contract's; `created` and `existing_updated`, which can qualify, and the
# `status` values `pending` and `qualified` are the domain's: shared/domain/qualification.py).
# PUSH_PENDING: recorded for a push that has not finished (the same word as the `status` PENDING, a
# different attribute). NOT_PUSHED: nothing will push it on its own (`held_because` says why).
# WAITING: the connection was revoked by Intercom; pushed when that workspace connects again.
# FAILED: Intercom refused the push for good; its newest event carries Intercom's code and message.
PUSH_PENDING = "pending"
EXISTING_SKIPPED = "existing_skipped"
NOT_PUSHED, WAITING, FAILED = "not_pushed", "waiting_for_connection", "failed"
PUSHED = (CREATED, EXISTING_SKIPPED, EXISTING_UPDATED)
# What `POST /v1/referrals/{id}/retry` takes, and what a push may still move on from.
RETRYABLE = (FAILED, NOT_PUSHED, WAITING)
NOT_YET_PUSHED = (PUSH_PENDING, *RETRYABLE)
IntercomStatus = Literal[
    "pending",
    "created",
    "existing_skipped",
    "existing_updated",
    "not_pushed",
    "waiting_for_connection",
    "failed",
]
INTERCOM_STATUSES: tuple[str, ...] = get_args(IntercomStatus)
QualificationStatus = Literal["pending", "qualified"]

# Why a referral is held (`held_because`, and its event's `kind`).
SETTINGS_MISSING, ACTION_NONE = "settings_missing", "action_none"
# The account had disconnected Intercom on purpose: no user data syncs until it connects and retries.
DISCONNECTED = "disconnected"
# It waited for a revoked workspace, and another one is connected now: pushed there only by a retry.
WORKSPACE_CHANGED = "workspace_changed"
# Only a retry pushes a referral held for these (the catch-up leaves them be).
HELD_UNTIL_RETRY = (DISCONNECTED, WORKSPACE_CHANGED)

PUBLIC_FIELDS = (
    "rf_user_id",
    "campaign_id",
    "email",
    "type",
    "intercom_contact_id",
    "workspace_id",
    "intercom_status",
    "can_qualify",
    "status",
    "qualified_at",
    "sale_value",
    "events",
)


COUNTS = ("referrals_count", "converted_referrals_count")

# A filtered listing reads this many records per query, and at most FILTERED_READS_MAX per request.
FILTERED_READ = 200
FILTERED_READS_MAX = 2000

# A value of a contact's qualification attribute as Intercom sends it (stored as seen, or normalised).
AttributeValue = str | int | float | bool | None


class ReferralEvent(BaseModel):
    """One entry of a referral's history. Written as it was given (a `details` left out stays out),
    with `at` stamped by `Referrals` in the write that appends it."""

    # Built on first use, as the referral's: see `Referral`.
    model_config = ConfigDict(extra="allow", defer_build=True)

    at: int = 0
    kind: str
    via: str
    details: dict[str, Any] = Field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class Referral(BaseModel):
    """A referral record. Attributes it does not name (written by other code, or an older version)
    are kept, and writes carry only the attributes set on it, so what is stored keeps its shape."""

    # Forty-odd fields, built on first use: most first requests of the functions that import the
    # records (a sync's status, an account's campaigns) read no referral (docs/cold-starts.md).
    model_config = ConfigDict(extra="allow", defer_build=True)

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
    held_because: str | None = None
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
    workspace_id: str | None
    intercom_status: str
    held_because: str | None
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


def public_view(record: Referral, campaign_workspace: str | None = None) -> dict[str, Any]:
    """The referral as the API shows it. Its `workspace_id` is the workspace its push went to, waits
    for or was refused by; a referral never pushed shows its campaign's (`campaign_workspace`)."""
    view: dict[str, Any] = {field: getattr(record, field) for field in PUBLIC_FIELDS}
    view["workspace_id"] = record.workspace_id or campaign_workspace
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

    def ensure(
        self, account_id: str, campaign_id: str, user: RfUser, *, intercom_status: str = NOT_PUSHED
    ) -> Referral:
        """The record for a Referral Factory user, created on first sight: `PUSH_PENDING` by the push
        that is about to happen, not pushed when it is only known (history, counts)."""
        record = self._new(account_id, campaign_id, user).model_copy(
            update={"intercom_status": intercom_status}
        )
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
        self,
        record: Referral,
        changes: ReferralChanges,
        event: ReferralEvent | None = None,
        *,
        remove: tuple[str, ...] = (),
    ) -> Referral:
        """Apply `changes`, remove `remove` and append `event` to the history, in one write."""
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
        return Referral.model_validate(self.store.update(*record.key, sets, append=appended, remove=remove))

    def claim_push(self, record: Referral, lease_s: int, workspace_id: str) -> Referral | None:
        """Take the right to create this record's contact in `workspace_id`: the record is pending
        from now until the push finishes. Returns the record with its earlier claim (its
        `push_claimed_at` tells of an earlier attempt), or None while another worker's lease runs or
        once another push finished it."""
        now = int(self.clock())
        lease_free = Attr("push_claimed_at").not_exists() | Attr("push_claimed_at").lt(now - lease_s)
        try:
            claimed = self.store.update(
                *record.key,
                {"push_claimed_at": now, "intercom_status": PUSH_PENDING, "workspace_id": workspace_id},
                condition=lease_free & Attr("intercom_status").is_in(NOT_YET_PUSHED),
            )
        except ConditionFailed:
            return None
        return Referral.model_validate({**claimed, "push_claimed_at": record.push_claimed_at})

    def request_retry(self, record: Referral, event: ReferralEvent) -> Referral | None:
        """Move a referral that may be retried (`RETRYABLE`, as it was read) to pending for the push
        about to be queued; None when its state changed since (another retry, a push)."""
        if record.intercom_status not in RETRYABLE:
            return None
        try:
            item = self.store.update(
                *record.key,
                {"intercom_status": PUSH_PENDING},
                condition=Attr("intercom_status").eq(record.intercom_status),
                append={"events": [self._stamped(event).stored()]},
            )
        except ConditionFailed:
            return None
        return Referral.model_validate(item)

    def retry_not_queued(self, record: Referral, status: str) -> None:
        """Put back the state `request_retry` moved on from, when the push could not be queued."""
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                *record.key, {"intercom_status": status}, condition=Attr("intercom_status").eq(PUSH_PENDING)
            )

    def by_contact(self, workspace_id: str, contact_id: str) -> list[Referral]:
        items, _ = self.store.query(keys.contact_index_key(workspace_id, contact_id), index="gsi1")
        return [Referral.model_validate(item) for item in items]

    def waiting_for_connection(self, account_id: str) -> list[Referral]:
        """The account's signups held until Intercom is connected (`WAITING`)."""
        return [
            Referral.model_validate(item)
            for item in self.store.query_all(
                keys.referrals_pk(account_id), where=Attr("intercom_status").eq(WAITING)
            )
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
        intercom_status: str | None = None,
        status: str | None = None,
    ) -> tuple[list[Referral], dict[str, Any] | None]:
        """One page of the account's referrals (of a campaign, of an email), with the key to continue
        from. The state filters are applied by DynamoDB as it reads: one query per FILTERED_READ records
        read, never a request per record; a rare state gives short pages, each with its cursor."""
        partition, index, key_names = (
            (keys.email_index_key(account_id, email), "gsi2", ("pk", "sk", "gsi2pk", "gsi2sk"))
            if email
            else (keys.referrals_pk(account_id), None, ("pk", "sk"))
        )
        prefix = keys.campaign_prefix(campaign_id) if campaign_id else None
        conditions = [
            Attr(name).eq(value)
            for name, value in (("intercom_status", intercom_status), ("status", status))
            if value is not None
        ]
        if not conditions:
            items, last = self.store.query(
                partition, index=index, sk_prefix=prefix, limit=limit, start_key=start_key
            )
            return [Referral.model_validate(item) for item in items], last
        where = conditions[0] if len(conditions) == 1 else conditions[0] & conditions[1]
        kept: list[dict[str, Any]] = []
        start, read = start_key, 0
        while True:
            items, last = self.store.query(
                partition, index=index, sk_prefix=prefix, limit=FILTERED_READ, start_key=start, where=where
            )
            read += FILTERED_READ
            for position, item in enumerate(items):
                kept.append(item)
                if len(kept) == limit:
                    more = position < len(items) - 1 or last is not None
                    # Continue right after the last record shown, not after the last one read.
                    after = {name: item[name] for name in key_names} if more else None
                    return [Referral.model_validate(i) for i in kept], after
            if last is None or read >= FILTERED_READS_MAX:
                return [Referral.model_validate(i) for i in kept], last
            start = last

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
