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
