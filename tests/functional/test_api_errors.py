"""The contract's error envelope from real handlers: 400, 401, 404, 405 and 422, never a trace."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.factories import api_event, body_of
from tests.functional.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def assert_envelope(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    assert response["statusCode"] == status, response
    body = body_of(response)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert "Traceback" not in response["body"]
    return body["error"]


def test_health_answers_ok(call):
    response = call("AccountApiFunction", api_event("GET", "/health"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "ok"}


def test_malformed_json_is_400(call):
    event = api_event(
        "POST", "/admin/accounts", body="{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_envelope(call("AccountApiFunction", event), 400, "malformed_json")


def test_missing_field_is_422_naming_it(call):
    event = api_event("POST", "/admin/accounts", body={"name": "Acme"}, headers=ADMIN)
    error = assert_envelope(call("AccountApiFunction", event), 422, "validation_failed")
    assert error["details"] == [{"field": "referral_factory_api_key", "message": "is required"}]


def test_every_bad_field_is_listed_at_once(call):
    body = {"name": "", "referral_factory_api_base": "not a url"}
    event = api_event("POST", "/admin/accounts", body=body, headers=ADMIN)
    error = assert_envelope(call("AccountApiFunction", event), 422, "validation_failed")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"name", "referral_factory_api_key", "referral_factory_api_base"}


def test_unknown_route_is_404(call):
    assert_envelope(call("AccountApiFunction", api_event("GET", "/nope")), 404, "not_found")


def test_wrong_method_is_405_with_allow(call):
    response = call("AccountApiFunction", api_event("DELETE", "/health"))
    assert_envelope(response, 405, "method_not_allowed")
    assert response["multiValueHeaders"]["Allow"] == ["GET"]


def test_wrong_method_on_a_path_with_parameters_is_405(call):
    event = api_event(
        "POST", "/v1/syncs/s-1", resource="/v1/syncs/{sync_id}", path_parameters={"sync_id": "s-1"}
    )
    assert_envelope(call("ContactSyncFunction", event), 405, "method_not_allowed")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}])
def test_admin_route_needs_the_admin_token(call, headers):
    body = {"name": "Acme", "referral_factory_api_key": "rf-key"}
    event = api_event("POST", "/admin/accounts", body=body, headers=headers)
    assert_envelope(call("AccountApiFunction", event), 401, "unauthorized")


def test_unexpected_errors_are_500_in_the_envelope_without_details(call, monkeypatch):
    from shared.api.routes import operator

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(operator.Accounts, "create", explode)
    body = {"name": "Acme", "referral_factory_api_key": "rf-key"}
    response = call("AccountApiFunction", api_event("POST", "/admin/accounts", body=body, headers=ADMIN))
    error = assert_envelope(response, 500, "internal_error")
    assert "secret internals" not in error["message"]


BODY_ROUTES = [
    ("AccountApiFunction", "POST", "/admin/accounts", ADMIN),
    ("AccountApiFunction", "POST", "/v1/intercom/attributes", {}),
    ("AccountApiFunction", "PUT", "/v1/campaigns/c-1/intercom", {}),
    ("AccountApiFunction", "POST", "/v1/campaigns/c-1/intercom/setup", {}),
    ("AccountApiFunction", "PUT", "/v1/account/referral-factory", {}),
    ("AccountApiFunction", "POST", "/v1/account/rotate", {}),
    ("ContactSyncFunction", "POST", "/v1/campaigns/c-1/syncs", {}),
    ("ContactSyncFunction", "PUT", "/v1/campaigns/c-1/syncs/ongoing", {}),
    ("OAuthCallbackFunction", "POST", "/v1/intercom/connect", {}),
]


def _body_event(
    method: str, path: str, headers: dict[str, str], body: str, content_type: str
) -> dict[str, Any]:
    resource, params = path, None
    if path.startswith("/v1/campaigns/c-1"):
        resource, params = path.replace("c-1", "{campaign_id}"), {"campaign_id": "c-1"}
    event = api_event(
        method,
        path,
        body=body,
        headers={**headers, "Content-Type": content_type},
        resource=resource,
        path_parameters=params,
    )
    return event


@pytest.mark.parametrize(("function", "method", "path", "headers"), BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
)
def test_a_body_that_is_not_json_is_415_on_every_json_route(
    call, function, method, path, headers, content_type
):
    event = _body_event(method, path, headers, '{"name": "Acme"}', content_type)
    error = assert_envelope(call(function, event), 415, "unsupported_media_type")
    assert content_type.split(";")[0] in error["message"]


@pytest.mark.parametrize(("function", "method", "path", "headers"), BODY_ROUTES)
def test_a_json_body_that_is_not_utf8_is_400_on_every_json_route(call, function, method, path, headers):
    event = _body_event(method, path, headers, "", "application/json")
    event["body"] = base64.b64encode(b'{"name": "Acme \xff\xfe"}').decode()
    event["isBase64Encoded"] = True
    assert_envelope(call(function, event), 400, "malformed_json")


def test_json_with_a_charset_or_no_content_type_at_all_is_read_as_json(call):
    for content_type in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
        event = _body_event("POST", "/admin/accounts", ADMIN, '{"name": "Acme"}', content_type)
        error = assert_envelope(call("AccountApiFunction", event), 422, "validation_failed")
        assert error["details"] == [{"field": "referral_factory_api_key", "message": "is required"}]
    event = api_event("POST", "/admin/accounts", body='{"name": "Acme"}', headers=ADMIN)
    assert "Content-Type" not in event["headers"]
    error = assert_envelope(call("AccountApiFunction", event), 422, "validation_failed")
    assert error["details"] == [{"field": "referral_factory_api_key", "message": "is required"}]


def test_json_in_capitals_is_415_in_the_envelope_not_a_500(call):
    """Powertools reads only a lower-case `application/json` as JSON; anything else is refused cleanly."""
    event = _body_event("POST", "/admin/accounts", ADMIN, '{"name": "Acme"}', "Application/JSON")
    assert_envelope(call("AccountApiFunction", event), 415, "unsupported_media_type")


def test_an_admin_token_with_non_ascii_characters_is_401_not_a_500(call):
    body = {"name": "Acme", "referral_factory_api_key": "rf-key"}
    event = api_event("POST", "/admin/accounts", body=body, headers={"Authorization": "Bearer tökén"})
    assert_envelope(call("AccountApiFunction", event), 401, "unauthorized")


@pytest.mark.parametrize("key", ["rf key", "rf-kéy", "rf\x01key"])
def test_a_referral_factory_key_that_cannot_travel_in_a_header_is_422_naming_it(call, key):
    body = {"name": "Acme", "referral_factory_api_key": key}
    event = api_event("POST", "/admin/accounts", body=body, headers=ADMIN)
    error = assert_envelope(call("AccountApiFunction", event), 422, "validation_failed")
    [detail] = error["details"]
    assert detail["field"] == "referral_factory_api_key"
    assert "visible ASCII" in detail["message"]


@pytest.mark.parametrize(("function", "method", "path", "headers"), BODY_ROUTES)
@pytest.mark.parametrize("body", ["[null, null]", "[]", "3", '"text"'])
def test_a_json_body_that_is_not_an_object_is_422_naming_the_body(
    call, function, method, path, headers, body
):
    event = _body_event(method, path, headers, body, "application/json")
    error = assert_envelope(call(function, event), 422, "validation_failed")
    assert error["details"] == [{"field": "body", "message": "must be a JSON object"}]
