"""Intercom's REST paths: bearer auth, per-workspace rate limits, contacts, search, merge, segments,
companies, data attributes, `/me` and `/auth/uninstall`."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.emulators.intercom.companies import Company, company_in, render_company
from local.emulators.intercom.core import UNLIMITED, api_error_response, error_response
from local.emulators.intercom.errors import ApiError, contact_merged, invalid
from local.emulators.intercom.state import (
    MAX_PER_PAGE,
    STANDARD_COMPANY_ATTRIBUTES,
    STANDARD_CONTACT_ATTRIBUTES,
    Contact,
    Workspace,
    contact_json,
    render_contact,
    render_standard_attribute,
)

if TYPE_CHECKING:
    from local.emulators.intercom.core import IntercomEmulator
    from local.emulators.intercom.search import Page

Handler = Callable[[Request, Workspace], Awaitable[Response]]

SEARCH_DEFAULT_PER_PAGE = 50  # spec: "The default is 50 results per page"
LIST_DEFAULT_PER_PAGE = 10  # Intercom-OpenAPI PR #639 (reference §3.6)
# A contact's companies and a company's contacts: the 2.16 file's examples page by 50.
COMPANY_LIST_DEFAULT_PER_PAGE = 50


async def object_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise invalid("The request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    return body


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _per_page(raw: Any, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise invalid("per_page must be a positive integer", "per_page")
    # Intercom serves at most 150 per page (reference §3.5, §3.6).
    return min(raw, MAX_PER_PAGE)


def list_response(page: Page, workspace_id: str) -> Response:
    """A `contact_list` page, serialised by hand: the hot path of paging 100,000 contacts."""
    ws_json = json.dumps(workspace_id)
    data = ",".join(contact_json(c, ws_json) for c in page.items)
    pages = json.dumps(page.pages(), separators=(",", ":"))
    body = f'{{"type":"list","data":[{data}],"total_count":{page.total},"pages":{pages}}}'
    return Response(body, media_type="application/json")


class RestApi:
    def __init__(self, emu: IntercomEmulator) -> None:
        self.emu = emu

    def authed(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Bearer auth, then the workspace's rate limit; every authenticated answer, including a
        429 and any error, carries the `X-RateLimit-*` headers (reference §7)."""

        async def endpoint(request: Request) -> Response:
            emu = self.emu
            token = _bearer(request)
            record = emu.state.tokens.get(token) if token else None
            ws = emu.state.workspaces.get(record.workspace_id) if record is not None else None
            if record is None or record.revoked or ws is None:
                # No rate-limit headers without valid credentials, as Intercom does.
                return error_response(401, "unauthorized", "Access Token Invalid")
            limit = emu.rate_limit()
            effective = UNLIMITED if limit is None else limit
            allowed, remaining, reset = emu.limiter.hit(ws.id_code, effective)
            headers = {
                "X-RateLimit-Limit": str(effective),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
            if not allowed:
                emu.stats.count_429()
                return error_response(
                    429,
                    "rate_limit_exceeded",
                    f"Exceeded rate limit of {effective} in 10_seconds",
                    headers=headers,
                )
            try:
                response = await handler(request, ws)
            except ApiError as exc:
                response = api_error_response(exc)
            response.headers.update(headers)
            return response

        return endpoint

    def _contact(self, ws: Workspace, request: Request) -> Contact:
        contact_id = request.path_params["id"]
        c = ws.contacts.get(contact_id)
        if c is None:
            # 2.16: "requesting it by its original ID will return HTTP 410 Gone" (reference §3.8).
            survivor = ws.canonical(contact_id)
            if survivor is not None:
                raise contact_merged(survivor)
            raise ApiError(404, "not_found", "User Not Found")
        return c

    # -- handlers --------------------------------------------------------------------------
    async def me(self, request: Request, ws: Workspace) -> Response:
        return JSONResponse(
            {
                "type": "admin",
                "id": ws.admin_id,
                "email": f"admin@{ws.id_code}.example.com",
                "name": f"{ws.name} Admin",
                "email_verified": True,
                "app": {
                    "type": "app",
                    "id_code": ws.id_code,
                    "name": ws.name,
                    "created_at": ws.created_at,
                    "secure": True,
                    "identity_verification": False,
                    "timezone": ws.timezone,
                    "region": ws.region,
                },
                "avatar": {"type": "avatar", "image_url": None},
                "has_inbox_seat": True,
            }
        )

    async def uninstall(self, request: Request, ws: Workspace) -> Response:
        # Uninstalls the app for the workspace: every token of it stops working (reference §1.5),
        # and the uninstall URL hears of it as for a removal "through any means".
        self.emu.uninstall(ws)
        return JSONResponse({})

    async def list_contacts(self, request: Request, ws: Workspace) -> Response:
        per_page = _per_page(request.query_params.get("per_page"), LIST_DEFAULT_PER_PAGE)
        page = ws.search.search(None, None, per_page, request.query_params.get("starting_after"), time.time())
        return list_response(page, ws.id_code)

    async def create_contact(self, request: Request, ws: Workspace) -> Response:
        c = self.emu.create_contact(ws, await object_body(request), via_api=True)
        return JSONResponse(render_contact(c, ws.id_code))

    async def get_contact(self, request: Request, ws: Workspace) -> Response:
        return JSONResponse(render_contact(self._contact(ws, request), ws.id_code))

    async def find_by_external_id(self, request: Request, ws: Workspace) -> Response:
        cid = ws.by_external_id.get(request.path_params["external_id"])
        c = ws.contacts.get(cid) if cid else None
        if c is None or c.role != "user":  # "only supports users and not leads"
            raise ApiError(404, "not_found", "User Not Found")
        return JSONResponse(render_contact(c, ws.id_code))

    async def update_contact(self, request: Request, ws: Workspace) -> Response:
        c = self._contact(ws, request)
        self.emu.update_contact(ws, c, await object_body(request))
        return JSONResponse(render_contact(c, ws.id_code))

    async def delete_contact(self, request: Request, ws: Workspace) -> Response:
        c = self._contact(ws, request)
        self.emu.delete_contact(ws, c)
        return JSONResponse(
            {
                "id": c.id,
                "external_id": c.external_id,
                "type": "contact",
                "object": "contact",
                "deleted": True,
            }
        )

    async def search(self, request: Request, ws: Workspace) -> Response:
        body = await object_body(request)
        if not isinstance(body.get("query"), dict):
            raise invalid("query is required and must be an object", "query")
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            raise invalid("pagination must be an object", "pagination")
        per_page = _per_page(pagination.get("per_page"), SEARCH_DEFAULT_PER_PAGE)
        cursor = pagination.get("starting_after")
        if cursor is not None and not isinstance(cursor, str):
            raise invalid("starting_after must be a string", "pagination.starting_after")
        page = ws.search.search(body["query"], body.get("sort"), per_page, cursor, time.time())
        return list_response(page, ws.id_code)

    async def merge(self, request: Request, ws: Workspace) -> Response:
        body = await object_body(request)
        c = self.emu.merge(ws, body.get("from"), body.get("into"))
        return JSONResponse(render_contact(c, ws.id_code))

    async def contact_segments(self, request: Request, ws: Workspace) -> Response:
        c = self._contact(ws, request)
        data = [ws.segments[s].render(include_count=False) for s in sorted(c.segment_ids) if s in ws.segments]
        return JSONResponse({"type": "list", "data": data})

    async def segments(self, request: Request, ws: Workspace) -> Response:
        include_count = request.query_params.get("include_count", "").lower() == "true"
        return JSONResponse(
            {
                "type": "segment.list",
                "segments": [s.render(include_count=include_count) for s in ws.segments.values()],
            }
        )

    async def segment(self, request: Request, ws: Workspace) -> Response:
        seg = ws.segments.get(request.path_params["id"])
        if seg is None:
            raise ApiError(404, "not_found", "Segment not found")
        return JSONResponse(seg.render(include_count=False))

    # -- companies ---------------------------------------------------------------------------
    async def upsert_company(self, request: Request, ws: Workspace) -> Response:
        company = self.emu.upsert_company(ws, await object_body(request), via_api=True)
        return JSONResponse(render_company(company, ws.id_code))

    async def get_company(self, request: Request, ws: Workspace) -> Response:
        return JSONResponse(render_company(company_in(ws, request.path_params["id"]), ws.id_code))

    async def company_contacts(self, request: Request, ws: Workspace) -> Response:
        """A company's contacts, a cursor page at a time (2.16 `company_attached_contacts`)."""
        company = company_in(ws, request.path_params["id"])
        params = request.query_params
        per_page = _per_page(params.get("per_page"), COMPANY_LIST_DEFAULT_PER_PAGE)
        start, page = _offset_cursor(params.get("starting_after"))
        members = list(company.contact_ids)
        chunk = members[start : start + per_page]
        ws_json = json.dumps(ws.id_code)
        data = ",".join(contact_json(ws.contacts[cid], ws_json) for cid in chunk)
        pages: dict[str, Any] = {
            "type": "pages",
            "page": page,
            "per_page": per_page,
            "total_pages": math.ceil(len(members) / per_page),
        }
        if start + per_page < len(members):
            cursor = _encode_offset(start + per_page, page + 1)
            pages["next"] = {"page": page + 1, "per_page": per_page, "starting_after": cursor}
        tail = json.dumps({"total_count": len(members), "pages": pages}, separators=(",", ":"))[1:]
        return Response(f'{{"type":"list","data":[{data}],{tail}', media_type="application/json")

    async def contact_companies(self, request: Request, ws: Workspace) -> Response:
        """A contact's companies, a numbered page at a time with a `next` link (2.16 `pages_link`)."""
        c = self._contact(ws, request)
        params = request.query_params
        per_page = _per_page(params.get("per_page"), COMPANY_LIST_DEFAULT_PER_PAGE)
        page = _page_number(params.get("page"))
        ids = c.company_ids
        chunk = ids[(page - 1) * per_page : page * per_page]
        total_pages = math.ceil(len(ids) / per_page)
        following = str(request.url.include_query_params(page=page + 1, per_page=per_page))
        return JSONResponse(
            {
                "type": "list",
                "data": [render_company(ws.companies[i], ws.id_code) for i in chunk],
                "pages": {
                    "type": "pages",
                    "next": following if page < total_pages else None,
                    "page": page,
                    "per_page": per_page,
                    "total_pages": total_pages,
                },
                "total_count": len(ids),
            }
        )

    def _company_from_body(self, ws: Workspace, body: dict[str, Any]) -> Company:
        company_id = body.get("id")
        if not isinstance(company_id, str) or not company_id:
            raise ApiError(400, "parameter_not_found", "company not specified")
        return company_in(ws, company_id)

    async def attach_company(self, request: Request, ws: Workspace) -> Response:
        c = self._contact(ws, request)
        company = self._company_from_body(ws, await object_body(request))
        self.emu.attach(ws, c, company)
        return JSONResponse(render_company(company, ws.id_code))

    async def detach_company(self, request: Request, ws: Workspace) -> Response:
        c = self._contact(ws, request)
        company = company_in(ws, request.path_params["company_id"])
        self.emu.detach(ws, c, company)
        return JSONResponse(render_company(company, ws.id_code))

    # -- data attributes ---------------------------------------------------------------------
    async def data_attributes(self, request: Request, ws: Workspace) -> Response:
        model = request.query_params.get("model")
        if model not in (None, "contact", "company", "conversation"):
            raise invalid("model must be one of contact, company, conversation", "model")
        data: list[dict[str, Any]] = []
        if model in (None, "contact"):
            data.extend(render_standard_attribute(*std) for std in STANDARD_CONTACT_ATTRIBUTES)
        if model in (None, "company"):
            data.extend(
                render_standard_attribute(
                    name, label, data_type, writable, model="company", description=description
                )
                for name, label, data_type, writable, description in STANDARD_COMPANY_ATTRIBUTES
            )
        data.extend(a.render() for a in ws.attributes.values() if model is None or a.model == model)
        return JSONResponse({"type": "list", "data": data})

    async def create_data_attribute(self, request: Request, ws: Workspace) -> Response:
        body = await object_body(request)
        attr = self.emu.state.create_attribute(ws, body)
        return JSONResponse(attr.render())


def _page_number(raw: str | None) -> int:
    if raw is None:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise invalid("page must be a positive integer", "page")
    return int(raw)


def _encode_offset(offset: int, page: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, page]).encode()).decode()


def _offset_cursor(cursor: str | None) -> tuple[int, int]:
    """(offset, page) of a company's contacts from a `starting_after` cursor; the start without one."""
    if not cursor:
        return 0, 1
    try:
        offset, page = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise invalid("starting_after is not a valid cursor", "starting_after") from exc
    if not isinstance(offset, int) or not isinstance(page, int) or offset < 0 or page < 1:
        raise invalid("starting_after is not a valid cursor", "starting_after")
    return offset, page


def api_routes(emu: IntercomEmulator) -> list[Route]:
    api = RestApi(emu)
    a = api.authed
    # The literal /contacts/... paths come before /contacts/{id} so that they win the match.
    return [
        Route("/me", a(api.me), methods=["GET"]),
        Route("/auth/uninstall", a(api.uninstall), methods=["POST"]),
        Route("/contacts", a(api.list_contacts), methods=["GET"]),
        Route("/contacts", a(api.create_contact), methods=["POST"]),
        Route("/contacts/search", a(api.search), methods=["POST"]),
        Route("/contacts/merge", a(api.merge), methods=["POST"]),
        Route("/contacts/find_by_external_id/{external_id}", a(api.find_by_external_id), methods=["GET"]),
        Route("/contacts/{id}", a(api.get_contact), methods=["GET"]),
        Route("/contacts/{id}", a(api.update_contact), methods=["PUT"]),
        Route("/contacts/{id}", a(api.delete_contact), methods=["DELETE"]),
        Route("/contacts/{id}/segments", a(api.contact_segments), methods=["GET"]),
        Route("/contacts/{id}/companies", a(api.contact_companies), methods=["GET"]),
        Route("/contacts/{id}/companies", a(api.attach_company), methods=["POST"]),
        Route("/contacts/{id}/companies/{company_id}", a(api.detach_company), methods=["DELETE"]),
        Route("/companies", a(api.upsert_company), methods=["POST"]),
        Route("/companies/{id}", a(api.get_company), methods=["GET"]),
        Route("/companies/{id}/contacts", a(api.company_contacts), methods=["GET"]),
        Route("/segments", a(api.segments), methods=["GET"]),
        Route("/segments/{id}", a(api.segment), methods=["GET"]),
        Route("/data_attributes", a(api.data_attributes), methods=["GET"]),
        Route("/data_attributes", a(api.create_data_attribute), methods=["POST"]),
    ]
