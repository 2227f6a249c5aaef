"""The DynamoDB adapter: one table, items keyed `pk`/`sk`, conditions in its own terms, conditional
writes surfaced as one exception.

Key design and access patterns are in docs/data-model.md; keys are built in shared/keys.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr as BotoAttr
from boto3.dynamodb.conditions import ConditionBase, Key
from botocore.exceptions import ClientError

from shared.aws import boto

T = TypeVar("T")


class ConditionFailed(Exception):
    """A conditional write lost: the item existed, did not exist, or changed underneath us."""


# -- conditions --------------------------------------------------------------------------------
# What a conditional write may require of the item, in the store's own terms: callers never see
# boto3's, and each condition is a plain value they can compare.


@dataclass(frozen=True)
class Condition:
    def __and__(self, other: Condition) -> Condition:
        return Both(self, other)

    def __or__(self, other: Condition) -> Condition:
        return Either(self, other)


@dataclass(frozen=True)
class Exists(Condition):
    name: str


@dataclass(frozen=True)
class Absent(Condition):
    name: str


@dataclass(frozen=True)
class Equals(Condition):
    name: str
    value: Any


@dataclass(frozen=True)
class LessThan(Condition):
    name: str
    value: Any


@dataclass(frozen=True)
class IsIn(Condition):
    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Both(Condition):
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Either(Condition):
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Attr:
    """`Attr("status").eq("connected") & Attr("token").exists()`: conditions on one attribute."""

    name: str

    def exists(self) -> Condition:
        return Exists(self.name)

    def not_exists(self) -> Condition:
        return Absent(self.name)

    def eq(self, value: Any) -> Condition:
        return Equals(self.name, value)

    def lt(self, value: Any) -> Condition:
        return LessThan(self.name, value)

    def is_in(self, values: Iterable[Any]) -> Condition:
        return IsIn(self.name, tuple(values))


def _expression(condition: Condition) -> ConditionBase:
    """The condition as boto3's builder expresses it (which then names its own placeholders)."""
    expression: ConditionBase
    match condition:
        case Both(left, right):
            expression = _expression(left) & _expression(right)
        case Either(left, right):
            expression = _expression(left) | _expression(right)
        case Exists(name):
            expression = BotoAttr(name).exists()
        case Absent(name):
            expression = BotoAttr(name).not_exists()
        case Equals(name, value):
            expression = BotoAttr(name).eq(value)
        case LessThan(name, value):
            expression = BotoAttr(name).lt(value)
        case IsIn(name, values):
            expression = BotoAttr(name).is_in(list(values))
        case _:
            raise TypeError(f"not a store condition: {condition!r}")
    return expression


def _item(value: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item with plain Python values (see `_plain`)."""
    return {k: _plain(v) for k, v in value.items()}


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints and floats, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


# Placeholders in our expressions are prefixed so they never collide with the ones boto3's
# condition builder generates (#n0, :v0) for a condition translated by `_expression`.


def conditional(call: Callable[..., T], /, **kwargs: Any) -> T:
    """Make one DynamoDB write; a condition it failed is raised as `ConditionFailed`. The one place
    that reads DynamoDB's error codes for it: the store, the seen ids and the rate budgets use it."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            raise ConditionFailed(str(exc)) from exc
        raise


class Store:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def _table(self) -> Any:
        return boto.table(self.table_name)

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent).get("Item")
        return _item(item) if item else None

    def put(
        self, item: Mapping[str, Any], *, if_absent: bool = False, condition: Condition | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"Item": _dynamo(dict(item))}
        if if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        elif condition is not None:
            kwargs["ConditionExpression"] = _expression(condition)
        conditional(self._table.put_item, **kwargs)

    def update(
        self,
        pk: str,
        sk: str,
        changes: Mapping[str, Any],
        *,
        condition: Condition | None = None,
        must_exist: bool = True,
        remove: tuple[str, ...] = (),
        append: Mapping[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """Set `changes`, append to the lists in `append` (in the same write, so two writers appending
        at once both keep their entries) and remove `remove` on one item; returns the item after."""
        names = {f"#set{i}": k for i, k in enumerate(changes)}
        values = {f":setv{i}": _dynamo(v) for i, v in enumerate(changes.values())}
        clauses = [f"#set{i} = :setv{i}" for i in range(len(changes))]
        for i, (name, entries) in enumerate((append or {}).items()):
            names[f"#app{i}"] = name
            values[f":appv{i}"] = _dynamo(list(entries))
            values[":empty_list"] = []
            clauses.append(f"#app{i} = list_append(if_not_exists(#app{i}, :empty_list), :appv{i})")
        expression = "SET " + ", ".join(clauses) if clauses else ""
        if remove:
            names.update({f"#rm{i}": k for i, k in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#rm{i}" for i in range(len(remove)))
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression.strip(),
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if condition is not None:
            kwargs["ConditionExpression"] = _expression(
                condition & Attr("pk").exists() if must_exist else condition
            )
        elif must_exist:
            kwargs["ConditionExpression"] = "attribute_exists(pk)"
        return _item(conditional(self._table.update_item, **kwargs)["Attributes"])

    def add(
        self, pk: str, sk: str, counters: Mapping[str, int], sets: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Atomically add to numeric attributes (creating them at 0), optionally setting others."""
        names = {f"#add{i}": k for i, k in enumerate(counters)}
        values: dict[str, Any] = {f":addv{i}": v for i, v in enumerate(counters.values())}
        expression = "ADD " + ", ".join(f"#add{i} :addv{i}" for i in range(len(counters)))
        if sets:
            names.update({f"#addset{i}": k for i, k in enumerate(sets)})
            values.update({f":addsetv{i}": _dynamo(v) for i, v in enumerate(sets.values())})
            expression = (
                "SET " + ", ".join(f"#addset{i} = :addsetv{i}" for i in range(len(sets))) + " " + expression
            )
        result = self._table.update_item(
            Key={"pk": pk, "sk": sk},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _item(result["Attributes"])

    def delete(self, pk: str, sk: str, *, must_exist: bool = False) -> dict[str, Any] | None:
        """Delete one item; with `must_exist`, exactly one caller wins (single-use records)."""
        kwargs: dict[str, Any] = {"Key": {"pk": pk, "sk": sk}, "ReturnValues": "ALL_OLD"}
        if must_exist:
            kwargs["ConditionExpression"] = "attribute_exists(pk)"
        old = conditional(self._table.delete_item, **kwargs).get("Attributes")
        return _item(old) if old else None

    def delete_if(self, pk: str, sk: str, *, condition: Condition) -> None:
        """Delete one item only while `condition` holds."""
        conditional(
            self._table.delete_item, Key={"pk": pk, "sk": sk}, ConditionExpression=_expression(condition)
        )

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        sk_lte: str | None = None,
        index: str | None = None,
        limit: int | None = None,
        start_key: Mapping[str, Any] | None = None,
        newest_first: bool = False,
        where: Condition | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a partition (of the table or a GSI): items and the key to continue from.
        `where` filters the page on DynamoDB's side: `limit` counts the items read, not those kept."""
        pk_name, sk_name = ("pk", "sk") if index is None else (f"{index}pk", f"{index}sk")
        condition = Key(pk_name).eq(pk)
        if sk_prefix is not None:
            condition = condition & Key(sk_name).begins_with(sk_prefix)
        elif sk_lte is not None:
            condition = condition & Key(sk_name).lte(sk_lte)
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": not newest_first}
        if index is not None:
            kwargs["IndexName"] = index
        if limit is not None:
            kwargs["Limit"] = limit
        if start_key:
            kwargs["ExclusiveStartKey"] = _dynamo(dict(start_key))
        if where is not None:
            kwargs["FilterExpression"] = _expression(where)
        page = self._table.query(**kwargs)
        last = page.get("LastEvaluatedKey")
        return [_item(i) for i in page.get("Items", [])], (_item(last) if last else None)

    def query_all(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        index: str | None = None,
        where: Condition | None = None,
    ) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            items, start = self.query(pk, sk_prefix=sk_prefix, index=index, start_key=start, where=where)
            yield from items
            if not start:
                return

    def _transact_update(self, op: dict[str, Any]) -> dict[str, Any]:
        pk, sk = op["update"]
        expression, names, values = _update_parts(op.get("set") or {}, op.get("add") or {})
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if op.get("unless"):
            update["ConditionExpression"] = "attribute_not_exists(#tunless)"
            names["#tunless"] = op["unless"]
        return update

    def transact(self, operations: list[dict[str, Any]]) -> None:
        """All-or-nothing writes, given as `{"put": item, "if_absent": bool}` / `{"delete": (pk, sk)}` /
        `{"check": (pk, sk), "exists": bool}` / `{"update": (pk, sk), "set": {...}, "add": {...},
        "unless": "<attribute>"}` (the update only while the item lacks that attribute)."""
        items: list[dict[str, Any]] = []
        for op in operations:
            if "update" in op:
                items.append({"Update": self._transact_update(op)})
                continue
            if "put" in op:
                put: dict[str, Any] = {"TableName": self.table_name, "Item": _dynamo(op["put"])}
                if op.get("if_absent"):
                    put["ConditionExpression"] = "attribute_not_exists(pk)"
                items.append({"Put": put})
            elif "delete" in op:
                pk, sk = op["delete"]
                items.append({"Delete": {"TableName": self.table_name, "Key": {"pk": pk, "sk": sk}}})
            elif "check" in op:
                pk, sk = op["check"]
                check = "attribute_exists(pk)" if op.get("exists", True) else "attribute_not_exists(pk)"
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": {"pk": pk, "sk": sk},
                            "ConditionExpression": check,
                        }
                    }
                )
        # The resource's own client carries boto3's type (de)serialisation, so plain values work here.
        conditional(self._table.meta.client.transact_write_items, TransactItems=items)


def _update_parts(
    sets: Mapping[str, Any], adds: Mapping[str, Any]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """An update expression with our own placeholder prefixes (see `conditional`)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    clauses = []
    if sets:
        names.update({f"#tset{i}": k for i, k in enumerate(sets)})
        values.update({f":tsetv{i}": _dynamo(v) for i, v in enumerate(sets.values())})
        clauses.append("SET " + ", ".join(f"#tset{i} = :tsetv{i}" for i in range(len(sets))))
    if adds:
        names.update({f"#tadd{i}": k for i, k in enumerate(adds)})
        values.update({f":taddv{i}": _dynamo(v) for i, v in enumerate(adds.values())})
        clauses.append("ADD " + ", ".join(f"#tadd{i} :taddv{i}" for i in range(len(adds))))
    return " ".join(clauses), names, values
