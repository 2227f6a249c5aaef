"""DynamoDB in the embedded AWS with DynamoDB's atomicity: moto's own falls short under concurrency.

moto serves requests on threads, but its DynamoDB backend is not written for it. A conditional write
checks and then writes, so two threads can both pass the check (two workers both reserving the last
requests of a rate window). `TransactWriteItems` deep-copies every table it touches to be able to roll
back, which costs time in proportion to the table (seconds once it holds 100,000 items), fails with
"dictionary changed size during iteration" (a 500) when another thread writes meanwhile, and on a
cancelled transaction puts the whole copy back, silently undoing every write other threads made since.

In DynamoDB each request is atomic and a transaction costs what its items cost. Here every DynamoDB
request runs under one lock (moto holds the GIL anyway, so little is lost), and a transaction backs
up and restores only the items it names.

moto also answers every Query by walking the whole table (a GSI query checks each item's attributes,
a key query each item's hash key): 60 ms a query at 8,000 items, seconds at 100,000, where DynamoDB
reads one partition. Here a Query is given only the candidates: a key query the items under its hash
key, a GSI query those whose index hash attribute has the value asked for, from an index per
attribute that each write keeps current (the writes mark the keys they touch; a query re-reads those
before it looks). moto's own code still checks, sorts, pages and filters the candidates.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from types import SimpleNamespace
from typing import Any

_LOCK = threading.RLock()


def apply() -> None:
    """Patch moto's DynamoDB in this process (the embedded AWS's); idempotent."""
    from moto.dynamodb import models, responses
    from moto.dynamodb.models.table import Table

    handle = responses.DynamoHandler.call_action
    if getattr(handle, "serialized", False):
        return

    def call_action(self: Any) -> Any:
        with _LOCK:
            return handle(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    responses.DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # moto's transaction snapshots a whole table; the items it touches are backed up instead.
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            backups = _backups(self, transact_items)
            try:
                transact(self, transact_items)
            except Exception:
                for table_name, key, attributes in reversed(backups):
                    if attributes is None:
                        self.delete_item(table_name, key)
                    else:
                        self.put_item(table_name, attributes)
                raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _index_queries(models.DynamoDBBackend, Table)


Key = tuple[Any, Any]


class _AttributeIndex:
    """For one table: which items hold each value of the attributes queried through a GSI."""

    def __init__(self) -> None:
        self.by_attribute: dict[str, dict[Any, set[Key]]] = {}
        self.values: dict[Key, dict[str, Any]] = {}
        self.dirty: set[Key] = set()

    def candidates(self, table: Any, attribute: str, value: Any) -> list[Any]:
        if attribute not in self.by_attribute:
            self.by_attribute[attribute] = {}
            for item in table.all_items():
                self._add(_key(item), attribute, item.attrs.get(attribute))
        for key in self.dirty:
            item = _current(table, key)
            for name in self.by_attribute:
                self._add(key, name, item.attrs.get(name) if item is not None else None)
        self.dirty.clear()
        found = (_current(table, key) for key in self.by_attribute[attribute].get(value, ()))
        return [item for item in found if item is not None]

    def _add(self, key: Key, attribute: str, value: Any) -> None:
        held = self.values.setdefault(key, {})
        old = held.get(attribute)
        if old is not None and (value is None or old != value):
            self.by_attribute[attribute].get(old, set()).discard(key)
        if value is None:
            held.pop(attribute, None)
        else:
            held[attribute] = value
            self.by_attribute[attribute].setdefault(value, set()).add(key)


def _key(item: Any) -> Key:
    return (item.hash_key, item.range_key)


def _current(table: Any, key: Key) -> Any:
    bucket = table.items.get(key[0])
    if bucket is None:
        return None
    return bucket.get(key[1]) if table.range_key_attr else bucket


def _under(table: Any, hash_key: Any) -> list[Any]:
    bucket = table.items.get(hash_key)
    if bucket is None:
        return []
    return list(bucket.values()) if table.range_key_attr else [bucket]


def _index_of(table: Any) -> _AttributeIndex:
    index = table.__dict__.get("_local_index")
    if index is None:
        index = table.__dict__["_local_index"] = _AttributeIndex()
    return index


def _index_queries(backend_class: Any, table_class: Any) -> None:
    def marking(write: Any, key_of: Any) -> Any:
        def wrapper(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            with _LOCK:
                table = self.tables.get(table_name)
                key = None
                if table is not None:
                    with contextlib.suppress(Exception):  # a malformed key: moto's write reports it
                        key = self.get_keys_value(table, key_of(table, args, kwargs))
                try:
                    return write(self, table_name, *args, **kwargs)
                finally:
                    if key is not None:
                        _index_of(table).dirty.add(key)

        return wrapper

    def item_key(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        attrs = args[0] if args else kwargs["item_attrs"]
        return {n: attrs[n] for n in (table.hash_key_attr, table.range_key_attr) if n and n in attrs}

    def key_arg(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return dict(args[0] if args else kwargs["key"])

    backend_class.put_item = marking(backend_class.put_item, item_key)
    backend_class.update_item = marking(backend_class.update_item, key_arg)
    backend_class.delete_item = marking(backend_class.delete_item, key_arg)

    query = table_class.query

    def indexed_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions") or []
        if index_name and len(conditions) == 1:
            attribute, value = conditions[0]
            candidates = _index_of(self).candidates(self, attribute, value)
        elif not index_name and hash_key is not None:
            candidates = _under(self, hash_key)
        else:
            return query(self, hash_key, *args, **kwargs)
        self.all_items = lambda: candidates  # moto's query walks all_items(): only these
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    table_class.query = indexed_query


def _backups(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
    """(table, key, the item's attributes or None) for each item a transaction names."""
    backups: list[tuple[str, dict[str, Any], Any]] = []
    for entry in transact_items:
        for op in entry.values():
            table_name = op.get("TableName") if isinstance(op, dict) else None
            if not table_name or table_name not in backend.tables:
                continue
            table = backend.tables[table_name]
            key = op.get("Key")
            if key is None and "Item" in op:
                names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
                key = {n: op["Item"][n] for n in names if n in op["Item"]}
            if not key:
                continue
            # A malformed key is left to moto's transaction to report.
            with contextlib.suppress(Exception):
                item = backend.get_item(table_name, key)
                backups.append((table_name, key, item.to_json()["Attributes"] if item is not None else None))
    return backups
