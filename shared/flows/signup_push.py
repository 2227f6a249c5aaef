"""Pushing a Referral Factory signup into Intercom as the campaign's settings say, exactly once.

Referral Factory is the source of truth: the user is re-read before anything happens. A contact is
created at most once per referral even across retries, timeouts and concurrent deliveries:

1. the referral record is claimed (`push_claimed_at`, a lease) before Intercom is touched;
2. the new contact's id is written to the record the moment Intercom returns it;
3. a retry that finds an earlier claim without an id cannot know whether that attempt created the
   contact (lead emails are not unique, and new contacts take a while to show in search), so it
   waits until search can be trusted, then takes any contact with the email created since the
   claim as its own.

Every signup goes to its campaign's workspace (the one its settings are bound to), with that
workspace's connection and rate budget. What a referral shows (contract §1, "Referral states,
precisely"): `pending` from when the push records it until the push finishes; `not_pushed` when the
campaign's action is `none`, its settings are missing, or the account had disconnected the campaign's
workspace on purpose (nothing syncs until it connects again and retries); `waiting_for_connection`
when Intercom revoked the workspace's connection, pushed when that same workspace connects again (the
campaign moved to another workspace meanwhile: `not_pushed`, with an event saying why); `failed` when
Intercom refused the push for good (`refused_for_good`), with Intercom's code and message in the
event. A refusal is a final answer: recorded, never sent on to the DLQ; `retry` pushes it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import caches, messages
from shared.clients.errors import (
    AlreadyExists,
    ConnectionRevoked,
    UpstreamError,
    UpstreamNotFound,
    refused_for_good,
)
from shared.clients.intercom import SERVICE as INTERCOM
from shared.domain.campaign_settings import COMPANY, CONTACT, PersonSettings
from shared.domain.contact import Contact
from shared.domain.field_mapping import (
    contact_body,
    drop_attribute,
    get_attribute,
    merge_bodies,
    rf_values,
    set_attribute,
)
from shared.domain.qualification import CREATED, EXISTING_UPDATED
from shared.flows import companies
from shared.flows.counts import Counts
from shared.flows.history import History
from shared.observability import logger
from shared.records.companies import CompanyValues
from shared.records.connections import DISCONNECTED as CONNECTION_DISCONNECTED
from shared.records.connections import usable
from shared.records.referrals import (
    ACTION_NONE,
    DISCONNECTED,
    EXISTING_SKIPPED,
    FAILED,
    NOT_PUSHED,
    PERSON_INVITED,
    PUSH_PENDING,
    PUSHED,
    SETTINGS_MISSING,
    WAITING,
    WORKSPACE_CHANGED,
    AttributeValue,
    Referral,
    ReferralChanges,
    ReferralEvent,
    Referrals,
)

if TYPE_CHECKING:
    from shared.clients.intercom import IntercomClient
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.domain.contact import ContactBody, Scalar
    from shared.domain.rf_user import RfUser
    from shared.records.accounts import Account
    from shared.records.campaigns import CampaignStore
    from shared.records.connections import Connection, Connections

# A claim older than this belongs to a worker that died: another may take over.
PUSH_LEASE_S = 120
# How long after a claim a contact created by it may still be missing from Intercom's search.
SEARCH_TRUST_DELAY_S = 90
# A warm Lambda reuses a campaign's name this long before asking Referral Factory again.
CAMPAIGN_NAME_MAX_AGE_S = 300
_CAMPAIGN_NAMES: dict[tuple[str, str], tuple[str | None, float]] = {}
caches.register(f"{__name__}._CAMPAIGN_NAMES", _CAMPAIGN_NAMES.clear)
ROLE_FOR_ACTION = {"create_lead": "lead", "create_user": "user"}


@dataclass(frozen=True)
class _Push:
    """One signup on its way to Intercom: its referral, the connection and the settings it goes by."""

    record: Referral
    connection: Connection
    person: PersonSettings
    via: str


@dataclass
class PushContext:
    account: Account
    referrals: Referrals
    campaigns: CampaignStore
    connections: Connections
    rf: ReferralFactoryClient
    intercom_for: Callable[[Connection], IntercomClient]
    clock: Callable[[], float] = time.time


class SignupPusher:
    def __init__(self, ctx: PushContext) -> None:
        self.ctx = ctx
        self.account_id = ctx.account.account_id
        self._users: dict[str, RfUser] = {}
        self.counts = Counts(self.account_id, ctx.referrals, ctx.campaigns, ctx.connections, ctx.intercom_for)
        self.history = History(
            self.account_id, ctx.referrals.store, ctx.referrals, ctx.rf, self.counts, clock=ctx.clock
        )

    # -- entry points ---------------------------------------------------------------------------
    def on_join(self, rf_user_id: str, *, via: str) -> Referral:
        user = self._rf_user(rf_user_id)
        return self.push(user, via=via)

    def on_counts_changed(self, rf_user_id: str, event: str) -> Referral | None:
        """`user.qualified` / `reward.issued`: record it and refresh the referrer's counts; never
        create a contact."""
        user = self._rf_user(rf_user_id)
        campaign_id = str(user.campaign_id)
        self.history.ensure(campaign_id)  # counts start from what Referral Factory shows
        record = self.ctx.referrals.ensure(self.account_id, campaign_id, user)
        record = self.ctx.referrals.update(
            record, {}, ReferralEvent(kind=event, via="referral_factory", details={})
        )
        if record.referrer_rf_user_id and user.qualified_at:
            self._count(record, converted=True)
        return record

    def push(self, user: RfUser, *, via: str) -> Referral:
        campaign_id = str(user.campaign_id)
        # Recorded as pending first: the history pass below then finds it, and shows it pending, not
        # "not pushed", while this push is under way.
        record = self.ctx.referrals.ensure(self.account_id, campaign_id, user, intercom_status=PUSH_PENDING)
        # Counts start from what Referral Factory shows (history, read once per campaign): a friend
        # known from it is counted already, and a referrer's first write is right.
        if self.history.ensure(campaign_id):
            record = self.ctx.referrals.get(self.account_id, campaign_id, record.rf_user_id) or record
        if record.referrer_rf_user_id:
            self._count(record, converted=False)
        if record.intercom_status in PUSHED:
            return record
        settings = self.ctx.campaigns.settings(self.account_id, campaign_id)
        person: PersonSettings | None = getattr(settings, record.type) if settings else None
        workspace_id = self.ctx.connections.workspace_of(self.account_id, campaign_id)
        connection = self.ctx.connections.get(self.account_id, workspace_id) if workspace_id else None
        if person is None or person.action == "none":
            why = SETTINGS_MISSING if person is None else ACTION_NONE
            return self._hold(record, NOT_PUSHED, why, via, workspace_id=workspace_id)
        if record.intercom_status == WAITING and record.workspace_id not in (None, workspace_id):
            # It waited for a workspace the campaign no longer uses: never pushed elsewhere unasked (a
            # retry pushes it into the campaign's workspace).
            moved: dict[str, Scalar] = {"waited_for": record.workspace_id, "connected": workspace_id}
            return self._hold(
                record, NOT_PUSHED, WORKSPACE_CHANGED, via, workspace_id=workspace_id, details=moved
            )
        if connection is None or connection.status == CONNECTION_DISCONNECTED:
            # Disconnected on purpose: no user data syncs until the account connects and retries.
            return self._hold(record, NOT_PUSHED, DISCONNECTED, via, workspace_id=workspace_id)
        if not usable(connection):
            return self._hold(record, WAITING, WAITING, via, workspace_id=connection.workspace_id)
        return self._attempt(record, user, person, connection, via)

    def _attempt(
        self, record: Referral, user: RfUser, person: PersonSettings, connection: Connection, via: str
    ) -> Referral:
        """The push itself, and what Intercom's answer makes of the referral."""
        try:
            pushed = self._push_to_intercom(
                record=record, user=user, person=person, connection=connection, via=via
            )
        except ConnectionRevoked:
            self.ctx.connections.revoked_by_intercom(self.account_id, connection.workspace_id)
            fresh = self.ctx.referrals.get(self.account_id, record.campaign_id, record.rf_user_id) or record
            return self._hold(fresh, WAITING, WAITING, via, workspace_id=connection.workspace_id)
        except UpstreamError as refusal:
            if refusal.service != INTERCOM or not refused_for_good(refusal):
                raise
            return self._failed(record, connection, refusal, via)
        if pushed.referrals_count or pushed.converted_referrals_count:
            # Friends counted while this referrer had no contact yet had nothing to write to; the
            # record returned by the write that stored the contact id holds every such count.
            self.counts.write(pushed)
        return pushed

    def _hold(
        self,
        record: Referral,
        status: str,
        kind: str,
        via: str,
        *,
        workspace_id: str | None = None,
        details: dict[str, Scalar] | None = None,
    ) -> Referral:
        """Record why the signup was not pushed (once per reason): visible, never dropped.
        `workspace_id` is its campaign's workspace (the one it waits for, when it waits)."""
        if record.intercom_status == status and record.held_because == kind:
            return record
        event_details: dict[str, Scalar] = {**({"workspace_id": workspace_id} if status == WAITING else {})}
        return self.ctx.referrals.update(
            record,
            {"intercom_status": status, "held_because": kind, "workspace_id": workspace_id},
            ReferralEvent(kind=kind, via=via, details={**event_details, **(details or {})}),
        )

    def _failed(self, record: Referral, connection: Connection, refusal: UpstreamError, via: str) -> Referral:
        """Intercom refused the push for good: the referral shows Intercom's code and message, and
        its claim is released (the refused attempt made nothing), so a retry pushes at once."""
        logger.warning(
            "Intercom refused a signup push",
            extra={
                "account_id": self.account_id,
                "rf_user_id": record.rf_user_id,
                "status": refusal.status,
                "code": refusal.code,
            },
        )
        details: dict[str, Scalar] = {
            "code": refusal.code or f"http_{refusal.status}",
            "message": refusal.message,
            "status": refusal.status,
        }
        return self.ctx.referrals.update(
            record,
            {"intercom_status": FAILED, "held_because": None, "workspace_id": connection.workspace_id},
            ReferralEvent(kind="push_failed", via=via, details=details),
            remove=("push_claimed_at",),
        )

    # -- Intercom -----------------------------------------------------------------------------
    def _push_to_intercom(
        self,
        *,
        record: Referral,
        user: RfUser,
        person: PersonSettings,
        connection: Connection,
        via: str,
    ) -> Referral:
        intercom = self.ctx.intercom_for(connection)
        before = self.ctx.referrals.claim_push(record, PUSH_LEASE_S, connection.workspace_id)
        if before is None:
            now_stored = self.ctx.referrals.get(self.account_id, record.campaign_id, record.rf_user_id)
            if now_stored is not None and now_stored.intercom_status in PUSHED:
                return now_stored  # another delivery of this signup pushed it meanwhile
            raise messages.Deferred("another worker is pushing this signup", PUSH_LEASE_S // 4)
        earlier_claim = before.push_claimed_at
        now = self.ctx.clock()
        if earlier_claim and now - earlier_claim < SEARCH_TRUST_DELAY_S:
            wait = int(SEARCH_TRUST_DELAY_S - (now - earlier_claim)) + 1
            raise messages.Deferred("an earlier attempt may have created the contact", wait)
        push = _Push(record, connection, person, via)
        existing = self._find_by_email(intercom, str(user.email or ""))
        if earlier_claim and existing and int(existing.created_at or 0) >= int(earlier_claim) - 5:
            # Created by the attempt that claimed before us and died before recording it.
            return self._record(push, existing, CREATED, seen=None)
        if existing:
            return self._existing(push, intercom, existing, user)
        try:
            contact = intercom.create_contact(self._new_contact_body(record, user, person))
        except AlreadyExists as duplicate:
            # A user with this email (possibly archived, so search missed it) already exists.
            if not duplicate.existing_id:
                raise
            try:
                contact = intercom.get_contact(duplicate.existing_id)
            except UpstreamNotFound:
                archived = Contact(id=duplicate.existing_id)
                return self._record(push, archived, EXISTING_SKIPPED, seen=None, details={"archived": True})
            return self._existing(push, intercom, contact, user)
        return self._record(push, contact, CREATED, seen=None)

    def _find_by_email(self, intercom: IntercomClient, email: str) -> Contact | None:
        if not email:
            return None
        page = intercom.search_page({"field": "email", "operator": "=", "value": email}, per_page=5)
        # Prefer a user over a lead: the user is who the person is in the workspace.
        contacts = sorted(page.contacts, key=lambda c: (c.role != "user", c.created_at or 0))
        return contacts[0] if contacts else None

    def _existing(self, push: _Push, intercom: IntercomClient, contact: Contact, user: RfUser) -> Referral:
        person = push.person
        if person.duplicates == "skip":
            return self._record(push, contact, EXISTING_SKIPPED, seen=None)
        q = person.qualification
        # Qualification later needs a change away from the value seen now.
        seen = get_attribute(contact, q.attribute) if q and q.object == CONTACT else None
        body = self._new_contact_body(push.record, user, person, for_existing=True)
        if body:
            # The answer is the survivor if the contact was merged since the search found it (a 410 followed).
            contact = intercom.update_contact(contact.id, body)
        record = self._record(push, contact, EXISTING_UPDATED, seen=seen)
        if q and q.object == COMPANY:
            # Its companies as they are now are what a later change must start from.
            companies.baseline(
                intercom,
                CompanyValues(self.ctx.referrals.store),
                workspace_id=push.connection.workspace_id,
                contact_id=contact.id,
                attribute=q.attribute,
            )
        return record

    def _new_contact_body(
        self,
        record: Referral,
        user: RfUser,
        person: PersonSettings,
        *,
        for_existing: bool = False,
    ) -> ContactBody:
        referrer = self._referrer_user(record, user)
        values = rf_values(user, campaign_name=self._campaign_name(str(user.campaign_id)), referrer=referrer)
        mapped = contact_body(person.mapping, values)
        referrer_part = contact_body(person.referrer_mapping, values) if record.type == PERSON_INVITED else {}
        defaults: ContactBody = {}
        for attribute, value in person.defaults.items():
            set_attribute(defaults, attribute, value)
        body = merge_bodies(defaults, mapped, referrer_part)
        q = person.qualification
        if for_existing:
            # Marking an existing contact as referred never touches who they are or their qualification.
            body.pop("email", None)
            body.pop("name", None)
            if q and q.object == CONTACT:
                drop_attribute(body, q.attribute)
            if body.get("custom_attributes") == {}:
                body.pop("custom_attributes")
            return body
        if q and q.initial_value is not None:
            set_attribute(body, q.attribute, q.initial_value)
        action_role = ROLE_FOR_ACTION[person.action]
        return {"role": action_role, **body}

    def _record(
        self,
        push: _Push,
        contact: Contact,
        status: str,
        *,
        seen: AttributeValue,
        details: dict[str, Scalar] | None = None,
    ) -> Referral:
        can_qualify = push.person.qualification is not None and status in (CREATED, EXISTING_UPDATED)
        changes: ReferralChanges = {
            "intercom_contact_id": contact.id,
            "workspace_id": push.connection.workspace_id,
            "intercom_status": status,
            "held_because": None,
            "can_qualify": can_qualify,
            "qualification_seen_value": seen,
            "pushed_at": int(self.ctx.clock()),
        }
        kind = {
            CREATED: "contact_created",
            EXISTING_SKIPPED: "existing_skipped",
            EXISTING_UPDATED: "existing_updated",
        }[status]
        return self.ctx.referrals.update(
            push.record,
            changes,
            ReferralEvent(kind=kind, via=push.via, details={"contact_id": contact.id, **(details or {})}),
        )

    # -- referrers ----------------------------------------------------------------------------
    def _rf_user(self, rf_user_id: str | int) -> RfUser:
        """A Referral Factory user, read once per message (the source of truth, within its budget)."""
        key = str(rf_user_id)
        if key not in self._users:
            self._users[key] = self.ctx.rf.get_user(int(rf_user_id))
        return self._users[key]

    def _referrer_user(self, record: Referral, user: RfUser) -> RfUser | None:
        if record.type != PERSON_INVITED or not user.referrer_id:
            return None
        return self._rf_user(user.referrer_id)

    def _campaign_name(self, campaign_id: str) -> str | None:
        key = (self.account_id, campaign_id)
        cached = _CAMPAIGN_NAMES.get(key)
        if cached is None or cached[1] < self.ctx.clock():
            name = self.ctx.rf.get_campaign(campaign_id).name
            cached = (name, self.ctx.clock() + CAMPAIGN_NAME_MAX_AGE_S)
            _CAMPAIGN_NAMES[key] = cached
        return cached[0]

    def _count(self, invited: Referral, *, converted: bool) -> None:
        referrer = self.counts.referrer_of(invited, self._rf_user)
        if self.ctx.referrals.count_for_referrer(invited, referrer, converted=converted):
            self.counts.write(
                self.ctx.referrals.get(self.account_id, invited.campaign_id, referrer.rf_user_id)
            )
