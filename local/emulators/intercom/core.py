"""The emulator's engine: configuration, the writes that Intercom and a person in Intercom make, and
the notifications those writes send."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from local.emulators.common import (
    DEFAULT_FAULTS,
    FixedWindowLimiter,
    Stats,
    WebhookSender,
    merge_config,
)
from local.emulators.intercom.companies import (
    Company,
    apply_changes,
    attached_item,
    company_changes,
    new_company,
    webhook_company,
)
from local.emulators.intercom.errors import ApiError, invalid
from local.emulators.intercom.state import (
    EMPTY_SEGMENTS,
    FIRST_NAMES,
    LAST_NAMES,
    Contact,
    EmulatorState,
    Workspace,
    object_id,
    render_contact,
)

# Intercom's emulator can also refuse a share of requests as invalid (`parameter_invalid`, 400).
FAULTS: dict[str, float] = {**DEFAULT_FAULTS, "error_rate_400": 0.0}
DEFAULT_CONFIG: dict[str, Any] = {
    "client_id": "intercom-emulator-client",
    "client_secret": "intercom-emulator-secret",
    "redirect_uris": [],
    "webhook_url": None,
    "uninstall_url": None,
    "rate_limit_per_10s": 1666,
    "search_index_delay_ms": 0,
    "faults": dict(FAULTS),
    # Intercom retries a failed delivery once after a minute; tests shorten the wait.
    "webhook_retry_delay_s": 5.0,
    # Contacts inside real notifications have been seen with ISO-8601 timestamps (reference §3.1):
    # "iso" sends those, "unix" the REST form.
    "webhook_timestamp_format": "unix",
}

# `X-RateLimit-Limit` when the configured limit is null: a header clients can still parse.
UNLIMITED = 1_000_000_000
RATE_WINDOW_S = 10
_TIMESTAMP_FIELDS = ("created_at", "updated_at", "signed_up_at", "last_seen_at")
_STRING_FIELDS = ("name", "phone", "avatar")


def error_response(
    status: int,
    code: str,
    message: str,
    field_name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    item: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        item["field"] = field_name
    body = {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [item]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def api_error_response(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.field_name, exc.headers)


def _optional(body: Mapping[str, Any], key: str, kind: type, label: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python but not in JSON: keep them apart.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise invalid(f"{key} must be {label}", key)
    return value


def _scalars(body: Mapping[str, Any]) -> dict[str, Any]:
    """The plain fields a contact write may set, validated before anything is applied."""
    kinds: dict[str, tuple[type, str]] = {
        "name": (str, "a string"),
        "phone": (str, "a string"),
        "avatar": (str, "a string"),
        "signed_up_at": (int, "a UNIX timestamp"),
        "last_seen_at": (int, "a UNIX timestamp"),
        "owner_id": (str, "a string"),  # 2.16: a String
        "unsubscribed_from_emails": (bool, "a boolean"),
    }
    out = {name: _optional(body, name, kind, label) for name, (kind, label) in kinds.items() if name in body}
    if out.get("unsubscribed_from_emails") is None and "unsubscribed_from_emails" in out:
        out["unsubscribed_from_emails"] = False
    return out


def notification_envelope(app_id: str, topic: str, item: dict[str, Any]) -> dict[str, Any]:
    """A topic notification in Intercom's envelope (reference §6.3, §6.4), as first sent now."""
    now = int(time.time())
    return {
        "type": "notification_event",
        "app_id": app_id,
        "data": {"type": "notification_event_data", "item": item},
        "links": {},
        "id": f"notif_{uuid.uuid4()}",
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": now,
        "created_at": now,
        "self": None,
    }


class IntercomEmulator:
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.initial_config = merge_config(DEFAULT_CONFIG, config or {}, FAULTS)
        self.config: dict[str, Any] = dict(self.initial_config)
        self.state = EmulatorState()
        self.stats = Stats()
        self.limiter = FixedWindowLimiter(RATE_WINDOW_S)
        self.sender = WebhookSender(
            lambda: self.stats,
            lambda: self.config.get("faults") or {},
            retry_delay_s=float(self.config["webhook_retry_delay_s"]),
        )

    # -- configuration ---------------------------------------------------------------------
    def update_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.config = merge_config(self.config, patch, FAULTS)
        self.sender.retry_delay_s = float(self.config.get("webhook_retry_delay_s") or 0)
        return self.config

    def reset(self) -> None:
        """Forget every workspace, token, count and runtime setting; keep the app as configured at start."""
        self.state = EmulatorState()
        self.stats = Stats()
        self.limiter.reset()
        self.config = dict(self.initial_config)
        self.sender.retry_delay_s = float(self.config["webhook_retry_delay_s"])

    @property
    def index_delay_s(self) -> float:
        return float(self.config.get("search_index_delay_ms") or 0) / 1000

    def rate_limit(self) -> int | None:
        limit = self.config.get("rate_limit_per_10s")
        return None if limit is None else int(limit)

    # -- contact writes --------------------------------------------------------------------
    def create_contact(self, ws: Workspace, body: Mapping[str, Any], *, via_api: bool) -> Contact:
        if not any(body.get(k) is not None for k in ("email", "external_id", "role")):
            raise invalid("At least one of email, external_id or role is required")
        role = body.get("role") or "user"
        if role not in ("user", "lead"):
            raise invalid("role must be either user or lead", "role")
        email = _optional(body, "email", str, "a string") or None
        external_id = _external_id(body.get("external_id"))
        custom = ws.validate_custom_attributes(body.get("custom_attributes"))
        scalars = _scalars(body)
        ws.check_unique(role, email, external_id, None)
        now = int(time.time())
        c = Contact(
            ws.next_seq(),
            object_id(),
            role=role,
            email=email,
            name=scalars.pop("name", None),
            now=now,
            external_id=external_id,
            custom_attributes=custom,
            segment_ids=self._segment_ids(ws, body.get("segment_ids")) if not via_api else EMPTY_SEGMENTS,
        )
        for name, value in scalars.items():
            setattr(c, name, value)
        if not via_api:
            # Seeded history: contacts that existed before today, for day-granular date searches.
            created = _optional(body, "created_at", int, "a UNIX timestamp")
            c.created_at = created if created is not None else c.created_at
            updated = _optional(body, "updated_at", int, "a UNIX timestamp")
            c.updated_at = updated if updated is not None else c.created_at
        ws.add_contact(c)
        if via_api:
            ws.search.on_change(c, self.index_delay_s, time.time())
            self.notify(ws, f"contact.{role}.created", c)
        return c

    def update_contact(self, ws: Workspace, c: Contact, body: Mapping[str, Any]) -> bool:
        """Apply a partial update; returns whether anything changed (only then `updated_at` moves
        and a `contact.<role>.updated` notification goes out)."""
        role = body.get("role", c.role) or c.role
        if role not in ("user", "lead"):
            raise invalid("role must be either user or lead", "role")
        email = _optional(body, "email", str, "a string") if "email" in body else c.email
        email = email or None
        external_id = _external_id(body["external_id"]) if "external_id" in body else c.external_id
        custom = ws.validate_custom_attributes(body.get("custom_attributes"))
        scalars = _scalars(body)
        ws.check_unique(role, email, external_id, c.id)
        before = _snapshot(c)
        ws.unindex_identity(c)
        c.role, c.email, c.external_id = role, email, external_id
        ws.reindex_identity(c)
        for name, value in scalars.items():
            setattr(c, name, value)
        if custom:
            c.custom_attributes = {**c.custom_attributes, **custom}
        if _snapshot(c) == before:
            return False
        c.updated_at = max(int(time.time()), c.updated_at)
        ws.search.on_change(c, self.index_delay_s, time.time())
        self.notify(ws, f"contact.{c.role}.updated", c)
        return True

    def delete_contact(self, ws: Workspace, c: Contact) -> None:
        ws.remove_contact(c)

    def merge(self, ws: Workspace, from_id: Any, into_id: Any) -> Contact:
        """Merge a lead into a user as `POST /contacts/merge` does (reference §3.8)."""
        if not isinstance(from_id, str) or not isinstance(into_id, str):
            raise invalid("from and into are required")
        src = ws.contacts.get(from_id)
        dst = ws.contacts.get(into_id)
        if src is None or dst is None:
            raise ApiError(404, "not_found", "User Not Found")
        if src is dst:
            raise invalid("A contact cannot be merged into itself", "from")
        if src.role != "lead":
            raise invalid("Only a lead can be merged: 'from' must be a lead", "from")
        if dst.role != "user":
            raise invalid("A lead can only be merged into a user: 'into' must be a user", "into")
        ws.remove_contact(src)
        ws.merged_into[src.id] = dst.id
        ws.unindex_identity(dst)
        _absorb(ws, dst, src)
        for company_id in src.company_ids:  # the user joins the lead's companies
            company = ws.companies.get(company_id)
            if company is not None:
                ws.attach(dst, company)
        ws.reindex_identity(dst)
        dst.updated_at = max(int(time.time()), dst.updated_at)
        ws.search.on_change(dst, self.index_delay_s, time.time())
        self.notify(ws, "contact.merged", dst, extra={"merged_from": {"type": "contact", "id": src.id}})
        return dst

    def seed_contacts(self, ws: Workspace, body: Mapping[str, Any]) -> list[str]:
        """Contacts that exist in the workspace already: no notifications, searchable at once."""
        if "generate" in body:
            ids = self._generate(ws, body["generate"])
        else:
            items = body.get("contacts")
            if not isinstance(items, list):
                raise invalid("contacts must be a list")
            ids = []
            for item in items:
                if not isinstance(item, Mapping):
                    raise invalid("each contact must be an object")
                ids.append(self.create_contact(ws, item, via_api=False).id)
        ws.search.invalidate()
        return ids

    def _generate(self, ws: Workspace, spec: Any) -> list[str]:
        if not isinstance(spec, Mapping):
            raise invalid("generate must be an object")
        count = spec.get("count")
        role = spec.get("role") or "user"
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise invalid("generate.count must be a non-negative integer")
        if role not in ("user", "lead"):
            raise invalid("generate.role must be either user or lead")
        segment_ids = self._segment_ids(ws, spec.get("segment_ids"))
        now = int(time.time())
        ids: list[str] = []
        by_email = ws.by_email
        for _ in range(count):
            n = ws.next_generated()
            first = FIRST_NAMES[n % len(FIRST_NAMES)]
            last = LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]
            email = f"{first.lower()}.{last.lower()}.{n}@example.com"
            while email in by_email:  # someone seeded this exact address by hand
                n = ws.next_generated()
                email = f"{first.lower()}.{last.lower()}.{n}@example.com"
            c = Contact(
                ws.next_seq(),
                object_id(),
                role=role,
                email=email,
                name=f"{first} {last}",
                now=now,
                segment_ids=segment_ids,
            )
            ws.add_contact(c)
            ids.append(c.id)
        return ids

    @staticmethod
    def _segment_ids(ws: Workspace, raw: Any) -> frozenset[str]:
        if raw is None:
            return EMPTY_SEGMENTS
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise invalid("segment_ids must be a list of segment ids")
        unknown = [s for s in raw if s not in ws.segments]
        if unknown:
            raise ApiError(404, "not_found", f"Segment not found: {unknown[0]}")
        return frozenset(raw)

    # -- app installation ------------------------------------------------------------------
    def uninstall(self, ws: Workspace) -> None:
        """The workspace removes the app: its tokens stop working and the uninstall URL hears of it."""
        self.state.revoke_workspace_tokens(ws.id_code)
        body = json.dumps({"app_id": ws.id_code}, separators=(",", ":")).encode()
        secret = str(self.config.get("client_secret") or "").encode()
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        self.sender.send(
            self.config.get("uninstall_url"),
            body,
            {"Content-Type": "application/json", "X-Body-Signature": signature, "User-Agent": _USER_AGENT},
        )

    # -- companies ---------------------------------------------------------------------------
    def upsert_company(self, ws: Workspace, body: Mapping[str, Any], *, via_api: bool) -> Company:
        """`POST /companies`: create, or update the company with that `company_id` (2.16)."""
        changes = company_changes(ws, body)
        company_id = body.get("company_id")
        existing_id = ws.company_by_company_id.get(str(company_id)) if company_id is not None else None
        if existing_id is None:
            company = new_company(ws, company_id, changes)
            if via_api:
                self._deliver(ws, "company.created", self._company_item(ws, company))
            else:
                # Seeded history: a company that existed, and was last edited, before today.
                created = _optional(body, "created_at", int, "a UNIX timestamp")
                company.created_at = created if created is not None else company.created_at
                updated = _optional(body, "updated_at", int, "a UNIX timestamp")
                company.updated_at = updated if updated is not None else company.created_at
            return company
        company = ws.companies[existing_id]
        if apply_changes(company, changes) and via_api:
            company.updated_at = max(int(time.time()), company.updated_at)
            self._deliver(ws, "company.updated", self._company_item(ws, company))
        return company

    def edit_company(self, ws: Workspace, company: Company, body: Mapping[str, Any]) -> bool:
        """A person edits the company: only a change moves `updated_at` and is notified."""
        if not apply_changes(company, company_changes(ws, body)):
            return False
        company.updated_at = max(int(time.time()), company.updated_at)
        self._deliver(ws, "company.updated", self._company_item(ws, company))
        return True

    def attach(self, ws: Workspace, c: Contact, company: Company) -> None:
        """Attach the contact to the company; a new attachment is notified (`company.contact.attached`)."""
        if ws.attach(c, company):
            item = attached_item(self._company_item(ws, company), self._contact_item(ws, c))
            self._deliver(ws, "company.contact.attached", item)

    def detach(self, ws: Workspace, c: Contact, company: Company) -> None:
        if ws.detach(c, company):
            item = attached_item(self._company_item(ws, company), self._contact_item(ws, c))
            self._deliver(ws, "company.contact.detached", item)

    # -- notifications ---------------------------------------------------------------------
    def _iso_times(self) -> bool:
        return self.config.get("webhook_timestamp_format") == "iso"

    def _contact_item(self, ws: Workspace, c: Contact) -> dict[str, Any]:
        item = render_contact(c, ws.id_code)
        if self._iso_times():
            for name in _TIMESTAMP_FIELDS:
                if item.get(name) is not None:
                    item[name] = datetime.fromtimestamp(item[name], UTC).isoformat(timespec="milliseconds")
        return item

    def _company_item(self, ws: Workspace, company: Company) -> dict[str, Any]:
        return webhook_company(company, ws.id_code, iso_times=self._iso_times())

    def notify(self, ws: Workspace, topic: str, c: Contact, extra: Mapping[str, Any] | None = None) -> None:
        """A contact's signed topic notification."""
        if not self.config.get("webhook_url"):
            return
        self._deliver(ws, topic, {**self._contact_item(ws, c), **(extra or {})})

    def _deliver(self, ws: Workspace, topic: str, item: dict[str, Any]) -> None:
        """A signed topic notification in Intercom's envelope (reference §6.3, §6.4)."""
        url = self.config.get("webhook_url")
        if not url:
            return
        body = json.dumps(notification_envelope(ws.id_code, topic, item), separators=(",", ":")).encode()
        secret = str(self.config.get("client_secret") or "").encode()
        signature = "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()
        self.sender.send(
            url,
            body,
            {"Content-Type": "application/json", "X-Hub-Signature": signature, "User-Agent": _USER_AGENT},
        )

    def close(self) -> None:
        self.sender.close()


_USER_AGENT = "intercom-parrot-service-client/1.0"


def _external_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid("external_id must be a string", "external_id")
    return str(value)


def _absorb(ws: Workspace, dst: Contact, src: Contact) -> None:
    """The user keeps its own values; the merged lead fills what the user lacks."""
    for name in (*_STRING_FIELDS, "external_id"):
        if getattr(dst, name) is None and getattr(src, name) is not None:
            setattr(dst, name, getattr(src, name))
    if dst.email is None and src.email and ws.user_with_email(src.email.lower()) is None:
        dst.email = src.email
    gaps = {k: v for k, v in src.custom_attributes.items() if dst.custom_attributes.get(k) is None}
    if gaps:
        dst.custom_attributes = {**dst.custom_attributes, **gaps}
    if src.segment_ids - dst.segment_ids:
        dst.segment_ids = dst.segment_ids | src.segment_ids
        for sid in dst.segment_ids:
            if sid in ws.segments:
                ws.segments[sid].members.add(dst.id)


def _snapshot(c: Contact) -> tuple[Any, ...]:
    return (
        c.role,
        c.email,
        c.external_id,
        c.name,
        c.phone,
        c.avatar,
        c.owner_id,
        c.signed_up_at,
        c.last_seen_at,
        c.unsubscribed_from_emails,
        tuple(sorted(c.custom_attributes.items(), key=lambda kv: kv[0])),
    )
