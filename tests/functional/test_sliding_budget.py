"""Referral Factory's sliding budget against moto, with a fake clock: several budgets on one key, each
with its own grants, stand for several Lambda instances sharing one API key's limit."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.provision import Provisioned
from shared import keys
from shared.aws import boto
from shared.clients.rate_budget import (
    CONTENDED_WAIT_S,
    REFERRAL_FACTORY_DEFAULT_PER_MINUTE,
    SlidingBudget,
    referral_factory_budget,
    referral_factory_key,
)
from shared.domain.pacing import HOLD_S, MARGIN_S, TICK_S, Entry, Pace

T0 = 1_700_000_040.0
_keys = itertools.count()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(aws: Provisioned) -> str:
    return aws.refs["MainTable"]


def fresh_key() -> str:
    return f"sliding#{next(_keys)}"


def instances(table: str, n: int, clock: Clock, limit: int = 100, **pace: float) -> list[SlidingBudget]:
    key = fresh_key()
    return [SlidingBudget(table, key, pace=Pace(limit=limit, **pace), clock=clock) for _ in range(n)]


def spend_all(budgets: list[SlidingBudget], attempts: int = 10_000) -> int:
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


def stored(table: str, budget: SlidingBudget) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        boto.table(table).get_item(Key={"pk": budget.pk, "sk": keys.BUDGET_LOG_SK}).get("Item")
    )
    return item


def test_instances_share_the_limit_and_wait_until_the_first_grants_leave(table: str) -> None:
    clock = Clock()
    budgets = instances(table, 3, clock)
    assert spend_all(budgets) == 100
    # Granted at T0, sendable until T0 + hold, counted until a window and a margin after that.
    leaves = T0 + HOLD_S + 60 + MARGIN_S
    assert budgets[0].acquire() == pytest.approx(leaves - T0 + TICK_S)
    # A minute boundary refills nothing: at T0 + 60 every instance still waits.
    clock.now = T0 + 60
    assert all(b.acquire() > 0 for b in budgets)
    clock.now = leaves
    assert spend_all(budgets) == 0, "the instant the grants leave is still theirs"
    clock.now = leaves + TICK_S
    assert spend_all(budgets) == 100


def test_blocks_grow_while_spent_in_time_and_cut_round_trips(table: str) -> None:
    clock = Clock()
    (budget,) = instances(table, 1, clock, limit=600)
    for _ in range(35):
        assert budget.acquire() == 0
    item = stored(table, budget)
    assert item is not None
    # Blocks of 1, 2, 4, 8, 10, 10: six grants (a read and a write each) for 35 calls.
    assert int(item["version"]) == 6
    assert [[float(u), int(n)] for u, n in item["log"]] == [[T0 + HOLD_S, 35]]
    assert int(item["expires_at"]) > T0 + 60


def test_calls_not_sent_in_time_are_dropped_and_given_back_with_the_next_grant(table: str) -> None:
    clock = Clock()
    a, b = instances(table, 2, clock, limit=200)
    for _ in range(4):  # blocks of 1, 2, then 4 granted, one of them spent
        assert a.acquire() == 0
    assert [int(n) for _, n in stored(table, a)["log"]] == [7]  # type: ignore[index]
    clock.now = T0 + HOLD_S + 0.5  # a's remaining three are past their time
    assert a.acquire() == 0, "a new grant, not the stale calls"
    assert a.grants.block == 1, "the next block is as many as were spent in time"
    # The three never sent are out of the log; the four sent and the new one count.
    assert sum(int(n) for _, n in stored(table, a)["log"]) == 5  # type: ignore[index]
    assert spend_all([b]) == 200 - 5


def test_nothing_left_at_the_service_fills_the_log_for_every_instance(table: str) -> None:
    clock = Clock()
    a, b = instances(table, 2, clock, limit=600)
    assert a.acquire() == 0
    clock.now = T0 + 5
    # Someone else spends from the same key: the service says nothing is left.
    a.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "0"}, 429)
    assert a.grants.tokens == 0
    # b waits for a's grant to leave (room for one call), not for the fill.
    assert b.acquire() == pytest.approx(T0 + HOLD_S + 60 + MARGIN_S + TICK_S - clock.now)
    clock.now = T0 + 5 + 60 + MARGIN_S + TICK_S
    assert spend_all([b]) == 600, "the fill leaves a window and a margin after it was made"
    # Anything else teaches nothing, and a full log is not filled twice.
    version = int(stored(table, a)["version"])  # type: ignore[index]
    a.observe({"x-ratelimit-remaining": "3"}, 200)
    a.observe({"retry-after": "1"}, 429)
    a.observe({"x-ratelimit-remaining": "0"}, 200)
    assert int(stored(table, a)["version"]) == version  # type: ignore[index]


def test_a_write_on_a_stale_version_is_refused(table: str) -> None:
    clock = Clock()
    a, b = instances(table, 2, clock)
    assert a.acquire() == 0
    log, version = b._read()
    assert log == [Entry(T0 + HOLD_S, 1)] and version == 1
    assert b.acquire() == 0  # b wins the next version...
    assert not a._write((Entry(T0, 99),), version, clock.now), "...so a write read at version 1 loses"
    assert b._read()[0] == [Entry(T0 + HOLD_S, 2)]


def test_an_instance_that_keeps_losing_the_race_backs_off_briefly(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    (budget,) = instances(table, 1, clock)
    assert budget.acquire() == 0
    budget.grants.tokens = 1  # as if a second call had been granted and not sent
    clock.now = T0 + HOLD_S + 1
    with monkeypatch.context() as patched:
        patched.setattr(budget, "_write", lambda *_: False)
        wait = budget.acquire()
    assert CONTENDED_WAIT_S <= wait <= 2 * CONTENDED_WAIT_S
    # What was not sent is still to be given back, with the next grant that is written.
    assert budget.grants.unsent == [(T0 + HOLD_S, 1)]
    assert budget.acquire() == 0 and budget.grants.unsent == []


def test_referral_factory_budgets_are_keyed_by_a_hash_configurable_and_shared_in_process(table: str) -> None:
    clock = Clock()
    default = referral_factory_budget(table, "rf-secret-key", clock=clock)
    assert default.limit == REFERRAL_FACTORY_DEFAULT_PER_MINUTE
    assert default.pace.window_s == 60.0
    assert "rf-secret-key" not in default.pk
    assert default.key == referral_factory_key("rf-secret-key")
    small = referral_factory_budget(table, "rf-other-key", per_minute=12, window_s=2.0, clock=clock)
    assert spend_all([small]) == 12
    assert small.acquire() == pytest.approx(HOLD_S + 2.0 + MARGIN_S + TICK_S)
    # Headers never grow a Referral Factory budget: the service blocks IPs that exceed it.
    small.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "599"}, 200)
    assert small.limit == 12
    # A client built for the next message in the same process keeps what the last one was granted.
    first = referral_factory_budget(table, "rf-third-key", clock=clock)
    assert [first.acquire() for _ in range(3)] == [0, 0, 0]  # blocks of 1 and 2
    second = referral_factory_budget(table, "rf-third-key", clock=clock)
    assert second.grants is first.grants
    assert second.acquire() == 0 and int(stored(table, second)["version"]) == 3  # type: ignore[index]


def test_dynamodb_failures_other_than_a_lost_race_propagate(aws: Provisioned) -> None:
    budget = SlidingBudget("no-such-table", fresh_key(), pace=Pace(limit=5), clock=Clock())
    with pytest.raises(ClientError):
        budget.acquire()
    with pytest.raises(ClientError):
        budget._write((), 0, T0)
