"""The contract's list envelope `{"data": [...], "next_cursor": null | "<opaque>"}`.

A cursor is DynamoDB's continuation key, base64url-encoded; it is only honoured for the partition
it came from, so a cursor can never be used to read another account's items.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from typing_extensions import TypedDict

from shared.domain.errors import BadRequest

T = TypeVar("T")


class ListEnvelope(TypedDict, Generic[T]):
    """`{"data": [...], "next_cursor": ...}` of a list whose items are `T`."""

    data: list[T]
    next_cursor: str | None


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, partition: str, partition_key: str = "pk") -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise BadRequest("The cursor is not one this API returned.", code="invalid_cursor") from exc
    if not isinstance(key, dict) or key.get(partition_key) != partition:
        raise BadRequest("The cursor is not one this API returned.", code="invalid_cursor")
    return key


def page(data: list[Any], last_key: dict[str, Any] | None) -> dict[str, Any]:
    return {"data": data, "next_cursor": encode_cursor(last_key)}
