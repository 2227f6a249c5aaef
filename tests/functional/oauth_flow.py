"""Driving the product in tests: its routes in process, the emulators over HTTP."""

from __future__ import annotations

import random
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.factories import api_event, body_of

JSON = {"Accept": "application/json"}


def bearer(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['api_key']}"}


def start(call: Any, account: dict[str, Any], return_url: str | None = None) -> str:
    body = {"return_url": return_url} if return_url else None
    event = api_event("POST", "/v1/intercom/connect", body=body, headers=bearer(account))
    response = call("OAuthCallbackFunction", event)
    assert response["statusCode"] == 200, response
    return str(body_of(response)["authorize_url"])


def consent(authorize_url: str, workspace_id: str) -> dict[str, list[str]]:
    """The browser's trip to Intercom: the emulator approves at once and redirects with a code."""
    response = httpx.get(f"{authorize_url}&workspace={workspace_id}&auto_approve=true")
    assert response.status_code in (302, 303), response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


def callback(call: Any, params: dict[str, list[str]], headers: dict[str, str] | None = None) -> Any:
    query = {k: v[0] for k, v in params.items()}
    event = api_event("GET", "/oauth/intercom/callback", query=query, headers=headers or {})
    return call("OAuthCallbackFunction", event)


def connection(call: Any, account: dict[str, Any]) -> dict[str, Any]:
    response = call(
        "OAuthCallbackFunction", api_event("GET", "/v1/intercom/connection", headers=bearer(account))
    )
    assert response["statusCode"] == 200
    return dict(body_of(response))


def connect(call: Any, account: dict[str, Any], workspace_id: str) -> Any:
    response = callback(call, consent(start(call, account), workspace_id), JSON)
    assert response["statusCode"] == 200, response
    return response


def account_call(
    call: Any,
    account: dict[str, Any],
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    key: str | None = None,
) -> Any:
    """An account API call, with the path parameters API Gateway would extract."""
    headers = {"Authorization": f"Bearer {key}"} if key else bearer(account)
    params = None
    resource = path
    if path.startswith("/v1/campaigns/") and "/intercom" in path:
        campaign_id = path.split("/")[3]
        params = {"campaign_id": campaign_id}
        resource = path.replace(f"/{campaign_id}/", "/{campaign_id}/")
    event = api_event(
        method, path, body=body, headers=headers, query=query, resource=resource, path_parameters=params
    )
    return call("AccountApiFunction", event)


def stats(base: str) -> dict[str, int]:
    return dict(httpx.get(f"{base}/_emulator/stats").json()["requests"])


def account_with_campaigns(
    new_account: Any, emulators: Any, count: int = 1
) -> tuple[dict[str, Any], list[str]]:
    """A product account on a Referral Factory account of its own with `count` campaigns (not connected
    to Intercom); returns the account (its creation answer, plus the `rf_key` and `rf_base` it was made
    with) and its campaign ids."""
    rf_key = "rf-" + uuid.uuid4().hex
    campaigns = [random.randint(10**6, 10**9) for _ in range(count)]
    created = httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": rf_key, "campaigns": [{"id": c, "name": f"Campaign {c}"} for c in campaigns]},
    )
    assert created.status_code == 201, created.text
    rf_base = f"{emulators.referral_factory}/api/v2"
    account = new_account(rf_key=rf_key, rf_base=rf_base)
    return {**account, "rf_key": rf_key, "rf_base": rf_base}, [str(c) for c in campaigns]
