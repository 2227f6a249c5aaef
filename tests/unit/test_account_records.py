"""Accounts and connections as typed records: what is stored keeps its shape (a deployed table is read
by old and new code), attributes the models do not name survive a read-modify-put, and the encrypted
secrets never show in a repr."""

from __future__ import annotations

from typing import Any, cast

from shared import messages
from shared.aws.crypto import Sealed
from shared.records.accounts import Account, Accounts
from shared.records.connections import Connection, Connections, WorkspaceInfo


def _sealed(plaintext: str) -> Sealed:
    return {"v": 1, "key": f"data-key-of-{plaintext}", "nonce": "nonce", "ct": f"sealed-{plaintext}"}


class _Box:
    def encrypt(self, plaintext: str, _account_id: str) -> Sealed:
        return _sealed(plaintext)


class _Store:
    def __init__(self, items: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.items = dict(items or {})
        self.transactions: list[list[dict[str, Any]]] = []
        self.puts: list[dict[str, Any]] = []

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        return self.items.get((pk, sk))

    def put(self, item: dict[str, Any], **_conditions: Any) -> None:
        self.puts.append(item)
        self.items[(item["pk"], item["sk"])] = item

    def transact(self, operations: list[dict[str, Any]]) -> None:
        self.transactions.append(operations)

    def query_all(self, pk: str, *, sk_prefix: str = "", **_: Any) -> list[dict[str, Any]]:
        return [item for (p, sk), item in sorted(self.items.items()) if p == pk and sk.startswith(sk_prefix)]


STORED_ACCOUNT = {
    "pk": "ACCOUNT#acc_1",
    "sk": "META",
    "account_id": "acc_1",
    "name": "Acme",
    "created_at": 1_700_000_000,
    "api_key_hash": "old-hash",
    "webhook_secret_hash": "secret-hash",
    "rf_api_key": _sealed("rf-key"),
    "rf_api_base": "https://rf.test/api/v2",
    "plan": "legacy",  # written by a version of the product this one does not know
}


def _accounts(store: _Store) -> Accounts:
    return Accounts(
        cast("Any", store), cast("Any", _Box()), clock=lambda: 1_800_000_000.0, token=lambda n: "t" * n
    )


def test_a_new_account_is_stored_with_exactly_the_attributes_it_always_had():
    store = _Store()
    _accounts(store).create("Acme", "rf-key", "https://rf.test/api/v2/")
    meta = store.transactions[0][0]["put"]
    assert set(meta) == {
        "pk",
        "sk",
        "account_id",
        "name",
        "created_at",
        "api_key_hash",
        "webhook_secret_hash",
        "rf_api_key",
        "rf_api_base",
    }
    assert meta["rf_api_key"] == _sealed("rf-key") and meta["rf_api_base"] == "https://rf.test/api/v2"


def test_rotating_the_key_puts_back_what_was_read_and_only_the_new_hash_and_time():
    store = _Store({("ACCOUNT#acc_1", "META"): dict(STORED_ACCOUNT)})
    accounts = _accounts(store)
    accounts.rotate_api_key(accounts.get("acc_1"))
    put = store.transactions[0][0]["put"]
    assert put == {**STORED_ACCOUNT, "api_key_hash": put["api_key_hash"], "rotated_at": 1_800_000_000}
    assert put["api_key_hash"] != "old-hash"


def test_a_connection_is_stored_as_before_under_its_workspace_and_its_event_is_the_same_json():
    store, published = _Store(), []
    connections = Connections(cast("Any", store), cast("Any", _Box()), published.append, clock=lambda: 5.0)
    connections.connect("acc_1", WorkspaceInfo("w1", None, "EU"), "token-1")
    # The attributes it always had; each workspace has its own item now (docs/data-model.md).
    assert store.puts[-1] == {
        "pk": "ACCOUNT#acc_1",
        "sk": "CONNECTION#w1",
        "account_id": "acc_1",
        "status": "connected",
        "workspace_id": "w1",
        "workspace_name": None,
        "region": "EU",
        "connected_at": 5,
        "token": _sealed("token-1"),
    }
    assert [e.model_dump() for e in published] == [
        {"kind": messages.CONNECTION_CONNECTED, "account_id": "acc_1", "workspace_id": "w1", "at": 5}
    ]


def test_the_encrypted_secrets_never_show_in_a_repr():
    account = Account.model_validate(STORED_ACCOUNT)
    connection = Connection.model_validate(
        {"account_id": "acc_1", "status": "connected", "workspace_id": "w1", "token": _sealed("token-1")}
    )
    for text in (repr(account), str(account), repr(connection), str(connection)):
        assert "sealed-" not in text and "data-key-of" not in text


def test_the_listing_filter_takes_exactly_the_referral_states_the_push_writes() -> None:
    from shared.domain.qualification import CREATED, EXISTING_UPDATED
    from shared.records import referrals

    written = {
        referrals.PUSH_PENDING,
        CREATED,
        referrals.EXISTING_SKIPPED,
        EXISTING_UPDATED,
        referrals.NOT_PUSHED,
        referrals.WAITING,
        referrals.FAILED,
    }
    assert set(referrals.INTERCOM_STATUSES) == written
    assert set(referrals.NOT_YET_PUSHED) | set(referrals.PUSHED) == written
    assert set(referrals.RETRYABLE) == {"failed", "not_pushed", "waiting_for_connection"}
