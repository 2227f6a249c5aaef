"""Counts with history: a campaign's Referral Factory users, read once, become its referral records,
so every referrer's counts equal what Referral Factory shows for it (contract §1, `[v2]`), friends who
joined or qualified before the product was connected included.

Once per campaign, when a push or a sync first needs the campaign's counts, the campaign's users are
listed (`GET /users?campaign_id=`, 250 a page: ⌈users / 250⌉ calls, the only Referral Factory calls
of the pass unless a referrer is missing from the list, then one `GET /users/{id}` for it). Each user
gets its record (`Referrals.ensure`, only those not stored yet); each user with a `referrer_id` is
counted for its referrer, and each with `qualified_at` as converted, through the same transaction
that webhooks and qualifications use (`Referrals.count_for_referrer`). Its `counted_*` flags make
every friend count once whoever gets there first, the pass or a webhook, so the pass is idempotent and
safe beside concurrent webhooks. The pass ends by writing the counts still pending for referrers that
have a contact; a referrer without one gets them on its first write, already right.

A mark (`RFHISTORY#{campaign}`, docs/data-model.md) records the finished pass; a claim on it (a lease)
keeps two workers from reading the same campaign at once. Afterwards webhooks and qualifications keep
the records current.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared import keys
from shared.aws.store import Attr, ConditionFailed
from shared.observability import logger

if TYPE_CHECKING:
    from shared.aws.store import Store
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.domain.rf_user import RfUser
    from shared.flows.counts import Counts
    from shared.records.referrals import Referral, Referrals

# A claim older than this belongs to a worker that died: the next one to need the counts reads again.
HISTORY_LEASE_S = 600


@dataclass
class HistoryResult:
    users: int = 0
    pages: int = 0
    created: int = 0
    counted: int = 0
    converted: int = 0


@dataclass
class History:
    account_id: str
    store: Store
    referrals: Referrals
    rf: ReferralFactoryClient
    counts: Counts
    clock: Callable[[], float] = time.time
    _done: set[str] = field(default_factory=set, init=False, repr=False)

    def ensure(self, campaign_id: str) -> bool:
        """Read the campaign's history unless it was read already (or is being read by another worker,
        whose pass ends by writing the counts it made). True when this call read it."""
        if campaign_id in self._done:
            return False
        mark_key = keys.history_mark_key(self.account_id, campaign_id)
        mark = self.store.get(*mark_key) or {}
        if mark.get("done_at"):
            self._done.add(campaign_id)
            return False
        now = int(self.clock())
        claim = Attr("done_at").not_exists() & (
            Attr("claimed_at").not_exists() | Attr("claimed_at").lt(now - HISTORY_LEASE_S)
        )
        try:
            self.store.update(*mark_key, {"claimed_at": now}, condition=claim, must_exist=False)
        except ConditionFailed:
            return False
        try:
            result = self.run(campaign_id)
        except Exception:
            # Let the next worker that needs the counts read it again at once, not after the lease.
            with contextlib.suppress(ConditionFailed):
                self.store.update(*mark_key, {}, remove=("claimed_at",), condition=Attr("claimed_at").eq(now))
            raise
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                *mark_key,
                {"done_at": int(self.clock()), "users": result.users, "pages": result.pages},
                remove=("claimed_at",),
            )
        self._done.add(campaign_id)
        return True

    def run(self, campaign_id: str) -> HistoryResult:
        """One pass over the campaign's users; running it again changes nothing."""
        result = HistoryResult()
        users = self._users(campaign_id, result)
        records = {r.rf_user_id: r for r in self.referrals.in_campaign(self.account_id, campaign_id)}
        for user_id, user in users.items():
            if user_id not in records:
                records[user_id] = self.referrals.ensure(self.account_id, campaign_id, user)
                result.created += 1
        for user_id, user in users.items():
            if not user.referrer_id:
                continue
            invited = records[user_id]
            referrer = self._referrer(campaign_id, str(user.referrer_id), records)
            if not invited.counted_referral and self.referrals.count_for_referrer(
                invited, referrer, converted=False
            ):
                result.counted += 1
            if (
                user.qualified_at
                and not invited.counted_converted
                and self.referrals.count_for_referrer(invited, referrer, converted=True)
            ):
                result.converted += 1
        for pending in self.referrals.counts_pending(self.account_id, campaign_id):
            self.counts.write(pending)
        logger.info(
            "campaign history read",
            extra={
                "account_id": self.account_id,
                "campaign_id": campaign_id,
                **{f"history_{name}": value for name, value in vars(result).items()},
            },
        )
        return result

    def _users(self, campaign_id: str, result: HistoryResult) -> dict[str, RfUser]:
        """The campaign's users by id (a user listed twice, as a signup shifts the pages, once)."""
        from shared.clients.referral_factory import MAX_PER_PAGE  # with the client it pages

        users: dict[str, RfUser] = {}
        page = 1
        while True:
            listed = self.rf.list_users(int(campaign_id), page=page, per_page=MAX_PER_PAGE)
            result.pages += 1
            users.update((str(user.id), user) for user in listed.items)
            if not listed.has_more or not listed.items:
                result.users = len(users)
                return users
            page += 1

    def _referrer(self, campaign_id: str, referrer_id: str, records: dict[str, Referral]) -> Referral:
        if referrer_id not in records:
            # Not in the list (it changed while being read): read that one user.
            user = self.rf.get_user(int(referrer_id))
            records[referrer_id] = self.referrals.ensure(self.account_id, campaign_id, user)
        return records[referrer_id]
