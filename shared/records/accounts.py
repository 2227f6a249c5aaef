"""Accounts: who may call the account API, and with which Referral Factory credentials.

The account key and the webhook secret are stored only as SHA-256 hashes (they are shown once);
the Referral Factory key is KMS-encrypted because the product must use it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.aws.crypto import Sealed
from shared.domain.errors import NotFound, Unauthorized

if TYPE_CHECKING:
    from shared.aws.crypto import SecretBox
    from shared.aws.store import Store

WEBHOOK_HEADER_NAME = "X-RF-Intercom-Secret"
API_KEY_PREFIX = "rfi_"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    if not presented or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(presented), stored_hash)


class Account(BaseModel):
    """An account's record (`keys.account_key`). Attributes it does not name (a deployed table may hold
    them) are kept through a read-modify-put."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    name: str
    created_at: int
    api_key_hash: str
    webhook_secret_hash: str
    rf_api_key: Sealed = Field(repr=False)  # KMS-encrypted, the account id as context
    rf_api_base: str
    rotated_at: int | None = None
    # Set by an operator for an account whose Referral Factory plan allows another rate.
    rf_rate_limit_per_minute: int | None = None


def _item(account: Account) -> dict[str, Any]:
    """The account as stored: what was read (or set) and nothing more, keyed by its id."""
    pk, sk = keys.account_key(account.account_id)
    return {**account.model_dump(exclude_unset=True), "pk": pk, "sk": sk}


def webhook_secret_ok(store: Store, account_id: str, presented: str | None) -> bool:
    """Whether `presented` is the account's Referral Factory webhook secret. Reads only the hash: the
    webhook receiver never needs the rest of the account."""
    item = store.get(*keys.account_key(account_id), consistent=False)
    return item is not None and secret_matches(presented, item.get("webhook_secret_hash"))


@dataclass(frozen=True)
class NewAccount:
    account_id: str
    api_key: str
    webhook_secret: str


class Accounts:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        clock: Callable[[], float] = time.time,
        token: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self.token = token

    def create(self, name: str, rf_api_key: str, rf_api_base: str) -> NewAccount:
        account_id = "acc_" + self.token(12).replace("-", "").replace("_", "")[:16].lower()
        api_key = API_KEY_PREFIX + self.token(32)
        webhook_secret = self.token(32)
        key_hash = hash_secret(api_key)
        meta = Account(
            account_id=account_id,
            name=name,
            created_at=int(self.clock()),
            api_key_hash=key_hash,
            webhook_secret_hash=hash_secret(webhook_secret),
            rf_api_key=self.box.encrypt(rf_api_key, account_id),
            rf_api_base=rf_api_base.rstrip("/"),
        )
        lookup_pk, lookup_sk = keys.api_key_lookup_key(key_hash)
        lookup = {"pk": lookup_pk, "sk": lookup_sk, "account_id": account_id}
        self.store.transact([{"put": _item(meta), "if_absent": True}, {"put": lookup, "if_absent": True}])
        return NewAccount(account_id, api_key, webhook_secret)

    def get(self, account_id: str) -> Account:
        item = self.store.get(*keys.account_key(account_id))
        if item is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        return Account.model_validate(item)

    def authenticate(self, authorization: str | None) -> Account:
        """The account whose key is in `Authorization: Bearer <key>`, or Unauthorized."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("Send the account key as `Authorization: Bearer <api_key>`.")
        key_hash = hash_secret(key.strip())
        lookup = self.store.get(*keys.api_key_lookup_key(key_hash), consistent=False)
        if lookup is None:
            raise Unauthorized("The account key is not valid.")
        item = self.store.get(*keys.account_key(lookup["account_id"]))
        # The lookup item can outlive a rotation by a moment; the account's own hash decides.
        if item is None or not hmac.compare_digest(item["api_key_hash"], key_hash):
            raise Unauthorized("The account key is not valid.")
        return Account.model_validate(item)

    def webhook_secret_ok(self, account_id: str, presented: str | None) -> bool:
        return webhook_secret_ok(self.store, account_id, presented)

    def rotate_api_key(self, account: Account) -> str:
        """A new account key; the old one stops working at once (one transaction)."""
        api_key = API_KEY_PREFIX + self.token(32)
        new_hash = hash_secret(api_key)
        account_id = account.account_id
        meta = account.model_copy(update={"api_key_hash": new_hash, "rotated_at": int(self.clock())})
        lookup_pk, lookup_sk = keys.api_key_lookup_key(new_hash)
        self.store.transact(
            [
                {"put": _item(meta)},
                {"delete": keys.api_key_lookup_key(account.api_key_hash)},
                {"put": {"pk": lookup_pk, "sk": lookup_sk, "account_id": account_id}, "if_absent": True},
            ]
        )
        return api_key

    def rotate_webhook_secret(self, account: Account) -> str:
        secret = self.token(32)
        self.store.update(*keys.account_key(account.account_id), {"webhook_secret_hash": hash_secret(secret)})
        return secret

    def set_referral_factory(self, account: Account, api_key: str, api_base: str) -> None:
        self.store.update(
            *keys.account_key(account.account_id),
            {
                "rf_api_key": self.box.encrypt(api_key, account.account_id),
                "rf_api_base": api_base.rstrip("/"),
            },
        )

    def referral_factory_credentials(self, account: Account) -> tuple[str, str]:
        """(api_key, api_base) for calling Referral Factory as this account."""
        return self.box.decrypt(account.rf_api_key, account.account_id), account.rf_api_base
