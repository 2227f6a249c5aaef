"""Qualifying a referral in Referral Factory exactly once when its contact is observed with a
qualifying value, and the bookkeeping that follows (the referral's history, the referrer's counts).

Webhooks and the sweep both come here. Exactly once, even across a Lambda timeout between the call
and the bookkeeping:

1. the rule (`shared.domain.qualification`) runs on the product's own record first, so echoes, other
   attributes and referrals that cannot qualify cost no Referral Factory call;
2. the call is an idempotent function keyed on the referral (`{account}:qualify:{campaign}:{user}`):
   a repeat gets the first outcome back without calling, and a concurrent one is handed back to the
   queue while the first is in progress;
3. inside it, the Referral Factory user is read again, and one already qualified is not qualified
   again: an attempt that timed out after its call left the idempotency record in progress, and the
   retry that takes over once that expires (the Lambda context's remaining time) must not call twice;
4. the referral is marked qualified with a conditional write, so the history records it once.

A qualifier acts for one workspace (the one a notification came from, or the swept campaign's): it
sees only the campaigns bound to that workspace, and reads Intercom with that workspace's connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from pydantic import BaseModel

from shared import caches, messages
from shared.aws import boto
from shared.clients.errors import ConnectionRevoked, UpstreamNotFound
from shared.clients.intercom import parse_timestamp
from shared.domain.campaign_settings import COMPANY, CampaignSettings
from shared.domain.field_mapping import get_attribute
from shared.domain.qualification import (
    ALREADY_QUALIFIED,
    EXISTING_UPDATED,
    QUALIFIED,
    QUALIFIES_BY_COMPANY,
    CompanyWatch,
    Decision,
    SaleValue,
    Watch,
    decide,
    decide_company,
    normalise,
    parse_sale_value,
    sale_value_from_companies,
    worth_a_look,
)
from shared.flows.counts import Counts
from shared.observability import logger, metrics
from shared.records.connections import usable
from shared.records.referrals import Referral, ReferralEvent, Referrals

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from shared.clients.intercom import IntercomClient
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.domain.campaign_settings import PersonSettings, Qualification
    from shared.domain.contact import Contact
    from shared.records.accounts import Account
    from shared.records.campaigns import CampaignStore
    from shared.records.companies import CompanyChange
    from shared.records.connections import Connection, Connections

# The idempotency records' prefix: fixed, so moving this code never resets deduplication.
IDEMPOTENCY_KEY_PREFIX = "referral-qualification"
# Records outlive any retry by far; the referral's own `status` guards it after that.
IDEMPOTENCY_EXPIRY_S = 30 * 86400
# When another worker holds the qualification: try again after this long.
IN_PROGRESS_RETRY_S = 15
NO_REFERRAL, NO_QUALIFICATION = "no_referral", "no_qualification_settings"

QUALIFY_IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="key",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_EXPIRY_S,
)


def register_lambda_context(context: LambdaContext) -> None:
    """Called by the handler before any record: an attempt's in-progress record then expires when its
    invocation would have timed out, so a retry after a timeout can take over."""
    QUALIFY_IDEMPOTENCY.register_lambda_context(context)


class QualifyRequest(BaseModel):
    key: str
    rf_user_id: int
    sale_value: float | None = None


class QualifyOutcome(BaseModel):
    # Whether this attempt sent `PUT /users/qualification` (False: Referral Factory had it already).
    called: bool
    qualified_at: int | None = None


def qualify_in_referral_factory(*, request: QualifyRequest, rf: ReferralFactoryClient) -> QualifyOutcome:
    user = rf.get_user(request.rf_user_id)
    if user.qualified_at:
        return QualifyOutcome(called=False, qualified_at=parse_timestamp(user.qualified_at))
    answer = rf.qualify(user_id=request.rf_user_id, sale_value=request.sale_value)
    return QualifyOutcome(called=True, qualified_at=parse_timestamp(answer.qualified_at))


@caches.resettable
@cache
def _once(table_name: str) -> Callable[..., QualifyOutcome]:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

    persistence = DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="id",
        expiry_attr="expiration",
        boto3_client=boto.client("dynamodb"),
    )
    once: Callable[..., QualifyOutcome] = idempotent_function(
        qualify_in_referral_factory,
        data_keyword_argument="request",
        persistence_store=persistence,
        config=QUALIFY_IDEMPOTENCY,
        output_serializer=PydanticSerializer(QualifyOutcome),
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    return once


def qualification_key(account_id: str, campaign_id: str, rf_user_id: str) -> str:
    return f"{account_id}:qualify:{campaign_id}:{rf_user_id}"


@dataclass
class QualifyContext:
    account_id: str
    # The workspace the observations come from: only campaigns bound to it are looked at.
    workspace_id: str
    # The account's record and its Referral Factory client are read on first need: most
    # observations never reach Referral Factory.
    account_loader: Callable[[], Account]
    referrals: Referrals
    campaigns: CampaignStore
    connections: Connections
    rf_factory: Callable[[Account], ReferralFactoryClient]
    intercom_for: Callable[[Connection], IntercomClient]
    idempotency_table: str
    clock: Callable[[], float] = time.time
    _account: Account | None = field(default=None, init=False, repr=False)
    _rf: ReferralFactoryClient | None = field(default=None, init=False, repr=False)

    @property
    def account(self) -> Account:
        if self._account is None:
            self._account = self.account_loader()
        return self._account

    @property
    def rf(self) -> ReferralFactoryClient:
        if self._rf is None:
            self._rf = self.rf_factory(self.account)
        return self._rf


# Campaign settings (and the workspace each campaign uses) as a warm process last read them: a change
# applies within this many seconds.
SETTINGS_TTL_S = 30.0
_settings_cache: dict[tuple[str, str], tuple[float, CampaignSettings | None, str | None]] = {}
_watch_cache: dict[tuple[str, str], tuple[float, tuple[tuple[Watch, ...], tuple[CompanyWatch, ...]]]] = {}
caches.register(f"{__name__}._settings_cache", _settings_cache.clear)
caches.register(f"{__name__}._watch_cache", _watch_cache.clear)


class Qualifier:
    def __init__(self, ctx: QualifyContext) -> None:
        self.ctx = ctx
        self.account_id = ctx.account_id
        self.workspace_id = ctx.workspace_id
        self._intercom: IntercomClient | None = None

    def _campaign(self, campaign_id: str) -> tuple[CampaignSettings | None, str | None]:
        key, now = (self.account_id, campaign_id), time.monotonic()
        cached = _settings_cache.get(key)
        if cached is not None and cached[0] + SETTINGS_TTL_S > now:
            return cached[1], cached[2]
        settings = self.ctx.campaigns.settings(self.account_id, campaign_id)
        workspace_id = self.ctx.connections.workspace_of(self.account_id, campaign_id)
        _settings_cache[key] = (now, settings, workspace_id)
        return settings, workspace_id

    def bound_here(self, campaign_id: str) -> bool:
        """Whether the campaign uses this qualifier's workspace (only then may its notifications touch
        the campaign's referrals)."""
        return self._campaign(campaign_id)[1] == self.workspace_id

    def settings(self, campaign_id: str) -> CampaignSettings | None:
        """The campaign's settings when it is bound to this qualifier's workspace; None otherwise (a
        notification from one workspace never touches another workspace's campaigns)."""
        settings, workspace_id = self._campaign(campaign_id)
        return settings if workspace_id == self.workspace_id else None

    def watches(self) -> tuple[Watch, ...]:
        """Every contact qualification of the account's campaigns bound to this workspace, as its
        notifications are filtered by."""
        return self._watches()[0]

    def company_watches(self) -> tuple[CompanyWatch, ...]:
        """Every company qualification (`object: company`) the account's campaigns have."""
        return self._watches()[1]

    def _watches(self) -> tuple[tuple[Watch, ...], tuple[CompanyWatch, ...]]:
        now, key = time.monotonic(), (self.account_id, self.workspace_id)
        cached = _watch_cache.get(key)
        if cached is not None and cached[0] + SETTINGS_TTL_S > now:
            return cached[1]
        found: list[Watch] = []
        companies: list[CompanyWatch] = []
        for campaign_id in sorted(self.ctx.campaigns.configured(self.account_id)):
            settings = self.settings(campaign_id)
            for name in ("person_invited", "person_referring"):
                person: PersonSettings | None = getattr(settings, name) if settings else None
                if person is None or person.qualification is None:
                    continue
                q, values = person.qualification, tuple(person.qualification.qualifying_values)
                if q.object == COMPANY:
                    companies.append(CompanyWatch(campaign_id, name, q.attribute, values))
                else:
                    found.append(Watch(q.attribute, values, person.duplicates == "update"))
        watches = (tuple(found), tuple(companies))
        _watch_cache[key] = (now, watches)
        return watches

    def worth_a_look(self, contact: Contact) -> bool:
        """Whether a notified contact can matter to any of the account's referrals: without a qualifying
        value (and no campaign following every change), it is not looked up at all."""
        watches = self.watches()
        return worth_a_look({w.attribute: get_attribute(contact, w.attribute) for w in watches}, watches)

    def qualification_for(self, record: Referral) -> Qualification | None:
        settings = self.settings(record.campaign_id)
        person = getattr(settings, record.type, None) if settings else None
        return person.qualification if person else None

    def observe(self, record: Referral, contact: Contact, *, via: str, observed_at: int | None) -> str:
        """Act on the referral's contact as observed (a notification's item, a search result); returns
        why it did or did not qualify. `observed_at` orders webhook observations; the sweep, which
        sees the contact as it is now, passes None.

        `record` may be a copy from the contact index, which lags the table: what it says is trusted
        only to rule a change out (a qualified referral never goes back to pending); anything that
        writes is decided again on the record read from the table."""
        decision, value = self._decide(record, contact, observed_at)
        uncounted = bool(record.referrer_rf_user_id) and not record.converted_count_written
        if decision.qualify or decision.remember_seen or (decision.reason == ALREADY_QUALIFIED and uncounted):
            fresh = self.ctx.referrals.get(self.account_id, record.campaign_id, record.rf_user_id)
            if fresh is None:
                return NO_REFERRAL
            decision, value = self._decide(fresh, contact, observed_at)
            record = fresh
        if decision.reason == ALREADY_QUALIFIED and uncounted and not record.converted_count_written:
            # A retry after a crash between marking and counting still counts (at most once).
            self._count(record)
        seen_at = int(record.qualification_seen_at or record.pushed_at or 0)
        if decision.remember_seen and (observed_at is None or observed_at >= seen_at):
            self.ctx.referrals.update(
                record,
                {
                    "qualification_seen_value": normalise(value),
                    "qualification_seen_at": observed_at or int(self.ctx.clock()),
                },
            )
        if decision.qualify:
            self._qualify(record, contact.id, contact, value=value, via=via, reason=decision.reason)
        metrics.add_metric(name=f"Qualification_{decision.reason}", unit="Count", value=1)
        return decision.reason

    def observe_company(
        self, record: Referral, *, contact_id: str, company_id: str, change: CompanyChange, via: str
    ) -> str:
        """Act on a company of the referral's contact seen changing (`change`); returns why the referral
        did or did not qualify. As for `observe`, `record` may come from the lagging contact index:
        anything that writes is decided again on the record read from the table."""
        decision = self._decide_company(record, change)
        uncounted = bool(record.referrer_rf_user_id) and not record.converted_count_written
        if decision.qualify or (decision.reason == ALREADY_QUALIFIED and uncounted):
            fresh = self.ctx.referrals.get(self.account_id, record.campaign_id, record.rf_user_id)
            if fresh is None:
                return NO_REFERRAL
            record, decision = fresh, self._decide_company(fresh, change)
        if decision.reason == ALREADY_QUALIFIED and uncounted and not record.converted_count_written:
            self._count(record)
        if decision.qualify:
            self._qualify(
                record,
                contact_id,
                None,
                value=change.after,
                via=via,
                reason=decision.reason,
                extra={"company_id": company_id},
            )
        metrics.add_metric(name=f"Qualification_{decision.reason}", unit="Count", value=1)
        return decision.reason

    def _decide_company(self, record: Referral, change: CompanyChange) -> Decision:
        if record.status == QUALIFIED:
            return Decision(False, ALREADY_QUALIFIED)
        q = self.qualification_for(record)
        if q is None or q.object != COMPANY:
            return Decision(False, NO_QUALIFICATION)
        return decide_company(
            status=record.status,
            can_qualify=bool(record.can_qualify),
            intercom_status=record.intercom_status,
            qualifying_values=q.qualifying_values,
            before=change.before,
            after=change.after,
            changed_at=change.at,
            linked_at=int(record.pushed_at) if record.pushed_at else None,
        )

    def _decide(self, record: Referral, contact: Contact, observed_at: int | None) -> tuple[Decision, Any]:
        if record.status == QUALIFIED:
            return Decision(False, ALREADY_QUALIFIED), None
        q = self.qualification_for(record)
        if q is None:
            return Decision(False, NO_QUALIFICATION), None
        if q.object == COMPANY:
            # Its companies qualify it (`observe_company`), never a change of the contact itself.
            return Decision(False, QUALIFIES_BY_COMPANY), None
        value = get_attribute(contact, q.attribute)
        existing = record.intercom_status == EXISTING_UPDATED
        seen_at = record.qualification_seen_at or record.pushed_at
        decision = decide(
            status=record.status,
            can_qualify=bool(record.can_qualify),
            intercom_status=record.intercom_status,
            qualifying_values=q.qualifying_values,
            initial_value=q.initial_value,
            value=value,
            seen_value=record.qualification_seen_value,
            observed_at=observed_at,
            # Only an existing contact has a value the product saw; a created one has no earlier state.
            seen_at=int(seen_at) if existing and seen_at else None,
        )
        return decision, value

    def intercom(self) -> IntercomClient:
        """The workspace's Intercom client, for what a notification does not carry (a contact's
        companies, a company's contacts). Not connected is a revoked connection to the caller: the
        message ends, and the sweep after a reconnect looks again."""
        if self._intercom is None:
            connection = self.ctx.connections.get(self.account_id, self.workspace_id)
            if not usable(connection):
                raise ConnectionRevoked("Intercom is not connected", service="intercom")
            self._intercom = self.ctx.intercom_for(connection)
        return self._intercom

    def _sale_value(self, record: Referral, contact_id: str, contact: Contact | None) -> SaleValue:
        settings = self.settings(record.campaign_id)
        if settings is None or settings.commission is None:
            return SaleValue(None, "no commission attribute configured")
        attribute = settings.commission.sale_value_attribute
        try:
            if settings.commission.object == COMPANY:
                companies = self.intercom().contact_companies(contact_id)
                valued = [
                    (c.id, get_attribute(c, attribute), parse_timestamp(c.updated_at)) for c in companies
                ]
                return sale_value_from_companies(valued, attribute)
            if contact is None:  # qualified by a company: the contact's own attribute is read now
                contact = self.intercom().get_contact(contact_id)
        except UpstreamNotFound as exc:
            # The contact is gone (deleted, or merged into one since deleted): qualified all the same.
            return SaleValue(None, f"the contact could not be read: {exc.message}")
        return parse_sale_value(get_attribute(contact, attribute))

    def _qualify(
        self,
        record: Referral,
        contact_id: str,
        contact: Contact | None,
        *,
        value: Any,
        via: str,
        reason: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        campaign_id, rf_user_id = record.campaign_id, record.rf_user_id
        sale = self._sale_value(record, contact_id, contact)
        attempted_before = record.qualify_attempted_at
        if not attempted_before:
            # Tells a retry that a qualified user in Referral Factory may be our own earlier call.
            record = self.ctx.referrals.update(record, {"qualify_attempted_at": int(self.ctx.clock())})
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        request = QualifyRequest(
            key=qualification_key(self.account_id, campaign_id, rf_user_id),
            rf_user_id=int(rf_user_id),
            sale_value=sale.amount,
        )
        try:
            outcome = _once(self.ctx.idempotency_table)(request=request, rf=self.ctx.rf)
        except IdempotencyAlreadyInProgressError as exc:
            raise messages.Deferred(
                "another worker is qualifying this referral", IN_PROGRESS_RETRY_S
            ) from exc
        details: dict[str, Any] = {
            "sale_value": sale.amount,
            "sale_value_note": sale.note,
            "reason": reason,
            "contact_id": contact_id,
            "value": normalise(value),
            **(extra or {}),
        }
        if sale.company_id:
            details["sale_value_company_id"] = sale.company_id
        if not outcome.called and not attempted_before:
            # Qualified in Referral Factory by someone else (by hand, another integration).
            details["sale_value"] = None
            details["sale_value_note"] = "qualified in Referral Factory before the product; amount not sent"
        marked = self.ctx.referrals.mark_qualified(
            record,
            {
                "qualified_at": outcome.qualified_at or int(self.ctx.clock()),
                "sale_value": details["sale_value"],
            },
            ReferralEvent(kind="qualified", via=via, details=details),
        )
        if marked is None:
            return
        metrics.add_metric(name=f"Qualified_{via}", unit="Count", value=1)
        logger.info(
            "referral qualified",
            extra={
                "account_id": self.account_id,
                "campaign_id": campaign_id,
                "rf_user_id": rf_user_id,
                "via": via,
                "called_referral_factory": outcome.called,
                "sale_value": details["sale_value"],
                "sale_value_note": details["sale_value_note"],
            },
        )
        self._count(marked)

    def _count(self, invited: Referral) -> None:
        """Add the qualified referral to its referrer's converted count (once) and write the counts
        to the referrer's contact through the one writer (only values that changed)."""
        referrer_id = invited.referrer_rf_user_id
        if not referrer_id:
            return
        campaign_id = invited.campaign_id
        referrals = self.ctx.referrals
        counts = Counts(
            self.account_id, referrals, self.ctx.campaigns, self.ctx.connections, self.ctx.intercom_for
        )
        referrer = counts.referrer_of(invited, lambda rf_user_id: self.ctx.rf.get_user(int(rf_user_id)))
        if not invited.counted_converted:
            referrals.count_for_referrer(invited, referrer, converted=True)
        try:
            counts.write(referrals.get(self.account_id, campaign_id, str(referrer_id)))
        except ConnectionRevoked:
            self.ctx.connections.revoked_by_intercom(self.account_id, self.workspace_id)
        referrals.update(invited, {"converted_count_written": True})
