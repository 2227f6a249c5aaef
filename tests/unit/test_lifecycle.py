"""A function's init, snapshot and restore (shared/lifecycle.py): the collector paused and resumed, what
a first request would load loaded before a snapshot, and nothing built before it used after a restore."""

from __future__ import annotations

import gc
import os
import random
import sys
import types
from collections.abc import Iterator

import pytest

from shared import caches, lifecycle, settings


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the test process's collector as it found it: running, nothing frozen."""
    yield
    gc.unfreeze()
    gc.enable()


def test_init_pauses_the_collector_and_its_end_resumes_it(collector, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    lifecycle.init_begins()
    assert not gc.isenabled()
    lifecycle.init_done()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0, "outside a Lambda instance nothing is frozen"


def test_on_lambda_what_init_built_is_frozen_out_of_later_collections(collector, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "AccountApiFunction")
    lifecycle.init_begins()
    built = [object() for _ in range(10)]
    lifecycle.init_done()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(built)


def test_pydantic_looks_for_no_plugin(collector, monkeypatch):
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "unset by the test")
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS")
    lifecycle.init_begins()
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_before_a_snapshot_the_models_built_on_first_use_are_built(collector):
    from shared.records.referrals import Referral

    Referral.__pydantic_complete__ = False  # as after import: built on first use (defer_build)
    lifecycle.before_snapshot()
    assert Referral.__pydantic_complete__
    assert gc.get_freeze_count() > 0


def test_each_restored_copy_draws_its_own_jitter_and_forgets_what_was_built(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "x")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "x")
    monkeypatch.setenv("TABLE_NAME", "t")
    loaded = settings.load(settings.BaseSettings)
    snapshot = random.getstate()
    draws = []
    for _ in range(2):  # two environments restored from the same snapshot
        random.setstate(snapshot)
        lifecycle.after_restore()
        draws.append(random.random())
    assert draws[0] != draws[1]
    assert settings.load(settings.BaseSettings) is not loaded
    caches.reset_caches()


def test_hooks_are_registered_where_the_runtime_offers_them(monkeypatch):
    registered: dict[str, object] = {}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda f: registered.setdefault("before", f)  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda f: registered.setdefault("after", f)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    lifecycle._register_snapshot_hooks()
    assert registered == {"before": lifecycle.before_snapshot, "after": lifecycle.after_restore}
