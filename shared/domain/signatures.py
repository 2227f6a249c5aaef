"""Intercom's webhook signatures, checked over the raw bytes in constant time before any parsing.

Topic notifications carry `X-Hub-Signature: sha1=<hex HMAC-SHA1>`; the uninstall notice carries
`X-Body-Signature: <hex HMAC-SHA256>` (reference §6.4, §1.5). Both are keyed with the app's client secret.
"""

from __future__ import annotations

import hashlib
import hmac


def hub_signature(body: bytes, secret: str) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def body_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two strings from anywhere. `hmac.compare_digest` refuses a `str` with
    non-ASCII characters (a TypeError, so a 500 for whoever sent it): compared as UTF-8 bytes instead."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def valid_hub_signature(body: bytes, header: str | None, secret: str) -> bool:
    return bool(header and secret) and same_secret(str(header).strip().lower(), hub_signature(body, secret))


def valid_body_signature(body: bytes, header: str | None, secret: str) -> bool:
    return bool(header and secret) and same_secret(str(header).strip().lower(), body_signature(body, secret))
