"""The Intercom client against the Intercom emulator over real HTTP, its budget in moto.

Every request the client sends on a path Intercom's OpenAPI 2.16 file declares is validated against
that file as it is sent, so the client and the emulator cannot drift from Intercom together.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest

from local.emulators.intercom import create_app
from local.emulators.server import RunningServer, serve_in_thread
from local.provision import Provisioned
from shared.clients.errors import AlreadyExists, ConnectionRevoked, CredentialsRejected, UpstreamNotFound
from shared.clients.http import RetryPolicy
from shared.clients.intercom import (
    IntercomClient,
    Workspace,
    api_base_for_region,
    exchange_code,
    regional_api_bases,
)
from shared.clients.rate_budget import intercom_budget

CLIENT_ID = "client-test"
CLIENT_SECRET = "secret-test"
REDIRECT = "https://product.example/oauth/callback"
WS = "wsclient1"
SPEC_FILE = Path(__file__).parents[1] / "emulators" / "specs" / "intercom-openapi-2.16.yaml"
SPEC_SERVER = "https://api.intercom.io"


# --- Intercom's own description ------------------------------------------------------------------


@functools.cache
def _spec() -> tuple[OpenAPI, list[tuple[re.Pattern[str], str]]]:
    """Loaded once per module (878 KB). The file fails strict spec validation, so that is off;
    requests are still validated against it."""
    raw = yaml.load(SPEC_FILE.read_text(), Loader=yaml.CSafeLoader)
    templates = [
        (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(t)) + "$"), t) for t in raw["paths"]
    ]
    # Literal paths first: /contacts/search is not /contacts/{contact_id}.
    templates.sort(key=lambda item: item[1].count("{"))
    return OpenAPI.from_dict(raw, config=Config(spec_validator_cls=None)), templates


VALIDATED: set[tuple[str, str]] = set()


def validate_against_spec(request: httpx.Request) -> None:
    """An httpx request hook: every request on a declared path must be one Intercom accepts."""
    api, templates = _spec()
    template = next((t for pattern, t in templates if pattern.match(request.url.path)), None)
    if template is None:
        return  # OAuth and /auth/uninstall are not in the file (reference §1.3, §1.5)
    api.validate_request(
        MockRequest(
            SPEC_SERVER,
            request.method.lower(),
            request.url.path,
            args=dict(request.url.params),
            headers=dict(request.headers),
            data=request.content or None,
            content_type=(request.headers.get("content-type") or "application/json").split(";")[0],
        )
    )
    VALIDATED.add((request.method, template))


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = create_app({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT]})
    running = serve_in_thread(app)
    yield running
    running.stop()
    app.state.emulator.close()


@pytest.fixture(scope="module")
def checked_http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, event_hooks={"request": [validate_against_spec]}) as client:
        yield client


@pytest.fixture
def control(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.post("/_emulator/reset").raise_for_status()
        client.post("/_emulator/workspaces", json={"id_code": WS, "name": "Client", "region": "EU"})
        yield client


def authorization_code(control: httpx.Client) -> str:
    r = control.get(
        "/oauth", params={"client_id": CLIENT_ID, "state": "s", "workspace": WS, "auto_approve": "true"}
    )
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]


def connect(control: httpx.Client, http: httpx.Client, **kwargs: Any) -> IntercomClient:
    token = exchange_code(
        authorization_code(control),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=str(control.base_url),
        client=http,
    )
    return IntercomClient(token, base_url=str(control.base_url), client=http, **kwargs)


@pytest.fixture
def intercom(control: httpx.Client, checked_http: httpx.Client, aws: Provisioned) -> IntercomClient:
    return connect(control, checked_http, budget=intercom_budget(aws.refs["MainTable"], WS))


def stats(control: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = control.get("/_emulator/stats").json()
    return result


def seed(control: httpx.Client, *contacts: dict[str, Any]) -> list[str]:
    ids: list[str] = control.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"contacts": list(contacts)}
    ).json()["ids"]
    return ids


# --- the connection ------------------------------------------------------------------------------


def test_connecting_finds_the_workspace_and_its_region(
    control: httpx.Client, intercom: IntercomClient
) -> None:
    assert intercom.me() == Workspace(
        id=WS, region="EU", name="Client", admin_id=intercom.me().admin_id, admin_email_verified=True
    )
    # Locally every region is served by the emulator; in AWS the EU workspace goes to the EU host.
    assert api_base_for_region("EU", regional_api_bases(str(control.base_url))) == str(control.base_url)
    assert api_base_for_region("EU") == "https://api.eu.intercom.io"


def test_a_code_without_its_trailing_equals_is_refused(
    control: httpx.Client, checked_http: httpx.Client
) -> None:
    code = authorization_code(control)
    assert code.endswith("="), "the emulator issues codes that end in '=' as Intercom's may"
    with pytest.raises(CredentialsRejected) as info:
        exchange_code(
            code.rstrip("="),
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            base_url=str(control.base_url),
            client=checked_http,
        )
    assert not isinstance(info.value, ConnectionRevoked)


def test_a_revoked_token_surfaces_as_connection_revoked(
    control: httpx.Client, intercom: IntercomClient
) -> None:
    intercom.me()
    control.post(f"/_emulator/workspaces/{WS}/uninstall").raise_for_status()
    with pytest.raises(ConnectionRevoked):
        intercom.me()
    with pytest.raises(ConnectionRevoked):
        intercom.create_contact({"email": "x@example.com", "role": "user"})


def test_uninstalling_revokes_our_own_token(intercom: IntercomClient) -> None:
    intercom.uninstall()
    with pytest.raises(ConnectionRevoked):
        intercom.list_segments()


# --- contacts ------------------------------------------------------------------------------------


def test_contacts_create_get_update(intercom: IntercomClient) -> None:
    intercom.create_data_attribute("referral_code", "string")
    created = intercom.create_contact(
        {
            "role": "user",
            "email": "jane@example.com",
            "name": "Jane",
            "custom_attributes": {"referral_code": "J1"},
        }
    )
    assert created.external_id is None
    assert intercom.get_contact(created.id).email == "jane@example.com"
    updated = intercom.update_contact(created.id, {"custom_attributes": {"referral_code": "J2"}})
    assert updated.custom_attributes == {"referral_code": "J2"} and updated.name == "Jane"


def test_a_409_names_the_existing_contact(control: httpx.Client, intercom: IntercomClient) -> None:
    (existing,) = seed(control, {"role": "user", "email": "dup@example.com", "name": "Existing"})
    with pytest.raises(AlreadyExists) as info:
        intercom.create_contact({"role": "user", "email": "dup@example.com"})
    assert info.value.existing_id == existing


def test_a_merged_away_contact_is_followed_to_its_survivor(
    control: httpx.Client, intercom: IntercomClient
) -> None:
    lead, user = seed(
        control,
        {"role": "lead", "email": "same@example.com", "name": "Lead"},
        {"role": "user", "email": "same@example.com", "name": "User"},
    )
    merged = control.post("/_emulator/contacts/merge", json={"from": lead, "into": user})
    assert merged.json()["id"] == user
    # 2.16 answers 410 `contact_merged` for the merged lead, its `Link` naming the user: the client
    # follows it, no email needed (before 2.16 a 404 left only a search by email).
    assert intercom.get_contact(lead).id == user
    renamed = intercom.update_contact(lead, {"name": "Renamed"})
    assert renamed.id == user and renamed.name == "Renamed"
    assert intercom.get_contact(user).name == "Renamed"
    assert intercom.get_contact(lead, email="same@example.com").id == user


def test_a_contact_merged_into_one_since_deleted_is_not_found(
    control: httpx.Client, intercom: IntercomClient
) -> None:
    lead, user = seed(
        control,
        {"role": "lead", "email": "gone@example.com", "name": "Lead"},
        {"role": "user", "email": "gone@example.com", "name": "User"},
    )
    control.post("/_emulator/contacts/merge", json={"from": lead, "into": user}).raise_for_status()
    intercom.http.request("DELETE", f"/contacts/{user}").raise_for_status()
    # Nowhere left to follow: a plain `UpstreamNotFound` (the email search finds no user either).
    with pytest.raises(UpstreamNotFound):
        intercom.get_contact(lead, email="gone@example.com")
    with pytest.raises(UpstreamNotFound):
        intercom.update_contact(lead, {"name": "x"})


def test_a_segment_pages_by_checkpointable_cursor(control: httpx.Client, intercom: IntercomClient) -> None:
    segment = control.post(
        f"/_emulator/workspaces/{WS}/segments", json={"name": "VIP", "person_type": "user"}
    ).json()["id"]
    control.post(
        f"/_emulator/workspaces/{WS}/contacts",
        json={"generate": {"count": 160, "role": "user", "segment_ids": [segment]}},
    )
    segments = intercom.list_segments(include_count=True)
    assert [(s.id, s.name, s.count) for s in segments] == [(segment, "VIP", 160)]
    query = {"field": "segment_id", "operator": "=", "value": segment}
    first = intercom.search_page(query)
    assert len(first.contacts) == 150 and first.total_count == 160 and first.next_cursor
    # A worker that checkpointed the cursor resumes where it left off.
    rest = intercom.search_page(query, starting_after=first.next_cursor)
    assert len(rest.contacts) == 10 and rest.next_cursor is None
    assert not {c.id for c in rest.contacts} & {c.id for c in first.contacts}


# --- data attributes -----------------------------------------------------------------------------


def test_creating_a_data_attribute_twice_is_success(intercom: IntercomClient) -> None:
    first = intercom.create_data_attribute("referrals_count", "integer", description="How many")
    again = intercom.create_data_attribute("referrals_count", "integer")
    assert again.id == first.id and again.full_name == "custom_attributes.referrals_count"
    tier = intercom.create_data_attribute("reward_tier", "options", options=["gold", "silver"])
    assert tier.name == "reward_tier"
    names = {a.name for a in intercom.list_data_attributes()}
    assert {"referrals_count", "reward_tier", "email"} <= names
    # A standard attribute's name is "already there" too.
    assert intercom.create_data_attribute("email", "string").custom is False


def test_company_data_attributes_are_their_own_list(intercom: IntercomClient) -> None:
    arr = intercom.create_data_attribute("arr", "float", model="company")
    assert intercom.create_data_attribute("arr", "float", model="company").id == arr.id
    company = {a.full_name: a for a in intercom.list_data_attributes("company")}
    assert company["custom_attributes.arr"].data_type == "float"
    assert company["monthly_spend"].view()["api_writable"] is True
    assert "custom_attributes.arr" not in {a.full_name for a in intercom.list_data_attributes("contact")}


# --- companies -----------------------------------------------------------------------------------


def test_a_contacts_companies_and_a_companys_contacts_are_read_page_after_page(
    control: httpx.Client, intercom: IntercomClient
) -> None:
    control.post(
        f"/_emulator/workspaces/{WS}/data_attributes",
        json={"name": "stage", "data_type": "string", "model": "company"},
    ).raise_for_status()
    companies = [
        control.post(
            f"/_emulator/workspaces/{WS}/companies",
            json={"company_id": f"co-{n}", "name": f"Co {n}", "custom_attributes": {"stage": f"s{n}"}},
        ).json()["id"]
        for n in range(55)
    ]
    people = control.post(
        f"/_emulator/workspaces/{WS}/contacts", json={"generate": {"count": 120, "role": "user"}}
    ).json()["ids"]
    for company_id in companies:
        control.post(f"/_emulator/contacts/{people[0]}/companies", json={"id": company_id}).raise_for_status()
    for person in people[1:]:
        control.post(f"/_emulator/contacts/{person}/companies", json={"id": companies[0]}).raise_for_status()
    before = stats(control)["requests"]
    # 55 companies at 50 a page: two requests, following the `next` link.
    read = intercom.contact_companies(people[0])
    assert [c.id for c in read] == companies
    assert read[7].custom_attributes == {"stage": "s7"} and read[7].company_id == "co-7"
    assert intercom.get_company(companies[3]).name == "Co 3"
    # 120 contacts at 50 a page: three requests, by cursor.
    pages = list(intercom.company_contact_ids(companies[0]))
    assert [len(p) for p in pages] == [50, 50, 20] and [i for p in pages for i in p] == people
    after = stats(control)["requests"]
    assert after["GET /contacts/{id}/companies"] - before.get("GET /contacts/{id}/companies", 0) == 2
    assert after["GET /companies/{id}/contacts"] - before.get("GET /companies/{id}/contacts", 0) == 3
    with pytest.raises(UpstreamNotFound):
        intercom.get_company("000000000000000000000000")


# --- rate limits ---------------------------------------------------------------------------------


def test_a_429_storm_is_ridden_out_with_the_waits_the_headers_give(
    control: httpx.Client, checked_http: httpx.Client
) -> None:
    slept: list[float] = []
    intercom = connect(
        control,
        checked_http,
        policy=RetryPolicy(max_attempts=40, max_total_wait_s=1000),
        sleep=slept.append,  # the injected 429s do not depend on time
    )
    control.put("/_emulator/config", json={"faults": {"error_rate_429": 0.6}}).raise_for_status()
    try:
        for n in range(15):
            intercom.create_contact({"role": "user", "email": f"storm{n}@example.com"})
    finally:
        control.put("/_emulator/config", json={"faults": {}})
    assert len(intercom.search_page({"field": "role", "operator": "=", "value": "user"}).contacts) == 15
    injected = stats(control)["responses_429"]
    assert injected > 0 and len(slept) == injected
    # Each wait is the `Retry-After: 1` the emulator sent, plus at most a quarter second of jitter.
    assert all(1.0 <= s <= 1.25 for s in slept)


def test_every_declared_path_the_client_uses_was_validated() -> None:
    """Runs last in this module: the hook saw each of the client's declared operations."""
    expected = {
        ("GET", "/me"),
        ("POST", "/contacts"),
        ("GET", "/contacts/{contact_id}"),
        ("PUT", "/contacts/{contact_id}"),
        ("POST", "/contacts/search"),
        ("GET", "/segments"),
        ("GET", "/data_attributes"),
        ("POST", "/data_attributes"),
        ("GET", "/contacts/{contact_id}/companies"),
        ("GET", "/companies/{company_id}"),
        ("GET", "/companies/{company_id}/contacts"),
    }
    assert expected <= VALIDATED
