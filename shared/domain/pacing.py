"""Pacing calls so that no interval of one window's length, wherever it starts, holds more than the limit.

Referral Factory allows 600 calls a minute per key without saying how it counts the minute: windows
aligned to the clock, a window opened by the first call, or a sliding window. A pace that never puts
more than the limit in any closed interval of the window's length is within the limit under all
three, since each of their windows is such an interval.

The shared state is a log of grants: each entry is `(until, count)`, `count` calls that may be sent up
to `until` (a grant's time plus `hold_s`, rounded up to a multiple of `quantum_s`, so grants close in
time share an entry and the log stays short). A call may reach the service up to `margin_s` after it
was sent, so an entry counts against the limit while `now <= until + window_s + margin_s` and leaves
only after. A grant of `n` calls at `now` is made when the entries that still count, plus `n`, are at
most the limit. Calls granted and not sent by their time are dropped by their holder, who may take
them out of the log (`release`) once that time has passed: they will never reach the service.

Why that holds the limit: take any `limit + 1` calls that the service counted within one closed window
`[x, x + window_s]`, and the one of them granted last (grants are serialised by the log's conditional
writes), at `g`. It reached the service at or after `g`; every other one was granted before it, sent by
its entry's `until` and counted by `until + margin_s`; both inside the window, so
`g <= until + window_s + margin_s`: every other one still counted when `g` was granted, and the grant
would have exceeded the limit. Rounding `until` up only makes entries count longer; a released call
was never sent, so it is in no window.

What it assumes: callers send a granted call only up to its `until`, the service counts it within
`margin_s` of being sent, and the callers' clocks agree within that margin (`now` is read after the
log, so a grant never predates the ones it read).

Steady throughput is `limit` calls per `window_s + hold_s + margin_s` (plus up to `quantum_s`): a
little under the limit, the price of never exceeding it however the service counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Referral Factory's window: 60 s for the service's "600 calls a minute". The one place that says so
# in the product; a shorter window is passed in only by tests.
REFERRAL_FACTORY_WINDOW_S = 60.0
# How late after it is sent a call may reach the service and be counted (network, queueing).
MARGIN_S = 1.0
# How long granted calls may be spent: a worker that has not sent them by then drops them.
HOLD_S = 1.0
# `until` is rounded up to a multiple of this: grants this close share one log entry, so the log holds
# at most (window + margin + hold) / quantum entries however many grants are made.
QUANTUM_S = 0.5
# The smallest step of time the rule distinguishes: a wait ends this much after the entry leaves.
TICK_S = 0.001


@dataclass(frozen=True)
class Entry:
    until: float
    count: int


@dataclass(frozen=True)
class Pace:
    limit: int
    window_s: float = REFERRAL_FACTORY_WINDOW_S
    margin_s: float = MARGIN_S
    hold_s: float = HOLD_S
    quantum_s: float = QUANTUM_S

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a pace needs a limit of at least one call")
        if self.window_s <= 0 or self.margin_s < 0 or self.hold_s < 0 or self.quantum_s < 0:
            raise ValueError("a pace needs a positive window and non-negative margins")

    @property
    def span_s(self) -> float:
        """How long after its `until` an entry still counts."""
        return self.window_s + self.margin_s

    def slot(self, spend_by: float) -> float:
        """The `until` of the log entry that calls to be sent by `spend_by` belong to."""
        if self.quantum_s <= 0:
            return spend_by
        return math.ceil(spend_by / self.quantum_s) * self.quantum_s


@dataclass(frozen=True)
class Decision:
    granted: int
    # The log to store: entries that still count, with the grant.
    log: tuple[Entry, ...]
    # Granted calls must be sent by then.
    spend_by: float
    # When nothing was granted: the seconds until a call can be.
    wait_s: float


def counting(log: Iterable[Entry], now: float, pace: Pace) -> tuple[Entry, ...]:
    """The entries that still count at `now`, oldest first."""
    return tuple(sorted((e for e in log if now <= e.until + pace.span_s), key=lambda e: e.until))


def in_use(log: Iterable[Entry], now: float, pace: Pace) -> int:
    return sum(e.count for e in counting(log, now, pace))


def wait_for_room(live: Sequence[Entry], now: float, pace: Pace) -> float:
    """Seconds until one more call fits, given the entries that count at `now` (oldest first)."""
    excess = sum(e.count for e in live) - pace.limit + 1
    for entry in live:
        excess -= entry.count
        if excess <= 0:
            return max(0.0, entry.until + pace.span_s - now) + TICK_S
    return 0.0


def decide(log: Iterable[Entry], now: float, wanted: int, pace: Pace) -> Decision:
    """Grant up to `wanted` calls at `now`, as many as fit, or say how long until one does."""
    live = counting(log, now, pace)
    room = pace.limit - sum(e.count for e in live)
    if wanted < 1 or room < 1:
        wait = wait_for_room(live, now, pace) if room < 1 else 0.0
        return Decision(0, live, now, wait)
    granted = min(wanted, room)
    spend_by = now + pace.hold_s
    return Decision(granted, _append(live, Entry(pace.slot(spend_by), granted)), spend_by, 0.0)


def release(log: Iterable[Entry], now: float, spend_by: float, unsent: int, pace: Pace) -> tuple[Entry, ...]:
    """The log without `unsent` calls of a grant that had to be sent by `spend_by`, once `now` is past
    it (before, they could still be sent: the log is returned as it was)."""
    entries = tuple(log)
    if unsent < 1 or now <= spend_by:
        return entries
    until = pace.slot(spend_by)
    shrunk = (Entry(e.until, max(0, e.count - unsent)) if e.until == until else e for e in entries)
    return tuple(e for e in shrunk if e.count > 0)


def fill(log: Iterable[Entry], now: float, pace: Pace) -> tuple[Entry, ...] | None:
    """The log with the limit spent as of `now` (the service said nothing is left: someone else spends
    from the same limit), or None when it is spent already."""
    live = counting(log, now, pace)
    missing = pace.limit - sum(e.count for e in live)
    if missing < 1:
        return None
    return _append(live, Entry(pace.slot(now), missing))


def _append(live: tuple[Entry, ...], entry: Entry) -> tuple[Entry, ...]:
    """`live` with `entry`, added to the entry of the same `until` if there is one."""
    if any(e.until == entry.until for e in live):
        return tuple(Entry(e.until, e.count + entry.count) if e.until == entry.until else e for e in live)
    return tuple(sorted((*live, entry), key=lambda e: e.until))


def next_block(previous: int, used: int, cap: int) -> int:
    """How many calls to ask for next: twice as many after a block that was spent in time, as many as
    were spent after one that was not (unspent calls still count against the limit until they leave)."""
    if used >= previous:
        return max(1, min(cap, previous * 2))
    return max(1, min(cap, used))
