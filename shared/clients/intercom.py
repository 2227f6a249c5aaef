"""The Intercom REST client: OAuth token exchange, `/me`, contacts, search, merge, segments,
companies, data attributes and `/auth/uninstall`, pinned to one API version (reference:
intercom-api.md).

Every call goes through `shared.clients.http` (retries, waits from headers) and, for a connection's
workspace, its shared rate budget. Failures surface as the types in `shared.clients.errors`.

The product never writes `external_id`: customers keep their own user ids there (reference §3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NotRequired
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

from shared.clients.errors import (
    AlreadyExists,
    ConnectionRevoked,
    ContactMerged,
    Invalid,
    UpstreamError,
)
from shared.clients.http import DEFAULT_POLICY, Budget, HttpClient, RetryPolicy, error_for
from shared.domain.company import Company
from shared.domain.contact import CompoundQuery, Contact, ContactBody, Scalar, SearchQuery
from shared.settings import DEFAULT_INTERCOM_API_BASE

if TYPE_CHECKING:
    import httpx

    from shared.domain.campaign_settings import Attribute

INTERCOM_VERSION = "2.16"  # the newest stable (July 2026); the only place the version is named
SERVICE = "intercom"

# Region (`/me` → `app.region`) to REST base (reference §2.2). OAuth always runs on the US host.
REGIONAL_API_BASES: dict[str, str] = {
    "US": "https://api.intercom.io",
    "EU": "https://api.eu.intercom.io",
    "AU": "https://api.au.intercom.io",
}

# Intercom's maximum page size for listing and searching contacts (reference §3.5, §3.6).
SEARCH_PAGE_SIZE = 150
# A contact's companies and a company's contacts: the page size of the 2.16 file's examples.
COMPANY_PAGE_SIZE = 50
# A `Link` header resolves chains of up to three merges (reference §3.8).
MAX_MERGE_HOPS = 3

_CONFLICT_ID = re.compile(r"\bid=([A-Za-z0-9_-]+)")
_CANONICAL = re.compile(r"<([^>]+)>\s*;\s*rel=\"?canonical\"?", re.IGNORECASE)
_ALREADY_HAVE = "already have"


def regional_api_bases(configured_base: str = DEFAULT_INTERCOM_API_BASE) -> dict[str, str]:
    """The region map in force: Intercom's own hosts, or, when the configuration points elsewhere
    (an emulator, a proxy), that one base for every region."""
    if configured_base.rstrip("/") == REGIONAL_API_BASES["US"]:
        return dict(REGIONAL_API_BASES)
    return dict.fromkeys(REGIONAL_API_BASES, configured_base.rstrip("/"))


def api_base_for_region(region: str | None, bases: Mapping[str, str] = REGIONAL_API_BASES) -> str:
    # `api.intercom.io` routes to the right region on a best-effort basis (reference §2.2), so an
    # unknown region string is safer there than nowhere.
    return bases.get((region or "US").upper(), bases["US"])


def parse_timestamp(value: Any) -> int | None:
    """UNIX seconds from either form Intercom sends: UNIX numbers (REST) or ISO-8601 (some webhooks)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text))
        except ValueError:
            pass
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Workspace:
    """The connected workspace as `/me` describes it."""

    id: str
    region: str
    name: str | None
    admin_id: str | None
    admin_email_verified: bool


@dataclass(frozen=True)
class SearchPage:
    contacts: list[Contact]
    next_cursor: str | None
    total_count: int | None


class _Listing(BaseModel):
    # Intercom's objects carry more than the product reads: kept as they came. Built when an answer is
    # first read, like httpx loaded on the first call out (docs/cold-starts.md).
    model_config = ConfigDict(extra="allow", defer_build=True)


class _Next(_Listing):
    starting_after: str | None = None


class _Pages(_Listing):
    # An object with the next page's cursor, when there is one (other lists give a URL).
    next: _Next | str | None = None


class _SearchResult(_Listing):
    data: list[Contact] | None = None
    pages: _Pages | None = None
    total_count: int | None = None


class _CompanyList(_Listing):
    data: list[Company] | None = None
    pages: _Pages | None = None


class _ContactList(_Listing):
    data: list[Contact] | None = None
    pages: _Pages | None = None


def _following(pages: _Pages | None, per_page: int = COMPANY_PAGE_SIZE) -> dict[str, Any] | None:
    """The query of a list's next page: a cursor (`next.starting_after`, as a company's contacts
    page), or the query of a `next` link (a numbered page, as a contact's companies page); None at
    the end."""
    following = pages.next if pages else None
    if isinstance(following, _Next):
        cursor = following.starting_after
        return {"per_page": per_page, "starting_after": cursor} if cursor else None
    if isinstance(following, str) and following:
        return dict(parse_qsl(urlsplit(following).query)) or None
    return None


class Segment(_Listing):
    """A segment as `GET /segments` lists it."""

    id: str | None = None
    name: str | None = None
    person_type: str | None = None
    count: int | None = None


class _Segments(_Listing):
    segments: list[Segment] | None = None


class _Option(_Listing):
    value: Scalar = None


class DataAttribute(_Listing):
    """A data attribute as `GET /data_attributes` lists it and `POST /data_attributes` answers."""

    id: int | str | None = None
    name: str | None = None
    full_name: str | None = None
    label: str | None = None
    description: str | None = None
    data_type: str | None = None
    # `{"value": ...}` objects; plain strings are read too.
    options: list[_Option | str] | None = None
    custom: bool | None = None
    api_writable: bool | None = None
    archived: bool | None = None

    def view(self) -> Attribute:
        """The attribute as the product lists it and checks settings against."""
        return {
            "name": self.name,
            "full_name": self.full_name or self.name,
            "label": self.label or self.name,
            "description": self.description,
            "data_type": "options" if self.options and self.data_type == "string" else self.data_type,
            "options": [str(o.value if isinstance(o, _Option) else o) for o in self.options or []],
            "custom": bool(self.custom),
            "api_writable": bool(self.api_writable),
        }


class _DataAttributes(_Listing):
    data: list[DataAttribute] | None = None


class _Pagination(TypedDict):
    per_page: int
    starting_after: NotRequired[str]


class _SearchRequest(TypedDict):
    query: SearchQuery
    pagination: _Pagination
    sort: NotRequired[dict[str, str]]


class _OptionBody(TypedDict):
    value: str


class _NewDataAttribute(TypedDict):
    name: str
    model: str
    data_type: str
    description: NotRequired[str]
    options: NotRequired[list[_OptionBody]]


def _envelope(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) of Intercom's `error.list`, tolerant of any other body."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or f"HTTP {response.status_code}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return first.get("code"), str(first.get("message") or first.get("code") or "")
    return None, response.reason_phrase or f"HTTP {response.status_code}"


def _survivor(response: httpx.Response) -> str | None:
    """The contact id in a 410's `Link: </contacts/{id}>; rel="canonical"` (reference §3.8)."""
    link = _CANONICAL.search(response.headers.get("link", ""))
    if link is None:
        return None
    return link.group(1).rstrip("/").rsplit("/", 1)[-1] or None


def _json(response: httpx.Response) -> Any:
    return response.json() if response.content.strip() else {}


def _writable(fields: ContactBody) -> ContactBody:
    if "external_id" in fields:
        raise ValueError("the product never writes external_id: customers use it for their own user ids")
    return dict(fields)


def exchange_code(
    code: str,
    *,
    client_id: str,
    client_secret: str,
    base_url: str = DEFAULT_INTERCOM_API_BASE,
    client: httpx.Client | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Trade an OAuth code for the workspace's access token (reference §1.3).

    The code is sent exactly as received: a trailing `=` is part of it, and dropping it gets
    `401 Unauthorized Code`. A 401 here is `CredentialsRejected`, not `ConnectionRevoked`: nothing worked yet.
    """
    http = HttpClient(
        base_url,
        service=SERVICE,
        headers={"Accept": "application/json", "Intercom-Version": INTERCOM_VERSION},
        policy=policy,
        client=client,
        sleep=sleep,
    )
    response = http.request(
        "POST",
        "/auth/eagle/token",
        data={"code": code, "client_id": client_id, "client_secret": client_secret},
    )
    if not response.is_success:
        error_code, message = _envelope(response)
        raise error_for(response, service=SERVICE, message=message, code=error_code, now=time.time())
    body = _json(response)
    token = body.get("access_token") or body.get("token") if isinstance(body, dict) else None
    if not token:
        raise Invalid("token exchange answered without a token", service=SERVICE, status=response.status_code)
    return str(token)


class IntercomClient:
    """One connection's view of Intercom: its token, its region's base URL and its workspace's budget."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_INTERCOM_API_BASE,
        budget: Budget | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.http = HttpClient(
            base_url,
            service=SERVICE,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Intercom-Version": INTERCOM_VERSION,
            },
            budget=budget,
            policy=policy,
            client=client,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:  # never the token
        return f"IntercomClient({self.http.base_url!r})"

    # -- plumbing -----------------------------------------------------------------------------
    def _error(self, response: httpx.Response) -> UpstreamError:
        code, message = _envelope(response)
        status = response.status_code
        if status == 401:
            # The client is built for a stored connection whose token worked when it was made, so
            # any 401 (`unauthorized`, `token_revoked`, ...) means the connection is gone (§8).
            return ConnectionRevoked(message, service=SERVICE, status=status, code=code)
        if status == 410:
            # 2.16: a contact merged away (`contact_merged`), its survivor in the `Link` header.
            return ContactMerged(
                message, survivor_id=_survivor(response), service=SERVICE, status=status, code=code
            )
        if status == 409:
            match = _CONFLICT_ID.search(message)
            return AlreadyExists(
                message,
                existing_id=match.group(1) if match else None,
                service=SERVICE,
                status=status,
                code=code,
            )
        return error_for(response, service=SERVICE, message=message, code=code, now=self._clock())

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> Any:
        response = self.http.request(method, path, json=json, params=params, allow_empty=allow_empty)
        if not response.is_success:
            raise self._error(response)
        return _json(response)

    # -- the connection -----------------------------------------------------------------------
    def me(self) -> Workspace:
        """The workspace the token belongs to: its id is `app.id_code` (reference §1.4)."""
        body = self._call("GET", "/me")
        app = body.get("app") or {}
        if not app.get("id_code"):
            raise Invalid("/me answered without app.id_code", service=SERVICE, status=200)
        return Workspace(
            id=str(app["id_code"]),
            region=str(app.get("region") or "US").upper(),
            name=app.get("name"),
            admin_id=None if body.get("id") is None else str(body["id"]),
            admin_email_verified=body.get("email_verified") is True,
        )

    def uninstall(self) -> None:
        """Uninstall the app from the workspace, revoking this token (reference §1.5)."""
        self._call("POST", "/auth/uninstall", allow_empty=True)

    # -- contacts -----------------------------------------------------------------------------
    def create_contact(self, fields: ContactBody) -> Contact:
        """`POST /contacts`; a duplicate raises `AlreadyExists` carrying the existing contact's id."""
        return Contact.model_validate(self._call("POST", "/contacts", json=_writable(fields)))

    def get_contact(self, contact_id: str, *, email: str | None = None) -> Contact:
        """A contact, followed to its survivor if it was merged away: through the `Link` header of
        2.16's 410 `contact_merged`, or for a 404 (a merge before 2.16, or a lead Intercom answers
        so for) by searching the user with the `email` it was known by. The answer's `id` is then
        the survivor's, so a caller sees the merge by comparing ids. A 410 that cannot be followed
        (no `Link`, a chain longer than three) raises `ContactMerged`, an `UpstreamNotFound`."""
        return self._on_contact("GET", contact_id, None, email)

    def update_contact(self, contact_id: str, fields: ContactBody, *, email: str | None = None) -> Contact:
        """`PUT /contacts/{id}` with only the given fields, on the survivor if it was merged away."""
        return self._on_contact("PUT", contact_id, _writable(fields), email)

    def _on_contact(
        self, method: str, contact_id: str, body: ContactBody | None, email: str | None
    ) -> Contact:
        current = contact_id
        for _ in range(MAX_MERGE_HOPS + 1):
            response = self.http.request(method, f"/contacts/{quote(current, safe='')}", json=body)
            if response.is_success:
                return Contact.model_validate(_json(response))
            survivor: str | None = None
            if response.status_code == 410:
                survivor = _survivor(response)
            elif response.status_code == 404 and email:
                survivor = self._user_with_email(email)
                email = None  # one search per call: a second 404 is a real one
            if not survivor or survivor == current:
                raise self._error(response)
            current = survivor
        raise ContactMerged(
            f"contact {contact_id}: merge chain longer than {MAX_MERGE_HOPS}",
            survivor_id=current,
            service=SERVICE,
            status=410,
            code="contact_merged",
        )

    def _user_with_email(self, email: str) -> str | None:
        # Merges keep the user (reference §3.8), so the survivor is the user with that email.
        query: CompoundQuery = {
            "operator": "AND",
            "value": [
                {"field": "email", "operator": "=", "value": email},
                {"field": "role", "operator": "=", "value": "user"},
            ],
        }
        page = self.search_page(query, per_page=1)
        return page.contacts[0].id if page.contacts else None

    # -- search -------------------------------------------------------------------------------
    def search_page(
        self,
        query: SearchQuery,
        *,
        starting_after: str | None = None,
        per_page: int = SEARCH_PAGE_SIZE,
        sort: Mapping[str, str] | None = None,
    ) -> SearchPage:
        """One page of `POST /contacts/search`. The cursor goes in the body: in the query string
        Intercom silently serves the first page again (reference §9.1)."""
        pagination: _Pagination = {"per_page": per_page}
        if starting_after:
            pagination["starting_after"] = starting_after
        body: _SearchRequest = {"query": query.copy(), "pagination": pagination}
        if sort:
            body["sort"] = dict(sort)
        result = _SearchResult.model_validate(self._call("POST", "/contacts/search", json=body))
        following = result.pages.next if result.pages else None
        cursor = following.starting_after if isinstance(following, _Next) else None
        return SearchPage(
            contacts=result.data or [],
            next_cursor=str(cursor) if cursor else None,
            total_count=result.total_count,
        )

    # -- companies ----------------------------------------------------------------------------
    def contact_companies(self, contact_id: str) -> list[Company]:
        """Every company the contact belongs to, as whole company objects (`GET
        /contacts/{id}/companies`, page after page: the contact object names only ten of them)."""
        path = f"/contacts/{quote(contact_id, safe='')}/companies"
        companies: list[Company] = []
        for page in self._pages(path):
            companies += _CompanyList.model_validate(page).data or []
        return companies

    def get_company(self, company_id: str) -> Company:
        return Company.model_validate(self._call("GET", f"/companies/{quote(company_id, safe='')}"))

    def company_contact_ids(self, company_id: str) -> Iterator[list[str]]:
        """The ids of a company's contacts, a page at a time (`GET /companies/{id}/contacts`)."""
        for page in self._pages(f"/companies/{quote(company_id, safe='')}/contacts"):
            yield [c.id for c in _ContactList.model_validate(page).data or []]

    def _pages(self, path: str) -> Iterator[Any]:
        params: dict[str, Any] = {"per_page": COMPANY_PAGE_SIZE}
        seen: list[dict[str, Any]] = []
        while True:
            body = self._call("GET", path, params=params)
            yield body
            pages = body.get("pages") if isinstance(body, dict) else None
            following = _following(_Pages.model_validate(pages) if isinstance(pages, dict) else None)
            if following is None or following in seen:  # the end, or a server repeating itself
                return
            seen.append(following)
            params = following

    # -- segments and data attributes ---------------------------------------------------------
    def list_segments(self, *, include_count: bool = False) -> list[Segment]:
        params = {"include_count": "true"} if include_count else None
        return _Segments.model_validate(self._call("GET", "/segments", params=params)).segments or []

    def list_data_attributes(self, model: str = "contact") -> list[DataAttribute]:
        listing = self._call("GET", "/data_attributes", params={"model": model})
        return _DataAttributes.model_validate(listing).data or []

    def create_data_attribute(
        self,
        name: str,
        data_type: str,
        *,
        model: str = "contact",
        description: str | None = None,
        options: list[str] | None = None,
    ) -> DataAttribute:
        """Create a custom attribute, or return the one that exists: Intercom's "You already have ..."
        400 is success (reference §5.2). A name taken on another model stays `Invalid`."""
        body: _NewDataAttribute = {"name": name, "model": model, "data_type": data_type}
        if description is not None:
            body["description"] = description
        if options is not None:
            body["options"] = [{"value": option} for option in options]
        try:
            return DataAttribute.model_validate(self._call("POST", "/data_attributes", json=body))
        except Invalid as exc:
            if _ALREADY_HAVE not in exc.message:
                raise
            for existing in self.list_data_attributes(model):
                if str(existing.name or "").lower() == name.lower():
                    return existing
            raise
