"""The scheduled sweep: qualifying changes the webhooks missed.

Intercom delivers a notification at most twice and drops some. Every few minutes each campaign with a
qualification searches Intercom for contacts whose qualification attribute holds a qualifying value,
in any spelling the normaliser accepts (`value_filters`), and that were updated since one day before
the sweep's previous run (search matches dates by calendar day in the workspace's timezone, so a day
of overlap is needed), and hands each linked pending referral to the qualifier as webhooks do
(`via: "sweep"`), which decides on the value as notifications are decided.

A long result is worked through in slices of pages: the rest goes back to the queue with its cursor.
The previous-run mark moves only when a sweep finished, so a failed one is looked back over again.

A company qualification (`object: company`) has no search to run: the sweep reads the companies of
each pending referral's contact instead (`shared.flows.companies.sweep_page`, one Intercom call per
pending referral), which finds the changes and attachments whose notifications were lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import keys, messages
from shared.clients.intercom import SEARCH_PAGE_SIZE
from shared.domain.campaign_settings import COMPANY
from shared.domain.qualification import PENDING, QUALIFY_AFTER_CREATION, QUALIFY_CHANGED, normalise
from shared.flows.companies import sweep_page
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.aws.store import Store
    from shared.clients.intercom import IntercomClient
    from shared.domain.campaign_settings import Qualification
    from shared.domain.contact import Contact, FieldQuery, SearchQuery
    from shared.flows.companies import CompanyObserver
    from shared.flows.qualify import Qualifier
    from shared.records.referrals import Referrals

DAY_S = 86400
PAGES_PER_MESSAGE = 5
PAGE_SIZE = SEARCH_PAGE_SIZE


# Intercom's search groups hold at most 15 filters (reference §3.5).
MAX_GROUP_FILTERS = 15
# ASSUMPTION (unverified: the reference lists `~` as "contains" but says nothing of case; the emulator
# ignores case): Intercom's contains operator ignores case. If it does not, set this to False: the
# sweep then reads every recently updated contact and the qualification rule decides.
CONTAINS_IGNORES_CASE = True


def value_filters(q: Qualification) -> list[FieldQuery]:
    """Filters that find every spelling of the qualifying values the normaliser accepts.

    Intercom's `IN` compares exactly, so `"paid"` would miss `" Paid "`. Its contains operator (`~`)
    ignores case, so each qualifying value also matches on the longest word of its normal form: that
    finds any case, any spacing and any spelling of a number (`"1"` in `"1.00"`), plus some values that
    merely contain the word (`"unpaid"`), which the qualification rule then turns down. One query per
    qualification still, with at most a few more contacts than the exact search returned."""
    exact = sorted({v for value in q.qualifying_values for v in (value, value.strip())})
    words = sorted({max(text.split(" "), key=len) for v in q.qualifying_values if (text := normalise(v))})
    filters: list[FieldQuery] = [{"field": q.attribute, "operator": "IN", "value": exact}]
    filters += [{"field": q.attribute, "operator": "~", "value": word} for word in words]
    return filters


def search_query(q: Qualification, since: int) -> SearchQuery:
    recent: FieldQuery = {"field": "updated_at", "operator": ">", "value": int(since)}
    filters = value_filters(q)
    if not CONTAINS_IGNORES_CASE or len(filters) > MAX_GROUP_FILTERS:
        # More values than one group holds: every recent contact, decided by the rule.
        return recent
    return {"operator": "AND", "value": [{"operator": "OR", "value": list(filters)}, recent]}


@dataclass
class SweepResult:
    contacts: int = 0
    qualified: int = 0
    # The message that carries the rest of the sweep, when it did not finish.
    continuation: messages.QualificationSweep | None = None


def sweep(
    message: messages.QualificationSweep,
    *,
    store: Store,
    referrals: Referrals,
    qualifier: Qualifier,
    intercom: IntercomClient,
    workspace_id: str,
    interval_s: int,
    companies: CompanyObserver,
    clock: Callable[[], float] = time.time,
) -> SweepResult:
    account_id, campaign_id = message.account_id, message.campaign_id
    started = int(message.sweep_started_at or message.scheduled_at or clock())
    mark = store.get(*keys.sweep_mark_key(account_id, campaign_id)) or {}
    previous = int(mark.get("last_run_at") or started - interval_s)
    since = int(message.since or previous - DAY_S)
    settings = qualifier.settings(campaign_id)
    plans: list[tuple[str, Qualification]] = []
    for person in ("person_invited", "person_referring"):
        settings_for = getattr(settings, person, None) if settings else None
        if settings_for is not None and settings_for.qualification is not None:
            plans.append((person, settings_for.qualification))
    result = SweepResult()
    position = message.plan
    cursor = message.cursor
    pages = 0
    while position < len(plans):
        person, q = plans[position]
        if q.object == COMPANY:
            contacts, qualified, cursor = sweep_page(
                companies, campaign_id=campaign_id, person=person, cursor=cursor
            )
            result.contacts += contacts
            result.qualified += qualified
            # Each slice costs an Intercom call per pending referral: one slice per message.
            pages += PAGES_PER_MESSAGE - 1
        else:
            page = intercom.search_page(
                search_query(q, since),
                starting_after=cursor,
                per_page=PAGE_SIZE,
                sort={"field": "updated_at", "order": "ascending"},
            )
            for contact in page.contacts:
                result.contacts += 1
                result.qualified += _observe(
                    contact,
                    person=person,
                    account_id=account_id,
                    campaign_id=campaign_id,
                    workspace_id=workspace_id,
                    referrals=referrals,
                    qualifier=qualifier,
                )
            cursor = page.next_cursor
        pages += 1
        if cursor is None:
            position += 1
        if pages >= PAGES_PER_MESSAGE and position < len(plans):
            result.continuation = message.model_copy(
                update={"sweep_started_at": started, "since": since, "plan": position, "cursor": cursor}
            )
            return result
    pk, sk = keys.sweep_mark_key(account_id, campaign_id)
    store.put({"pk": pk, "sk": sk, "last_run_at": started})
    metrics.add_metric(name="SweepQualified", unit="Count", value=result.qualified)
    logger.info(
        "qualification sweep done",
        extra={
            "account_id": account_id,
            "campaign_id": campaign_id,
            "since": since,
            "contacts": result.contacts,
            "qualified": result.qualified,
        },
    )
    return result


def _observe(
    contact: Contact,
    *,
    person: str,
    account_id: str,
    campaign_id: str,
    workspace_id: str,
    referrals: Referrals,
    qualifier: Qualifier,
) -> int:
    qualified = 0
    for record in referrals.by_contact(workspace_id, contact.id):
        if (
            record.account_id != account_id
            or record.campaign_id != campaign_id
            or record.type != person
            or record.status != PENDING
            or not record.can_qualify
        ):
            continue
        try:
            reason = qualifier.observe(record, contact, via="sweep", observed_at=None)
        except messages.Deferred:
            # Another worker is qualifying it now; should that fail, the next sweep (which looks a
            # day back) sees the contact again.
            continue
        if reason in (QUALIFY_AFTER_CREATION, QUALIFY_CHANGED):
            qualified += 1
    return qualified
