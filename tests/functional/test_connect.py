"""Connecting Intercom over plain HTTP: connect → the emulator's consent → callback → connection.

Tampered, reused and denied states store nothing; a workspace belongs to one account; disconnect
calls Intercom's uninstall once; no token ever appears in an answer or a log line.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.factories import api_event, body_of
from tests.functional.conftest import INTERCOM_CLIENT_ID, PUBLIC_BASE_URL
from tests.functional.oauth_flow import JSON, bearer, callback, connect, connection, consent, start, stats


def test_round_trip_connects_the_workspace(call, new_account, workspace, emulators):
    account = new_account()
    ws = workspace(name="Hogwarts", region="EU")
    assert connection(call, account)["status"] == "disconnected"
    url = start(call, account)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == emulators.intercom and parts.path == "/oauth"
    assert query["client_id"] == [INTERCOM_CLIENT_ID]
    assert query["redirect_uri"] == [f"{PUBLIC_BASE_URL}/oauth/intercom/callback"]
    params = consent(url, ws)
    assert params["state"] == query["state"]
    page = callback(call, params)
    assert page["statusCode"] == 200
    assert page["multiValueHeaders"]["Content-Type"] == ["text/html"]
    assert "Intercom connected" in page["body"]
    status = connection(call, account)
    assert status["status"] == "connected"
    assert (status["workspace_id"], status["workspace_name"], status["region"]) == (ws, "Hogwarts", "EU")
    assert isinstance(status["connected_at"], int)


def test_return_url_gets_the_status(call, new_account, workspace):
    account = new_account()
    params = consent(start(call, account, "https://app.example.com/settings?tab=intercom"), workspace())
    response = callback(call, params)
    assert response["statusCode"] == 302
    assert response["multiValueHeaders"]["Location"] == [
        "https://app.example.com/settings?tab=intercom&status=connected"
    ]


def test_a_reused_state_is_refused_and_stores_nothing(call, new_account, workspace):
    account = new_account()
    params = consent(start(call, account), workspace())
    assert callback(call, params, JSON)["statusCode"] == 200
    other = new_account()
    # Replaying the first account's state (with a fresh code) must not connect anything anywhere.
    replay = callback(call, {**params, "code": ["fresh"]}, JSON)
    assert replay["statusCode"] == 400
    assert body_of(replay)["error"]["code"] == "invalid_state"
    assert connection(call, other)["status"] == "disconnected"


@pytest.mark.parametrize(
    "tamper", [lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"), lambda s: "forged.abc", lambda s: ""]
)
def test_tampered_states_are_refused_with_a_page(call, new_account, workspace, tamper):
    account = new_account()
    params = consent(start(call, account), workspace())
    response = callback(call, {**params, "state": [tamper(params["state"][0])]})
    assert response["statusCode"] == 400
    assert response["multiValueHeaders"]["Content-Type"] == ["text/html"]
    assert "not connected" in response["body"]
    assert connection(call, account)["status"] == "disconnected"


def test_denied_consent_connects_nothing(call, new_account, workspace, emulators):
    account = new_account()
    url = start(call, account)
    ws = workspace()
    state = parse_qs(urlsplit(url).query)["state"][0]
    denied = httpx.post(
        f"{emulators.intercom}/oauth/authorize",
        data={
            "client_id": INTERCOM_CLIENT_ID,
            "state": state,
            "workspace": ws,
            "decision": "deny",
            "redirect_uri": f"{PUBLIC_BASE_URL}/oauth/intercom/callback",
        },
    )
    params = parse_qs(urlsplit(denied.headers["location"]).query)
    assert params["error"] == ["access_denied"]
    response = callback(call, params, JSON)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "access_denied"
    assert connection(call, account)["status"] == "disconnected"


def test_a_bad_code_is_a_failed_exchange(call, new_account, workspace):
    account = new_account()
    params = consent(start(call, account), workspace())
    code = params["code"][0]
    response = callback(call, {**params, "code": [code.rstrip("=") + "x"]}, JSON)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "exchange_failed"
    assert connection(call, account)["status"] == "disconnected"


def test_a_workspace_belongs_to_one_account(call, new_account, workspace):
    ws = workspace()
    first, second = new_account(), new_account()
    connect(call, first, ws)
    response = callback(call, consent(start(call, second), ws), JSON)
    assert response["statusCode"] == 409
    assert body_of(response)["error"]["code"] == "workspace_connected_elsewhere"
    assert connection(call, second)["status"] == "disconnected"
    assert connection(call, first)["status"] == "connected"


def _connections(call, account) -> list[dict]:
    response = call(
        "OAuthCallbackFunction", api_event("GET", "/v1/intercom/connections", headers=bearer(account))
    )
    assert response["statusCode"] == 200, response
    return list(body_of(response)["data"])


def _delete(call, account, path: str, workspace_id: str | None = None):
    params = {"workspace_id": workspace_id} if workspace_id else None
    resource = "/v1/intercom/connections/{workspace_id}" if workspace_id else path
    event = api_event("DELETE", path, headers=bearer(account), resource=resource, path_parameters=params)
    return call("OAuthCallbackFunction", event)


def test_connecting_another_workspace_adds_it(call, new_account, workspace):
    account = new_account()
    first_ws, second_ws = workspace("First"), workspace("Second", region="EU")
    connect(call, account, first_ws)
    connect(call, account, second_ws)

    listed = _connections(call, account)
    assert {w["workspace_id"]: (w["workspace_name"], w["region"], w["status"]) for w in listed} == {
        first_ws: ("First", "US", "connected"),
        second_ws: ("Second", "EU", "connected"),
    }
    assert all(w["campaign_ids"] == [] and isinstance(w["connected_at"], int) for w in listed)
    # The single-connection routes cannot say which one: 409 naming both, nothing disconnected.
    for method in ("GET", "DELETE"):
        response = call(
            "OAuthCallbackFunction", api_event(method, "/v1/intercom/connection", headers=bearer(account))
        )
        assert response["statusCode"] == 409, response
        error = body_of(response)["error"]
        assert error["code"] == "several_workspaces"
        named = " ".join(d["message"] for d in error["details"])
        assert first_ws in named and second_ws in named
        assert {d["field"] for d in error["details"]} == {"workspace_id"}
    assert [w["status"] for w in _connections(call, account)] == ["connected", "connected"]
    # Both still belong to this account.
    other = new_account()
    response = callback(call, consent(start(call, other), first_ws), JSON)
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (
        409,
        "workspace_connected_elsewhere",
    )


def test_connecting_a_workspace_again_refreshes_it_and_adds_nothing(call, new_account, workspace, emulators):
    account = new_account()
    ws = workspace()
    connect(call, account, ws)
    before = _connections(call, account)
    connect(call, account, ws)
    after = _connections(call, account)
    assert [w["workspace_id"] for w in after] == [ws]
    assert after[0]["connected_at"] >= before[0]["connected_at"]
    assert connection(call, account)["status"] == "connected"


def test_disconnecting_one_workspace_leaves_the_others(call, new_account, workspace, emulators):
    account = new_account()
    first_ws, second_ws = workspace(), workspace()
    connect(call, account, first_ws)
    connect(call, account, second_ws)
    uninstalls = stats(emulators.intercom).get("POST /auth/uninstall", 0)

    gone = _delete(call, account, f"/v1/intercom/connections/{first_ws}", first_ws)
    assert gone["statusCode"] == 204, gone
    assert stats(emulators.intercom).get("POST /auth/uninstall", 0) == uninstalls + 1
    listed = {w["workspace_id"]: w["status"] for w in _connections(call, account)}
    assert listed == {first_ws: "disconnected", second_ws: "connected"}
    # One left: the single-connection route knows which.
    assert connection(call, account)["workspace_id"] == second_ws
    # Disconnecting it again changes nothing and calls Intercom no more.
    assert _delete(call, account, f"/v1/intercom/connections/{first_ws}", first_ws)["statusCode"] == 204
    assert stats(emulators.intercom).get("POST /auth/uninstall", 0) == uninstalls + 1
    # The disconnected workspace is free for another account.
    other = new_account()
    connect(call, other, first_ws)
    assert connection(call, other)["workspace_id"] == first_ws


def test_a_workspace_the_account_never_connected_is_not_found(call, new_account, workspace):
    owner, stranger = new_account(), new_account()
    ws = workspace()
    connect(call, owner, ws)
    response = _delete(call, stranger, f"/v1/intercom/connections/{ws}", ws)
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "workspace_not_found"
    assert connection(call, owner)["status"] == "connected"
    assert _connections(call, stranger) == []


def test_disconnect_uninstalls_once_and_forgets_the_token(call, new_account, workspace, emulators):
    account = new_account()
    connect(call, account, workspace())
    before = (
        httpx.get(f"{emulators.intercom}/_emulator/stats").json()["requests"].get("POST /auth/uninstall", 0)
    )
    response = call(
        "OAuthCallbackFunction", api_event("DELETE", "/v1/intercom/connection", headers=bearer(account))
    )
    assert response["statusCode"] == 204
    after = (
        httpx.get(f"{emulators.intercom}/_emulator/stats").json()["requests"].get("POST /auth/uninstall", 0)
    )
    assert after - before == 1
    assert connection(call, account)["status"] == "disconnected"
    # Disconnecting again does not call Intercom.
    call("OAuthCallbackFunction", api_event("DELETE", "/v1/intercom/connection", headers=bearer(account)))
    again = (
        httpx.get(f"{emulators.intercom}/_emulator/stats").json()["requests"].get("POST /auth/uninstall", 0)
    )
    assert again == after


def test_connection_routes_need_the_account_key(call):
    for method, path in (
        ("POST", "/v1/intercom/connect"),
        ("GET", "/v1/intercom/connection"),
        ("DELETE", "/v1/intercom/connection"),
        ("GET", "/v1/intercom/connections"),
        ("DELETE", "/v1/intercom/connections/ws1"),
    ):
        response = call(
            "OAuthCallbackFunction", api_event(method, path, headers={"Authorization": "Bearer nope"})
        )
        assert response["statusCode"] == 401


def test_no_token_or_key_in_logs_or_answers(call, new_account, workspace, emulators, capsys):
    account = new_account(rf_key="rf-very-secret-key")
    answers = [connect(call, account, workspace())]
    answers.append(
        call("OAuthCallbackFunction", api_event("GET", "/v1/intercom/connection", headers=bearer(account)))
    )
    tokens = list(emulators.intercom_app.state.emulator.state.tokens)
    assert tokens
    captured = capsys.readouterr()
    text = captured.out + captured.err + "".join(str(a) for a in answers)
    for secret in [*tokens, "rf-very-secret-key", INTERCOM_CLIENT_ID + "-never"]:
        assert secret not in text
