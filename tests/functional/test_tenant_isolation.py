"""Tenant isolation over every `/v1` route: two accounts, three Intercom workspaces. The owner has
workspaces Alpha and Beta (a campaign bound to each, a referral, a sync, an ongoing sync); the intruder
has Gamma and a campaign of its own. Whatever the intruder's key asks about the owner's campaigns,
workspaces, referrals and syncs is answered 404 (or, for the account's own lists, with nothing of the
owner's), in the error envelope, and the owner's data reads the same before and after.

Every `/v1` operation of the OpenAPI document has its case here (`test_every_v1_operation_has_a_case`),
so a new route cannot skip the check."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from local import template as tmpl
from shared.api.openapi import build
from tests.factories import api_event
from tests.functional.oauth_flow import JSON, account_with_campaigns, callback, connect, consent, start
from tests.functional.signup_flow import deliver, drain, empty_queue, join
from tests.functional.sync_flow import empty, pump
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

FUNCTION_OF = {route.path: name for name, fn in tmpl.functions().items() for route in fn.routes}


@dataclass
class Tenants:
    call: Callable[[str, dict[str, Any]], Any]
    owner: dict[str, Any]
    intruder: dict[str, Any]
    alpha: str
    beta: str
    gamma: str
    c1: str
    c2: str
    own: str
    referral: str
    sync: str

    def api(
        self,
        key: str,
        method: str,
        template: str,
        params: dict[str, str] | None = None,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        path = template
        for name, value in (params or {}).items():
            path = path.replace(f"{{{name}}}", value)
        event = api_event(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {key}"},
            query=query,
            resource=template,
            path_parameters=params,
        )
        return self.call(FUNCTION_OF[template], event)

    def by_intruder(self, method: str, template: str, params: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.api(self.intruder["api_key"], method, template, params, **kw)

    def by_owner(self, method: str, template: str, params: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.api(self.owner["api_key"], method, template, params, **kw)


def _workspace(emulators, name: str) -> str:
    import uuid

    id_code = "ws" + uuid.uuid4().hex[:8]
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces", json={"id_code": id_code, "name": name, "region": "US"}
    ).raise_for_status()
    return id_code


def _bind(tenants_call, account: dict[str, Any], campaign: str, workspace_id: str) -> None:
    body = {**copy.deepcopy(CONTRACT_EXAMPLE), "workspace_id": workspace_id}
    for method, suffix in (("POST", "/setup"), ("PUT", "")):
        event = api_event(
            method,
            f"/v1/campaigns/{campaign}/intercom{suffix}",
            body=body,
            headers={"Authorization": f"Bearer {account['api_key']}"},
            resource=f"/v1/campaigns/{{campaign_id}}/intercom{suffix}",
            path_parameters={"campaign_id": campaign},
        )
        response = tenants_call("AccountApiFunction", event)
        assert response["statusCode"] == 200, response


@pytest.fixture
def tenants(call, new_account, emulators, lambda_module, aws) -> Tenants:
    empty_queue(aws.refs["SignupQueue"])
    empty(aws)
    owner, (c1, c2) = account_with_campaigns(new_account, emulators, 2)
    intruder, (own,) = account_with_campaigns(new_account, emulators, 1)
    alpha, beta, gamma = (
        _workspace(emulators, "Alpha"),
        _workspace(emulators, "Beta"),
        _workspace(emulators, "Gamma"),
    )
    connect(call, owner, alpha)
    connect(call, owner, beta)
    connect(call, intruder, gamma)
    _bind(call, owner, c1, alpha)
    _bind(call, owner, c2, beta)
    _bind(call, intruder, own, gamma)
    rita = join(
        emulators, {"rf_key": owner["rf_key"], "campaigns": [c1]}, "Rita", f"rita-{alpha}@example.com"
    )
    deliver(call, {"account": owner}, rita)
    drain(lambda_module, aws)
    t = Tenants(call, owner, intruder, alpha, beta, gamma, c1, c2, own, str(rita["id"]), "")
    on = t.by_owner(
        "PUT", "/v1/campaigns/{campaign_id}/syncs/ongoing", {"campaign_id": c1}, body={"audience": "users"}
    )
    assert on["statusCode"] == 200, on
    started = t.by_owner(
        "POST", "/v1/campaigns/{campaign_id}/syncs", {"campaign_id": c2}, body={"audience": "all"}
    )
    assert started["statusCode"] == 202, started
    t.sync = json.loads(started["body"])["sync_id"]
    return t


# -- what the owner has, read with its own key ---------------------------------------------------------
def snapshot(t: Tenants) -> dict[str, Any]:
    reads = {
        "connections": ("GET", "/v1/intercom/connections", None, None),
        "campaigns": ("GET", "/v1/campaigns", None, None),
        "settings1": ("GET", "/v1/campaigns/{campaign_id}/intercom", {"campaign_id": t.c1}, None),
        "settings2": ("GET", "/v1/campaigns/{campaign_id}/intercom", {"campaign_id": t.c2}, None),
        "ongoing1": ("GET", "/v1/campaigns/{campaign_id}/syncs/ongoing", {"campaign_id": t.c1}, None),
        "syncs2": ("GET", "/v1/campaigns/{campaign_id}/syncs", {"campaign_id": t.c2}, None),
        "sync": ("GET", "/v1/syncs/{sync_id}", {"sync_id": t.sync}, None),
        "referrals": ("GET", "/v1/referrals", None, None),
        "attributes": ("GET", "/v1/intercom/attributes", None, {"workspace_id": t.alpha, "refresh": "true"}),
        "segments": ("GET", "/v1/intercom/segments", None, {"workspace_id": t.beta, "refresh": "true"}),
    }
    found = {}
    for name, (method, template, params, query) in reads.items():
        response = t.by_owner(method, template, params, query=query)
        assert response["statusCode"] == 200, (name, response)
        found[name] = json.loads(response["body"])
    return found


def refused(response: Any, code: str) -> None:
    """404 in the error envelope, with the code saying what was not found."""
    assert response["statusCode"] == 404, response
    error = json.loads(response["body"])["error"]
    assert error["code"] == code and error["message"], error


def nothing_of(t: Tenants, response: Any) -> dict[str, Any]:
    """A 200 that names none of the owner's workspaces, campaigns or referrals."""
    assert response["statusCode"] == 200, response
    text = response["body"]
    for secret in (t.alpha, t.beta, t.c1, t.c2, t.owner["account_id"], f"rita-{t.alpha}"):
        assert secret not in text, secret
    return dict(json.loads(text))


# -- one case per operation ----------------------------------------------------------------------------
def _connect(t: Tenants) -> None:
    # Starting to connect is the intruder's own business; consenting for the owner's workspace fails.
    answer = callback(t.call, consent(start(t.call, t.intruder), t.alpha), JSON)
    assert answer["statusCode"] == 409
    assert json.loads(answer["body"])["error"]["code"] == "workspace_connected_elsewhere"


def _get_connection(t: Tenants) -> None:
    view = nothing_of(t, t.by_intruder("GET", "/v1/intercom/connection"))
    assert view["workspace_id"] == t.gamma


def _delete_connection(t: Tenants) -> None:
    # Its own (only) workspace: disconnected; the owner's are not touched (the snapshot says so).
    assert t.by_intruder("DELETE", "/v1/intercom/connection")["statusCode"] == 204
    view = nothing_of(t, t.by_intruder("GET", "/v1/intercom/connections"))
    assert [(w["workspace_id"], w["status"]) for w in view["data"]] == [(t.gamma, "disconnected")]


def _list_connections(t: Tenants) -> None:
    view = nothing_of(t, t.by_intruder("GET", "/v1/intercom/connections"))
    assert [w["workspace_id"] for w in view["data"]] == [t.gamma]


def _delete_workspace(t: Tenants) -> None:
    for ws in (t.alpha, t.beta):
        refused(
            t.by_intruder("DELETE", "/v1/intercom/connections/{workspace_id}", {"workspace_id": ws}),
            "workspace_not_found",
        )


def _get_attributes(t: Tenants) -> None:
    for model in ("contact", "company"):
        refused(
            t.by_intruder("GET", "/v1/intercom/attributes", query={"workspace_id": t.alpha, "model": model}),
            "workspace_not_found",
        )


def _post_attribute(t: Tenants) -> None:
    response = t.by_intruder(
        "POST",
        "/v1/intercom/attributes",
        query={"workspace_id": t.beta},
        body={"name": "planted_by_intruder", "data_type": "string"},
    )
    refused(response, "workspace_not_found")


def _get_segments(t: Tenants) -> None:
    refused(
        t.by_intruder("GET", "/v1/intercom/segments", query={"workspace_id": t.beta}), "workspace_not_found"
    )


def _list_campaigns(t: Tenants) -> None:
    view = nothing_of(t, t.by_intruder("GET", "/v1/campaigns"))
    assert [str(c["id"]) for c in view["data"]] == [t.own]


SETTINGS = "/v1/campaigns/{campaign_id}/intercom"


def _get_settings(t: Tenants) -> None:
    for campaign in (t.c1, t.c2):
        refused(t.by_intruder("GET", SETTINGS, {"campaign_id": campaign}), "settings_missing")


def _put_settings(t: Tenants) -> None:
    body = {**copy.deepcopy(CONTRACT_EXAMPLE), "workspace_id": t.gamma}
    refused(t.by_intruder("PUT", SETTINGS, {"campaign_id": t.c1}, body=body), "campaign_not_found")
    # Its own campaign cannot be bound to the owner's workspace.
    body["workspace_id"] = t.alpha
    refused(t.by_intruder("PUT", SETTINGS, {"campaign_id": t.own}, body=body), "workspace_not_found")


def _delete_settings(t: Tenants) -> None:
    refused(t.by_intruder("DELETE", SETTINGS, {"campaign_id": t.c2}), "settings_missing")


def _setup(t: Tenants) -> None:
    body = {**copy.deepcopy(CONTRACT_EXAMPLE), "workspace_id": t.gamma}
    refused(
        t.by_intruder("POST", f"{SETTINGS}/setup", {"campaign_id": t.c1}, body=body), "campaign_not_found"
    )
    body["workspace_id"] = t.alpha
    refused(
        t.by_intruder("POST", f"{SETTINGS}/setup", {"campaign_id": t.own}, body=body), "workspace_not_found"
    )


SYNCS = "/v1/campaigns/{campaign_id}/syncs"
ONGOING = "/v1/campaigns/{campaign_id}/syncs/ongoing"


def _list_syncs(t: Tenants) -> None:
    refused(t.by_intruder("GET", SYNCS, {"campaign_id": t.c2}), "campaign_not_found")


def _start_sync(t: Tenants) -> None:
    refused(
        t.by_intruder("POST", SYNCS, {"campaign_id": t.c1}, body={"audience": "all"}), "campaign_not_found"
    )


def _get_ongoing(t: Tenants) -> None:
    refused(t.by_intruder("GET", ONGOING, {"campaign_id": t.c1}), "campaign_not_found")


def _put_ongoing(t: Tenants) -> None:
    refused(
        t.by_intruder("PUT", ONGOING, {"campaign_id": t.c2}, body={"audience": "all"}), "campaign_not_found"
    )


def _delete_ongoing(t: Tenants) -> None:
    refused(t.by_intruder("DELETE", ONGOING, {"campaign_id": t.c1}), "campaign_not_found")


def _get_sync(t: Tenants) -> None:
    refused(t.by_intruder("GET", "/v1/syncs/{sync_id}", {"sync_id": t.sync}), "sync_not_found")


def _cancel_sync(t: Tenants) -> None:
    refused(t.by_intruder("POST", "/v1/syncs/{sync_id}/cancel", {"sync_id": t.sync}), "sync_not_found")


def _list_referrals(t: Tenants) -> None:
    for query in (None, {"campaign_id": t.c1}, {"email": f"rita-{t.alpha}@example.com"}):
        view = nothing_of(t, t.by_intruder("GET", "/v1/referrals", query=query))
        assert view["data"] == []


def _retry(t: Tenants) -> None:
    response = t.by_intruder(
        "POST", "/v1/referrals/{rf_user_id}/retry", {"rf_user_id": t.referral}, query={"campaign_id": t.c1}
    )
    refused(response, "referral_not_found")


def _referral_factory_key(t: Tenants) -> None:
    # It changes its own account's key only (to its own key again, with its base).
    before = t.by_intruder("GET", "/v1/campaigns")
    body = {"api_key": t.intruder["rf_key"], "api_base": t.intruder["rf_base"]}
    assert t.by_intruder("PUT", "/v1/account/referral-factory", body=body)["statusCode"] == 200
    assert json.loads(t.by_intruder("GET", "/v1/campaigns")["body"]) == json.loads(before["body"])


def _rotate(t: Tenants) -> None:
    old = t.intruder["api_key"]
    rotated = t.by_intruder("POST", "/v1/account/rotate", body={"what": "api_key"})
    assert rotated["statusCode"] == 200
    t.intruder["api_key"] = json.loads(rotated["body"])["value"]
    assert t.api(old, "GET", "/v1/campaigns")["statusCode"] == 401
    assert t.by_owner("GET", "/v1/campaigns")["statusCode"] == 200


CASES: dict[tuple[str, str], Callable[[Tenants], None]] = {
    ("POST", "/v1/intercom/connect"): _connect,
    ("GET", "/v1/intercom/connection"): _get_connection,
    ("GET", "/v1/intercom/connections"): _list_connections,
    ("DELETE", "/v1/intercom/connections/{workspace_id}"): _delete_workspace,
    ("GET", "/v1/intercom/attributes"): _get_attributes,
    ("POST", "/v1/intercom/attributes"): _post_attribute,
    ("GET", "/v1/intercom/segments"): _get_segments,
    ("GET", "/v1/campaigns"): _list_campaigns,
    ("GET", SETTINGS): _get_settings,
    ("PUT", SETTINGS): _put_settings,
    ("DELETE", SETTINGS): _delete_settings,
    ("POST", f"{SETTINGS}/setup"): _setup,
    ("GET", SYNCS): _list_syncs,
    ("POST", SYNCS): _start_sync,
    ("GET", ONGOING): _get_ongoing,
    ("PUT", ONGOING): _put_ongoing,
    ("DELETE", ONGOING): _delete_ongoing,
    ("GET", "/v1/syncs/{sync_id}"): _get_sync,
    ("POST", "/v1/syncs/{sync_id}/cancel"): _cancel_sync,
    ("GET", "/v1/referrals"): _list_referrals,
    ("POST", "/v1/referrals/{rf_user_id}/retry"): _retry,
    ("PUT", "/v1/account/referral-factory"): _referral_factory_key,
    ("POST", "/v1/account/rotate"): _rotate,
    # Last: it disconnects the intruder's own workspace.
    ("DELETE", "/v1/intercom/connection"): _delete_connection,
}


def test_every_v1_operation_has_a_case():
    document = build()
    operations = {
        (method.upper(), path)
        for path, ops in document["paths"].items()
        if path.startswith("/v1/")
        for method in ops
    }
    assert set(CASES) == operations


def test_one_accounts_key_never_reads_or_changes_anothers_data(tenants, lambda_module, aws, emulators):
    t = tenants
    before = snapshot(t)
    alpha_contacts = httpx.get(f"{emulators.intercom}/_emulator/workspaces/{t.alpha}/contacts").json()["data"]
    for operation, case in CASES.items():
        try:
            case(t)
        except AssertionError as exc:
            raise AssertionError(f"{operation}: {exc}") from exc
    assert snapshot(t) == before
    assert (
        httpx.get(f"{emulators.intercom}/_emulator/workspaces/{t.alpha}/contacts").json()["data"]
        == alpha_contacts
    )
    # The owner's sync ran on, untouched, in its own workspace.
    pump(lambda_module, aws)
    done = json.loads(t.by_owner("GET", "/v1/syncs/{sync_id}", {"sync_id": t.sync})["body"])
    assert done["status"] == "completed"
