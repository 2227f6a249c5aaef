"""`POST /contacts/search`: Intercom's query language compiled to predicates, and per-workspace
result caches kept current on every write so that paging 100,000 contacts never rescans them.

A page is found by bisecting a sorted result list with the cursor's sort key (keyset paging, as
Intercom's own cursors encode the last item's sort values), so each page costs O(log n) plus the
rendering of its contacts. A result list is built once per query by one scan, then each contact
write re-evaluates only that contact against the cached queries.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from local.emulators.intercom.errors import ApiError, invalid

if TYPE_CHECKING:
    from local.emulators.intercom.state import Contact, Workspace

Predicate = Callable[["Contact"], bool]
SortKey = Callable[["Contact"], Any]

MAX_GROUP_DEPTH = 2  # "There's a limit of max 2 nested filters"
MAX_GROUP_SIZE = 15  # "There's a limit of max 15 filters for each AND or OR group"
CACHED_QUERIES = 16
NARROW_LIMIT = 5000  # below this many candidates an index lookup beats a cached scan

STRING_OPS = frozenset({"=", "!=", "IN", "NIN", "~", "!~", "^", "$"})
INTEGER_OPS = frozenset({"=", "!=", "IN", "NIN", "<", ">", "<=", ">="})
BOOLEAN_OPS = frozenset({"=", "!=", "IN", "NIN"})
# Date fields take only =, < and > (spec description of SearchContacts).
DATE_OPS = frozenset({"=", "<", ">"})
SEGMENT_OPS = frozenset({"=", "!=", "IN", "NIN"})
TAG_OPS = frozenset({"=", "!="})


# Searchable standard fields (spec's "Accepted Fields"): their type and a Python expression that
# reads them off contact `c`. Fields the emulator never stores read as null, as they would for
# contacts that never used a browser or a mobile SDK.
_STANDARD: dict[str, tuple[str, str]] = {
    "id": ("string", "c.id"),
    "role": ("string", "c.role"),
    "name": ("string", "c.name"),
    "avatar": ("string", "c.avatar"),
    "owner_id": ("string", "c.owner_id"),  # a String since 2.16
    # Emails match without regard to case, as Intercom stores them.
    "email": ("string", "(c.email.lower() if c.email else None)"),
    "email_domain": (
        "string",
        "(c.email.rpartition('@')[2].lower() if c.email and '@' in c.email else None)",
    ),
    "phone": ("string", "c.phone"),
    "external_id": ("string", "c.external_id"),
    "created_at": ("date", "c.created_at"),
    "signed_up_at": ("date", "c.signed_up_at"),
    "updated_at": ("date", "c.updated_at"),
    "last_seen_at": ("date", "c.last_seen_at"),
    "unsubscribed_from_emails": ("boolean", "c.unsubscribed_from_emails"),
    "marked_email_as_spam": ("boolean", "False"),
    "has_hard_bounced": ("boolean", "False"),
    "segment_id": ("segment", "c.segment_ids"),
    "tag_id": ("tag", "None"),
}
for _name in (
    "last_contacted_at",
    "last_replied_at",
    "last_email_opened_at",
    "last_email_clicked_at",
    "ios_last_seen_at",
    "android_last_seen_at",
):
    _STANDARD[_name] = ("date", "None")
for _name in (
    "language_override",
    "browser",
    "browser_language",
    "os",
    "location.country",
    "location.region",
    "location.city",
    "ios_app_version",
    "ios_device",
    "ios_app_device",
    "ios_os_version",
    "ios_app_name",
    "ios_sdk_version",
    "android_app_version",
    "android_device",
    "android_app_name",
    "andoid_sdk_version",
    "android_sdk_version",
):
    _STANDARD[_name] = ("string", "None")

_OPS_BY_TYPE = {
    "string": STRING_OPS,
    "integer": INTEGER_OPS,
    "float": INTEGER_OPS,
    "boolean": BOOLEAN_OPS,
    "date": DATE_OPS,
    "segment": SEGMENT_OPS,
    "tag": TAG_OPS,
}
_CUSTOM_TYPE = {
    "string": "string",
    "integer": "integer",
    "float": "float",
    "boolean": "boolean",
    "date": "date",
}
_VALUE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "segment": lambda v: isinstance(v, str),
    "tag": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "date": lambda v: isinstance(v, int) and not isinstance(v, bool),
}
_STRING_TESTS = {
    "~": "(_v := {g}) is not None and {k} in _v.lower()",
    "!~": "(_v := {g}) is None or {k} not in _v.lower()",
    "^": "(_v := {g}) is not None and _v.lower().startswith({k})",
    "$": "(_v := {g}) is not None and _v.lower().endswith({k})",
}

SORTABLE = ("created_at", "updated_at", "signed_up_at", "last_seen_at")


@dataclass
class Compiled:
    predicate: Predicate
    # Candidate ids from an index (id, email, external_id, small segments), or None to scan.
    candidates: Callable[[], set[str]] | None


@dataclass
class _Node:
    expr: str
    candidates: Callable[[], set[str]] | None = None


class DayBounds:
    """Calendar days in the workspace's timezone: date search matches by day (spec, reference §3.5)."""

    def __init__(self, timezone: str) -> None:
        try:
            self.tz: Any = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.tz = UTC

    def day(self, ts: int) -> tuple[int, int]:
        local = datetime.fromtimestamp(ts, self.tz).date()
        start = datetime(local.year, local.month, local.day, tzinfo=self.tz)
        nxt = local + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz)
        return int(start.timestamp()), int(end.timestamp())


class QueryCompiler:
    """Turns a query into one generated `lambda c: ...` so a scan of 100,000 contacts costs one call
    per contact. Values never enter the source: each is bound to a constant name."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.days = DayBounds(ws.timezone)
        self.constants: dict[str, Any] = {}

    def _const(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def compile(self, query: Any) -> Compiled:
        node = self._node(query, 0)
        source = f"lambda c: {node.expr}"
        # The source is built only from fixed fragments and constant names; values live in `constants`.
        predicate = eval(source, {"__builtins__": {}, **self.constants})  # noqa: S307
        return Compiled(predicate, node.candidates)

    def _node(self, node: Any, depth: int) -> _Node:
        if not isinstance(node, dict):
            raise invalid("query must be an object")
        if "field" in node:
            return self._leaf(node)
        operator = node.get("operator")
        if operator not in ("AND", "OR"):
            raise invalid(f"operator '{operator}' is not one of AND, OR for a group of filters")
        depth += 1
        if depth > MAX_GROUP_DEPTH:
            raise invalid(f"Search queries can be nested at most {MAX_GROUP_DEPTH} levels deep")
        children_raw = node.get("value")
        if not isinstance(children_raw, list) or not children_raw:
            raise invalid(f"{operator} needs a non-empty list of filters in 'value'")
        if len(children_raw) > MAX_GROUP_SIZE:
            raise invalid(f"A search group can hold at most {MAX_GROUP_SIZE} filters")
        children = [self._node(child, depth) for child in children_raw]
        joiner = " and " if operator == "AND" else " or "
        expr = "(" + joiner.join(f"({child.expr})" for child in children) + ")"
        narrowers = [child.candidates for child in children if child.candidates is not None]
        if operator == "AND" and narrowers:

            def smallest() -> set[str]:
                return min((n() for n in narrowers), key=len)

            return _Node(expr, smallest)
        if operator == "OR" and len(narrowers) == len(children):

            def union() -> set[str]:
                out: set[str] = set()
                for n in narrowers:
                    out |= n()
                return out

            return _Node(expr, union)
        return _Node(expr)

    def _leaf(self, node: dict[str, Any]) -> _Node:
        field_name = node.get("field")
        op = node.get("operator")
        value = node.get("value")
        if not isinstance(field_name, str):
            raise invalid("field must be a string")
        kind, getter = self._field(field_name)
        if op not in _OPS_BY_TYPE[kind]:
            raise invalid(f"The operator '{op}' is not supported for the field '{field_name}'", field_name)
        if op in ("IN", "NIN"):
            if not isinstance(value, list):
                raise invalid(f"The value for the operator {op} must be an array", field_name)
            values = [self._value(kind, v, field_name) for v in value]
        else:
            if isinstance(value, list | dict):
                raise invalid(f"The value for the operator {op} must be a single value", field_name)
            values = [self._value(kind, value, field_name)]
        if field_name == "email":
            values = [v.lower() if isinstance(v, str) else v for v in values]
        if kind == "segment":
            return self._segment(op, values)
        if kind == "tag":
            # The emulator never tags anyone.
            return _Node("False" if op == "=" else "True")
        if kind == "date" and values[0] is not None:
            return _Node(self._date(op, values[0], getter))
        if kind == "string" and op in _STRING_TESTS:
            return _Node(_STRING_TESTS[op].format(g=getter, k=self._const((values[0] or "").lower())))
        return _Node(self._compare(op, values, getter), self._narrow(field_name, op, values))

    def _field(self, name: str) -> tuple[str, str]:
        if name.startswith("custom_attributes."):
            attr_name = name.partition(".")[2]
            attr = self.ws.custom_attribute(attr_name)
            if attr is None:
                raise invalid(f"Custom attribute '{attr_name}' does not exist", name)
            return _CUSTOM_TYPE.get(
                attr.data_type, "string"
            ), f"c.custom_attributes.get({self._const(attr.name)})"
        if name not in _STANDARD:
            raise invalid(f"The field '{name}' is not searchable", name)
        return _STANDARD[name]

    @staticmethod
    def _value(kind: str, value: Any, field_name: str) -> Any:
        if value is None:
            return None
        if kind == "date" and isinstance(value, str) and value.isdigit():
            return int(value)
        if not _VALUE_CHECKS[kind](value):
            raise invalid(f"The value for '{field_name}' must be of type {kind}", field_name)
        return value

    def _compare(self, op: str, values: list[Any], getter: str) -> str:
        if op in ("IN", "NIN"):
            pool = self._const(frozenset(values))
            return f"{getter} {'in' if op == 'IN' else 'not in'} {pool}"
        k = self._const(values[0])
        if op in ("=", "!="):
            return f"{getter} {'==' if op == '=' else '!='} {k}"
        if values[0] is None:
            return "False"
        return f"(_v := {getter}) is not None and _v {op} {k}"

    def _date(self, op: str, value: int, getter: str) -> str:
        start, end = self.days.day(value)
        if op == "=":
            return f"(_v := {getter}) is not None and {self._const(start)} <= _v < {self._const(end)}"
        if op == ">":  # "matches from the start of the next day"
            return f"(_v := {getter}) is not None and _v >= {self._const(end)}"
        return f"(_v := {getter}) is not None and _v < {self._const(start)}"  # "before the start of that day"

    def _segment(self, op: str, values: list[Any]) -> _Node:
        wanted = frozenset(v for v in values if v is not None)
        k = self._const(wanted)
        if op not in ("=", "IN"):
            return _Node(f"{k}.isdisjoint(c.segment_ids)")
        segments = self.ws.segments

        def candidates() -> set[str]:
            out: set[str] = set()
            for sid in wanted:
                seg = segments.get(sid)
                if seg is not None:
                    out |= seg.members
            return out

        small = sum(len(segments[s].members) for s in wanted if s in segments) <= NARROW_LIMIT
        return _Node(f"not {k}.isdisjoint(c.segment_ids)", candidates if small else None)

    def _narrow(self, field_name: str, op: str, values: list[Any]) -> Callable[[], set[str]] | None:
        if op not in ("=", "IN") or not all(isinstance(v, str) for v in values):
            return None
        ws = self.ws
        if field_name == "id":
            return lambda: {v for v in values if v in ws.contacts}
        if field_name == "email":
            return lambda: set().union(*(ws.by_email.get(v, ()) for v in values))
        if field_name == "external_id":
            return lambda: {cid for v in values if (cid := ws.by_external_id.get(v)) is not None}
        return None


def sort_key(sort: Any) -> tuple[str, SortKey]:
    """A sort spec's cache key and a key function that is unique per contact (ties broken by seq)."""
    if sort is None:
        return "", lambda c: c.seq
    if not isinstance(sort, dict):
        raise invalid("sort must be an object")
    field_name = sort.get("field")
    order = sort.get("order", "descending")  # 2.16: "Defaults to `descending` when omitted"
    if order not in ("ascending", "descending"):
        raise ApiError(
            400, "invalid_sort_order", f"Invalid sort order '{order}'. Must be one of: ascending, descending"
        )
    if field_name not in SORTABLE:
        raise invalid(f"Sorting by '{field_name}' is not supported", "sort.field")
    sign = 1 if order == "ascending" else -1

    def key(c: Contact) -> tuple[int, int]:
        v = getattr(c, field_name)
        return (sign * (v if v is not None else -1), sign * c.seq)

    return f"{field_name}:{order}", key


class Result:
    """One query's matches, sorted by key, kept current as contacts change.

    Under the default order a contact's key (its creation sequence) never changes, so the list is
    bisected through the key function and no key list is built (a first page over 100,000 matches
    stays cheap). Under a timestamp order keys move on update, so keys are stored beside the items
    and each member's current key is remembered.
    """

    __slots__ = ("fixed_keys", "items", "key", "keys", "members", "predicate")

    def __init__(self, predicate: Predicate, key: SortKey, items: list[Contact], *, fixed_keys: bool) -> None:
        self.predicate = predicate
        self.key = key
        self.items = items
        self.fixed_keys = fixed_keys
        self.keys: list[Any] = [] if fixed_keys else [key(c) for c in items]
        self.members: dict[str, Any] = (
            {} if fixed_keys else {c.id: k for c, k in zip(items, self.keys, strict=True)}
        )

    def position_after(self, key: Any) -> int:
        if self.fixed_keys:
            return bisect_right(self.items, key, key=self.key)
        return bisect_right(self.keys, key)

    def key_at(self, i: int) -> Any:
        return self.key(self.items[i]) if self.fixed_keys else self.keys[i]

    def _index_of(self, c: Contact) -> int | None:
        if self.fixed_keys:
            i = bisect_left(self.items, self.key(c), key=self.key)
            return i if i < len(self.items) and self.items[i] is c else None
        old = self.members.get(c.id)
        return None if old is None else bisect_left(self.keys, old)

    def discard(self, c: Contact) -> None:
        i = self._index_of(c)
        if i is not None:
            del self.items[i]
            if not self.fixed_keys:
                del self.keys[i]
                del self.members[c.id]

    def refresh(self, c: Contact) -> None:
        present = self._index_of(c) is not None
        matches = self.predicate(c)
        if present:
            if matches and (self.fixed_keys or self.key(c) == self.members[c.id]):
                return
            self.discard(c)
        if matches:
            new = self.key(c)
            if self.fixed_keys:
                self.items.insert(bisect_left(self.items, new, key=self.key), c)
                return
            i = bisect_left(self.keys, new)
            self.keys.insert(i, new)
            self.items.insert(i, c)
            self.members[c.id] = new


@dataclass
class Page:
    items: list[Contact]
    total: int
    page: int
    per_page: int
    next_cursor: str | None

    def pages(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "pages",
            "page": self.page,
            "per_page": self.per_page,
            "total_pages": math.ceil(self.total / self.per_page) if self.total else 0,
        }
        if self.next_cursor is not None:
            out["next"] = {
                "page": self.page + 1,
                "per_page": self.per_page,
                "starting_after": self.next_cursor,
            }
        return out


def encode_cursor(key: Any, contact_id: str, page: int) -> str:
    raw = json.dumps([key, contact_id, page], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        key, _contact_id, page = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise invalid("starting_after is not a valid cursor", "pagination.starting_after") from exc
    if isinstance(key, list) and all(isinstance(k, int) for k in key):
        key = tuple(key)
    elif not isinstance(key, int):
        raise invalid("starting_after is not a valid cursor", "pagination.starting_after")
    if not isinstance(page, int) or page < 1:
        raise invalid("starting_after is not a valid cursor", "pagination.starting_after")
    return key, page


class SearchIndex:
    """Per-workspace search: cached results plus contacts waiting out `search_index_delay_ms`."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.cache: OrderedDict[str, Result] = OrderedDict()
        self.pending: list[tuple[float, int, str]] = []

    def invalidate(self) -> None:
        self.cache.clear()

    def on_change(self, c: Contact, delay_s: float, now: float) -> None:
        if delay_s > 0:
            c.visible_at = now + delay_s
            for result in self.cache.values():
                result.discard(c)
            heapq.heappush(self.pending, (c.visible_at, c.seq, c.id))
            return
        c.visible_at = 0.0
        for result in self.cache.values():
            result.refresh(c)

    def on_remove(self, c: Contact) -> None:
        for result in self.cache.values():
            result.discard(c)

    def _drain(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, _, cid = heapq.heappop(self.pending)
            c = self.ws.contacts.get(cid)
            if c is None or c.visible_at > now:
                continue  # gone, or changed again and queued anew
            for result in self.cache.values():
                result.refresh(c)

    def _visible(self, contacts: Iterable[Contact], predicate: Predicate, now: float) -> list[Contact]:
        if self.pending:
            return [c for c in contacts if c.visible_at <= now and predicate(c)]
        return [c for c in contacts if predicate(c)]

    def search(self, query: Any, sort: Any, per_page: int, starting_after: str | None, now: float) -> Page:
        sort_id, key = sort_key(sort)
        # A None query is `GET /contacts`: every contact.
        compiled = Compiled(lambda _c: True, None) if query is None else QueryCompiler(self.ws).compile(query)
        cursor = decode_cursor(starting_after) if starting_after else None
        self._drain(now)
        result: Result
        if compiled.candidates is not None and len(ids := compiled.candidates()) <= NARROW_LIMIT:
            contacts = self.ws.contacts
            found = self._visible((contacts[i] for i in ids if i in contacts), compiled.predicate, now)
            found.sort(key=key)
            result = Result(compiled.predicate, key, found, fixed_keys=sort is None)
        else:
            cache_id = json.dumps([query, sort_id], sort_keys=True, separators=(",", ":"))
            cached = self.cache.get(cache_id)
            if cached is None:
                matched = self._visible(self.ws.contacts.values(), compiled.predicate, now)
                if sort is not None:  # contacts are stored in creation order already
                    matched.sort(key=key)
                cached = Result(compiled.predicate, key, matched, fixed_keys=sort is None)
                self.cache[cache_id] = cached
                if len(self.cache) > CACHED_QUERIES:
                    self.cache.popitem(last=False)
            else:
                self.cache.move_to_end(cache_id)
            result = cached
        items = result.items
        page = 1
        start = 0
        if cursor is not None:
            cursor_key, previous_page = cursor
            if isinstance(cursor_key, tuple) is not (sort is not None):
                raise invalid("starting_after does not belong to this sort", "pagination.starting_after")
            start = result.position_after(cursor_key)
            page = previous_page + 1
        chunk = items[start : start + per_page]
        end = start + per_page
        next_cursor = (
            encode_cursor(result.key_at(end - 1), items[end - 1].id, page) if end < len(items) else None
        )
        return Page(chunk, len(items), page, per_page, next_cursor)
