"""The DynamoDB adapter: one table, items keyed `pk`/`sk`, conditions in its own terms, conditional
writes surfaced as one exception.

Key design and access patterns are in docs/data-model.md; keys are built in shared/keys.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from shared.aws import boto
from shared.aws.dynamodb import Table

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
class BeginsWith(Condition):
    """Key conditions of a query (the sort key's prefix), not offered by `Attr`."""

    name: str
    value: Any


@dataclass(frozen=True)
class AtMost(Condition):
    name: str
    value: Any


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


class _Placeholders:
    """The placeholders of one request's expressions, `#n0`, `:v0`, ... counted across them, as boto3's
    condition builder names them (so requests are exactly what the Table resource sent)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, name: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = name
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def expression(self, condition: Condition) -> str:  # noqa: PLR0911 - one form per condition
        """The condition as DynamoDB's expression language, its names and values as placeholders."""
        match condition:
            case Both(left, right):
                return f"({self.expression(left)} AND {self.expression(right)})"
            case Either(left, right):
                return f"({self.expression(left)} OR {self.expression(right)})"
            case Exists(name):
                return f"attribute_exists({self.name(name)})"
            case Absent(name):
                return f"attribute_not_exists({self.name(name)})"
            case Equals(name, value):
                return f"{self.name(name)} = {self.value(value)}"
            case LessThan(name, value):
                return f"{self.name(name)} < {self.value(value)}"
            case AtMost(name, value):
                return f"{self.name(name)} <= {self.value(value)}"
            case BeginsWith(name, value):
                return f"begins_with({self.name(name)}, {self.value(value)})"
            case IsIn(name, values):
                return f"{self.name(name)} IN ({', '.join(self.value(v) for v in values)})"
        raise TypeError(f"not a store condition: {condition!r}")

    def into(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` with these placeholders added to the request's own names and values."""
        if self.names:
            kwargs["ExpressionAttributeNames"] = {**kwargs.get("ExpressionAttributeNames", {}), **self.names}
        if self.values:
            kwargs["ExpressionAttributeValues"] = {
                **kwargs.get("ExpressionAttributeValues", {}),
                **self.values,
            }
        return kwargs


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


# Placeholders in our own update expressions are prefixed (#set0, :setv0, ...) so they never collide
# with a condition's (#n0, :v0), which `_Placeholders` names as boto3's condition builder did.


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
    def _table(self) -> Table:
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
            placeholders = _Placeholders()
            kwargs["ConditionExpression"] = placeholders.expression(condition)
            placeholders.into(kwargs)
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
            placeholders = _Placeholders()
            kwargs["ConditionExpression"] = placeholders.expression(
                condition & Attr("pk").exists() if must_exist else condition
            )
            placeholders.into(kwargs)
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
        placeholders = _Placeholders()
        expression = placeholders.expression(condition)
        conditional(
            self._table.delete_item,
            **placeholders.into({"Key": {"pk": pk, "sk": sk}, "ConditionExpression": expression}),
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
        condition: Condition = Equals(pk_name, pk)
        if sk_prefix is not None:
            condition = condition & BeginsWith(sk_name, sk_prefix)
        elif sk_lte is not None:
            condition = condition & AtMost(sk_name, sk_lte)
        placeholders = _Placeholders()
        kwargs: dict[str, Any] = {"ScanIndexForward": not newest_first}
        # Named in boto3's order, the filter's placeholders first: the request it sent, to the byte.
        if where is not None:
            kwargs["FilterExpression"] = placeholders.expression(where)
        kwargs["KeyConditionExpression"] = placeholders.expression(condition)
        if index is not None:
            kwargs["IndexName"] = index
        if limit is not None:
            kwargs["Limit"] = limit
        if start_key:
            kwargs["ExclusiveStartKey"] = _dynamo(dict(start_key))
        page = self._table.query(**placeholders.into(kwargs))
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
        conditional(self._table.transact_write_items, TransactItems=items)


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
