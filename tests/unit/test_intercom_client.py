"""The Intercom client's decisions on answers the emulator rarely gives: pure, with httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from shared.clients.errors import (
    AlreadyExists,
    ConnectionRevoked,
    ContactMerged,
    CredentialsRejected,
    Invalid,
    UpstreamNotFound,
)
from shared.clients.http import RetryPolicy
from shared.clients.intercom import (
    INTERCOM_VERSION,
    REGIONAL_API_BASES,
    IntercomClient,
    api_base_for_region,
    exchange_code,
    parse_timestamp,
    regional_api_bases,
)

Route = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"type": "error.list", "errors": [{"code": code, "message": message}]}
    return httpx.Response(status, json=body, headers=headers)


class Fake:
    """Answers by (method, path) with a list of responses used in turn; records requests."""

    def __init__(self, routes: dict[tuple[str, str], list[httpx.Response]]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return error(404, "not_found", "Resource Not Found")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def client(self, token: str = "tok") -> IntercomClient:
        return IntercomClient(
            token,
            base_url="https://api.test",
            client=httpx.Client(transport=httpx.MockTransport(self)),
            policy=RetryPolicy(max_attempts=2),
            sleep=lambda _: None,
        )

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(r.content) for r in self.seen if r.url.path == path and r.content]


def test_every_request_pins_the_version_and_carries_the_token() -> None:
    fake = Fake({("GET", "/me"): [httpx.Response(200, json={"id": "1", "app": {"id_code": "abc"}})]})
    client = fake.client("secret-token")
    workspace = client.me()
    assert workspace.id == "abc" and workspace.region == "US" and workspace.admin_id == "1"
    assert workspace.admin_email_verified is False
    request = fake.seen[0]
    assert request.headers["intercom-version"] == INTERCOM_VERSION == "2.16"
    assert request.headers["authorization"] == "Bearer secret-token"
    assert "secret-token" not in repr(client)


def test_me_without_a_workspace_id_is_invalid() -> None:
    fake = Fake({("GET", "/me"): [httpx.Response(200, json={"id": "1", "app": {}})]})
    with pytest.raises(Invalid):
        fake.client().me()


def test_any_401_means_the_connection_is_revoked() -> None:
    fake = Fake({("GET", "/me"): [error(401, "token_revoked", "Token revoked")]})
    with pytest.raises(ConnectionRevoked) as info:
        fake.client().me()
    assert info.value.status == 401 and info.value.code == "token_revoked"
    assert isinstance(info.value, CredentialsRejected)


def test_a_409_carries_the_existing_id() -> None:
    fake = Fake(
        {
            ("POST", "/contacts"): [
                error(409, "conflict", "A contact matching those details already exists with id=abc123")
            ]
        }
    )
    with pytest.raises(AlreadyExists) as info:
        fake.client().create_contact({"email": "a@b.c", "role": "user"})
    assert info.value.existing_id == "abc123"


def test_a_409_without_an_id_names_none() -> None:
    fake = Fake({("POST", "/contacts"): [error(409, "conflict", "Multiple existing users match")]})
    with pytest.raises(AlreadyExists) as info:
        fake.client().create_contact({"email": "a@b.c"})
    assert info.value.existing_id is None


def test_the_product_never_writes_external_id() -> None:
    client = Fake({}).client()
    with pytest.raises(ValueError, match="external_id"):
        client.create_contact({"email": "a@b.c", "external_id": "product-123"})
    with pytest.raises(ValueError, match="external_id"):
        client.update_contact("c1", {"external_id": "x"})


def test_a_410_is_followed_through_its_canonical_link() -> None:
    fake = Fake(
        {
            ("PUT", "/contacts/old"): [
                error(410, "contact_merged", "merged", Link='</contacts/mid>; rel="canonical"')
            ],
            ("PUT", "/contacts/mid"): [
                error(410, "contact_merged", "merged", Link="<https://api.test/contacts/new>; rel=canonical")
            ],
            ("PUT", "/contacts/new"): [httpx.Response(200, json={"id": "new", "type": "contact"})],
        }
    )
    contact = fake.client().update_contact("old", {"name": "N"})
    assert contact.id == "new"
    assert [r.url.path for r in fake.seen] == ["/contacts/old", "/contacts/mid", "/contacts/new"]
    assert fake.bodies("/contacts/new") == [{"name": "N"}]


def test_a_410_without_a_link_is_not_found() -> None:
    fake = Fake({("GET", "/contacts/old"): [error(410, "contact_merged", "merged")]})
    with pytest.raises(ContactMerged) as info:
        fake.client().get_contact("old")
    # Merged, but nowhere to follow: callers treat it as the vanished contact it is.
    assert isinstance(info.value, UpstreamNotFound)
    assert info.value.survivor_id is None and info.value.status == 410
    assert info.value.code == "contact_merged"
    assert len(fake.seen) == 1, "a 410 is never retried"


def test_a_merge_chain_has_a_bound() -> None:
    loop = error(410, "contact_merged", "merged", Link="</contacts/b>; rel=canonical")
    back = error(410, "contact_merged", "merged", Link="</contacts/a>; rel=canonical")
    fake = Fake({("GET", "/contacts/a"): [loop], ("GET", "/contacts/b"): [back]})
    with pytest.raises(ContactMerged, match="merge chain") as info:
        fake.client().get_contact("a")
    assert info.value.survivor_id in ("a", "b")
    assert len(fake.seen) == 4  # the first read and three hops, as Intercom's `Link` resolves


def test_a_link_to_itself_is_not_followed() -> None:
    fake = Fake({("GET", "/contacts/a"): [error(410, "m", "merged", Link="</contacts/a>; rel=canonical")]})
    with pytest.raises(ContactMerged) as info:
        fake.client().get_contact("a")
    assert info.value.survivor_id == "a"
    assert len(fake.seen) == 1


def test_a_404_is_followed_to_the_user_with_the_email_once() -> None:
    fake = Fake(
        {
            ("GET", "/contacts/lead1"): [error(404, "not_found", "User Not Found")],
            ("POST", "/contacts/search"): [
                httpx.Response(200, json={"type": "list", "data": [{"id": "user1"}]})
            ],
            ("GET", "/contacts/user1"): [error(404, "not_found", "User Not Found")],
        }
    )
    with pytest.raises(UpstreamNotFound):
        fake.client().get_contact("lead1", email="a@b.c")
    searches = fake.bodies("/contacts/search")
    assert len(searches) == 1
    assert {"field": "email", "operator": "=", "value": "a@b.c"} in searches[0]["query"]["value"]
    nobody = Fake(
        {
            ("GET", "/contacts/lead1"): [error(404, "not_found", "User Not Found")],
            ("POST", "/contacts/search"): [httpx.Response(200, json={"type": "list", "data": []})],
        }
    )
    with pytest.raises(UpstreamNotFound):
        nobody.client().get_contact("lead1", email="a@b.c")


def test_search_sends_its_cursor_and_sort_in_the_body() -> None:
    page = {"type": "list", "data": [{"id": "1"}], "pages": {"next": {"starting_after": "c1"}}}
    fake = Fake({("POST", "/contacts/search"): [httpx.Response(200, json=page)]})
    client, query = fake.client(), {"field": "role", "operator": "=", "value": "user"}
    found = client.search_page(query, sort={"field": "updated_at", "order": "ascending"})
    assert [c.id for c in found.contacts] == ["1"] and found.next_cursor == "c1"
    client.search_page(query, starting_after=found.next_cursor)
    first, second = fake.bodies("/contacts/search")
    assert first["pagination"] == {"per_page": 150}
    assert second["pagination"] == {"per_page": 150, "starting_after": "c1"}
    assert first["sort"] == {"field": "updated_at", "order": "ascending"}
    assert all(not r.url.query for r in fake.seen)


def test_data_attribute_already_there_is_success() -> None:
    listing = {"type": "list", "data": [{"name": "Referral_Code", "id": 7, "custom": True}]}
    fake = Fake(
        {
            ("POST", "/data_attributes"): [
                error(400, "parameter_invalid", "You already have 'referral_code' in your people data.")
            ],
            ("GET", "/data_attributes"): [httpx.Response(200, json=listing)],
        }
    )
    attribute = fake.client().create_data_attribute(
        "referral_code", "options", options=["a", "b"], description="d"
    )
    assert attribute.id == 7
    (body,) = fake.bodies("/data_attributes")
    assert body["options"] == [{"value": "a"}, {"value": "b"}] and body["description"] == "d"


def test_data_attribute_taken_on_another_model_stays_invalid() -> None:
    fake = Fake(
        {
            ("POST", "/data_attributes"): [
                error(400, "parameter_invalid", "You already have 'plan' in your company data.")
            ],
            ("GET", "/data_attributes"): [httpx.Response(200, json={"type": "list", "data": []})],
        }
    )
    with pytest.raises(Invalid):
        fake.client().create_data_attribute("plan", "string")


def test_other_data_attribute_errors_are_invalid() -> None:
    fake = Fake(
        {("POST", "/data_attributes"): [error(400, "parameter_invalid", "Data Type isn't an option")]}
    )
    with pytest.raises(Invalid, match="Data Type"):
        fake.client().create_data_attribute("x", "nope")


def test_error_bodies_that_are_not_intercoms_envelope() -> None:
    fake = Fake(
        {
            ("GET", "/segments"): [httpx.Response(403, text="<html>forbidden</html>")],
            ("GET", "/data_attributes"): [httpx.Response(400, json={"something": "else"})],
        }
    )
    with pytest.raises(CredentialsRejected) as info:
        fake.client().list_segments()
    assert not isinstance(info.value, ConnectionRevoked)
    with pytest.raises(Invalid):
        fake.client().list_data_attributes()


def test_uninstall_accepts_an_empty_answer() -> None:
    fake = Fake({("POST", "/auth/uninstall"): [httpx.Response(200)]})
    fake.client().uninstall()
    assert len(fake.seen) == 1


def exchange_with(answer: httpx.Response) -> tuple[str, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    token = exchange_code(
        "abc==",
        client_id="cid",
        client_secret="shh",
        base_url="https://api.test",
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    return token, seen


def test_the_code_is_exchanged_with_its_trailing_equals() -> None:
    token, seen = exchange_with(
        httpx.Response(200, json={"token_type": "Bearer", "token": "t1", "access_token": "t1"})
    )
    assert token == "t1"
    form = parse_qs(seen[0].content.decode())
    assert form == {"code": ["abc=="], "client_id": ["cid"], "client_secret": ["shh"]}
    assert seen[0].url.path == "/auth/eagle/token"
    # Older answers carry only `token`.
    assert exchange_with(httpx.Response(200, json={"token": "t2"}))[0] == "t2"


def test_a_refused_code_is_unauthorized_not_revoked() -> None:
    with pytest.raises(CredentialsRejected) as info:
        exchange_with(error(401, "unauthorized", "Unauthorized Code"))
    assert not isinstance(info.value, ConnectionRevoked)
    assert info.value.message == "Unauthorized Code"


def test_an_exchange_without_a_token_is_invalid() -> None:
    with pytest.raises(Invalid):
        exchange_with(httpx.Response(200, json={"token_type": "Bearer"}))
    with pytest.raises(Invalid):
        exchange_with(httpx.Response(200, json=["not", "an", "object"]))


def test_regional_bases() -> None:
    assert api_base_for_region("EU") == "https://api.eu.intercom.io"
    assert api_base_for_region("au") == "https://api.au.intercom.io"
    assert api_base_for_region(None) == api_base_for_region("XX") == "https://api.intercom.io"
    assert regional_api_bases() == REGIONAL_API_BASES
    emulator = regional_api_bases("http://127.0.0.1:3001/")
    assert set(emulator.values()) == {"http://127.0.0.1:3001"} and set(emulator) == {"US", "EU", "AU"}
    assert api_base_for_region("EU", emulator) == "http://127.0.0.1:3001"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1692131395, 1692131395),
        (1692131395.9, 1692131395),
        ("1692131395", 1692131395),
        ("2023-08-15T20:29:47.988+00:00", 1692131387),
        ("2023-08-15T20:29:47Z", 1692131387),
        (None, None),
        ("", None),
        (True, None),
        ("yesterday", None),
        ([1], None),
    ],
)
def test_timestamps_in_either_form(value: Any, expected: int | None) -> None:
    assert parse_timestamp(value) == expected
