"""Process-global caches: every one registered, emptied by one call, and the bounded ones bounded.

A cache a test cannot reset lets one test's state decide another's outcome; the root conftest resets
them all before each test.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import shared
from shared import caches
from shared.records.accounts import Account

ROOT = Path(__file__).resolve().parents[2]


def _shared_modules() -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(shared.__path__, prefix="shared.")
    ]


# Imported while the test file is collected, before sockets are disabled: urllib3 (under botocore)
# opens, without connecting, a socket at import to learn whether the host has IPv6.
SHARED_MODULES = _shared_modules()


def _module_level_empty_containers(path: Path) -> list[str]:
    """Names bound at module level to an empty `{}`, `[]`, `set()` or `OrderedDict()`: state that can
    only be filled at run time, so a cache (constants are written out)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        empty_literal = isinstance(value, ast.Dict | ast.List | ast.Set) and not (
            getattr(value, "keys", None) or getattr(value, "elts", None)
        )
        empty_call = (
            isinstance(value, ast.Call)
            and not value.args
            and isinstance(value.func, ast.Name | ast.Attribute)
            and (value.func.id if isinstance(value.func, ast.Name) else value.func.attr)
            in {"dict", "list", "set", "OrderedDict", "defaultdict"}
        )
        if empty_literal or empty_call:
            found.append(target.id)
    return found


def test_every_functools_cache_in_shared_is_registered():
    unregistered = [
        f"{module.__name__}.{name}"
        for module in SHARED_MODULES
        for name, value in vars(module).items()
        if hasattr(value, "cache_clear")
        and not isinstance(value, type)
        and getattr(value, "__module__", None) == module.__name__
        and f"{module.__name__}.{value.__qualname__}" not in caches.registered()
    ]
    assert unregistered == [], "decorate each with @caches.resettable"


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
        if p != ROOT / "shared" / "caches.py"  # the registry itself
    ),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_module_level_cache_is_registered(path: Path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    names = _module_level_empty_containers(path)
    if names:
        importlib.import_module(module)
    unregistered = [n for n in names if f"{module}.{n}" not in caches.registered()]
    assert unregistered == [], "register each with caches.register (or make it a caches.LRU)"


def test_the_scan_itself_sees_a_module_level_cache(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("A: dict[str, int] = {}\nB = {'x': 1}\nC = set()\nD = []\ndef f():\n    e = {}\n")
    assert _module_level_empty_containers(module) == ["A", "C", "D"]


class _Services:
    def __init__(self) -> None:
        self.built = 0

    def referral_factory_for(self, account: Account) -> object:
        self.built += 1
        return object()


def _account(n: int = 1, key: str = "blob-1") -> Account:
    return Account(
        account_id=f"acc_{n}",
        name=f"Account {n}",
        created_at=0,
        api_key_hash="key-hash",
        webhook_secret_hash="secret-hash",
        rf_api_key={"v": 1, "key": f"data-key-{key}", "nonce": "nonce", "ct": f"ciphertext-{key}"},
        rf_api_base="https://rf.test/api/v2",
    )


def test_filled_caches_are_empty_after_one_reset(monkeypatch):
    from shared import settings
    from shared.api.routes import intercom_webhooks
    from shared.aws import boto
    from shared.clients.http import shared_http
    from shared.consumers import intercom_events
    from shared.flows import qualify, signup_push
    from shared.wiring import services

    intercom_events._rf_client(_Services(), _account())  # type: ignore[arg-type]
    qualify._settings_cache[("acc_1", "1")] = (0.0, None)
    qualify._watch_cache["acc_1"] = (0.0, ())
    signup_push._CAMPAIGN_NAMES[("acc_1", "1")] = ("Campaign", 0.0)
    intercom_webhooks._routes["ws1"] = ("acc_1", 0.0)
    first_session, first_http = boto.session(), shared_http()
    for name in (
        "POWERTOOLS_SERVICE_NAME",
        "TABLE_NAME",
        "KMS_KEY_ID",
        "INTERCOM_APP_SECRET_ARN",
        "SIGNUP_QUEUE_URL",
        "SYNC_QUEUE_URL",
    ):
        monkeypatch.setenv(name, "x")
    services(settings.load(settings.SecretsSettings))
    filled = [
        len(intercom_events._rf_clients),
        len(qualify._settings_cache),
        len(qualify._watch_cache),
        len(signup_push._CAMPAIGN_NAMES),
        len(intercom_webhooks._routes),
        services.cache_info().currsize,
        settings._load.cache_info().currsize,
    ]
    assert filled == [1] * 7

    caches.reset_caches()

    assert [
        len(intercom_events._rf_clients),
        len(qualify._settings_cache),
        len(qualify._watch_cache),
        len(signup_push._CAMPAIGN_NAMES),
        len(intercom_webhooks._routes),
        services.cache_info().currsize,
        settings._load.cache_info().currsize,
    ] == [0] * 7
    assert boto.session() is not first_session
    assert first_http.is_closed and shared_http() is not first_http


def test_an_lru_forgets_the_least_recently_used_entry_first():
    lru: caches.LRU[int, str] = caches.LRU("tests.unit.test_caches.lru", maxsize=3)
    for i in range(3):
        lru.get_or_build(i, lambda i=i: f"v{i}")
    assert lru.get_or_build(0, lambda: "rebuilt") == "v0"  # used again: now the most recent
    lru.get_or_build(3, lambda: "v3")
    assert lru.keys_oldest_first() == [2, 0, 3]
    for i in range(100):
        lru.get_or_build(100 + i, str)
    assert len(lru) == 3
    caches.reset_caches()
    assert len(lru) == 0


def test_referral_factory_clients_are_one_per_account_key_bounded_and_keyed_without_the_key():
    from shared.consumers.intercom_events import RF_CLIENTS_MAX, _rf_client, _rf_clients

    svc = _Services()
    first = _rf_client(svc, _account())  # type: ignore[arg-type]
    assert _rf_client(svc, _account()) is first  # warm: the key is decrypted once
    rotated = _rf_client(svc, _account(key="blob-2"))  # type: ignore[arg-type]
    assert rotated is not first and svc.built == 2
    for n in range(2, 200):
        _rf_client(svc, _account(n))  # type: ignore[arg-type]
    assert len(_rf_clients) == RF_CLIENTS_MAX <= 64
    kept = _rf_clients.keys_oldest_first()
    assert "acc_1" not in {account_id for account_id, _ in kept}  # the least recently used went first
    text = repr(kept)
    assert "ciphertext" not in text and "data-key" not in text
