"""The Intercom emulator driven over real HTTP, as the product and the acceptance tests drive it.

Answers on every path Intercom's OpenAPI 2.16 file declares are validated against that file
(request and response); statuses it omits (404, 409, 429, ...) are checked against its `error`
schema. OAuth and uninstall, absent from the file, are checked against reference §1.3 and §1.5.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.emulators.intercom import IntercomEmulator, create_app
from local.emulators.intercom.state import Contact, contact_json, render_contact
from local.emulators.server import RunningServer, serve_in_thread

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-value"
REDIRECT = "https://product.example/oauth/intercom/callback"
OTHER_REDIRECT = "https://product.example/other"
WS = "wsalpha1"
SPEC_SERVER = "https://api.intercom.io"
SPEC_FILE = Path(__file__).parent / "specs" / "intercom-openapi-2.16.yaml"
RETRY_DELAY_S = 0.3
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


# --- Intercom's own description ------------------------------------------------------------------


@functools.cache
def _spec() -> tuple[OpenAPI, dict[str, Any]]:
    """Loaded once: the file is 878 KB. It fails strict spec validation (an undeclared path
    parameter under /export/reporting_data), so spec validation is off; requests and responses
    are still validated."""
    raw = yaml.load(
        Path(os.environ.get("INTERCOM_OPENAPI_SPEC", SPEC_FILE)).read_text(), Loader=yaml.CSafeLoader
    )
    return OpenAPI.from_dict(raw, config=Config(spec_validator_cls=None)), raw


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    _, raw = _spec()
    out = []
    for template in raw["paths"]:
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        out.append((re.compile(f"^{pattern}$"), template))
    # Literal paths before templated ones: /contacts/search is not /contacts/{contact_id}.
    out.sort(key=lambda item: item[1].count("{"))
    return out


def spec_template(path: str) -> str | None:
    return next((template for pattern, template in _templates() if pattern.match(path)), None)


VALIDATED: set[tuple[str, str]] = set()


def checked(response: httpx.Response, *, request_valid: bool = True) -> httpx.Response:
    """Validate one exchange against Intercom's OpenAPI 2.16 description."""
    api, raw = _spec()
    req = response.request
    template = spec_template(req.url.path)
    assert template is not None, f"{req.url.path} is not a path Intercom declares"
    method = req.method.lower()
    mock_request = MockRequest(
        SPEC_SERVER,
        method,
        req.url.path,
        args=dict(req.url.params),
        headers=dict(req.headers),
        data=req.content or None,
        content_type=(req.headers.get("content-type") or "application/json").split(";")[0],
    )
    if request_valid:
        api.validate_request(mock_request)
    declared = raw["paths"][template][method]["responses"]
    if str(response.status_code) in declared:
        mock_response = MockResponse(
            response.content,
            response.status_code,
            headers=dict(response.headers),
            content_type=response.headers["content-type"].split(";")[0],
        )
        api.validate_response(mock_request, mock_response)
    else:
        assert response.status_code >= 400, f"{response.status_code} on {template} is not declared"
        OAS30Validator(raw["components"]["schemas"]["error"]).validate(response.json())
        assert response.json()["type"] == "error.list"
    VALIDATED.add((req.method, template))
    return response


# --- fixtures ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The product's webhook endpoints, recording what arrives; can be told to fail deliveries."""

    server: RunningServer
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def hooks_url(self) -> str:
        return f"{self.server.base_url}/hooks"

    @property
    def uninstall_url(self) -> str:
        return f"{self.server.base_url}/uninstall"

    def clear(self) -> None:
        with self.cond:
            self.deliveries.clear()
            self.fail_next = 0

    def wait_for(self, count: int, path: str = "/hooks", timeout: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                matching = [d for d in self.deliveries if d.path == path]
                if len(matching) >= count or time.monotonic() > deadline:
                    return matching
                self.cond.wait(0.05)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    async def record(request: Request) -> Response:
        rec = holder[0]
        body = await request.body()
        with rec.cond:
            rec.deliveries.append(Delivery(request.url.path, dict(request.headers), body, time.monotonic()))
            fail = rec.fail_next > 0
            rec.fail_next -= 1 if fail else 0
            rec.cond.notify_all()
        return Response(status_code=500 if fail else 200)

    app = Starlette(
        routes=[Route("/hooks", record, methods=["POST"]), Route("/uninstall", record, methods=["POST"])]
    )
    server = serve_in_thread(app)
    holder.append(Receiver(server))
    yield holder[0]
    server.stop()


@pytest.fixture(scope="module")
def intercom_emu_server(receiver: Receiver) -> Iterator[RunningServer]:
    app = create_app(
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT, OTHER_REDIRECT],
            "webhook_url": receiver.hooks_url,
            "uninstall_url": receiver.uninstall_url,
            "webhook_retry_delay_s": RETRY_DELAY_S,
        }
    )
    server = serve_in_thread(app)
    yield server
    server.stop()
    app.state.emulator.close()


@pytest.fixture
def intercom_emu(intercom_emu_server: RunningServer, receiver: Receiver) -> Iterator[httpx.Client]:
    """A control client on a freshly reset emulator with one workspace, `WS`."""
    with httpx.Client(base_url=intercom_emu_server.base_url, timeout=30) as client:
        client.post("/_emulator/reset").raise_for_status()
        receiver.clear()
        assert (
            client.post(
                "/_emulator/workspaces", json={"id_code": WS, "name": "Alpha", "region": "US"}
            ).status_code
            == 201
        )
        yield client


def connect(control: httpx.Client, workspace: str = WS) -> httpx.Client:
    """OAuth through the scripted path; returns an API client holding the workspace's token."""
    r = control.get(
        "/oauth",
        params={"client_id": CLIENT_ID, "state": "st", "workspace": workspace, "auto_approve": "true"},
    )
    assert r.status_code == 302
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    token = control.post(
        "/auth/eagle/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code}
    ).json()["access_token"]
    return httpx.Client(
        base_url=str(control.base_url),
        headers={"Authorization": f"Bearer {token}", "Intercom-Version": "2.16"},
        timeout=30,
    )


@pytest.fixture
def api(intercom_emu: httpx.Client) -> Iterator[httpx.Client]:
    with connect(intercom_emu) as client:
        yield client


def define(control: httpx.Client, name: str, data_type: str = "string", **extra: Any) -> dict[str, Any]:
    r = control.post(
        f"/_emulator/workspaces/{WS}/data_attributes", json={"name": name, "data_type": data_type, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()


def search(
    api: httpx.Client, query: dict[str, Any], per_page: int = 150, cursor: str | None = None
) -> dict[str, Any]:
    pagination: dict[str, Any] = {"per_page": per_page}
    if cursor:
        pagination["starting_after"] = cursor
    r = api.post("/contacts/search", json={"query": query, "pagination": pagination})
    assert r.status_code == 200, r.text
    return r.json()


def search_ids(api: httpx.Client, query: dict[str, Any]) -> set[str]:
    return {c["id"] for c in search(api, query)["data"]}


def requests_count(control: httpx.Client, key: str) -> int:
    return int(control.get("/_emulator/stats").json()["requests"].get(key, 0))


def stats_when(control: httpx.Client, key: str, value: int, timeout: float = 3.0) -> dict[str, Any]:
    """The stats once `key` reaches `value`: a delivery is counted after its answer arrives."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = control.get("/_emulator/stats").json()
        if stats[key] >= value or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def hub_signature_ok(delivery: Delivery) -> bool:
    header = delivery.headers.get("x-hub-signature", "")
    expected = hmac.new(CLIENT_SECRET.encode(), delivery.body, hashlib.sha1).hexdigest()
    return header.startswith("sha1=") and hmac.compare_digest(header[5:], expected)


# --- Intercom's OpenAPI description --------------------------------------------------------------


def test_every_declared_path_answers_as_the_openapi_file_describes(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    define(intercom_emu, "plan")
    seg = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "Trials", "person_type": "user"}
    ).json()
    intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"generate": {"count": 3, "role": "user", "segment_ids": [seg["id"]]}},
    )

    me = checked(api.get("/me")).json()
    assert me["app"]["id_code"] == WS and me["app"]["region"] == "US" and me["email_verified"] is True

    user = checked(
        api.post(
            "/contacts",
            json={
                "role": "user",
                "email": "jane@example.com",
                "external_id": "ext-1",
                "name": "Jane",
                "custom_attributes": {"plan": "trial"},
            },
        )
    ).json()
    assert (
        OBJECT_ID.match(user["id"])
        and user["workspace_id"] == WS
        and user["custom_attributes"] == {"plan": "trial"}
    )
    lead = checked(api.post("/contacts", json={"role": "lead", "email": "lead@example.com"})).json()
    checked(api.get(f"/contacts/{user['id']}"))
    checked(
        api.put(f"/contacts/{user['id']}", json={"name": "Jane Doe", "custom_attributes": {"plan": "paid"}})
    )
    checked(api.get("/contacts/find_by_external_id/ext-1"))
    checked(api.get("/contacts", params={"per_page": 2}))
    checked(
        api.post(
            "/contacts/search",
            json={
                "query": {"field": "role", "operator": "=", "value": "user"},
                "pagination": {"per_page": 2},
            },
        )
    )
    checked(
        api.post(
            "/contacts/search",
            json={
                "query": {
                    "operator": "AND",
                    "value": [
                        {
                            "operator": "OR",
                            "value": [
                                {"field": "role", "operator": "=", "value": "user"},
                                {"field": "role", "operator": "=", "value": "lead"},
                            ],
                        },
                        {
                            "operator": "OR",
                            "value": [{"field": "email", "operator": "~", "value": "example"}],
                        },
                    ],
                }
            },
        )
    )
    checked(api.post("/contacts/merge", json={"from": lead["id"], "into": user["id"]}))
    gone = checked(api.get(f"/contacts/{lead['id']}"))  # 410, declared with its `Link` header in 2.16
    assert gone.status_code == 410 and gone.headers["link"] == f'</contacts/{user["id"]}>; rel="canonical"'
    assert checked(api.put(f"/contacts/{lead['id']}", json={"name": "x"})).status_code == 410
    checked(api.get(f"/contacts/{user['id']}/segments"))
    checked(api.get("/segments", params={"include_count": "true"}))
    checked(api.get(f"/segments/{seg['id']}"))
    checked(api.get("/data_attributes", params={"model": "contact"}))
    checked(
        api.post(
            "/data_attributes", json={"name": "referral_link", "model": "contact", "data_type": "string"}
        )
    )
    checked(
        api.post(
            "/data_attributes",
            json={
                "name": "tier",
                "model": "contact",
                "data_type": "options",
                "options": [{"value": "gold"}, {"value": "silver"}],
            },
        )
    )
    checked(
        api.post(
            "/data_attributes", json={"name": "referral_link", "model": "contact", "data_type": "string"}
        )
    )  # 400
    checked(api.delete(f"/contacts/{user['id']}"))
    # Statuses the file omits are checked against its `error` schema.
    checked(api.get(f"/contacts/{user['id']}"))  # 404
    first = checked(api.post("/contacts", json={"role": "user", "email": "dup@example.com"})).json()
    checked(api.post("/contacts", json={"role": "user", "email": "dup@example.com"}))  # 409
    assert first["id"]
    # 401 is declared on every path: a bad token, for each path the emulator serves.
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": "Bearer nope"}) as bad:
        for method, path in [
            ("GET", "/me"),
            ("GET", "/contacts"),
            ("POST", "/contacts"),
            ("GET", f"/contacts/{first['id']}"),
            ("PUT", f"/contacts/{first['id']}"),
            ("DELETE", f"/contacts/{first['id']}"),
            ("POST", "/contacts/search"),
            ("POST", "/contacts/merge"),
            ("GET", "/segments"),
            ("GET", "/data_attributes"),
            ("POST", "/data_attributes"),
        ]:
            body = (
                {"query": {"field": "role", "operator": "=", "value": "user"}}
                if path.endswith("search")
                else None
            )
            if path.endswith("merge"):
                body = {"from": "a", "into": "b"}
            if method == "POST" and path == "/data_attributes":
                body = {"name": "x", "model": "contact", "data_type": "string"}
            r = checked(bad.request(method, path, json=body), request_valid=False)
            assert r.status_code == 401 and r.json()["errors"][0]["code"] == "unauthorized"
            assert "x-ratelimit-limit" not in r.headers


def company(control: httpx.Client, company_id: str, **fields: Any) -> str:
    """A company seeded in `WS` (no notification); returns its Intercom id."""
    r = control.post(
        f"/_emulator/workspaces/{WS}/companies",
        json={"company_id": company_id, "name": fields.pop("name", company_id.title()), **fields},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_company_paths_answer_as_the_openapi_file_describes(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    # The file types a company's custom attributes as strings (its own example holds numbers and
    # booleans), so the values validated here are strings.
    define(intercom_emu, "tier", model="company")
    [contact_id] = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"contacts": [{"role": "user", "email": "c@example.com"}]},
    ).json()["ids"]
    created = checked(
        api.post(
            "/companies",
            json={
                "company_id": "acme-1",
                "name": "Acme",
                "plan": "Pro",
                "size": 40,
                "website": "https://acme.example",
                "industry": "Anvils",
                "monthly_spend": 155,
                "custom_attributes": {"tier": "gold"},
            },
        )
    ).json()
    assert OBJECT_ID.match(created["id"]) and created["app_id"] == WS
    assert created["monthly_spend"] == 155 and created["plan"]["name"] == "Pro"
    updated = checked(
        api.post("/companies", json={"company_id": "acme-1", "custom_attributes": {"tier": "x"}})
    )
    assert updated.json()["id"] == created["id"] and updated.json()["custom_attributes"] == {"tier": "x"}
    assert checked(api.post("/companies", json={"name": "No id"})).status_code == 400
    checked(api.get(f"/companies/{created['id']}"))
    assert checked(api.get("/companies/000000000000000000000000")).status_code == 404
    attached = checked(api.post(f"/contacts/{contact_id}/companies", json={"id": created["id"]})).json()
    assert attached["user_count"] == 1
    missing = checked(api.post(f"/contacts/{contact_id}/companies", json={}), request_valid=False)
    assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == "parameter_not_found"
    assert checked(api.post(f"/contacts/{contact_id}/companies", json={"id": "nope"})).status_code == 404
    listed = checked(api.get(f"/contacts/{contact_id}/companies")).json()
    assert [c["id"] for c in listed["data"]] == [created["id"]] and listed["total_count"] == 1
    members = checked(api.get(f"/companies/{created['id']}/contacts", params={"per_page": 5})).json()
    assert [c["id"] for c in members["data"]] == [contact_id]
    assert checked(api.get(f"/contacts/{contact_id}")).json()["companies"]["data"][0]["id"] == created["id"]
    checked(api.get("/data_attributes", params={"model": "company"}))
    checked(api.post("/data_attributes", json={"name": "arr", "model": "company", "data_type": "float"}))
    detached = checked(api.delete(f"/contacts/{contact_id}/companies/{created['id']}")).json()
    assert detached["user_count"] == 0
    assert checked(api.get(f"/contacts/{contact_id}/companies")).json()["data"] == []
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": "Bearer nope"}) as bad:
        for method, path, body in [
            ("POST", "/companies", {"company_id": "x"}),
            ("GET", f"/companies/{created['id']}", None),
            ("GET", f"/companies/{created['id']}/contacts", None),
            ("GET", f"/contacts/{contact_id}/companies", None),
            ("POST", f"/contacts/{contact_id}/companies", {"id": created["id"]}),
            ("DELETE", f"/contacts/{contact_id}/companies/{created['id']}", None),
        ]:
            r = checked(bad.request(method, path, json=body), request_valid=False)
            assert r.status_code == 401 and "x-ratelimit-limit" not in r.headers


def test_the_emulators_declared_paths_are_all_covered_by_validation(
    intercom_emu_server: RunningServer,
) -> None:
    # Runs after the test above (file order): every route the emulator serves that Intercom's
    # file declares has had a request and answer validated.
    app = create_app()
    served = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            if method == "HEAD" or path.startswith("/_emulator"):
                continue
            sample = re.sub(r"\{[^}]+\}", "x", path)
            template = spec_template(sample)
            if template is not None:
                served.add((method, template))
    assert served, "no declared path found"
    assert served <= VALIDATED, f"never validated: {sorted(served - VALIDATED)}"


def test_fast_serialiser_matches_the_contact_object() -> None:
    c = Contact(1, "6762f0d01bb69f9f2193bb7d", role="lead", email='a"b@x.io', name="Zoë", now=1_700_000_000)
    c.custom_attributes = {"plan": "trial", "count": 3, "vip": True}
    c.avatar = "https://x/a.png"
    assert json.loads(contact_json(c, json.dumps("ws"))) == render_contact(c, "ws")
    c.company_ids = tuple(f"{n:024x}" for n in range(12))  # more than the object shows
    assert json.loads(contact_json(c, json.dumps("ws"))) == render_contact(c, "ws")


# --- OAuth (reference §1.2, §1.3) ----------------------------------------------------------------


def test_consent_page_approve_and_deny(intercom_emu: httpx.Client) -> None:
    r = intercom_emu.get("/oauth", params={"client_id": CLIENT_ID, "state": "xyz", "workspace": WS})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Authorize access" in r.text and 'action="/oauth/authorize"' in r.text and "deny" in r.text.lower()
    form = {"client_id": CLIENT_ID, "state": "xyz", "workspace": WS, "redirect_uri": REDIRECT}
    approved = intercom_emu.post("/oauth/authorize", data={**form, "decision": "approve"})
    assert approved.status_code == 302
    target = urlsplit(approved.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    params = parse_qs(target.query)
    assert params["state"] == ["xyz"] and params["code"][0].endswith("=")

    denied = intercom_emu.post("/oauth/authorize", data={**form, "decision": "deny"})
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]
    assert parse_qs(urlsplit(denied.headers["location"]).query)["state"] == ["xyz"]
    assert "code" not in parse_qs(urlsplit(denied.headers["location"]).query)


def test_redirect_goes_to_given_or_first_registered_uri(intercom_emu: httpx.Client) -> None:
    base = {"client_id": CLIENT_ID, "state": "s", "workspace": WS, "auto_approve": "true"}
    assert intercom_emu.get("/oauth", params=base).headers["location"].startswith(REDIRECT + "?")
    assert (
        intercom_emu.get("/oauth", params={**base, "redirect_uri": OTHER_REDIRECT})
        .headers["location"]
        .startswith(OTHER_REDIRECT + "?")
    )
    assert (
        intercom_emu.get("/oauth", params={**base, "redirect_uri": "https://evil.example/cb"}).status_code
        == 400
    )
    assert intercom_emu.get("/oauth", params={**base, "client_id": "unknown"}).status_code == 400


def test_codes_are_single_use_and_need_their_trailing_equals(intercom_emu: httpx.Client) -> None:
    def code() -> str:
        r = intercom_emu.get(
            "/oauth", params={"client_id": CLIENT_ID, "state": "s", "workspace": WS, "auto_approve": "true"}
        )
        return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]

    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    stripped = code()
    r = intercom_emu.post("/auth/eagle/token", data={**creds, "code": stripped.rstrip("=")})
    assert r.status_code == 401 and r.json()["errors"][0]["message"] == "Unauthorized Code"

    good = code()
    r = intercom_emu.post("/auth/eagle/token", json={**creds, "code": good})  # JSON works as well as a form
    assert r.status_code == 200
    body = r.json()
    # Reference §1.3: token_type, token, and access_token duplicating it; no refresh token or expiry.
    assert body["token_type"] == "Bearer" and body["token"] == body["access_token"]
    assert set(body) == {"token_type", "token", "access_token"}
    again = intercom_emu.post("/auth/eagle/token", data={**creds, "code": good})
    assert again.status_code == 401
    assert (
        intercom_emu.post(
            "/auth/eagle/token", data={**creds, "client_secret": "wrong", "code": code()}
        ).status_code
        == 401
    )


# --- uninstall and revocation (reference §1.5) ---------------------------------------------------


def test_workspace_uninstall_revokes_tokens_and_posts_a_signed_notice(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    second = connect(intercom_emu)
    assert api.get("/me").status_code == 200 and second.get("/me").status_code == 200
    assert intercom_emu.post(f"/_emulator/workspaces/{WS}/uninstall").status_code == 200
    for client in (api, second):
        r = checked(client.get("/me"), request_valid=False)
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "unauthorized"
        assert "x-ratelimit-remaining" not in r.headers
    (notice,) = receiver.wait_for(1, "/uninstall")
    assert json.loads(notice.body) == {"app_id": WS}
    expected = hmac.new(CLIENT_SECRET.encode(), notice.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(notice.headers["x-body-signature"], expected)
    # Connecting again issues a working token.
    with connect(intercom_emu) as fresh:
        assert fresh.get("/me").status_code == 200
    second.close()


def test_auth_uninstall_revokes_the_token(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    r = api.post("/auth/uninstall")
    assert r.status_code == 200
    assert api.get("/me").status_code == 401
    assert receiver.wait_for(1, "/uninstall")[0].json() == {"app_id": WS}


# --- contacts ------------------------------------------------------------------------------------


def test_conflicts_name_the_existing_contact(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    user = api.post("/contacts", json={"role": "user", "email": "Ann@Example.com"}).json()
    r = checked(api.post("/contacts", json={"role": "user", "email": "ann@example.com"}))
    assert r.status_code == 409
    error = r.json()["errors"][0]
    assert error["code"] == "conflict" and f"id={user['id']}" in error["message"]
    assert r.headers["x-ratelimit-limit"]  # an authenticated answer, even when it is an error

    # Leads may share an email, with each other and with a user.
    lead1 = api.post("/contacts", json={"role": "lead", "email": "ann@example.com"})
    lead2 = api.post("/contacts", json={"role": "lead", "email": "ann@example.com"})
    assert lead1.status_code == lead2.status_code == 200

    # external_id is unique across roles.
    lead = api.post("/contacts", json={"role": "lead", "email": "x@example.com", "external_id": "E1"}).json()
    r = api.post("/contacts", json={"role": "user", "email": "y@example.com", "external_id": "E1"})
    assert r.status_code == 409 and f"id={lead['id']}" in r.json()["errors"][0]["message"]
    # Updating into someone else's identity conflicts too.
    other = api.post("/contacts", json={"role": "user", "email": "z@example.com"}).json()
    r = api.put(f"/contacts/{other['id']}", json={"email": "ann@example.com"})
    assert r.status_code == 409 and f"id={user['id']}" in r.json()["errors"][0]["message"]


def test_custom_attributes_must_be_defined_and_typed(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    define(intercom_emu, "referrals_count", "integer")
    r = checked(
        api.post("/contacts", json={"role": "lead", "email": "a@x.io", "custom_attributes": {"nope": "1"}})
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "parameter_invalid"
    assert "nope" in r.json()["errors"][0]["message"]
    r = api.post(
        "/contacts", json={"role": "lead", "email": "a@x.io", "custom_attributes": {"referrals_count": "3"}}
    )
    assert r.status_code == 400
    c = api.post(
        "/contacts", json={"role": "lead", "email": "a@x.io", "custom_attributes": {"referrals_count": 3}}
    ).json()
    updated = api.put(f"/contacts/{c['id']}", json={"name": "A"}).json()
    assert updated["custom_attributes"] == {"referrals_count": 3}, "an update keeps keys it does not name"


def test_a_list_attribute_takes_only_its_options(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    """Intercom has checked list values on contact writes since April 2026 (Intercom-OpenAPI #457): a
    value a person can fix (add the option, or write another) is refused with a 400 naming it."""
    define(intercom_emu, "tier", "options", options=[{"value": "Gold"}, {"value": "Silver"}])
    lead = {"role": "lead", "email": "t@x.io"}
    r = checked(api.post("/contacts", json={**lead, "custom_attributes": {"tier": "Bronze"}}))
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["code"] == "parameter_invalid"
    assert "tier" in error["message"] and "Bronze" in error["message"]
    assert intercom_emu.get(f"/_emulator/workspaces/{WS}/contacts").json()["data"] == [], "nothing made"
    c = api.post("/contacts", json={**lead, "custom_attributes": {"tier": " gold"}})
    assert c.status_code == 200, "an option apart from case and spaces"
    path = f"/contacts/{c.json()['id']}"
    assert api.put(path, json={"custom_attributes": {"tier": "Tin"}}).status_code == 400
    assert api.get(path).json()["custom_attributes"] == {"tier": " gold"}


def test_error_rate_400_refuses_requests_in_intercoms_shape(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_400": 1.0}})
    r = checked(api.post("/contacts", json={"role": "lead", "email": "f@x.io"}))
    assert r.status_code == 400
    assert r.json()["type"] == "error.list" and r.json()["errors"][0]["code"] == "parameter_invalid"
    assert intercom_emu.get(f"/_emulator/workspaces/{WS}/contacts").json()["data"] == [], "refused before"
    assert intercom_emu.get("/_emulator/config").status_code == 200, "control calls are never faulted"
    intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_400": 0.5}})
    statuses = [api.get("/me").status_code for _ in range(200)]
    assert set(statuses) == {200, 400} and 50 < statuses.count(400) < 150, "about that share"
    intercom_emu.put("/_emulator/config", json={"faults": {}})
    assert api.post("/contacts", json={"role": "lead", "email": "f@x.io"}).status_code == 200
    assert intercom_emu.get("/_emulator/stats").json()["requests"]["GET /me"] == 200


def test_delete_answers_deleted_and_forgets_the_contact(api: httpx.Client) -> None:
    c = api.post("/contacts", json={"role": "user", "email": "gone@example.com", "external_id": "g1"}).json()
    r = checked(api.delete(f"/contacts/{c['id']}"))
    assert r.json()["id"] == c["id"] and r.json()["deleted"] is True and r.json()["object"] == "contact"
    assert api.get(f"/contacts/{c['id']}").status_code == 404
    assert (
        api.post(
            "/contacts", json={"role": "user", "email": "gone@example.com", "external_id": "g1"}
        ).status_code
        == 200
    )


def test_merge_moves_the_lead_into_the_user(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    define(intercom_emu, "source")
    seeded = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={
            "contacts": [
                {
                    "role": "lead",
                    "email": "l@example.com",
                    "name": "Lead",
                    "custom_attributes": {"source": "ads"},
                },
                {"role": "user", "email": "u@example.com", "name": "User"},
                {"role": "user", "email": "v@example.com", "name": "Other"},
            ]
        },
    ).json()["ids"]
    lead_id, user_id, other_id = seeded
    merged = api.post("/contacts/merge", json={"from": lead_id, "into": user_id})
    assert merged.status_code == 200
    assert merged.json()["id"] == user_id and merged.json()["custom_attributes"] == {"source": "ads"}
    assert merged.json()["name"] == "User"
    # 2.16: the merged-away id answers 410 `contact_merged`, its `Link` naming the survivor.
    for gone in (api.get(f"/contacts/{lead_id}"), api.put(f"/contacts/{lead_id}", json={"name": "x"})):
        assert gone.status_code == 410, gone.text
        assert gone.json()["errors"][0]["code"] == "contact_merged"
        assert gone.headers["link"] == f'</contacts/{user_id}>; rel="canonical"'
    assert search_ids(api, {"field": "role", "operator": "=", "value": "lead"}) == set()
    note = receiver.wait_for(1)[-1]
    assert note.json()["topic"] == "contact.merged" and hub_signature_ok(note)
    assert note.json()["data"]["item"]["id"] == user_id
    assert note.json()["data"]["item"]["merged_from"] == {"type": "contact", "id": lead_id}
    r = api.post("/contacts/merge", json={"from": other_id, "into": user_id})
    assert r.status_code == 400, "only a lead can be merged into a user"
    r = intercom_emu.post("/_emulator/contacts/merge", json={"from": lead_id, "into": user_id})
    assert r.status_code == 404


# --- search --------------------------------------------------------------------------------------


def test_cursor_pages_20000_contacts_in_exactly_ceil_n_over_150_requests(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    seeded = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 20_000, "role": "user"}}
    ).json()["ids"]
    intercom_emu.post(f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 7, "role": "lead"}})
    before = requests_count(intercom_emu, "POST /contacts/search")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = search(api, {"field": "role", "operator": "=", "value": "user"}, cursor=cursor)
        pages += 1
        assert page["total_count"] == 20_000 and page["pages"]["page"] == pages
        assert page["pages"]["total_pages"] == math.ceil(20_000 / 150)
        seen.extend(c["id"] for c in page["data"])
        if "next" not in page["pages"]:
            break
        cursor = page["pages"]["next"]["starting_after"]
    assert pages == math.ceil(20_000 / 150) == 134
    assert requests_count(intercom_emu, "POST /contacts/search") - before == 134
    assert len(page["data"]) == 20_000 - 133 * 150
    assert seen == seeded, "every contact once, in a stable order"


def test_next_only_when_a_non_empty_page_follows(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 300, "role": "lead"}}
    )
    first = search(api, {"field": "role", "operator": "=", "value": "lead"})
    second = search(
        api,
        {"field": "role", "operator": "=", "value": "lead"},
        cursor=first["pages"]["next"]["starting_after"],
    )
    assert len(second["data"]) == 150 and "next" not in second["pages"]
    empty = search(api, {"field": "role", "operator": "=", "value": "user"})
    assert empty["total_count"] == 0 and empty["data"] == [] and "next" not in empty["pages"]
    default = api.post(
        "/contacts/search", json={"query": {"field": "role", "operator": "=", "value": "lead"}}
    ).json()
    assert len(default["data"]) == 50, "the default page is 50"
    capped = search(api, {"field": "role", "operator": "=", "value": "lead"}, per_page=500)
    assert capped["pages"]["per_page"] == 150
    bad = api.post(
        "/contacts/search",
        json={
            "query": {"field": "role", "operator": "=", "value": "lead"},
            "pagination": {"starting_after": "garbage"},
        },
    )
    assert bad.status_code == 400


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_date_search_matches_by_calendar_day(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    rows = {
        "before": _ts("2024-03-09T12:00:00"),
        "morning": _ts("2024-03-10T09:00:00"),
        "night": _ts("2024-03-10T23:59:00"),
        "after": _ts("2024-03-11T00:30:00"),
    }
    ids = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={
            "contacts": [
                {
                    "role": "user",
                    "email": f"{k}@example.com",
                    "name": k,
                    "created_at": v - 86_400 * 30,
                    "updated_at": v,
                }
                for k, v in rows.items()
            ]
        },
    ).json()["ids"]
    by_name = dict(zip(rows, ids, strict=True))
    at = rows["morning"]  # 09:00 on the 10th
    # `>` starts at the next day, not at the instant given.
    assert search_ids(api, {"field": "updated_at", "operator": ">", "value": at}) == {by_name["after"]}
    assert search_ids(api, {"field": "updated_at", "operator": "=", "value": at}) == {
        by_name["morning"],
        by_name["night"],
    }
    assert search_ids(api, {"field": "updated_at", "operator": "<", "value": rows["night"]}) == {
        by_name["before"]
    }
    # The Airbyte pattern: (> X OR = X) AND < end.
    overlap = {
        "operator": "AND",
        "value": [
            {
                "operator": "OR",
                "value": [
                    {"field": "updated_at", "operator": ">", "value": at},
                    {"field": "updated_at", "operator": "=", "value": at},
                ],
            },
            {"operator": "OR", "value": [{"field": "updated_at", "operator": "<", "value": rows["after"]}]},
        ],
    }
    assert search_ids(api, overlap) == {by_name["morning"], by_name["night"]}
    for op in ("!=", ">=", "<=", "IN"):
        value: Any = [at] if op == "IN" else at
        r = api.post(
            "/contacts/search", json={"query": {"field": "updated_at", "operator": op, "value": value}}
        )
        assert r.status_code == 400, op


def test_date_days_follow_the_workspace_timezone(intercom_emu: httpx.Client) -> None:
    intercom_emu.post(
        "/_emulator/workspaces",
        json={"id_code": "wsny", "name": "NY", "region": "US", "timezone": "America/New_York"},
    )
    # 03:00 UTC on the 11th is still the 10th in New York.
    ids = intercom_emu.post(
        "/_emulator/workspaces/wsny/contacts",
        json={
            "contacts": [
                {"role": "user", "email": "ny@example.com", "updated_at": _ts("2024-03-11T03:00:00")}
            ]
        },
    ).json()["ids"]
    with connect(intercom_emu, "wsny") as ny:
        assert search_ids(
            ny, {"field": "updated_at", "operator": "=", "value": _ts("2024-03-10T15:00:00")}
        ) == set(ids)


def test_or_in_nin_contains_custom_attributes_and_segments(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    define(intercom_emu, "plan")
    define(intercom_emu, "seats", "integer")
    seg = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "VIP", "person_type": "user"}
    ).json()["id"]
    ids = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={
            "contacts": [
                {
                    "role": "user",
                    "email": "a@acme.io",
                    "name": "Ann",
                    "custom_attributes": {"plan": "paid", "seats": 5},
                    "segment_ids": [seg],
                },
                {
                    "role": "user",
                    "email": "b@acme.io",
                    "name": "Bob",
                    "custom_attributes": {"plan": "trial", "seats": 1},
                },
                {"role": "lead", "email": "c@other.io", "name": "Cat", "external_id": "C"},
            ]
        },
    ).json()["ids"]
    a, b, c = ids
    q_or = {
        "operator": "OR",
        "value": [
            {"field": "custom_attributes.plan", "operator": "=", "value": "paid"},
            {"field": "role", "operator": "=", "value": "lead"},
        ],
    }
    assert search_ids(api, q_or) == {a, c}
    assert search_ids(api, {"field": "email", "operator": "IN", "value": ["A@acme.io", "c@other.io"]}) == {
        a,
        c,
    }
    assert search_ids(api, {"field": "email", "operator": "NIN", "value": ["a@acme.io"]}) == {b, c}
    assert search_ids(api, {"field": "email", "operator": "~", "value": "ACME"}) == {a, b}
    assert search_ids(api, {"field": "name", "operator": "!=", "value": "Bob"}) == {a, c}
    assert search_ids(api, {"field": "custom_attributes.seats", "operator": ">", "value": 2}) == {a}
    assert search_ids(api, {"field": "segment_id", "operator": "=", "value": seg}) == {a}
    assert search_ids(api, {"field": "external_id", "operator": "=", "value": "C"}) == {c}
    assert search_ids(api, {"field": "id", "operator": "=", "value": b}) == {b}
    both = {
        "operator": "AND",
        "value": [
            {"field": "role", "operator": "=", "value": "user"},
            {"field": "custom_attributes.plan", "operator": "!=", "value": "paid"},
        ],
    }
    assert search_ids(api, both) == {b}
    r = api.post(
        "/contacts/search",
        json={"query": {"field": "custom_attributes.unknown", "operator": "=", "value": "x"}},
    )
    assert r.status_code == 400
    # Results follow writes: an update moves a contact into a cached query's results.
    assert search_ids(api, q_or) == {a, c}
    api.put(f"/contacts/{b}", json={"custom_attributes": {"plan": "paid"}})
    assert search_ids(api, q_or) == {a, b, c}


def test_search_index_delay_hides_new_and_updated_contacts(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    intercom_emu.put("/_emulator/config", json={"search_index_delay_ms": 400})
    c = api.post("/contacts", json={"role": "user", "email": "new@example.com"}).json()
    query = {"field": "email", "operator": "=", "value": "new@example.com"}
    assert search_ids(api, query) == set()
    assert api.get(f"/contacts/{c['id']}").status_code == 200, "GET sees it at once"
    # The search-then-create race of reference §9.2: not found, yet a duplicate.
    r = api.post("/contacts", json={"role": "user", "email": "new@example.com"})
    assert r.status_code == 409 and c["id"] in r.json()["errors"][0]["message"]
    time.sleep(0.5)
    assert search_ids(api, query) == {c["id"]}
    assert search_ids(api, {"field": "role", "operator": "=", "value": "user"}) == {c["id"]}
    api.put(f"/contacts/{c['id']}", json={"name": "Renamed"})
    assert search_ids(api, {"field": "role", "operator": "=", "value": "user"}) == set()
    time.sleep(0.5)
    assert search_ids(api, {"field": "role", "operator": "=", "value": "user"}) == {c["id"]}


# --- segments and data attributes ----------------------------------------------------------------


def test_segments_with_counts(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    users = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "Users", "person_type": "user"}
    ).json()["id"]
    leads = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "Leads", "person_type": "lead"}
    ).json()["id"]
    intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"generate": {"count": 4, "role": "user", "segment_ids": [users]}},
    )
    listed = api.get("/segments", params={"include_count": "true"}).json()
    assert listed["type"] == "segment.list"
    counts = {s["id"]: (s["count"], s["person_type"]) for s in listed["segments"]}
    assert counts == {users: (4, "user"), leads: (0, "contact")}
    assert all("count" not in s for s in api.get("/segments").json()["segments"])


def test_data_attributes_standard_and_custom_with_intercoms_errors(api: httpx.Client) -> None:
    listed = api.get("/data_attributes", params={"model": "contact"}).json()["data"]
    standard = {a["name"]: a for a in listed if not a["custom"]}
    assert {"name", "email", "phone", "role", "external_id"} <= set(standard)
    assert standard["email"]["api_writable"] is True and standard["created_at"]["api_writable"] is False
    created = api.post(
        "/data_attributes", json={"name": "referral_code", "model": "contact", "data_type": "string"}
    ).json()
    assert created["full_name"] == "custom_attributes.referral_code" and created["custom"] is True
    listed = api.get("/data_attributes", params={"model": "contact"}).json()["data"]
    assert any(a["full_name"] == "custom_attributes.referral_code" for a in listed)

    def error(body: dict[str, Any]) -> str:
        r = api.post("/data_attributes", json={"model": "contact", **body})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "parameter_invalid", r.text
        return str(r.json()["errors"][0]["message"])

    assert "You already have 'referral_code'" in error({"name": "referral_code", "data_type": "string"})
    assert "You already have 'email'" in error({"name": "email", "data_type": "string"})
    assert error({"name": "x1", "data_type": "text"}) == "Data Type isn't an option"
    assert "at least two" in error({"name": "tier", "data_type": "options", "options": [{"value": "gold"}]})
    assert "alphanumeric" in error({"name": "bad.name", "data_type": "string"})
    r = api.post("/data_attributes", json={"name": "y", "model": "nope", "data_type": "string"})
    assert r.status_code == 400


# --- notifications (reference §6.3, §6.4) --------------------------------------------------------


def test_api_writes_and_a_persons_edits_send_signed_notifications(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    define(intercom_emu, "customer_status")
    lead = api.post("/contacts", json={"role": "lead", "email": "n@example.com"}).json()
    api.put(f"/contacts/{lead['id']}", json={"custom_attributes": {"customer_status": "trial"}})
    api.put(
        f"/contacts/{lead['id']}", json={"custom_attributes": {"customer_status": "trial"}}
    )  # no change, no echo
    intercom_emu.patch(
        f"/_emulator/contacts/{lead['id']}", json={"custom_attributes": {"customer_status": "paid"}}
    )
    user = api.post("/contacts", json={"role": "user", "email": "m@example.com"}).json()
    deliveries = receiver.wait_for(4)
    # Deliveries run in parallel, so their order is not the order of the writes (nor is Intercom's).
    assert sorted(d.json()["topic"] for d in deliveries) == [
        "contact.lead.created",
        "contact.lead.updated",
        "contact.lead.updated",
        "contact.user.created",
    ]
    for d in deliveries:
        assert hub_signature_ok(d)
        env = d.json()
        assert env["type"] == "notification_event" and env["app_id"] == WS and env["id"].startswith("notif_")
        assert env["data"]["type"] == "notification_event_data" and env["data"]["item"]["type"] == "contact"
        assert isinstance(env["created_at"], int) and env["delivery_attempts"] == 1
    items = {
        (d.json()["topic"], json.dumps(d.json()["data"]["item"]["custom_attributes"])) for d in deliveries
    }
    assert ("contact.lead.updated", json.dumps({"customer_status": "paid"})) in items
    created = next(d for d in deliveries if d.json()["topic"] == "contact.user.created")
    assert created.json()["data"]["item"]["id"] == user["id"]
    tampered = Delivery(
        "/hooks", {"x-hub-signature": deliveries[0].headers["x-hub-signature"]}, deliveries[0].body + b" ", 0
    )
    assert not hub_signature_ok(tampered)
    # Seeded contacts are history: no notifications. A contact created after the seeding is the
    # marker: once every delivery the emulator started has been answered, the seeding sent nothing.
    finished = stats_when(intercom_emu, "webhooks_sent", 4)["webhooks_sent"]
    intercom_emu.post(f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 5, "role": "user"}})
    marker = api.post("/contacts", json={"role": "lead", "email": "marker@example.com"}).json()
    assert stats_when(intercom_emu, "webhooks_sent", finished + 1)["webhooks_sent"] == finished + 1
    arrived = receiver.wait_for(5)
    assert len(arrived) == 5 and arrived[-1].json()["data"]["item"]["id"] == marker["id"]


def test_failed_delivery_is_retried_once_after_a_delay(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.fail_next = 1
    api.post("/contacts", json={"role": "lead", "email": "r@example.com"})
    first, retry = receiver.wait_for(2)
    assert first.body == retry.body and retry.at - first.at >= RETRY_DELAY_S * 0.9
    assert hub_signature_ok(retry)
    stats = stats_when(intercom_emu, "webhooks_sent", 1)
    assert stats["webhooks_sent"] == 1 and stats["webhooks_failed"] == 0

    receiver.clear()
    receiver.fail_next = 5
    api.post("/contacts", json={"role": "lead", "email": "s@example.com"})
    assert len(receiver.wait_for(2)) == 2
    # The emulator counts a notification as failed once its last attempt has been answered: after
    # that, nothing more can arrive.
    assert stats_when(intercom_emu, "webhooks_failed", 1, timeout=RETRY_DELAY_S * 10)["webhooks_failed"] == 1
    assert len(receiver.wait_for(3, timeout=0.1)) == 2, "one retry only"


# --- rate limits, faults, config, stats ----------------------------------------------------------


def _early_in_window() -> None:
    if time.time() % 10 > 7:
        time.sleep(10 - time.time() % 10 + 0.05)


def test_429_exactly_at_the_configured_limit_with_headers(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    intercom_emu.put("/_emulator/config", json={"rate_limit_per_10s": 5})
    second_token = connect(intercom_emu)
    other_ws = intercom_emu.post(
        "/_emulator/workspaces", json={"id_code": "wsbeta", "name": "Beta", "region": "EU"}
    )
    assert other_ws.status_code == 201
    other = connect(intercom_emu, "wsbeta")
    _early_in_window()
    remaining = []
    for client in (api, second_token, api, second_token, api):  # tokens of one workspace share it
        r = client.get("/me")
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "5"
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    r = checked(api.get("/me"))
    assert r.status_code == 429
    assert r.json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "0"
    reset = int(r.headers["x-ratelimit-reset"])
    assert reset % 10 == 0 and 0 < reset - time.time() <= 10
    assert other.get("/me").status_code == 200, "another workspace has its own budget"
    assert intercom_emu.get("/_emulator/stats").json()["responses_429"] == 1
    assert intercom_emu.get("/_emulator/config").status_code == 200, "control calls are never limited"

    intercom_emu.put("/_emulator/config", json={"rate_limit_per_10s": None})
    assert all(api.get("/me").status_code == 200 for _ in range(10))
    second_token.close()
    other.close()


def test_config_merges_top_level_keys_and_replaces_faults(intercom_emu: httpx.Client) -> None:
    start = intercom_emu.get("/_emulator/config").json()
    assert start["rate_limit_per_10s"] == 1666 and start["search_index_delay_ms"] == 0
    assert start["client_id"] == CLIENT_ID and start["redirect_uris"] == [REDIRECT, OTHER_REDIRECT]
    assert set(start["faults"]) == {
        "error_rate_400",
        "error_rate_429",
        "error_rate_500",
        "latency_ms",
        "webhook_drop_rate",
        "webhook_duplicate_rate",
    }
    applied = intercom_emu.put(
        "/_emulator/config", json={"rate_limit_per_10s": 50, "faults": {"latency_ms": 5}}
    ).json()
    assert applied["rate_limit_per_10s"] == 50 and applied["client_id"] == CLIENT_ID
    assert applied["faults"]["latency_ms"] == 5 and applied["faults"]["error_rate_500"] == 0
    applied = intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_500": 0.5}}).json()
    assert applied["faults"]["latency_ms"] == 0, "faults is replaced whole"
    assert applied["rate_limit_per_10s"] == 50, "other keys stay"
    applied = intercom_emu.put("/_emulator/config", json={"faults": {}}).json()
    assert all(v == 0 for v in applied["faults"].values())
    assert intercom_emu.get("/_emulator/config").json() == applied


def test_faults_hit_real_paths_only_and_are_counted(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_500": 1.0}})
    r = checked(api.get("/me"))
    assert r.status_code == 500 and r.json()["type"] == "error.list"
    assert intercom_emu.get(f"/_emulator/workspaces/{WS}/contacts").status_code == 200
    intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_429": 1.0}})
    assert api.get("/me").status_code == 429
    intercom_emu.put("/_emulator/config", json={"faults": {"webhook_drop_rate": 1.0}})
    api.post("/contacts", json={"role": "lead", "email": "d@example.com"})
    # The dropped notification is counted as failed: only then is "nothing arrived" an answer.
    stats = stats_when(intercom_emu, "webhooks_failed", 1)
    assert receiver.wait_for(1, timeout=0.1) == []
    assert stats["requests"]["GET /me"] == 2 and stats["responses_429"] == 1 and stats["webhooks_failed"] == 1


def test_stats_count_every_real_request_by_route_template(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    c = api.post("/contacts", json={"role": "user", "email": "st@example.com"}).json()
    api.get(f"/contacts/{c['id']}")
    api.get("/contacts/000000000000000000000000")  # 404: still counted
    api.put(f"/contacts/{c['id']}", json={"name": "S"})
    with httpx.Client(base_url=str(api.base_url)) as anonymous:
        anonymous.get("/me")  # 401: still counted
        anonymous.get("/nowhere")
    intercom_emu.get("/_emulator/stats")
    requests = intercom_emu.get("/_emulator/stats").json()["requests"]
    assert requests["POST /contacts"] == 1
    assert requests["GET /contacts/{id}"] == 2
    assert requests["PUT /contacts/{id}"] == 1
    assert requests["GET /me"] == 1
    assert requests["GET /oauth"] == 1 and requests["POST /auth/eagle/token"] == 1
    assert not any("_emulator" in key for key in requests)


def test_unknown_paths_and_methods_answer_in_intercoms_envelope(api: httpx.Client) -> None:
    r = api.get("/nowhere")
    assert r.status_code == 404 and r.json()["type"] == "error.list"
    r = api.patch("/contacts/search")
    assert r.status_code == 405 and r.json()["type"] == "error.list"


# --- control surface -----------------------------------------------------------------------------


def test_generated_contacts_and_the_control_listing(intercom_emu: httpx.Client) -> None:
    seg = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "S", "person_type": "user"}
    ).json()["id"]
    first = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"generate": {"count": 30, "role": "user", "segment_ids": [seg]}},
    ).json()["ids"]
    second = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 30, "role": "lead"}}
    ).json()["ids"]
    data = intercom_emu.get(f"/_emulator/workspaces/{WS}/contacts").json()["data"]
    assert [c["id"] for c in data] == first + second
    assert len({c["email"] for c in data}) == 60
    for c in data:
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", c["name"]) and c["created_at"] == c["updated_at"]
        assert c["external_id"] is None and c["custom_attributes"] == {}
    assert data[0]["segment_ids"] == [seg] and data[-1]["segment_ids"] == []
    r = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"contacts": [{"role": "user", "email": data[0]["email"]}]},
    )
    assert r.status_code == 409


def test_person_edit_moves_updated_at_and_rejects_other_fields(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    cid = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"contacts": [{"role": "lead", "email": "p@example.com", "updated_at": 1_600_000_000}]},
    ).json()["ids"][0]
    edited = intercom_emu.patch(f"/_emulator/contacts/{cid}", json={"role": "user", "name": "Pat"}).json()
    assert edited["role"] == "user" and edited["name"] == "Pat" and edited["updated_at"] > 1_600_000_000
    assert intercom_emu.patch(f"/_emulator/contacts/{cid}", json={"phone": "1"}).status_code == 400
    assert intercom_emu.patch("/_emulator/contacts/nope", json={"name": "x"}).status_code == 404


# --- speed ---------------------------------------------------------------------------------------


def test_100k_contacts_seed_and_page(intercom_emu: httpx.Client, api: httpx.Client) -> None:
    # Speed is measured by `python -m bench.emulators` (timed tests fail on a busy machine).
    r = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 100_000, "role": "user"}}
    )
    assert r.status_code == 200 and len(r.json()["ids"]) == 100_000
    query = {"field": "role", "operator": "=", "value": "user"}
    cursor = None
    seen: set[str] = set()
    for _ in range(5):
        page = search(api, query, cursor=cursor)
        assert len(page["data"]) == 150 and page["total_count"] == 100_000
        seen.update(c["id"] for c in page["data"])
        cursor = page["pages"]["next"]["starting_after"]
    assert len(seen) == 750


def test_emulator_object_is_reachable_from_the_app() -> None:
    app = create_app({"rate_limit_per_10s": None})
    emu = app.state.emulator
    assert isinstance(emu, IntercomEmulator) and emu.config["rate_limit_per_10s"] is None
    emu.close()


# --- companies (contract §3, [v2]) ---------------------------------------------------------------


def test_contacts_belong_to_companies_and_both_lists_page(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    ids = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 5, "role": "user"}}
    ).json()["ids"]
    acme = company(intercom_emu, "acme", monthly_spend=300)
    others = [company(intercom_emu, f"co-{n}") for n in range(11)]
    for contact_id in ids:
        assert (
            intercom_emu.post(f"/_emulator/contacts/{contact_id}/companies", json={"id": acme}).status_code
            == 200
        )
    for other in others:
        api.post(f"/contacts/{ids[0]}/companies", json={"id": other}).raise_for_status()
    # The contact object names at most ten of its companies, and says there are more.
    listed = api.get(f"/contacts/{ids[0]}").json()["companies"]
    assert listed["total_count"] == 12 and listed["has_more"] is True and len(listed["data"]) == 10
    assert listed["data"][0] == {"id": acme, "type": "company", "url": f"/companies/{acme}"}
    # Its companies page by number, each page linking the next.
    first = api.get(f"/contacts/{ids[0]}/companies", params={"per_page": 5}).json()
    assert [c["id"] for c in first["data"]] == [acme, *others[:4]] and first["pages"]["total_pages"] == 3
    seen, following = [c["id"] for c in first["data"]], first["pages"]["next"]
    while following:
        page = api.get(following).json()
        seen += [c["id"] for c in page["data"]]
        following = page["pages"]["next"]
    assert seen == [acme, *others]
    # A company's contacts page by cursor; the company counts them.
    assert api.get(f"/companies/{acme}").json()["user_count"] == 5
    members: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"per_page": 2, **({"starting_after": cursor} if cursor else {})}
        page = api.get(f"/companies/{acme}/contacts", params=params).json()
        members += [c["id"] for c in page["data"]]
        assert page["total_count"] == 5
        if "next" not in page["pages"]:
            break
        cursor = page["pages"]["next"]["starting_after"]
    assert members == ids
    # A merged lead's companies go to the user; a deleted contact leaves its companies.
    lead = api.post("/contacts", json={"role": "lead", "email": "lead@example.com"}).json()["id"]
    api.post(f"/contacts/{lead}/companies", json={"id": others[0]}).raise_for_status()
    api.post("/contacts/merge", json={"from": lead, "into": ids[1]}).raise_for_status()
    assert {c["id"] for c in api.get(f"/contacts/{ids[1]}/companies").json()["data"]} == {acme, others[0]}
    api.delete(f"/contacts/{ids[2]}").raise_for_status()
    assert api.get(f"/companies/{acme}").json()["user_count"] == 4


def test_a_persons_company_edits_and_attachments_send_signed_notifications(
    intercom_emu: httpx.Client, api: httpx.Client, receiver: Receiver
) -> None:
    define(intercom_emu, "customer_status", model="company")
    acme = company(
        intercom_emu, "acme", custom_attributes={"customer_status": "trial"}, updated_at=1_600_000_000
    )
    [contact_id] = intercom_emu.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"contacts": [{"role": "lead", "email": "p@example.com"}]},
    ).json()["ids"]
    before = api.get(f"/companies/{acme}").json()
    edited = intercom_emu.patch(
        f"/_emulator/companies/{acme}",
        json={"custom_attributes": {"customer_status": "paid"}, "monthly_spend": 9.9},
    ).json()
    assert edited["custom_attributes"] == {"customer_status": "paid"} and edited["monthly_spend"] == 9
    # Seeded as last edited long ago; a person's edit is now.
    assert before["updated_at"] == 1_600_000_000 and edited["updated_at"] >= int(time.time()) - 5
    intercom_emu.patch(
        f"/_emulator/companies/{acme}", json={"monthly_spend": 9}
    )  # no change: no notification
    intercom_emu.post(f"/_emulator/contacts/{contact_id}/companies", json={"id": acme}).raise_for_status()
    intercom_emu.post(
        f"/_emulator/contacts/{contact_id}/companies", json={"id": acme}
    ).raise_for_status()  # again
    deliveries = receiver.wait_for(2)
    assert stats_when(intercom_emu, "webhooks_sent", 2)["webhooks_sent"] == 2
    assert len(receiver.wait_for(3, timeout=0.2)) == 2, "no notification for what did not change"
    by_topic = {d.json()["topic"]: d.json() for d in deliveries}
    assert set(by_topic) == {"company.updated", "company.contact.attached"}
    assert all(hub_signature_ok(d) for d in deliveries)
    updated = by_topic["company.updated"]
    assert updated["app_id"] == WS and updated["data"]["type"] == "notification_event_data"
    item = updated["data"]["item"]
    assert item["type"] == "company" and item["id"] == acme and item["company_id"] == "acme"
    assert (
        item["custom_attributes"] == {"customer_status": "paid"}
        and item["updated_at"] == edited["updated_at"]
    )
    attached = by_topic["company.contact.attached"]["data"]["item"]
    assert attached["company"]["id"] == acme and attached["contact"]["id"] == contact_id
    assert attached["contact"]["companies"]["data"][0]["id"] == acme
    # What a person may edit is limited; unknown companies are Intercom's 404.
    refused = intercom_emu.patch(f"/_emulator/companies/{acme}", json={"company_id": "other"})
    assert refused.status_code == 400
    assert intercom_emu.patch("/_emulator/companies/nope", json={"name": "x"}).status_code == 404
    assert (
        intercom_emu.post(f"/_emulator/contacts/{contact_id}/companies", json={"id": "nope"}).status_code
        == 404
    )


def test_company_notifications_carry_iso_times_when_configured(
    intercom_emu: httpx.Client, receiver: Receiver
) -> None:
    intercom_emu.put("/_emulator/config", json={"webhook_timestamp_format": "iso"})
    try:
        acme = company(intercom_emu, "acme")
        intercom_emu.patch(f"/_emulator/companies/{acme}", json={"name": "Acme Ltd"}).raise_for_status()
        [delivery] = receiver.wait_for(1)
    finally:
        intercom_emu.put("/_emulator/config", json={"webhook_timestamp_format": "unix"})
    item = delivery.json()["data"]["item"]
    assert item["name"] == "Acme Ltd" and datetime.fromisoformat(item["updated_at"]).tzinfo is not None


def test_company_data_attributes_are_listed_apart_from_contact_ones(api: httpx.Client) -> None:
    standard = {
        a["full_name"]: a for a in api.get("/data_attributes", params={"model": "company"}).json()["data"]
    }
    assert {"name", "company_id", "monthly_spend", "user_count", "plan.name", "size", "website"} <= set(
        standard
    )
    assert all(a["model"] == "company" and a["custom"] is False for a in standard.values())
    assert standard["monthly_spend"]["data_type"] == "float" and standard["monthly_spend"]["api_writable"]
    assert standard["user_count"]["api_writable"] is False
    created = api.post(
        "/data_attributes", json={"name": "arr", "model": "company", "data_type": "float"}
    ).json()
    assert created["model"] == "company" and created["full_name"] == "custom_attributes.arr"
    company_names = {
        a["full_name"] for a in api.get("/data_attributes", params={"model": "company"}).json()["data"]
    }
    contact_names = {
        a["full_name"] for a in api.get("/data_attributes", params={"model": "contact"}).json()["data"]
    }
    assert "custom_attributes.arr" in company_names and "custom_attributes.arr" not in contact_names
    taken = api.post("/data_attributes", json={"name": "arr", "model": "contact", "data_type": "float"})
    assert "You already have 'arr' in your company data" in taken.json()["errors"][0]["message"]
    # A company's custom attributes are the company model's, typed.
    wrong = api.post("/companies", json={"company_id": "x", "custom_attributes": {"arr": "lots"}})
    assert wrong.status_code == 400 and "must be of type float" in wrong.json()["errors"][0]["message"]


def test_company_paths_are_rate_limited_faulted_and_counted(
    intercom_emu: httpx.Client, api: httpx.Client
) -> None:
    acme = company(intercom_emu, "acme")
    r = api.get(f"/companies/{acme}")
    assert r.status_code == 200 and "x-ratelimit-remaining" in r.headers
    intercom_emu.put("/_emulator/config", json={"faults": {"error_rate_500": 1.0}})
    try:
        assert api.get(f"/companies/{acme}/contacts").status_code == 500
    finally:
        intercom_emu.put("/_emulator/config", json={"faults": {}})
    intercom_emu.put("/_emulator/config", json={"rate_limit_per_10s": 0})
    try:
        assert api.get(f"/companies/{acme}").status_code == 429
    finally:
        intercom_emu.put("/_emulator/config", json={"rate_limit_per_10s": 1666})
    requests = intercom_emu.get("/_emulator/stats").json()["requests"]
    assert requests["GET /companies/{id}"] == 2 and requests["GET /companies/{id}/contacts"] == 1
