"""Every DynamoDB key, pinned: a deployed table holds these strings, so a format that changes by one
character orphans what is stored. And keys are built in shared/keys.py only."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared import keys

ROOT = Path(__file__).resolve().parents[2]
KEYS_MODULE = ROOT / "shared" / "keys.py"

# (builder, arguments, the key it must build): one example of each format.
PINNED: list[tuple[Callable[..., Any], tuple[Any, ...], Any]] = [
    (keys.account_pk, ("acc_1",), "ACCOUNT#acc_1"),
    (keys.account_key, ("acc_1",), ("ACCOUNT#acc_1", "META")),
    (keys.api_key_pk, ("ab12",), "APIKEY#ab12"),
    (keys.api_key_lookup_key, ("ab12",), ("APIKEY#ab12", "APIKEY")),
    (keys.oauth_state_key, ("n0nce",), ("OAUTHSTATE#n0nce", "STATE")),
    (keys.connection_key, ("acc_1",), ("ACCOUNT#acc_1", "CONNECTION")),
    (keys.workspace_connection_key, ("acc_1", "ws9"), ("ACCOUNT#acc_1", "CONNECTION#ws9")),
    (keys.owner_key, ("ws9",), ("WORKSPACE#ws9", "OWNER")),
    (keys.cache_key, ("acc_1", "attributes", "ws9"), ("ACCOUNT#acc_1", "CACHE#attributes#ws9")),
    (keys.cache_key, ("acc_1", "segments", "ws9"), ("ACCOUNT#acc_1", "CACHE#segments#ws9")),
    (keys.settings_key, ("acc_1", "42"), ("ACCOUNT#acc_1", "CAMPAIGN#42")),
    (keys.lock_key, ("acc_1", "42"), ("ACCOUNT#acc_1", "CAMPAIGN#42#ACTIVESYNC")),
    (keys.catch_up_mark_key, ("acc_1", "42"), ("ACCOUNT#acc_1", "CATCHUP#42")),
    (keys.sweep_mark_key, ("acc_1", "42"), ("ACCOUNT#acc_1", "QUALSWEEP#42")),
    (keys.history_mark_key, ("acc_1", "42"), ("ACCOUNT#acc_1", "RFHISTORY#42")),
    (keys.referrals_pk, ("acc_1",), "REFERRALS#acc_1"),
    (keys.campaign_prefix, ("42",), "42#"),
    (keys.referral_key, ("acc_1", "42", "7"), ("REFERRALS#acc_1", "42#7")),
    (keys.contact_index_key, ("ws9", "c-5"), "REFCONTACT#ws9#c-5"),
    (keys.contact_index_sort_key, ("acc_1", "42", "7"), "acc_1#42#7"),
    (keys.email_index_key, ("acc_1", " Ann@Example.COM "), "REFEMAIL#acc_1#ann@example.com"),
    (keys.email_index_sort_key, ("42", "7"), "42#7"),
    (keys.counts_pending_key, ("acc_1", "42"), "COUNTSPENDING#acc_1#42"),
    (keys.counts_pending_sort_key, ("7",), "7"),
    (
        keys.company_value_key,
        ("ws9", "6762f0761bb69f9f2193bae2", "custom_attributes.stage"),
        ("COMPANY#ws9#6762f0761bb69f9f2193bae2", "VALUE#custom_attributes.stage"),
    ),
    (keys.counts_pending_sort_key, (7,), "7"),
    (keys.sync_pk, ("sync_1",), "SYNC#sync_1"),
    (keys.sync_key, ("sync_1",), ("SYNC#sync_1", "META")),
    (keys.chunk_key, ("sync_1", "0:2+1"), ("SYNC#sync_1", "CHUNK#0:2+1")),
    (keys.parked_key, ("sync_1", "3:0"), ("SYNC#sync_1", "PARKED#3:0")),
    (keys.campaign_syncs_key, ("acc_1", "42"), "CAMPAIGNSYNCS#acc_1#42"),
    (keys.campaign_syncs_sort_key, (1700000000, "sync_1"), "001700000000#sync_1"),
    (keys.due_key, ("sync:acc_1:42",), ("DUE#sync:acc_1:42", "DUE")),
    (keys.due_work_id, ("DUE#sync:acc_1:42",), "sync:acc_1:42"),
    (keys.due_sort_key, (1700000000, "sync:acc_1:42"), "001700000000#sync:acc_1:42"),
    (keys.due_sort_key, (1700000000, "~"), "001700000000#~"),
    (keys.ongoing_sync_work_id, ("acc_1", "42"), "sync:acc_1:42"),
    (keys.catch_up_work_id, ("acc_1", "42"), "catchup:acc_1:42"),
    (keys.qualification_sweep_work_id, ("acc_1", "42"), "qualsweep:acc_1:42"),
    (keys.budget_pk, ("intercom#ws9",), "RATE#intercom#ws9"),
    (keys.budget_window_sk, (1700000000.5,), "W#1700000000.500"),
]
CONSTANTS = [
    (keys.SETTINGS_PREFIX, "CAMPAIGN#"),
    (keys.CONNECTIONS_PREFIX, "CONNECTION"),
    (keys.PARKED_PREFIX, "PARKED#"),
    (keys.DUE_PARTITION, "DUE"),
    (keys.BUDGET_STATE_SK, "STATE"),
]


@pytest.mark.parametrize(
    ("build", "args", "expected"), PINNED, ids=[f"{b.__name__}{a}" for b, a, _ in PINNED]
)
def test_every_key_keeps_its_format(build: Callable[..., Any], args: tuple[Any, ...], expected: Any):
    assert build(*args) == expected


def test_every_constant_keeps_its_value():
    assert [value for value, _ in CONSTANTS] == [expected for _, expected in CONSTANTS]


def test_every_builder_in_keys_is_pinned():
    builders = {
        name for name, f in inspect.getmembers(keys, inspect.isfunction) if f.__module__ == keys.__name__
    }
    pinned = {build.__name__ for build, _, _ in PINNED if build.__module__ == keys.__name__}
    assert builders - pinned == set(), "pin the new key's format in PINNED"


def test_a_due_item_and_a_lock_read_back_as_written():
    assert keys.due_work_id(keys.due_key("catchup:a:1")[0]) == "catchup:a:1"
    # Settings are listed by prefix: the campaign's lock starts the same way (configured() filters it).
    assert keys.lock_key("a", "1")[1].startswith(keys.SETTINGS_PREFIX)
    assert keys.settings_key("a", "1")[1].startswith(keys.SETTINGS_PREFIX)
    assert keys.parked_key("s", "1")[1].startswith(keys.PARKED_PREFIX)
    # Listing an account's connections by prefix finds the legacy item and each workspace's.
    assert keys.connection_key("a")[1].startswith(keys.CONNECTIONS_PREFIX)
    assert keys.workspace_connection_key("a", "w")[1].startswith(keys.CONNECTIONS_PREFIX)
    # ... and nothing else the account's partition holds.
    others = [keys.account_key("a"), keys.cache_key("a", "segments", "w"), keys.settings_key("a", "1")]
    others += [keys.lock_key("a", "1"), keys.catch_up_mark_key("a", "1"), keys.sweep_mark_key("a", "1")]
    others += [keys.history_mark_key("a", "1")]
    assert not [sk for _, sk in others if sk.startswith(keys.CONNECTIONS_PREFIX)]


def test_no_record_shares_the_rate_budgets_partitions():
    partitions = [
        expected[0] if isinstance(expected, tuple) else expected
        for build, _, expected in PINNED
        if build.__module__ == keys.__name__ and build is not keys.budget_pk
    ]
    assert not [p for p in partitions if p.startswith("RATE#")]


# -- keys are built in keys.py only ----------------------------------------------------------------

# A quoted upper-case prefix ending in `#` (`"ACCOUNT#"`, `f"SYNC#{...}"`), or a bare sort key.
PREFIX = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]*#")
SORT_KEYS = {"META", "CONNECTION", "DUE", "STATE", "LOG", "APIKEY", "OWNER", "ACTIVESYNC"}
ALLOWED = {KEYS_MODULE}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def key_literals(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, text) of each string in `source` that looks like a key or a part of one (docstrings and
    comments aside)."""
    tree = ast.parse(source, filename)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        if PREFIX.search(node.value) or node.value in SORT_KEYS:
            found.append((node.lineno, node.col_offset, node.value))
    return [(line, text) for line, _, text in sorted(found)]


def _sources() -> list[Path]:
    return sorted(p for folder in ("shared", "functions") for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_keys_are_built_in_keys_py_only(path: Path):
    if path in ALLOWED:
        return
    stray = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for line, text in key_literals(path.read_text(), str(path))
    ]
    assert stray == [], "build keys with shared/keys.py"


def test_the_scan_finds_inline_keys_and_ignores_prose():
    source = '''
"""Items are keyed `ACCOUNT#{id}` / `META` (a docstring: prose)."""
def f(account_id, campaign_id, work_id):
    """`SYNC#` in a docstring is prose too."""
    # CATCHUP# in a comment is prose
    a = (f"ACCOUNT#{account_id}", "META")
    b = f"CATCHUP#{campaign_id}"
    c = "REFERRALS#" + account_id
    d = store.get(f"DUE#{work_id}", "DUE")
    e = "Sync failed: see #123"
    return a, b, c, d, e
'''
    found = [text for _, text in key_literals(source)]
    assert found == ["ACCOUNT#", "META", "CATCHUP#", "REFERRALS#", "DUE#", "DUE"]


def test_the_scan_covers_the_modules_that_build_keys():
    assert KEYS_MODULE in _sources()
    assert key_literals(KEYS_MODULE.read_text())  # the scan would see them anywhere else
