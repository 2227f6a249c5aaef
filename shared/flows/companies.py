"""Company qualification (`object: company`, contract §1): seeing Intercom companies change, and
qualifying the referrals of their contacts.

The product sees a company's value when it links an existing contact (its companies: `baseline`),
when a contact is attached to it (`company.contact.attached`), on every `company.updated`, and in
the sweep (`sweep_page`: the companies of each pending referral's contact). What it saw is kept per
workspace, company and attribute (`shared.records.companies`): the first sight only records the value,
so a company that was a customer already never counts; a change from a non-qualifying value to a
qualifying one qualifies the referrals of the company's contacts (`GET /companies/{id}/contacts`, then
the referrals' contact index), each exactly once through the qualifier (`shared.flows.qualify`).

A change is recorded before it is acted on and taken off only once every referral it concerns was
handled, so nothing is lost to a worker dying in between: the next observation of the company finds
the change still pending and acts on it (at no cost to the referrals handled already).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import messages
from shared.clients.errors import UpstreamError, UpstreamNotFound
from shared.clients.intercom import parse_timestamp
from shared.domain.company import Company
from shared.domain.contact import Contact
from shared.domain.field_mapping import get_attribute
from shared.domain.qualification import PENDING, QUALIFY_COMPANY_CHANGED, normalise, qualifying_change
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.clients.intercom import IntercomClient
    from shared.domain.qualification import CompanyWatch
    from shared.flows.qualify import Qualifier
    from shared.messages import IntercomNotification
    from shared.records.companies import CompanyChange, CompanyValue, CompanyValues
    from shared.records.referrals import Referrals

COMPANY_UPDATED = "company.updated"
CONTACT_ATTACHED = "company.contact.attached"
COMPANY_TOPICS = (COMPANY_UPDATED, CONTACT_ATTACHED)
# Outcomes (metric names and log fields).
NO_COMPANY_QUALIFICATION = "no_company_qualification"
FIRST_SEEN = "company_first_seen"
NO_QUALIFYING_CHANGE = "no_qualifying_change"
STALE = "company_older_than_what_was_seen"
QUALIFYING_CHANGE = "company_qualifying_change"
# An observation of several attributes reports the first of these that happened.
OUTCOMES_FIRST_TO_LAST = (QUALIFYING_CHANGE, FIRST_SEEN, NO_QUALIFYING_CHANGE, STALE)
# The sweep reads this many of a campaign's referrals per slice (each pending one costs an Intercom call).
SWEEP_REFERRALS_PER_PAGE = 50


@dataclass(frozen=True)
class Seen:
    """What one observation of a company did: why, and how many referrals it qualified."""

    outcome: str
    qualified: int = 0


@dataclass
class CompanyObserver:
    account_id: str
    workspace_id: str
    values: CompanyValues
    referrals: Referrals
    qualifier: Qualifier

    def observe(self, company: Company, *, via: str, joined: str | None = None) -> Seen:
        """Record the company's values of every attribute a company qualification watches, and act on
        the qualifying changes among the changes not yet acted on. `joined` is a contact seen joining
        the company in this very observation: the company's value is its first sight of it, never a
        change it saw."""
        watches = self.qualifier.company_watches()
        if not watches:
            return Seen(NO_COMPANY_QUALIFICATION)
        updated_at = parse_timestamp(company.updated_at)
        records: list[CompanyValue] = []
        outcomes: set[str] = set()
        for attribute in sorted({w.attribute for w in watches}):
            value = normalise(get_attribute(company, attribute))
            seen = self.values.observe(self.workspace_id, company.id, attribute, value, updated_at)
            outcomes.add(FIRST_SEEN if seen.first else STALE if seen.stale else NO_QUALIFYING_CHANGE)
            if seen.record.pending:
                records.append(seen.record)
        targets = _targets(watches, records)
        if targets:
            outcomes.add(QUALIFYING_CHANGE)
        qualified = self._qualify_contacts(company.id, targets, via=via, joined=joined) if targets else 0
        for record in records:
            self.values.settle(record)
        outcome = next(o for o in OUTCOMES_FIRST_TO_LAST if o in outcomes)
        metrics.add_metric(name=f"CompanyObserved_{outcome}", unit="Count", value=1)
        return Seen(outcome, qualified)

    def _qualify_contacts(
        self,
        company_id: str,
        targets: dict[tuple[str, str], CompanyChange],
        *,
        via: str,
        joined: str | None,
    ) -> int:
        """Hand every pending referral of the company's contacts that a qualifying change concerns to
        the qualifier; returns how many qualified. A referral another worker is qualifying is left to
        it, and the change stays pending (`Deferred` after the others) until every one was handled."""
        qualified = 0
        deferred: messages.Deferred | None = None
        for page in self.qualifier.intercom().company_contact_ids(company_id):
            for contact_id in page:
                if contact_id == joined:
                    continue
                for record in self.referrals.by_contact(self.workspace_id, contact_id):
                    change = targets.get((record.campaign_id, record.type))
                    if record.account_id != self.account_id or change is None:
                        continue  # a qualified one is still handed over: its count may be unwritten
                    try:
                        reason = self.qualifier.observe_company(
                            record, contact_id=contact_id, company_id=company_id, change=change, via=via
                        )
                    except messages.Deferred as exc:
                        deferred = exc
                        continue
                    qualified += reason == QUALIFY_COMPANY_CHANGED
        logger.info(
            "company qualifying change handled",
            extra={"account_id": self.account_id, "company_id": company_id, "qualified": qualified},
        )
        if deferred is not None:
            raise deferred
        return qualified


def _targets(
    watches: Sequence[CompanyWatch], records: Sequence[CompanyValue]
) -> dict[tuple[str, str], CompanyChange]:
    """(campaign, kind of referral) → the qualifying change to judge its referrals by: of the pending
    changes of its attribute, the latest that goes from a non-qualifying value to a qualifying one."""
    targets: dict[tuple[str, str], CompanyChange] = {}
    for watch in watches:
        for record in records:
            if record.attribute != watch.attribute:
                continue
            changes = [
                c for c in record.pending if qualifying_change(c.before, c.after, watch.qualifying_values)
            ]
            if changes:
                # An unknown time sorts last: it cannot show the change came before a referral.
                targets[(watch.campaign_id, watch.person)] = max(
                    changes, key=lambda c: float("inf") if c.at is None else c.at
                )
    return targets


# -- entry points ---------------------------------------------------------------------------------
def handle_company_notification(
    message: IntercomNotification, observer: Callable[[], CompanyObserver]
) -> str:
    """`company.updated` (the company) and `company.contact.attached` (the company and the contact
    attached, whose shape Intercom does not document: the receiver checked both have an id)."""
    item = message.item
    joined: str | None = None
    if message.topic == CONTACT_ATTACHED:
        joined = Contact.model_validate(item["contact"]).id
        item = item["company"]
    company = Company.model_validate(item)
    watching = observer()
    if message.trimmed and watching.qualifier.company_watches():
        company = watching.qualifier.intercom().get_company(company.id)  # too big for the queue: read it
    return watching.observe(company, via="webhook", joined=joined).outcome


def baseline(
    intercom: IntercomClient, values: CompanyValues, *, workspace_id: str, contact_id: str, attribute: str
) -> int:
    """A contact the product links (an existing one, marked by `update`) shows its companies as they
    are: each one never seen before is recorded, so a later change of it counts, and its present value
    never does. Returns how many were recorded. Failing to read them loses nothing: the sweep reads the
    companies of every pending referral's contact."""
    recorded = 0
    try:
        companies = intercom.contact_companies(contact_id)
    except UpstreamError as exc:
        if not isinstance(exc, UpstreamNotFound):
            logger.warning("a linked contact's companies could not be read", extra={"error": str(exc)})
        return 0
    for company in companies:
        value = normalise(get_attribute(company, attribute))
        recorded += values.baseline(
            workspace_id, company.id, attribute, value, parse_timestamp(company.updated_at)
        )
    return recorded


def sweep_page(
    observer: CompanyObserver, *, campaign_id: str, person: str, cursor: str | None
) -> tuple[int, int, str | None]:
    """One slice of the sweep of a campaign's company qualification: the companies of each pending
    referral's contact, observed as notifications would be (catching a change or an attachment whose
    notification was lost). Returns (contacts read, referrals qualified, the cursor of the next slice
    or None at the end)."""
    start: dict[str, Any] | None = json.loads(cursor) if cursor else None
    records, last = observer.referrals.page(
        observer.account_id,
        campaign_id=campaign_id,
        email=None,
        limit=SWEEP_REFERRALS_PER_PAGE,
        start_key=start,
    )
    contacts = qualified = 0
    observed: set[str] = set()
    for record in records:
        if (
            record.type != person
            or record.status != PENDING
            or not record.can_qualify
            or not record.intercom_contact_id
            or record.workspace_id != observer.workspace_id
        ):
            continue
        contacts += 1
        try:
            companies = observer.qualifier.intercom().contact_companies(record.intercom_contact_id)
        except UpstreamNotFound:
            continue  # the contact is gone: its deletion or merge notification says what happened
        for company in companies:
            if company.id in observed:
                continue
            observed.add(company.id)
            try:
                qualified += observer.observe(company, via="sweep").qualified
            except messages.Deferred:
                continue  # another worker is qualifying one of its referrals; the change stays pending
    return contacts, qualified, json.dumps(last, sort_keys=True) if last else None
