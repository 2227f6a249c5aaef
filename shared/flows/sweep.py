"""The scheduled sweep: qualifying changes the webhooks missed.

Intercom delivers a notification at most twice and drops some. Every few minutes each campaign with a
qualification searches Intercom for contacts whose qualification attribute holds a qualifying value
and that were updated since one day before the sweep's previous run (search matches dates by calendar
day in the workspace's timezone, so a day of overlap is needed), and hands each linked pending
referral to the qualifier as webhooks do (`via: "sweep"`).

A long result is worked through in slices of pages: the rest goes back to the queue with its cursor.
The previous-run mark moves only when a sweep finished, so a failed one is looked back over again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import keys, messages
from shared.clients.intercom import SEARCH_PAGE_SIZE
from shared.domain.qualification import PENDING, QUALIFY_AFTER_CREATION, QUALIFY_CHANGED
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.aws.store import Store
    from shared.clients.intercom import IntercomClient
    from shared.domain.campaign_settings import Qualification
    from shared.domain.contact import CompoundQuery, Contact
    from shared.flows.qualify import Qualifier
    from shared.records.referrals import Referrals

DAY_S = 86400
PAGES_PER_MESSAGE = 5
PAGE_SIZE = SEARCH_PAGE_SIZE


def search_query(q: Qualification, since: int) -> CompoundQuery:
    return {
        "operator": "AND",
        "value": [
            {"field": q.attribute, "operator": "IN", "value": list(q.qualifying_values)},
            {"field": "updated_at", "operator": ">", "value": int(since)},
        ],
    }


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
        pages += 1
        cursor = page.next_cursor
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
