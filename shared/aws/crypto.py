"""KMS envelope encryption for secrets at rest (Intercom tokens, Referral Factory keys).

Each secret gets its own data key from KMS; the account id is the KMS encryption context and the
AES-GCM associated data, so a blob copied to another account's record does not decrypt.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

_VERSION = 1


# Read into a record's model and written back whole: a field a later version adds survives.
@with_config(ConfigDict(extra="allow"))
class Sealed(TypedDict):
    """A secret as stored: the KMS-encrypted data key, the AES-GCM nonce and the ciphertext (base64)."""

    v: int
    key: str
    nonce: str
    ct: str


class SecretBox:
    def __init__(self, key_id: str, kms: Any | None = None) -> None:
        self.key_id = key_id
        self._kms = kms

    @property
    def kms(self) -> Any:
        # botocore on first use: the records import `Sealed`, and the webhook receivers the records.
        from shared.aws import boto

        return self._kms or boto.client("kms")

    def encrypt(self, plaintext: str, account_id: str) -> Sealed:
        # Imported on first use: the records import `Sealed`, and the webhook receivers the records.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        data_key = self.kms.generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext={"account_id": account_id}
        )
        nonce = os.urandom(12)
        sealed = AESGCM(data_key["Plaintext"]).encrypt(nonce, plaintext.encode(), account_id.encode())
        return {
            "v": _VERSION,
            "key": base64.b64encode(data_key["CiphertextBlob"]).decode(),
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(sealed).decode(),
        }

    def decrypt(self, blob: Sealed, account_id: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        data_key = self.kms.decrypt(
            CiphertextBlob=base64.b64decode(blob["key"]),
            EncryptionContext={"account_id": account_id},
            KeyId=self.key_id,
        )["Plaintext"]
        nonce = base64.b64decode(blob["nonce"])
        return AESGCM(data_key).decrypt(nonce, base64.b64decode(blob["ct"]), account_id.encode()).decode()
