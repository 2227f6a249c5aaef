"""The DynamoDB fixed-window rate budget (Intercom's) against moto, with a fake clock: several budget
objects on one key stand for several Lambda instances sharing one workspace's budget. Referral
Factory's sliding budget: tests/functional/test_sliding_budget.py."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.provision import Provisioned
from shared.aws import boto
from shared.clients.rate_budget import (
    EDGE_S,
    INTERCOM_FIRST_WINDOW_LIMIT,
    RateBudget,
    intercom_budget,
)

T0 = 1_700_000_040.0  # a multiple of 10 and of 60: a window boundary for both services
_keys = itertools.count()


class Clock:
    def __init__(self, now: float = T0 + 1) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(aws: Provisioned) -> str:
    return aws.refs["MainTable"]


def fresh_key() -> str:
    return f"test#{next(_keys)}"


def spend_all(budgets: list[RateBudget], attempts: int = 10_000) -> int:
    """Round-robin acquisitions until every budget asks to wait; returns how many were granted."""
    granted = 0
    waiting: set[int] = set()
    for i in itertools.islice(itertools.cycle(range(len(budgets))), attempts):
        if i in waiting:
            if len(waiting) == len(budgets):
                break
            continue
        if budgets[i].acquire() == 0:
            granted += 1
        else:
            waiting.add(i)
    return granted


def item(table: str, pk: str, sk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = boto.table(table).get_item(Key={"pk": pk, "sk": sk}).get("Item")
    return found


def test_a_window_grants_exactly_its_limit_across_instances(table: str) -> None:
    clock = Clock()
    key = fresh_key()
    budgets = [RateBudget(table, key, window_s=10, limit=100, clock=clock) for _ in range(3)]
    assert spend_all(budgets) == 100
    # Every instance now waits for the next window, without another round trip.
    assert budgets[0].acquire() == pytest.approx(9.0)
    clock.now = T0 + 10
    assert spend_all(budgets) == 100


def test_blocks_cut_round_trips_but_never_overshoot(table: str) -> None:
    clock = Clock()
    key = fresh_key()
    budget = RateBudget(table, key, window_s=10, limit=100, clock=clock)
    for _ in range(7):
        assert budget.acquire() == 0
    stored = item(table, f"RATE#{key}", f"W#{T0:.3f}")
    assert stored is not None
    assert int(stored["used"]) == 10  # two blocks of 5 reserved for 7 requests
    assert int(stored["expires_at"]) > T0 + 10
    # An odd limit: the last block is cut short, never granted past the limit.
    odd = [RateBudget(table, fresh_key() + "odd", window_s=10, limit=23, clock=clock)]
    assert spend_all(odd) == 23


def test_the_end_of_a_window_is_not_spent(table: str) -> None:
    clock = Clock(T0 + 10 - EDGE_S / 2)
    budget = RateBudget(table, fresh_key(), window_s=10, limit=5, clock=clock)
    assert budget.acquire() == pytest.approx(EDGE_S / 2, abs=1e-6)
    clock.now = T0 + 10
    assert budget.acquire() == 0


def test_an_intercom_budget_learns_the_limit_and_shares_it(table: str) -> None:
    clock = Clock()
    first = intercom_budget(table, "ws-learn", clock=clock)
    other = intercom_budget(table, "ws-learn", clock=clock)
    assert first.limit == INTERCOM_FIRST_WINDOW_LIMIT
    assert spend_all([first, other]) == INTERCOM_FIRST_WINDOW_LIMIT
    headers = {
        "X-RateLimit-Limit": "40",
        "X-RateLimit-Remaining": "30",
        "X-RateLimit-Reset": str(int(T0 + 10)),
    }
    first.observe({k.lower(): v for k, v in headers.items()}, 200)
    assert first.limit == 40
    # A larger limit reopens the window at once for the instance that learned it...
    assert first.acquire() == 0
    # ...and the other instance picks it up when it next reads the budget's state.
    clock.now = T0 + 10
    assert other.limit == INTERCOM_FIRST_WINDOW_LIMIT
    other.acquire()
    assert other.limit == 40
    assert spend_all([first, other]) == 39


def test_the_window_phase_follows_the_service_reset(table: str) -> None:
    clock = Clock(T0 + 4)
    budget = intercom_budget(table, "ws-phase", clock=clock)
    budget.observe({"x-ratelimit-limit": "10", "x-ratelimit-reset": str(int(T0 + 13))}, 200)
    assert budget.window_start(T0 + 4) == T0 + 3
    again = intercom_budget(table, "ws-phase", clock=clock)
    again.acquire()
    assert again.window_start(T0 + 4) == T0 + 3
    # A reset that rounds differently by less than half a second does not move the phase.
    budget.observe({"x-ratelimit-reset": str(int(T0 + 13))}, 200)
    assert budget.window_start(T0 + 12.9) == T0 + 3


def test_the_service_saying_little_is_left_raises_the_shared_counter(table: str) -> None:
    clock = Clock()
    a = RateBudget(table, fresh_key(), window_s=10, limit=100, clock=clock)
    b = RateBudget(table, a.key, window_s=10, limit=100, clock=clock)
    assert a.acquire() == 0
    # Someone else spent from the same limit: the service has counted 95, we only 5.
    a.observe(
        {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "5", "x-ratelimit-reset": str(int(T0 + 10))},
        200,
    )
    assert spend_all([b]) == 5
    # Told again, it knows the counter is there already.
    a.observe(
        {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "5", "x-ratelimit-reset": str(int(T0 + 10))},
        200,
    )
    # Plenty left: nothing is written.
    c = RateBudget(table, fresh_key(), window_s=10, limit=100, clock=clock)
    c.observe({"x-ratelimit-limit": "100", "x-ratelimit-remaining": "80"}, 200)
    assert item(table, c.pk, f"W#{T0:.3f}") is None


def test_nothing_left_closes_the_window_for_every_instance(table: str) -> None:
    clock = Clock(T0 + 2)
    a = RateBudget(table, fresh_key(), window_s=60, limit=600, clock=clock)
    b = RateBudget(table, a.key, window_s=60, limit=600, clock=clock)
    a.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "0"}, 429)
    assert a.acquire() == pytest.approx(58)
    assert b.acquire() == pytest.approx(58)


def test_a_bare_429_leaves_the_window_open(table: str) -> None:
    clock = Clock(T0 + 2)
    a = RateBudget(table, fresh_key(), window_s=10, limit=10, clock=clock)
    a.observe({"retry-after": "1"}, 429)
    assert a.acquire() == 0


def test_answers_about_another_window_are_ignored(table: str) -> None:
    clock = Clock(T0 + 0.5)
    a = RateBudget(table, fresh_key(), window_s=10, limit=10, clock=clock)
    # The previous window's reset, arriving just after the boundary.
    a.observe(
        {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(T0))}, 200
    )
    assert a.acquire() == 0
    # Without a reset, "nothing left" in the first second may be about the previous window too.
    a.observe({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0"}, 200)
    assert a.acquire() == 0
    # Unparseable or relative headers teach nothing.
    a.observe({"x-ratelimit-limit": "many", "x-ratelimit-reset": "7"}, 200)
    assert a.window_start(T0 + 0.5) == T0


def test_a_budget_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        RateBudget("t", "k", window_s=10)


def test_dynamodb_failures_other_than_a_full_window_propagate(aws: Provisioned) -> None:
    budget = RateBudget("no-such-table", fresh_key(), window_s=10, limit=5, clock=Clock())
    budget._state_fresh_until = float("inf")  # skip the state read, reach the reservation
    with pytest.raises(ClientError):
        budget.acquire()
    with pytest.raises(ClientError):
        budget._raise_used(T0, 3)
