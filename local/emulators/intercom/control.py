"""The control surface under `/_emulator/` (contract §3): never rate-limited, faulted or counted."""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from local.emulators.intercom.api import object_body
from local.emulators.intercom.companies import PERSON_EDITABLE as COMPANY_EDITABLE
from local.emulators.intercom.companies import company_in, render_company
from local.emulators.intercom.core import api_error_response
from local.emulators.intercom.errors import ApiError, invalid
from local.emulators.intercom.state import (
    Contact,
    Segment,
    Workspace,
    contact_json,
    object_id,
    render_contact,
)

if TYPE_CHECKING:
    from local.emulators.intercom.core import IntercomEmulator

Endpoint = Callable[[Request], Awaitable[Response]]

# What a person can change on a contact in Intercom's UI through `PATCH /_emulator/contacts/{id}`.
PERSON_EDITABLE = ("custom_attributes", "role", "email", "name")


def _guard(handler: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return api_error_response(exc)

    return endpoint


class Control:
    def __init__(self, emu: IntercomEmulator) -> None:
        self.emu = emu

    def _workspace(self, request: Request) -> Workspace:
        return self.emu.state.workspace(request.path_params["id_code"])

    async def reset(self, request: Request) -> Response:
        self.emu.reset()
        return JSONResponse({"status": "reset"})

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self.emu.config)

    async def put_config(self, request: Request) -> Response:
        return JSONResponse(self.emu.update_config(await object_body(request)))

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.emu.stats.snapshot())

    async def list_workspaces(self, request: Request) -> Response:
        return JSONResponse({"data": [ws.render() for ws in self.emu.state.workspaces.values()]})

    async def create_workspace(self, request: Request) -> Response:
        body = await object_body(request)
        id_code = body.get("id_code") or "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)
        )
        name = body.get("name") or f"Workspace {id_code}"
        region = body.get("region") or "US"
        timezone = body.get("timezone") or "UTC"
        if not all(isinstance(v, str) for v in (id_code, name, region, timezone)):
            raise invalid("id_code, name, region and timezone must be strings")
        workspaces = self.emu.state.workspaces
        existing = workspaces.get(id_code)
        if existing is not None:
            # Re-declaring a workspace updates it, so a setup script can run twice.
            existing.name, existing.region = name, region
            if existing.timezone != timezone:
                existing.timezone = timezone
                existing.search.invalidate()
            return JSONResponse(existing.render())
        ws = Workspace(id_code, name, region, timezone)
        workspaces[id_code] = ws
        return JSONResponse(ws.render(), status_code=201)

    async def create_segment(self, request: Request) -> Response:
        ws = self._workspace(request)
        body = await object_body(request)
        name = body.get("name")
        person_type = body.get("person_type") or "user"
        if not isinstance(name, str) or not name:
            raise invalid("name is required", "name")
        # Intercom calls a lead segment's person_type "contact" (reference §4).
        person_type = {"lead": "contact"}.get(person_type, person_type)
        if person_type not in ("user", "contact"):
            raise invalid("person_type must be user, lead or contact", "person_type")
        seg = Segment(object_id(), name, person_type, int(time.time()))
        ws.segments[seg.id] = seg
        return JSONResponse(seg.render(include_count=True))

    async def create_data_attribute(self, request: Request) -> Response:
        ws = self._workspace(request)
        body = await object_body(request)
        attr = self.emu.state.create_attribute(ws, {"model": "contact", **body})
        return JSONResponse(attr.render())

    async def seed_contacts(self, request: Request) -> Response:
        ws = self._workspace(request)
        return JSONResponse({"ids": self.emu.seed_contacts(ws, await object_body(request))})

    async def list_contacts(self, request: Request) -> Response:
        ws = self._workspace(request)
        contacts = list(ws.contacts.values())
        ws_json = json.dumps(ws.id_code)

        def full(c: Contact) -> str:
            # The contact object with one more key: drop its closing brace and append.
            return f'{contact_json(c, ws_json)[:-1]},"segment_ids":{json.dumps(sorted(c.segment_ids))}}}'

        async def chunks() -> AsyncIterator[bytes]:
            # Streamed in slices: 100,000 contacts are some 200 MB of JSON.
            yield b'{"data":['
            for start in range(0, len(contacts), 2000):
                part = ",".join(full(c) for c in contacts[start : start + 2000])
                yield (("," if start else "") + part).encode()
            yield b"]}"

        return StreamingResponse(chunks(), media_type="application/json")

    async def person_edit(self, request: Request) -> Response:
        ws, c = self.emu.state.find_contact(request.path_params["id"])
        body = await object_body(request)
        unknown = sorted(set(body) - set(PERSON_EDITABLE))
        if unknown:
            raise invalid(f"Only {', '.join(PERSON_EDITABLE)} can be edited here, not {', '.join(unknown)}")
        self.emu.update_contact(ws, c, body)
        return JSONResponse(render_contact(c, ws.id_code))

    async def seed_company(self, request: Request) -> Response:
        """A company that exists in the workspace already (no notification); its `company_id` again
        updates it, so a setup script can run twice."""
        ws = self._workspace(request)
        body = await object_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("name is required", "name")
        company = self.emu.upsert_company(ws, body, via_api=False)
        return JSONResponse({"id": company.id})

    async def person_edit_company(self, request: Request) -> Response:
        ws, company = self.emu.state.find_company(request.path_params["id"])
        body = await object_body(request)
        unknown = sorted(set(body) - set(COMPANY_EDITABLE))
        if unknown:
            raise invalid(f"Only {', '.join(COMPANY_EDITABLE)} can be edited here, not {', '.join(unknown)}")
        self.emu.edit_company(ws, company, body)
        return JSONResponse(render_company(company, ws.id_code))

    async def person_attach(self, request: Request) -> Response:
        ws, c = self.emu.state.find_contact(request.path_params["id"])
        company_id = (await object_body(request)).get("id")
        if not isinstance(company_id, str) or not company_id:
            raise invalid("id (the company's) is required", "id")
        company = company_in(ws, company_id)
        self.emu.attach(ws, c, company)
        return JSONResponse(render_company(company, ws.id_code))

    async def merge(self, request: Request) -> Response:
        body = await object_body(request)
        ws, _ = self.emu.state.find_contact(str(body.get("into")))
        c = self.emu.merge(ws, body.get("from"), body.get("into"))
        return JSONResponse(render_contact(c, ws.id_code))

    async def uninstall(self, request: Request) -> Response:
        ws = self._workspace(request)
        self.emu.uninstall(ws)
        return JSONResponse({"app_id": ws.id_code})


def control_routes(emu: IntercomEmulator) -> list[Route]:
    c = Control(emu)
    g = _guard
    prefix = "/_emulator"
    return [
        Route(f"{prefix}/reset", g(c.reset), methods=["POST"]),
        Route(f"{prefix}/config", g(c.get_config), methods=["GET"]),
        Route(f"{prefix}/config", g(c.put_config), methods=["PUT"]),
        Route(f"{prefix}/stats", g(c.stats), methods=["GET"]),
        Route(f"{prefix}/workspaces", g(c.list_workspaces), methods=["GET"]),
        Route(f"{prefix}/workspaces", g(c.create_workspace), methods=["POST"]),
        Route(f"{prefix}/workspaces/{{id_code}}/segments", g(c.create_segment), methods=["POST"]),
        Route(
            f"{prefix}/workspaces/{{id_code}}/data_attributes", g(c.create_data_attribute), methods=["POST"]
        ),
        Route(f"{prefix}/workspaces/{{id_code}}/contacts", g(c.seed_contacts), methods=["POST"]),
        Route(f"{prefix}/workspaces/{{id_code}}/companies", g(c.seed_company), methods=["POST"]),
        Route(f"{prefix}/companies/{{id}}", g(c.person_edit_company), methods=["PATCH"]),
        Route(f"{prefix}/contacts/{{id}}/companies", g(c.person_attach), methods=["POST"]),
        Route(f"{prefix}/workspaces/{{id_code}}/contacts", g(c.list_contacts), methods=["GET"]),
        Route(f"{prefix}/workspaces/{{id_code}}/uninstall", g(c.uninstall), methods=["POST"]),
        Route(f"{prefix}/contacts/merge", g(c.merge), methods=["POST"]),
        Route(f"{prefix}/contacts/{{id}}", g(c.person_edit), methods=["PATCH"]),
    ]
