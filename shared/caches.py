"""Every process-global cache of `shared/` registers here, so one call forgets them all.

A warm Lambda keeps what these hold across invocations on purpose (clients, settings, short-lived
reads); a test must start as a cold process would, so the tests call `reset_caches()` before each.
The lowest layer: imports nothing from `shared`, so any module can register with it at import.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

K = TypeVar("K")
V = TypeVar("V")

# By name, so a module imported again replaces its entries instead of adding to them.
_resets: dict[str, Callable[[], None]] = {}


class _FunctoolsCache(Protocol):
    __module__: str
    __qualname__: str

    def cache_clear(self) -> None: ...


C = TypeVar("C", bound=_FunctoolsCache)


def register(name: str, reset: Callable[[], None]) -> None:
    """`reset` forgets what the cache `name` (its module and attribute) holds."""
    _resets[name] = reset


def resettable(cached: C) -> C:
    """Register a `functools.cache`d function (decorate above `@cache`)."""
    register(f"{cached.__module__}.{cached.__qualname__}", cached.cache_clear)
    return cached


def registered() -> frozenset[str]:
    return frozenset(_resets)


def reset_caches() -> None:
    """Forget everything every registered cache holds, as a cold start would."""
    for reset in list(_resets.values()):
        reset()


class LRU(Generic[K, V]):
    """A bounded map that forgets the least recently used entry first; registered as `name`."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        register(name, self.clear)

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys_oldest_first(self) -> list[K]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
