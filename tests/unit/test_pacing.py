"""The pacing rule (shared/domain/pacing.py): no closed interval of one window's length, wherever it
starts, holds more than the limit of the calls the service counts, for any timing of grants, sends and
arrivals the rule allows. Generated cases (hypothesis is not a dependency): seeded, thousands of them,
with times drawn both at random and exactly on the boundaries the rule draws."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from shared.domain.pacing import (
    REFERRAL_FACTORY_WINDOW_S,
    TICK_S,
    Decision,
    Entry,
    Pace,
    decide,
    fill,
    in_use,
    next_block,
    release,
)


def most_in_any_window(arrivals: list[float], window_s: float) -> int:
    """The most arrivals in any closed interval `[x, x + window_s]`."""
    times = sorted(arrivals)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] < t - window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


@dataclass
class Run:
    """Workers taking turns on one shared log (the conditional writes serialise them), each grant's calls
    sent somewhere in `[grant, spend_by]` and counted somewhere in `[sent, sent + margin]`; some calls
    are never sent, and their worker releases them when it next asks, once their time has passed."""

    pace: Pace
    rng: random.Random
    log: tuple[Entry, ...] = ()
    arrivals: list[float] = field(default_factory=list)
    granted: int = 0
    refusals: list[tuple[float, Decision]] = field(default_factory=list)
    # Per worker: the last grant's spend-by time and how many of its calls were not sent.
    unsent: dict[int, tuple[float, int]] = field(default_factory=dict)

    def ask(self, now: float, wanted: int, worker: int = 0, unsent_share: float = 0.0) -> Decision:
        log = self.log
        spend_by, unsent = self.unsent.get(worker, (now, 0))
        if now > spend_by:
            log = release(log, now, spend_by, unsent, self.pace)
            self.unsent.pop(worker, None)
        decision = decide(log, now, wanted, self.pace)
        if decision.granted == 0:
            assert decision.wait_s > 0
            assert in_use(log, now, self.pace) >= self.pace.limit, "refused with room left"
            self.refusals.append((now, decision))
            return decision
        assert decision.spend_by == now + self.pace.hold_s
        self.log = decision.log
        self.granted += decision.granted
        sent = decision.granted
        if worker not in self.unsent and self.rng.random() < unsent_share:
            sent = self.rng.randint(0, decision.granted - 1)
            self.unsent[worker] = (decision.spend_by, decision.granted - sent)
        for _ in range(sent):
            at = self._pick(now, decision.spend_by)
            self.arrivals.append(at + self._pick(0.0, self.pace.margin_s))
        return decision

    def _pick(self, low: float, high: float) -> float:
        """An extreme as often as not: the boundaries are where a rule breaks."""
        roll = self.rng.random()
        if roll < 0.35:
            return low
        if roll < 0.7:
            return high
        return self.rng.uniform(low, high)


PACES = [
    Pace(limit=1, window_s=1.0, margin_s=0.0, hold_s=0.0, quantum_s=0.0),
    Pace(limit=3, window_s=2.0, margin_s=0.25, hold_s=0.5, quantum_s=0.5),
    Pace(limit=5, window_s=60.0, margin_s=1.0, hold_s=1.0, quantum_s=0.5),
    Pace(limit=10, window_s=10.0, margin_s=0.5, hold_s=2.0, quantum_s=1.0),
    Pace(limit=7, window_s=3.0, margin_s=0.0, hold_s=1.0, quantum_s=0.0),
    Pace(limit=4, window_s=5.0, margin_s=0.3, hold_s=0.7, quantum_s=0.25),
    Pace(limit=600),
]


def _next_time(rng: random.Random, now: float, run: Run) -> float:
    """The next decision's time: the same instant, a small or large step, a whole-second step, or
    exactly when (or just before) the last refusal said room comes back."""
    roll = rng.random()
    if roll < 0.15:
        return now
    if roll < 0.45 and run.refusals:
        at, refusal = run.refusals[-1]
        return max(now, at + refusal.wait_s - rng.choice([0.0, TICK_S, 0.0005]))
    if roll < 0.6:
        return float(int(now) + rng.randint(1, 3))
    if roll < 0.8:
        return now + rng.choice([0.125, 0.25, 0.5, run.pace.window_s, run.pace.span_s])
    return now + rng.expovariate(4.0)


@pytest.mark.parametrize("pace", PACES, ids=lambda p: f"limit{p.limit}-w{p.window_s:g}")
def test_no_window_anywhere_holds_more_than_the_limit(pace: Pace) -> None:
    for seed in range(300 if pace.limit < 100 else 20):
        rng = random.Random(seed)
        run = Run(pace, rng)
        now = 1_700_000_000.0 + rng.choice([0.0, 0.5, 59.999, rng.uniform(0, 60)])
        unsent_share = rng.choice([0.0, 0.3, 0.8])
        for _ in range(400):
            run.ask(now, rng.randint(1, 4), worker=rng.randrange(4), unsent_share=unsent_share)
            now = _next_time(rng, now, run)
        assert run.granted > pace.limit, "the case never reached the limit"
        assert most_in_any_window(run.arrivals, pace.window_s) <= pace.limit, f"seed {seed}"


def test_the_boundary_instant_is_refused_and_the_next_tick_granted() -> None:
    pace = Pace(limit=3, window_s=60.0, margin_s=1.0, hold_s=1.0)
    first = decide((), 0.0, 3, pace)
    assert (first.granted, first.spend_by) == (3, 1.0)
    # Sent at 1.0 at the latest, counted by 2.0; a call granted at 62.0 may be counted at 62.0: both in
    # the closed window [2, 62], so 62.0 itself is still too early.
    at_boundary = decide(first.log, 62.0, 1, pace)
    assert at_boundary.granted == 0
    assert at_boundary.wait_s == pytest.approx(TICK_S)
    assert decide(first.log, 62.0 + at_boundary.wait_s, 1, pace).granted == 1
    # Refused earlier, the wait given lands on the same instant.
    early = decide(first.log, 30.25, 1, pace)
    assert early.granted == 0 and 30.25 + early.wait_s == pytest.approx(62.0 + TICK_S)


def test_a_refusal_waits_exactly_until_enough_calls_leave() -> None:
    pace = Pace(limit=4, window_s=10.0, margin_s=0.0, hold_s=0.0, quantum_s=0.0)
    log = (Entry(1.0, 1), Entry(2.0, 2), Entry(3.0, 1))
    refused = decide(log, 5.0, 2, pace)
    # One call needs the entry at 1.0 gone: at 11.0 and a tick.
    assert refused.granted == 0 and refused.wait_s == pytest.approx(6.0 + TICK_S)
    partial = decide(log, 11.0 + TICK_S, 2, pace)
    assert partial.granted == 1, "as many as fit, never past the limit"
    assert partial.log[0] == Entry(2.0, 2), "the entry that left is dropped from the log"
    # A lowered limit with more than it in the log: room when enough entries have left.
    lower = Pace(limit=2, window_s=10.0, margin_s=0.0, hold_s=0.0, quantum_s=0.0)
    assert decide(log, 5.0, 1, lower).wait_s == pytest.approx(7.0 + TICK_S)


def test_steady_demand_gets_the_limit_every_window_plus_hold_and_margin() -> None:
    pace = Pace(limit=600)
    run = Run(pace, random.Random(1))
    now = 0.0
    while now < 600:
        decision = run.ask(now, 10)
        now += decision.wait_s if decision.granted == 0 else 0.05
    cycle = pace.window_s + pace.hold_s + pace.margin_s
    assert run.granted >= 600 * int(600 // cycle)
    assert run.granted <= 600 * (int(600 // pace.window_s) + 1)
    assert most_in_any_window(run.arrivals, pace.window_s) <= 600


def test_the_log_stays_short_under_many_small_grants() -> None:
    pace = Pace(limit=600)
    log: tuple[Entry, ...] = ()
    now = 0.0
    longest = 0
    for _ in range(20_000):
        decision = decide(log, now, 1, pace)
        log = decision.log if decision.granted else log
        longest = max(longest, len(log))
        now += 0.01
    # One entry per quantum of `until`: about (window + margin + hold) / quantum at most.
    assert longest <= (pace.span_s + pace.hold_s) / pace.quantum_s + 2


def test_grants_close_in_time_share_an_entry_rounded_up_never_chained() -> None:
    pace = Pace(limit=100, window_s=10.0, margin_s=0.0, hold_s=1.0, quantum_s=0.5)
    first = decide((), 0.1, 2, pace)
    assert first.spend_by == pytest.approx(1.1) and first.log == (Entry(1.5, 2),)
    second = decide(first.log, 0.3, 3, pace)
    assert second.log == (Entry(1.5, 5),)
    # Grants every 0.2 s do not drag one entry along: each half second is its own entry.
    log = second.log
    for at in (0.5, 0.7, 0.9, 1.1):
        log = decide(log, at, 1, pace).log
    assert log == (Entry(1.5, 6), Entry(2.0, 2), Entry(2.5, 1))


def test_a_release_takes_out_calls_never_sent_once_their_time_is_past() -> None:
    pace = Pace(limit=10, window_s=10.0, margin_s=0.0, hold_s=1.0, quantum_s=0.5)
    mine = decide((), 0.0, 6, pace)
    theirs = decide(mine.log, 0.0, 4, pace)  # another worker, the same instant
    assert theirs.log == (Entry(1.0, 10),)
    assert decide(theirs.log, 1.5, 1, pace).granted == 0
    # Still within its time, the grant could be spent: nothing is taken out.
    assert release(theirs.log, mine.spend_by, mine.spend_by, 4, pace) == theirs.log
    released = release(theirs.log, 1.5, mine.spend_by, 4, pace)
    assert released == (Entry(1.0, 6),)
    assert decide(released, 1.5, 10, pace).granted == 4
    # Never below zero, and an entry that is gone is dropped.
    assert release(theirs.log, 1.5, mine.spend_by, 99, pace) == ()
    assert release((), 1.5, mine.spend_by, 3, pace) == ()
    assert release(theirs.log, 1.5, 7.0, 3, pace) == theirs.log, "no entry of that time: nothing to take"


def test_fill_spends_what_is_left_as_of_now() -> None:
    pace = Pace(limit=5, window_s=10.0, margin_s=0.0, hold_s=1.0, quantum_s=0.0)
    log = decide((), 0.0, 2, pace).log
    filled = fill(log, 4.0, pace)
    assert filled == (Entry(1.0, 2), Entry(4.0, 3))
    assert fill(filled, 4.5, pace) is None, "nothing to add to a spent limit"
    assert decide(filled, 11.0, 1, pace).granted == 0
    assert decide(filled, 11.0 + TICK_S, 5, pace).granted == 2, "the first grant left, the fill did not"
    assert decide(filled, 14.0 + TICK_S, 5, pace).granted == 5


def test_next_block_doubles_after_a_spent_block_and_shrinks_to_what_was_spent() -> None:
    assert next_block(1, 1, 10) == 2
    assert next_block(8, 8, 10) == 10
    assert next_block(10, 10, 10) == 10
    assert next_block(10, 3, 10) == 3
    assert next_block(10, 0, 10) == 1
    assert next_block(4, 4, 1) == 1


def test_a_pace_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="limit"):
        Pace(limit=0)
    with pytest.raises(ValueError, match="window"):
        Pace(limit=1, window_s=0)
    assert Pace(limit=1).window_s == REFERRAL_FACTORY_WINDOW_S == 60.0
    assert decide((), 0.0, 0, Pace(limit=1)) == Decision(0, (), 0.0, 0.0)
