"""A DynamoDB table through botocore's low-level client, with plain Python values in and out.

boto3's Table resource does the same, but `import boto3` costs as much again as botocore itself
(s3transfer, multiprocessing, the resource machinery: about 0.4 x `import boto3` of every cold start)
and a resource loads its resource model on first use; docs/cold-starts.md. The encoding is boto3's,
rule for rule, and `tests/unit/test_dynamodb_types.py` holds the two together: ints and Decimals are
numbers (read back as Decimal), floats are refused, sets are string, number or binary sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's numbers: 38 digits, no rounding, exactly as boto3 (boto3.dynamodb.types) encodes them.
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)

# Request members holding one item or key (attribute name -> value), or placeholder -> value.
_VALUE_MAPS = ("Item", "Key", "ExclusiveStartKey", "ExpressionAttributeValues")
# Response members holding one item, or a list of them.
_ITEM_MEMBERS = ("Item", "Attributes", "LastEvaluatedKey")


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    # A bool is an int here too, as in boto3 (`serialize` tells them apart first).
    return isinstance(value, int | Decimal)


def _set(value: Set[Any]) -> dict[str, Any]:
    if all(_is_number(v) for v in value):
        return {"NS": [_number(v) for v in value]}
    if all(isinstance(v, str) for v in value):
        return {"SS": list(value)}
    if all(isinstance(v, bytes | bytearray) for v in value):
        return {"BS": list(value)}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def serialize(value: Any) -> dict[str, Any]:  # noqa: PLR0911 - one answer per DynamoDB type
    """A Python value as a DynamoDB attribute value (`{"S": "x"}`), as boto3's TypeSerializer does."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": value}
    if isinstance(value, Set):
        return _set(value)
    if isinstance(value, Mapping):
        return {"M": {k: serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def deserialize(value: Mapping[str, Any]) -> Any:  # noqa: PLR0911 - one answer per DynamoDB type
    """A DynamoDB attribute value as Python, as boto3's TypeDeserializer does (binary as bytes)."""
    if len(value) != 1:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    ((kind, raw),) = value.items()
    match kind:
        case "NULL":
            return None
        case "BOOL" | "S" | "B":
            return raw
        case "N":
            return DYNAMODB_CONTEXT.create_decimal(raw)
        case "SS" | "BS":
            return set(raw)
        case "NS":
            return {DYNAMODB_CONTEXT.create_decimal(n) for n in raw}
        case "L":
            return [deserialize(v) for v in raw]
        case "M":
            return {k: deserialize(v) for k, v in raw.items()}
    raise TypeError(f"Dynamodb type {kind} is not supported")


def _encoded(params: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters with every item, key and expression value encoded."""
    encoded = dict(params)
    for member in _VALUE_MAPS:
        if member in encoded:
            encoded[member] = {k: serialize(v) for k, v in encoded[member].items()}
    return encoded


def _decoded(response: Mapping[str, Any]) -> dict[str, Any]:
    decoded = dict(response)
    for member in _ITEM_MEMBERS:
        if member in decoded:
            decoded[member] = {k: deserialize(v) for k, v in decoded[member].items()}
    if "Items" in decoded:
        decoded["Items"] = [{k: deserialize(v) for k, v in i.items()} for i in decoded["Items"]]
    return decoded


class Table:
    """The calls the product makes on one table, with the arguments and answers of boto3's Table
    resource: plain values, expressions as strings with their placeholders."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        method = getattr(self.client, operation)
        return _decoded(method(TableName=self.name, **_encoded(params)))

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("get_item", params)

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self._call("put_item", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self._call("update_item", params)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        return self._call("delete_item", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self._call("query", params)

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        """All-or-nothing writes; each operation names its table (`TableName`), as DynamoDB's API."""
        items = [{kind: _encoded(op) for kind, op in item.items()} for item in TransactItems]
        return dict(self.client.transact_write_items(TransactItems=items))
