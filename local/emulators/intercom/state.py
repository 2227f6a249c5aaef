"""The Intercom emulator's data: workspaces, contacts, segments, data attributes, tokens and codes,
with the uniqueness rules and validation errors Intercom applies to writes. Companies, and which
contacts belong to them, are in `companies.py`; a contact carries the ids of its companies.

Everything here runs on the server's event loop, so it is single-threaded by construction.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from local.emulators.intercom.errors import ApiError, conflict, invalid
from local.emulators.intercom.search import SearchIndex

if TYPE_CHECKING:
    from local.emulators.intercom.companies import Company

MAX_PER_PAGE = 150

_PROCESS_PART = os.urandom(5).hex()
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def object_id() -> str:
    """A 24-hex id shaped like Intercom's (Mongo ObjectId: seconds, process, counter)."""
    return f"{int(time.time()):08x}{_PROCESS_PART}{next(_counter) & 0xFFFFFF:06x}"


NOT_FOUND_CONTACT = ("not_found", "User Not Found")
NOT_FOUND_COMPANY = ("company_not_found", "Company Not Found")
EMPTY_SEGMENTS: frozenset[str] = frozenset()
EMPTY_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


class Contact:
    __slots__ = (
        "avatar",
        "company_ids",
        "created_at",
        "custom_attributes",
        "email",
        "external_id",
        "id",
        "last_seen_at",
        "name",
        "owner_id",
        "phone",
        "role",
        "segment_ids",
        "seq",
        "signed_up_at",
        "unsubscribed_from_emails",
        "updated_at",
        "visible_at",
    )

    seq: int
    id: str
    role: str
    email: str | None
    name: str | None
    external_id: str | None
    phone: str | None
    avatar: str | None
    owner_id: str | None  # a String since 2.16 (an integer up to 2.15)
    signed_up_at: int | None
    last_seen_at: int | None
    unsubscribed_from_emails: bool
    # Copy-on-write: replaced, never mutated, so 100,000 generated contacts share one empty mapping.
    custom_attributes: Mapping[str, Any]
    created_at: int
    updated_at: int
    segment_ids: frozenset[str]
    # The companies it belongs to, in the order it was attached (copy-on-write, like the attributes).
    company_ids: tuple[str, ...]
    visible_at: float

    def __init__(
        self,
        seq: int,
        contact_id: str,
        *,
        role: str,
        email: str | None,
        name: str | None,
        now: int,
        external_id: str | None = None,
        custom_attributes: Mapping[str, Any] = EMPTY_ATTRIBUTES,
        segment_ids: frozenset[str] = EMPTY_SEGMENTS,
    ) -> None:
        self.seq = seq
        self.id = contact_id
        self.role = role
        self.email = email
        self.name = name
        self.external_id = external_id
        self.phone = None
        self.avatar = None
        self.owner_id = None
        self.signed_up_at = now if role == "user" else None
        self.last_seen_at = None
        self.unsubscribed_from_emails = False
        self.custom_attributes = custom_attributes
        self.created_at = now
        self.updated_at = now
        self.segment_ids = segment_ids
        self.company_ids = ()
        # Search sees the contact from this instant on (`search_index_delay_ms`).
        self.visible_at = 0.0

    @property
    def email_key(self) -> str | None:
        return self.email.lower() if self.email else None


_COLLECTION = {"type": "list", "data": [], "total_count": 0, "has_more": False}
# The contact object shows at most this many of its companies; the rest are behind its `url`.
SHOWN_COMPANIES = 10


def contact_companies(c: Contact) -> dict[str, Any]:
    """The contact's `companies` (2.16 `contact_companies`): references, not the companies."""
    shown = c.company_ids[:SHOWN_COMPANIES]
    return {
        "type": "list",
        "data": [{"id": cid, "type": "company", "url": f"/companies/{cid}"} for cid in shown],
        "url": f"/contacts/{c.id}/companies",
        "total_count": len(c.company_ids),
        "has_more": len(c.company_ids) > len(shown),
    }


def render_contact(c: Contact, workspace_id: str) -> dict[str, Any]:
    """The full contact object as `GET /contacts/{id}` returns it in 2.16 (reference §3.1)."""
    email = c.email or ""
    url = f"/contacts/{c.id}"
    return {
        "type": "contact",
        "id": c.id,
        "workspace_id": workspace_id,
        "external_id": c.external_id,
        "role": c.role,
        # The spec types email as a non-null string: an email-less lead carries "".
        "email": email,
        "email_domain": email.rpartition("@")[2] if "@" in email else "",
        "phone": c.phone,
        "name": c.name,
        "avatar": {"type": "avatar", "image_url": c.avatar} if c.avatar else None,
        "owner_id": c.owner_id,
        "social_profiles": {"type": "list", "data": []},
        "has_hard_bounced": False,
        "marked_email_as_spam": False,
        "unsubscribed_from_emails": c.unsubscribed_from_emails,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "signed_up_at": c.signed_up_at,
        "last_seen_at": c.last_seen_at,
        "last_replied_at": None,
        "last_contacted_at": None,
        "last_email_opened_at": None,
        "last_email_clicked_at": None,
        "language_override": None,
        "browser": None,
        "browser_version": None,
        "browser_language": None,
        "os": None,
        "android_app_name": None,
        "android_app_version": None,
        "android_device": None,
        "android_os_version": None,
        "android_sdk_version": None,
        "android_last_seen_at": None,
        "ios_app_name": None,
        "ios_app_version": None,
        "ios_device": None,
        "ios_os_version": None,
        "ios_sdk_version": None,
        "ios_last_seen_at": None,
        "location": {
            "type": "location",
            "country": None,
            "region": None,
            "city": None,
            "country_code": None,
            "continent_code": None,
        },
        "custom_attributes": dict(c.custom_attributes),
        "tags": {**_COLLECTION, "data": [], "url": f"{url}/tags"},
        "notes": {**_COLLECTION, "data": [], "url": f"{url}/notes"},
        "companies": contact_companies(c),
        "opted_out_subscription_types": {**_COLLECTION, "data": [], "url": f"{url}/subscriptions"},
        "opted_in_subscription_types": {**_COLLECTION, "data": [], "url": f"{url}/subscriptions"},
        "utm_campaign": None,
        "utm_content": None,
        "utm_medium": None,
        "utm_source": None,
        "utm_term": None,
        "referrer": None,
        "sms_consent": False,
        "unsubscribed_from_sms": False,
        "enabled_push_messaging": None,
    }


_NULL_FIELDS = json.dumps(
    dict.fromkeys(
        (
            "last_replied_at",
            "last_contacted_at",
            "last_email_opened_at",
            "last_email_clicked_at",
            "language_override",
            "browser",
            "browser_version",
            "browser_language",
            "os",
            "android_app_name",
            "android_app_version",
            "android_device",
            "android_os_version",
            "android_sdk_version",
            "android_last_seen_at",
            "ios_app_name",
            "ios_app_version",
            "ios_device",
            "ios_os_version",
            "ios_sdk_version",
            "ios_last_seen_at",
            "utm_campaign",
            "utm_content",
            "utm_medium",
            "utm_source",
            "utm_term",
            "referrer",
            "enabled_push_messaging",
        )
    ),
    separators=(",", ":"),
)[1:-1]
_LOCATION = json.dumps(
    {
        "type": "location",
        "country": None,
        "region": None,
        "city": None,
        "country_code": None,
        "continent_code": None,
    },
    separators=(",", ":"),
)
_EMPTY_LIST = '{"type":"list","data":[],"url":"/contacts/'
_EMPTY_LIST_END = '","total_count":0,"has_more":false}'


def _s(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _i(value: int | None) -> str:
    return "null" if value is None else str(value)


def contact_json(c: Contact, workspace_id_json: str) -> str:
    """`render_contact` straight to JSON text: a 150-contact search page costs about a millisecond
    instead of ten. A test holds the two to the same output."""
    email = c.email or ""
    domain = email.rpartition("@")[2] if "@" in email else ""
    cid = c.id
    avatar = "null" if not c.avatar else '{"type":"avatar","image_url":' + encode_basestring(c.avatar) + "}"
    custom = json.dumps(dict(c.custom_attributes), separators=(",", ":")) if c.custom_attributes else "{}"
    return "".join(
        (
            '{"type":"contact","id":"',
            cid,
            '","workspace_id":',
            workspace_id_json,
            ',"external_id":',
            _s(c.external_id),
            ',"role":"',
            c.role,
            '","email":',
            encode_basestring(email),
            ',"email_domain":',
            encode_basestring(domain),
            ',"phone":',
            _s(c.phone),
            ',"name":',
            _s(c.name),
            ',"avatar":',
            avatar,
            ',"owner_id":',
            _s(c.owner_id),
            ',"social_profiles":{"type":"list","data":[]},"has_hard_bounced":false,"marked_email_as_spam":false,',
            '"unsubscribed_from_emails":',
            "true" if c.unsubscribed_from_emails else "false",
            ',"created_at":',
            str(c.created_at),
            ',"updated_at":',
            str(c.updated_at),
            ',"signed_up_at":',
            _i(c.signed_up_at),
            ',"last_seen_at":',
            _i(c.last_seen_at),
            ",",
            _NULL_FIELDS,
            ',"location":',
            _LOCATION,
            ',"custom_attributes":',
            custom,
            ',"tags":',
            _EMPTY_LIST,
            cid,
            "/tags",
            _EMPTY_LIST_END,
            ',"notes":',
            _EMPTY_LIST,
            cid,
            "/notes",
            _EMPTY_LIST_END,
            ',"companies":',
            # Most contacts belong to no company: their list is the constant one.
            json.dumps(contact_companies(c), separators=(",", ":"))
            if c.company_ids
            else f"{_EMPTY_LIST}{cid}/companies{_EMPTY_LIST_END}",
            ',"opted_out_subscription_types":',
            _EMPTY_LIST,
            cid,
            "/subscriptions",
            _EMPTY_LIST_END,
            ',"opted_in_subscription_types":',
            _EMPTY_LIST,
            cid,
            "/subscriptions",
            _EMPTY_LIST_END,
            ',"sms_consent":false,"unsubscribed_from_sms":false}',
        )
    )


@dataclass
class Segment:
    id: str
    name: str
    person_type: str
    created_at: int
    members: set[str] = field(default_factory=set)

    def render(self, *, include_count: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "segment",
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "person_type": self.person_type,
        }
        if include_count:
            out["count"] = len(self.members)
        return out


@dataclass
class DataAttribute:
    id: int
    model: str
    name: str
    data_type: str
    options: list[str]
    description: str
    messenger_writable: bool
    created_at: int
    admin_id: str

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "data_attribute",
            "name": self.name,
            "full_name": f"custom_attributes.{self.name}",
            "label": self.name,
            "description": self.description,
            "data_type": self.data_type,
            "api_writable": True,
            "ui_writable": True,
            "messenger_writable": self.messenger_writable,
            "custom": True,
            "archived": False,
            "admin_id": self.admin_id,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "model": self.model,
        }
        if self.options:
            out["options"] = list(self.options)
        return out


# Intercom's standard contact attributes (name, data type, API-writable), as `GET /data_attributes`
# lists them with `custom: false`.
STANDARD_CONTACT_ATTRIBUTES: tuple[tuple[str, str, str, bool], ...] = (
    ("name", "Name", "string", True),
    ("email", "Email", "string", True),
    ("phone", "Phone", "string", True),
    ("role", "Role", "string", True),
    ("external_id", "User ID", "string", True),
    ("avatar", "Avatar", "string", True),
    ("owner_id", "Owner", "string", True),
    ("unsubscribed_from_emails", "Unsubscribed from Emails", "boolean", True),
    ("language_override", "Language override", "string", True),
    ("signed_up_at", "Signed up", "date", True),
    ("last_seen_at", "Last seen", "date", True),
    ("created_at", "Created at", "date", False),
    ("updated_at", "Updated at", "date", False),
    ("last_contacted_at", "Last contacted", "date", False),
    ("last_replied_at", "Last heard from", "date", False),
    ("last_email_opened_at", "Last opened email", "date", False),
    ("last_email_clicked_at", "Last clicked on link in email", "date", False),
    ("email_domain", "Email domain", "string", False),
    ("has_hard_bounced", "Has hard bounced", "boolean", False),
    ("marked_email_as_spam", "Marked email as spam", "boolean", False),
    ("browser", "Browser", "string", False),
    ("browser_language", "Browser language", "string", False),
    ("os", "OS", "string", False),
    ("location.city", "City", "string", False),
    ("location.region", "Region", "string", False),
    ("location.country", "Country", "string", False),
)


# Intercom's standard company attributes as `GET /data_attributes?model=company` lists them (the 2.16
# file's example): full name, label, data type, API-writable, description.
STANDARD_COMPANY_ATTRIBUTES: tuple[tuple[str, str, str, bool, str], ...] = (
    ("name", "Company name", "string", True, "The name of a company"),
    ("company_id", "Company ID", "string", False, "A number identifying a company"),
    ("last_request_at", "Company last seen", "date", False, "The last day anyone from a company visited"),
    ("remote_created_at", "Company created at", "date", True, "The day a company was added to Intercom"),
    ("user_count", "People", "integer", False, "The number of people in a company"),
    ("session_count", "Company web sessions", "integer", False, "All visits from anyone in a company"),
    ("plan.name", "Plan", "string", False, "A specific plan or level that companies have signed up to"),
    ("monthly_spend", "Monthly Spend", "float", True, "The monthly revenue you receive from a company"),
    ("size", "Company size", "integer", True, "The number of people employed in this company"),
    ("industry", "Company industry", "string", True, "The category or domain this company belongs to"),
    ("website", "Company website", "string", True, "The web address for the company's primary site"),
    ("id", "ID", "string", False, "The Intercom defined id representing the company"),
    ("created_at", "Created at", "date", False, "The time the company was added to Intercom"),
    ("updated_at", "Updated at", "date", False, "The last time the company was updated"),
    ("plan.id", "Plan ID", "string", False, "The Intercom defined id representing the plan"),
    ("app_id", "App ID", "string", False, "The Intercom defined id representing the app"),
)


def render_standard_attribute(
    name: str, label: str, data_type: str, writable: bool, *, model: str = "contact", description: str = ""
) -> dict[str, Any]:
    return {
        "type": "data_attribute",
        "name": name.rpartition(".")[2],
        "full_name": name,
        "label": label,
        "description": description or label,
        "data_type": data_type,
        "api_writable": writable,
        "ui_writable": writable if model == "contact" else False,
        "messenger_writable": model == "company",
        "custom": False,
        "archived": False,
        "model": model,
    }


SCALAR_TYPES = {"string", "integer", "float", "boolean", "date", "datetime"}
# "alphanumeric characters, currency symbols, and hyphens" (spec); underscores and spaces are
# accepted in practice (the spec's own examples use spaces; integrations use snake_case).
_ATTRIBUTE_NAME = re.compile(r"^[\w\- $€£¥¢₹]+$")
_MODEL_LABEL = {"contact": "people", "company": "company"}


class Workspace:
    def __init__(self, id_code: str, name: str, region: str, timezone: str) -> None:
        self.id_code = id_code
        self.name = name
        self.region = region
        self.timezone = timezone
        self.created_at = int(time.time())
        self.admin_id = str(secrets.randbelow(9_000_000) + 1_000_000)
        self.contacts: dict[str, Contact] = {}
        self.by_external_id: dict[str, str] = {}
        self.by_email: dict[str, set[str]] = {}
        # A contact merged away -> the contact it was merged into (2.16 answers 410 for the first).
        self.merged_into: dict[str, str] = {}
        self.segments: dict[str, Segment] = {}
        self.attributes: dict[tuple[str, str], DataAttribute] = {}
        self.companies: dict[str, Company] = {}
        # A company's own `company_id` (the customer's) -> its Intercom id.
        self.company_by_company_id: dict[str, str] = {}
        self.search = SearchIndex(self)
        self._seq = itertools.count(1)
        self._generated = itertools.count(1)

    # -- lookups ---------------------------------------------------------------------------
    def custom_attribute(self, name: str, model: str = "contact") -> DataAttribute | None:
        return self.attributes.get((model, name.lower()))

    def user_with_email(self, email_key: str) -> str | None:
        for cid in self.by_email.get(email_key, ()):
            if self.contacts[cid].role == "user":
                return cid
        return None

    def canonical(self, contact_id: str) -> str | None:
        """The live contact a merged-away id now is, through up to three merges as Intercom's
        `Link` resolves them; None when the id was never merged away or its survivor is gone."""
        current = contact_id
        for _ in range(3):
            current_next = self.merged_into.get(current)
            if current_next is None:
                break
            current = current_next
        return current if current != contact_id and current in self.contacts else None

    def render(self) -> dict[str, Any]:
        return {"id_code": self.id_code, "name": self.name, "region": self.region, "timezone": self.timezone}

    # -- contact writes --------------------------------------------------------------------
    def check_unique(
        self, role: str, email: str | None, external_id: str | None, self_id: str | None
    ) -> None:
        if external_id:
            other = self.by_external_id.get(external_id)
            if other is not None and other != self_id:
                raise conflict(other)
        if role == "user" and email:
            other = self.user_with_email(email.lower())
            if other is not None and other != self_id:
                raise conflict(other)

    def validate_custom_attributes(self, values: Any, model: str = "contact") -> dict[str, Any]:
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            raise invalid("custom_attributes must be an object")
        clean: dict[str, Any] = {}
        for key, value in values.items():
            attr = self.custom_attribute(str(key), model)
            if attr is None:
                # Intercom refuses writes to attributes that were never defined (reference §3.3, §9.5).
                raise invalid(f"Custom attribute '{key}' does not exist")
            if value is not None and not _value_fits(attr.data_type, value):
                raise ApiError(
                    400,
                    "parameter_invalid",
                    f"Custom attribute '{key}' must be of type {attr.data_type}",
                )
            if value is not None and attr.options and not _an_option(attr.options, value):
                # Since April 2026 Intercom checks a list attribute's value against its options on
                # contact and company writes (Intercom-OpenAPI #457); its wording is not published.
                raise invalid(
                    f"Custom attribute '{key}' value '{value}' is not in the list of allowed values"
                )
            clean[attr.name] = value
        return clean

    def add_contact(self, c: Contact) -> None:
        self.contacts[c.id] = c
        if c.external_id:
            self.by_external_id[c.external_id] = c.id
        key = c.email_key
        if key:
            self.by_email.setdefault(key, set()).add(c.id)
        for sid in c.segment_ids:
            self.segments[sid].members.add(c.id)

    def unindex_identity(self, c: Contact) -> None:
        if c.external_id and self.by_external_id.get(c.external_id) == c.id:
            del self.by_external_id[c.external_id]
        key = c.email_key
        if key and key in self.by_email:
            ids = self.by_email[key]
            ids.discard(c.id)
            if not ids:
                del self.by_email[key]

    def reindex_identity(self, c: Contact) -> None:
        if c.external_id:
            self.by_external_id[c.external_id] = c.id
        key = c.email_key
        if key:
            self.by_email.setdefault(key, set()).add(c.id)

    def attach(self, c: Contact, company: Company) -> bool:
        """Make the contact one of the company's people; False when it was already."""
        if company.id in c.company_ids:
            return False
        c.company_ids = (*c.company_ids, company.id)
        company.contact_ids[c.id] = None
        return True

    def detach(self, c: Contact, company: Company) -> bool:
        if company.id not in c.company_ids:
            return False
        c.company_ids = tuple(i for i in c.company_ids if i != company.id)
        company.contact_ids.pop(c.id, None)
        return True

    def remove_contact(self, c: Contact) -> None:
        for company_id in c.company_ids:
            company = self.companies.get(company_id)
            if company is not None:
                company.contact_ids.pop(c.id, None)
        self.unindex_identity(c)
        for sid in c.segment_ids:
            seg = self.segments.get(sid)
            if seg is not None:
                seg.members.discard(c.id)
        del self.contacts[c.id]
        self.search.on_remove(c)

    def next_seq(self) -> int:
        return next(self._seq)

    def next_generated(self) -> int:
        return next(self._generated)


def _an_option(options: list[str], value: Any) -> bool:
    """Whether a list attribute takes `value`. Whether Intercom compares exactly is not documented; the
    emulator lets case and surrounding spaces differ, as the product's own value rules do."""
    wanted = str(value).strip().casefold()
    return any(option.strip().casefold() == wanted for option in options)


def _value_fits(data_type: str, value: Any) -> bool:
    if data_type in ("string", "options"):
        return isinstance(value, str)
    if data_type == "boolean":
        return isinstance(value, bool)
    if data_type in ("integer", "date"):
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


@dataclass
class TokenRecord:
    workspace_id: str
    revoked: bool = False


@dataclass
class CodeRecord:
    workspace_id: str
    client_id: str
    expires_at: float


def new_token() -> str:
    # Real tokens are base64 of "tok:<uuid>:..." ("dG9rOj..." in the reference's §1.3 example).
    return base64.b64encode(f"tok:{uuid.uuid4()}:1:0".encode()).decode()


def new_code() -> str:
    # 32 random bytes encode to 44 base64 characters ending in "=": the trailing "=" Intercom warns
    # clients not to drop (reference §1.3) is always there, so a client that strips it fails.
    return base64.b64encode(secrets.token_bytes(32)).decode()


FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Frances", "Ken",
    "Radia", "Dennis", "Hedy", "Guido", "Katherine", "John", "Sophie", "Niklaus", "Joan", "Tim",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Torvalds", "Allen",
    "Thompson", "Perlman", "Ritchie", "Lamarr", "Rossum", "Johnson", "McCarthy", "Wilson", "Wirth",
    "Clarke", "Berners",
)  # fmt: skip


class EmulatorState:
    """All workspaces plus the app-level OAuth tokens and codes."""

    CODE_TTL_S = 300.0  # "The code expires after about 5 minutes" (reference §1.2)

    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.codes: dict[str, CodeRecord] = {}
        self._attribute_ids = itertools.count(1)

    def workspace(self, id_code: str) -> Workspace:
        ws = self.workspaces.get(id_code)
        if ws is None:
            raise ApiError(404, "not_found", f"Workspace '{id_code}' not found")
        return ws

    def find_contact(self, contact_id: str) -> tuple[Workspace, Contact]:
        for ws in self.workspaces.values():
            c = ws.contacts.get(contact_id)
            if c is not None:
                return ws, c
        raise ApiError(404, *NOT_FOUND_CONTACT)

    def find_company(self, company_id: str) -> tuple[Workspace, Company]:
        for ws in self.workspaces.values():
            company = ws.companies.get(company_id)
            if company is not None:
                return ws, company
        raise ApiError(404, *NOT_FOUND_COMPANY)

    def issue_code(self, workspace_id: str, client_id: str) -> str:
        code = new_code()
        self.codes[code] = CodeRecord(workspace_id, client_id, time.time() + self.CODE_TTL_S)
        return code

    def redeem_code(self, code: str, client_id: str) -> str | None:
        record = self.codes.pop(code, None)  # single use, even when the rest of the exchange fails
        if record is None or record.client_id != client_id or record.expires_at < time.time():
            return None
        if record.workspace_id not in self.workspaces:
            return None
        token = new_token()
        self.tokens[token] = TokenRecord(record.workspace_id)
        return token

    def revoke_workspace_tokens(self, workspace_id: str) -> int:
        revoked = 0
        for record in self.tokens.values():
            if record.workspace_id == workspace_id and not record.revoked:
                record.revoked = True
                revoked += 1
        return revoked

    def create_attribute(self, ws: Workspace, body: Mapping[str, Any]) -> DataAttribute:
        """`POST /data_attributes` with Intercom's validation and messages (reference §5.2)."""
        name, model, data_type = body.get("name"), body.get("model"), body.get("data_type")
        options, description = body.get("options"), body.get("description")
        if model not in _MODEL_LABEL:
            raise ApiError(
                400, "parameter_invalid", "The Data Attribute model field must be either contact or company"
            )
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "parameter_not_found", "Name is missing", "name")
        if not _ATTRIBUTE_NAME.match(name):
            raise ApiError(
                400,
                "parameter_invalid",
                "Your name for this attribute must only contain alphanumeric characters, currency symbols, "
                "and hyphens",
            )
        if data_type not in SCALAR_TYPES and data_type != "options":
            raise invalid("Data Type isn't an option")
        clean_options = _clean_options(options) if data_type == "options" else []
        taken = _name_taken(ws, name)
        if taken is not None:
            raise ApiError(
                400,
                "parameter_invalid",
                f"You already have '{name}' in your {_MODEL_LABEL[taken]} data. "
                f"To save this as new {_MODEL_LABEL[model]} data, use a different name.",
            )
        stored_type = {"datetime": "date", "options": "string"}.get(data_type, data_type)
        attr = DataAttribute(
            id=next(self._attribute_ids),
            model=model,
            name=name,
            data_type=stored_type,
            options=clean_options,
            description=description if isinstance(description, str) else "",
            messenger_writable=bool(body.get("messenger_writable", False)),
            created_at=int(time.time()),
            admin_id=ws.admin_id,
        )
        ws.attributes[(model, name.lower())] = attr
        return attr


def _clean_options(options: Any) -> list[str]:
    if not isinstance(options, list):
        raise invalid("Options must be a list of at least two values")
    values: list[str] = []
    for option in options:
        value = option.get("value") if isinstance(option, Mapping) else option
        if not isinstance(value, str) or not value:
            raise invalid("Each option must have a string value")
        values.append(value)
    if len(values) < 2:
        raise invalid("Options must be a list of at least two values")
    return values


def _name_taken(ws: Workspace, name: str) -> str | None:
    """The model that already has an attribute called `name`, if any."""
    lowered = name.lower()
    if any(std[0].lower() == lowered for std in STANDARD_CONTACT_ATTRIBUTES):
        return "contact"
    if any(std[0].lower() == lowered for std in STANDARD_COMPANY_ATTRIBUTES):
        return "company"
    for model in _MODEL_LABEL:
        if (model, lowered) in ws.attributes:
            return model
    return None
