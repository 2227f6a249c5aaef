"""A function's init, and with SnapStart its snapshot and restore (docs/cold-starts.md).

Init: each handler module calls `init_begins()` before its imports and `init_done()` after them.
Left running, the garbage collector makes about two hundred passes over the objects the imports
create, one of them over every object in the process, and finds little to free: about a sixth of an
API function's import time. At the end of init what was built is frozen (`gc.freeze`, the standard
library's recipe for long-lived startup state), so later collections, in requests, no longer walk
it. The cyclic garbage init left (about half a megabyte, measured) is kept, not collected.

SnapStart (template.yaml enables it where it pays): before the snapshot, what a first request would
still load is loaded and the init garbage collected, since nobody waits then; after a restore, each
copy of the snapshot reseeds `random` (its own retry jitter) and forgets every process-global cache,
so no client, connection or credential built before the snapshot is used after it.
"""

from __future__ import annotations

import gc
import os
import random
import sys
from typing import Any

from shared import caches


def on_lambda() -> bool:
    """In a Lambda execution environment, or the local stack's copy of one: a process per instance."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def init_begins() -> None:
    """The top of a handler module: pause the collector until `init_done`. The product registers no
    pydantic plugin, so pydantic is told not to read every installed package's metadata for one."""
    gc.disable()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def init_done() -> None:
    """The end of a handler module's init: freeze what init built, resume collecting. Outside a Lambda
    instance (tests import every handler into one process) nothing is frozen."""
    if on_lambda():
        gc.freeze()
    gc.enable()


def prime() -> None:
    """Load now what this function's first request would otherwise load: the pydantic models built on
    first use, httpx for a function that calls out and AES-GCM for one that seals secrets."""
    from pydantic import BaseModel

    if "shared.clients.http" in sys.modules:
        import httpx  # noqa: F401 - loaded for the snapshot

    if "shared.aws.crypto" in sys.modules:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401

    pending: list[type[BaseModel]] = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("shared.") and not model.__pydantic_complete__:
            model.model_rebuild(raise_errors=False)


def before_snapshot() -> None:
    prime()
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def after_restore() -> None:
    random.seed()
    caches.reset_caches()


def _register_snapshot_hooks() -> None:
    try:
        import snapshot_restore_py  # in Lambda's Python runtime only
    except ImportError:  # tests and the local stack: no snapshot is ever taken
        return
    hooks: Any = snapshot_restore_py
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)


_register_snapshot_hooks()
