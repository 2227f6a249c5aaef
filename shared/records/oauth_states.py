"""OAuth `state`: random, signed, single-use, bound to the account and `return_url`, valid 10 minutes.

The state handed to Intercom is `<nonce>.<signature>`; the record behind it lives in DynamoDB with
a TTL and is consumed by a conditional delete, so a replayed state finds nothing. The signature
lets a forged or mangled state be refused before any read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import keys
from shared.aws.store import ConditionFailed
from shared.domain.errors import BadRequest
from shared.domain.signatures import same_secret

if TYPE_CHECKING:
    from shared.aws.store import Store

STATE_TTL_SECONDS = 600


class InvalidState(BadRequest):
    code = "invalid_state"


@dataclass(frozen=True)
class StateClaim:
    account_id: str
    return_url: str | None


def _sign(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:32]


class OAuthStates:
    def __init__(
        self,
        store: Store,
        signing_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_urlsafe(24),
    ) -> None:
        self.store = store
        self.key = signing_key
        self.clock = clock
        self.nonce = nonce

    def issue(self, account_id: str, return_url: str | None) -> str:
        nonce = self.nonce()
        now = int(self.clock())
        pk, sk = keys.oauth_state_key(nonce)
        item = {
            "pk": pk,
            "sk": sk,
            "account_id": account_id,
            "created_at": now,
            "expires_at": now + STATE_TTL_SECONDS,
        }
        if return_url:
            item["return_url"] = return_url
        self.store.put(item, if_absent=True)
        return f"{nonce}.{_sign(self.key, nonce)}"

    def consume(self, state: str | None) -> StateClaim:
        """The claim behind `state`, consumed: a second call with the same state fails."""
        nonce, _, signature = (state or "").partition(".")
        if not nonce or not same_secret(signature, _sign(self.key, nonce)):
            raise InvalidState("The OAuth state is missing or was not issued by us.")
        try:
            item = self.store.delete(*keys.oauth_state_key(nonce), must_exist=True)
        except ConditionFailed as exc:
            raise InvalidState(
                "The OAuth state was already used or has expired; start connecting again."
            ) from exc
        # DynamoDB's TTL deletes lazily: an expired record can still be there.
        if item is None or item["expires_at"] <= self.clock():
            raise InvalidState("The OAuth state has expired; start connecting again.")
        return StateClaim(item["account_id"], item.get("return_url"))
