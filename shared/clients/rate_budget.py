"""Rate budgets shared by every Lambda instance: one per Intercom workspace, one per Referral Factory key.

Intercom documents its windows: 10 seconds, fixed, with `X-RateLimit-Reset` at each window's end.
`RateBudget` counts the same windows: one item per (budget, window) holds `used`, raised by an atomic
conditional `ADD` that only succeeds while `used < limit`. Each `ADD` reserves a small block of
requests so a busy worker pays one round trip per block, not per request; a block never outlives its
window, and a window is never granted more than its limit. Windows are aligned to the epoch plus a
phase learned from `X-RateLimit-Reset`, so they line up with the service's own. The last `edge_s` of
each window is not spent: a request granted at 9.99 s would otherwise be counted by the service in the
next window, on top of that window's full budget. Its budget is sized from `X-RateLimit-Limit` (a
per-10-second figure) and raised to what `X-RateLimit-Remaining` says was spent when another app
spends from the same workspace limit.

Referral Factory allows 600 calls a minute per key (an account may say otherwise) without saying how it
counts the minute, and it blocks IPs that keep exceeding it. `SlidingBudget` paces it so that no minute,
wherever it starts, holds more than the limit (`shared.domain.pacing`): the key's log of grants is one
item, read and replaced with a conditional write on its version; a grant is a block of calls to send
within `hold_s`, so a busy worker pays a read and a write per block, and the calls of a block not sent
in time are taken out of the log with the next grant. Its limit never grows from headers.

Keys and item layout: `RATE#<budget key>` / `W#<window start>` and `STATE` (learned limit and phase)
for Intercom, `LOG` for Referral Factory; items expire through the table's `expires_at` TTL.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared import caches, keys
from shared.aws import boto
from shared.aws.store import ConditionFailed, conditional
from shared.domain.pacing import REFERRAL_FACTORY_WINDOW_S, Entry, Pace, decide, fill, next_block, release

INTERCOM_WINDOW_S = 10.0
REFERRAL_FACTORY_DEFAULT_PER_MINUTE = 600
# Until a response has told us a workspace's limit: small enough for any plan, and it is one window.
INTERCOM_FIRST_WINDOW_LIMIT = 10
MAX_BLOCK = 10
EDGE_S = 0.05
WINDOW_TTL_S = 3600
STATE_TTL_S = 30 * 86400


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


class RateBudget:
    def __init__(
        self,
        table_name: str,
        key: str,
        *,
        window_s: float,
        limit: int | None = None,
        learn_limit: bool = False,
        first_limit: int = INTERCOM_FIRST_WINDOW_LIMIT,
        max_block: int = MAX_BLOCK,
        edge_s: float = EDGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit is None and not learn_limit:
            raise ValueError("a budget needs a limit or must learn it from the service")
        self.table_name = table_name
        self.key = key
        self.window_s = window_s
        self.learn_limit = learn_limit
        self.max_block = max_block
        self.edge_s = edge_s
        self._clock = clock
        self._configured_limit = limit
        self._first_limit = first_limit
        self._learned_limit: int | None = None
        self._offset = 0.0
        self._state_fresh_until = -math.inf
        self._tokens = 0
        self._tokens_window: float | None = None
        self._full_until = 0.0
        self._known_used: dict[float, int] = {}

    # -- what the budget is -------------------------------------------------------------------
    @property
    def pk(self) -> str:
        return keys.budget_pk(self.key)

    @property
    def limit(self) -> int:
        if self._learned_limit is not None:
            return self._learned_limit
        return self._configured_limit if self._configured_limit is not None else self._first_limit

    def window_start(self, now: float) -> float:
        return math.floor((now - self._offset) / self.window_s) * self.window_s + self._offset

    def _block(self) -> int:
        # About 5 % of the window's budget, so reservations left unused when work runs out are few.
        return max(1, min(self.max_block, self.limit // 20))

    # -- spending -----------------------------------------------------------------------------
    def acquire(self) -> float:
        """Spend one request and return 0.0, or return the seconds until the budget has room."""
        now = self._clock()
        self._refresh_state(now)
        start = self.window_start(now)
        end = start + self.window_s
        if now >= end - self.edge_s:
            return end - now
        if self._full_until > now:
            return self._full_until - now
        if self._tokens > 0 and self._tokens_window == start:
            self._tokens -= 1
            return 0.0
        limit = self.limit
        wanted = self._block()
        used = self._reserve(start, wanted, limit)
        if used is None:
            self._full_until = end
            return end - now
        granted = min(wanted, limit - (used - wanted))
        self._remember_used(start, used)
        self._tokens, self._tokens_window = granted - 1, start
        return 0.0

    def _reserve(self, start: float, n: int, limit: int) -> int | None:
        """`used` after adding `n` to the window, or None when the window was already full."""
        try:
            result = conditional(
                boto.table(self.table_name).update_item,
                Key={"pk": self.pk, "sk": keys.budget_window_sk(start)},
                UpdateExpression="ADD #used :n SET #exp = :exp",
                ConditionExpression="attribute_not_exists(#used) OR #used < :limit",
                ExpressionAttributeNames={"#used": "used", "#exp": "expires_at"},
                ExpressionAttributeValues={
                    ":n": n,
                    ":limit": limit,
                    ":exp": int(start + self.window_s + WINDOW_TTL_S),
                },
                ReturnValues="UPDATED_NEW",
            )
        except ConditionFailed:
            return None
        return int(result["Attributes"]["used"])

    def _raise_used(self, start: float, used: int) -> None:
        """Make the shared counter for a window at least `used` (never lower it)."""
        if used <= self._known_used.get(start, 0):
            return
        with contextlib.suppress(ConditionFailed):  # the counter is at least `used` already
            conditional(
                boto.table(self.table_name).update_item,
                Key={"pk": self.pk, "sk": keys.budget_window_sk(start)},
                UpdateExpression="SET #used = :used, #exp = :exp",
                ConditionExpression="attribute_not_exists(#used) OR #used < :used",
                ExpressionAttributeNames={"#used": "used", "#exp": "expires_at"},
                ExpressionAttributeValues={":used": used, ":exp": int(start + self.window_s + WINDOW_TTL_S)},
            )
        self._remember_used(start, used)

    def _remember_used(self, start: float, used: int) -> None:
        if start not in self._known_used:
            # Only the current window matters; forget the rest.
            self._known_used = {}
        self._known_used[start] = max(used, self._known_used.get(start, 0))

    # -- learning from the service ------------------------------------------------------------
    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """Update what we know from a response: the limit (Intercom), the window phase, and how much
        of the current window the service has counted."""
        now = self._clock()
        header_limit = _int_header(headers, "x-ratelimit-limit")
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset = _int_header(headers, "x-ratelimit-reset")
        if reset is not None and reset < 1_000_000_000:
            reset = None  # seconds-until rather than a timestamp: says nothing about phase
        changes: dict[str, Any] = {}
        if self.learn_limit and header_limit and header_limit != self._learned_limit:
            if self._learned_limit is None or header_limit > self._learned_limit:
                self._full_until = 0.0  # a larger limit may reopen a window we thought full
            self._learned_limit = header_limit
            changes["limit"] = header_limit
        if reset is not None:
            offset = reset % self.window_s
            drift = abs(offset - self._offset)
            if min(drift, self.window_s - drift) > 0.5:
                self._offset = offset
                changes["offset"] = Decimal(str(offset))
        if changes:
            self._write_state(changes, now)
        start = self.window_start(now)
        if reset is not None and abs((reset - self.window_s) - start) >= 1:
            return  # the service is talking about another window than our current one
        if reset is None and now - start < 1.0:
            return  # may be the answer to a request of the window that just ended
        limit = self.limit
        # A 429 alone (an injected fault, a per-endpoint limit) says only "wait `Retry-After`", which
        # the HTTP client does; the window is full when the service says nothing is left in it.
        if remaining == 0:
            self._raise_used(start, limit)
            self._full_until = max(self._full_until, start + self.window_s)
            self._tokens = 0
        elif remaining is not None and header_limit and remaining * 10 <= limit:
            # Near the end of the window, make sure the shared counter is at least what the service
            # has counted, so spending from elsewhere cannot push us into 429s.
            self._raise_used(start, header_limit - remaining)

    def _refresh_state(self, now: float) -> None:
        """Read the learned limit and phase at the start of each window: every instance follows what
        one of them learned within a window."""
        if now < self._state_fresh_until:
            return
        self._state_fresh_until = self.window_start(now) + self.window_s
        item = (
            boto.table(self.table_name).get_item(Key={"pk": self.pk, "sk": keys.BUDGET_STATE_SK}).get("Item")
        )
        if not item:
            return
        if self.learn_limit and "limit" in item:
            self._learned_limit = int(item["limit"])
        if "offset" in item:
            self._offset = float(item["offset"])

    def _write_state(self, changes: Mapping[str, Any], now: float) -> None:
        values = {**changes, "expires_at": int(now + STATE_TTL_S)}
        names = {f"#s{i}": k for i, k in enumerate(values)}
        boto.table(self.table_name).update_item(
            Key={"pk": self.pk, "sk": keys.BUDGET_STATE_SK},
            UpdateExpression="SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":s{i}": v for i, v in enumerate(values.values())},
        )


@dataclass
class Grants:
    """What one process holds of a sliding budget: the calls of its last grant, spendable until
    `spend_by`, how many to ask for next, and the calls it did not send in time. Shared by the
    process's budgets on one key, so a client built for each message does not drop what the last one
    was granted."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: int = 0
    spend_by: float = -math.inf
    granted: int = 0
    used: int = 0
    block: int = 1
    full_until: float = -math.inf
    # Grants whose time passed with calls unsent: (spend_by, calls), given back with the next grant.
    unsent: list[tuple[float, int]] = field(default_factory=list)


# One `Grants` per (table, budget key, pace) in a warm process.
_process_grants: caches.LRU[tuple[str, str, Pace], Grants] = caches.LRU(f"{__name__}._process_grants", 64)
# Conditional writes lost to other instances before giving up for a moment.
SLIDING_ATTEMPTS = 4
CONTENDED_WAIT_S = 0.05


class SlidingBudget:
    """A budget no interval of `pace.window_s` exceeds, wherever it starts, across every instance."""

    def __init__(
        self,
        table_name: str,
        key: str,
        *,
        pace: Pace,
        max_block: int = MAX_BLOCK,
        grants: Grants | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.table_name = table_name
        self.key = key
        self.pace = pace
        # About 5 % of the limit, so calls granted and left unsent when work runs out are few.
        self.max_block = max(1, min(max_block, pace.limit // 20))
        self.grants = grants if grants is not None else Grants()
        self._clock = clock
        self._rng = rng

    @property
    def pk(self) -> str:
        return keys.budget_pk(self.key)

    @property
    def limit(self) -> int:
        return self.pace.limit

    def acquire(self) -> float:
        """Spend one request and return 0.0, or return the seconds until the budget has room."""
        now = self._clock()
        local = self.grants
        with local.lock:
            if local.tokens > 0 and now <= local.spend_by:
                local.tokens -= 1
                local.used += 1
                return 0.0
            if local.granted:  # the last grant is spent, or its time is up
                local.block = next_block(local.granted, local.used, self.max_block)
                if local.tokens:  # never to be sent: taken out of the log with the next grant
                    local.unsent.append((local.spend_by, local.tokens))
                local.tokens = local.granted = local.used = 0
            if now < local.full_until:
                return local.full_until - now
            wanted = min(local.block, self.max_block)
            unsent, local.unsent = local.unsent, []
        for _ in range(SLIDING_ATTEMPTS):
            log, version = self._read()
            now = self._clock()  # after the read: a grant never predates the ones it read
            for spend_by, count in unsent:
                log = list(release(log, now, spend_by, count, self.pace))
            decision = decide(log, now, wanted, self.pace)
            if decision.granted == 0:
                # Full even without the calls given back (their entries had left): nothing to write.
                with local.lock:
                    local.full_until = now + decision.wait_s
                return decision.wait_s
            if not self._write(decision.log, version, now):
                continue
            with local.lock:
                local.tokens, local.spend_by = decision.granted - 1, decision.spend_by
                local.granted, local.used = decision.granted, 1
            return 0.0
        with local.lock:
            local.unsent.extend(unsent)  # still to give back, with the next grant that is written
        return CONTENDED_WAIT_S * (1 + self._rng())

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """The service saying nothing is left means someone else spends from the same limit too: the
        shared log is filled to the limit as of now, and this process drops what it holds."""
        if _int_header(headers, "x-ratelimit-remaining") != 0:
            return
        with self.grants.lock:
            self.grants.tokens = 0
        for _ in range(SLIDING_ATTEMPTS):
            log, version = self._read()
            now = self._clock()
            filled = fill(log, now, self.pace)
            if filled is None or self._write(filled, version, now):
                return

    def _read(self) -> tuple[list[Entry], int]:
        item = (
            boto.table(self.table_name)
            .get_item(Key={"pk": self.pk, "sk": keys.BUDGET_LOG_SK}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return [], 0
        log = [Entry(float(until), int(count)) for until, count in item.get("log", [])]
        return log, int(item.get("version", 0))

    def _write(self, log: tuple[Entry, ...], version: int, now: float) -> bool:
        """Replace the log if no one else did since it was read at `version`."""
        # `until` rounded up to the millisecond: an entry may count a little longer, never shorter.
        stored = [[Decimal(math.ceil(e.until * 1000)) / 1000, e.count] for e in log]
        horizon = max((e.until for e in log), default=now) + self.pace.span_s
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(#v)"}
            if version == 0
            else {"ConditionExpression": "#v = :v", "ExpressionAttributeValues": {":v": version}}
        )
        try:
            conditional(
                boto.table(self.table_name).put_item,
                Item={
                    "pk": self.pk,
                    "sk": keys.BUDGET_LOG_SK,
                    "log": stored,
                    "version": version + 1,
                    "expires_at": int(horizon + WINDOW_TTL_S),
                },
                ExpressionAttributeNames={"#v": "version"},
                **condition,
            )
        except ConditionFailed:
            return False
        return True


def referral_factory_key(api_key: str) -> str:
    """The budget key for a Referral Factory API key: a hash, so the key itself is never stored here."""
    return "rf#" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


def intercom_budget(
    table_name: str, workspace_id: str, *, clock: Callable[[], float] = time.time
) -> RateBudget:
    """The budget every worker shares for one Intercom workspace (`app.id_code`)."""
    return RateBudget(
        table_name, f"intercom#{workspace_id}", window_s=INTERCOM_WINDOW_S, learn_limit=True, clock=clock
    )


def referral_factory_budget(
    table_name: str,
    api_key: str,
    *,
    per_minute: int | None = None,
    window_s: float = REFERRAL_FACTORY_WINDOW_S,
    clock: Callable[[], float] = time.time,
) -> SlidingBudget:
    """The budget every worker shares for one Referral Factory API key (`per_minute` per account):
    never more than the limit in any `window_s` (a minute; only tests shorten it)."""
    key = referral_factory_key(api_key)
    pace = Pace(limit=per_minute or REFERRAL_FACTORY_DEFAULT_PER_MINUTE, window_s=window_s)
    grants = _process_grants.get_or_build((table_name, key, pace), Grants)
    return SlidingBudget(table_name, key, pace=pace, grants=grants, clock=clock)
