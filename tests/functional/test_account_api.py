"""The account API against the emulators: attributes and segments (cached), campaigns, settings
validated against the live attribute list, setup of missing attributes, keys, and isolation."""

from __future__ import annotations

import copy
import random
import uuid

import httpx
import pytest

from shared.aws.crypto import SecretBox
from shared.aws.store import Store
from shared.records.accounts import Accounts
from tests.factories import api_event, body_of
from tests.functional.oauth_flow import account_call, bearer, connect, stats
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE


@pytest.fixture
def setup(connected_account):
    return connected_account


def test_attributes_are_listed_and_cached_until_refreshed(call, setup, emulators):
    account = setup["account"]
    first = account_call(call, account, "GET", "/v1/intercom/attributes")
    assert first["statusCode"] == 200
    attributes = {a["full_name"]: a for a in body_of(first)["data"]}
    assert attributes["email"]["custom"] is False and attributes["email"]["api_writable"] is True
    assert {"full_name", "label", "data_type", "options", "custom", "api_writable"} <= set(attributes["name"])
    before = stats(emulators.intercom).get("GET /data_attributes", 0)
    account_call(call, account, "GET", "/v1/intercom/attributes")
    assert stats(emulators.intercom).get("GET /data_attributes", 0) == before
    account_call(call, account, "GET", "/v1/intercom/attributes", query={"refresh": "true"})
    assert stats(emulators.intercom).get("GET /data_attributes", 0) == before + 1


def test_creating_an_attribute_shows_in_the_list(call, setup):
    account = setup["account"]
    account_call(call, account, "GET", "/v1/intercom/attributes")  # warm the cache
    created = account_call(
        call,
        account,
        "POST",
        "/v1/intercom/attributes",
        body={"name": "tier", "data_type": "options", "options": ["gold", "silver"]},
    )
    assert created["statusCode"] == 201, created
    assert body_of(created)["full_name"] == "custom_attributes.tier"
    listed = {
        a["full_name"]: a
        for a in body_of(account_call(call, account, "GET", "/v1/intercom/attributes"))["data"]
    }
    assert listed["custom_attributes.tier"]["options"] == ["gold", "silver"]
    bad = account_call(
        call, account, "POST", "/v1/intercom/attributes", body={"name": "x", "data_type": "options"}
    )
    assert bad["statusCode"] == 422
    assert body_of(bad)["error"]["details"][0]["field"] == "options"


def test_segments_come_with_counts(call, setup):
    response = account_call(call, setup["account"], "GET", "/v1/intercom/segments")
    assert response["statusCode"] == 200
    segments = body_of(response)["data"]
    assert [s["name"] for s in segments] == ["VIPs"]
    assert segments[0]["count"] == 0


def test_campaigns_carry_their_integration_status(call, setup):
    response = account_call(call, setup["account"], "GET", "/v1/campaigns")
    assert response["statusCode"] == 200
    data = body_of(response)["data"]
    assert sorted(str(c["id"]) for c in data) == sorted(setup["campaigns"])
    assert all(
        c["intercom"] == {"configured": False, "ongoing_sync": False, "workspace_id": None} for c in data
    )


def test_setup_creates_exactly_the_missing_attributes_then_settings_round_trip(call, setup):
    account, campaign = setup["account"], setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/intercom"
    missing = account_call(call, account, "PUT", path, body=CONTRACT_EXAMPLE)
    assert missing["statusCode"] == 422
    first = account_call(call, account, "POST", f"{path}/setup", body=CONTRACT_EXAMPLE)
    assert first["statusCode"] == 200, first
    created = body_of(first)["created"]
    assert set(created) == {
        "custom_attributes.referral_link",
        "custom_attributes.referrals_count",
        "custom_attributes.converted_referrals",
        "custom_attributes.referral_campaign",
        "custom_attributes.referral_source",
        "custom_attributes.plan",
        "custom_attributes.referrer_name",
        "custom_attributes.referrer_email",
        "custom_attributes.customer_status",
        "custom_attributes.deal_value",
    }
    assert {"name", "email"} <= set(body_of(first)["existing"])
    types = {
        a["full_name"]: a["data_type"]
        for a in body_of(
            account_call(call, account, "GET", "/v1/intercom/attributes", query={"refresh": "true"})
        )["data"]
    }
    assert types["custom_attributes.referrals_count"] == "integer"
    assert types["custom_attributes.deal_value"] == "float"
    assert types["custom_attributes.referral_link"] == "string"
    saved = account_call(call, account, "PUT", path, body=CONTRACT_EXAMPLE)
    assert saved["statusCode"] == 200, saved
    got = body_of(account_call(call, account, "GET", path))
    assert got["person_invited"]["qualification"]["qualifying_values"] == ["paid", "active"]
    assert got["person_referring"]["duplicates"] == "skip"
    again = body_of(account_call(call, account, "POST", f"{path}/setup"))
    assert again["created"] == []
    campaigns = body_of(account_call(call, account, "GET", "/v1/campaigns"))["data"]
    assert {str(c["id"]): c["intercom"]["configured"] for c in campaigns}[campaign] is True
    assert account_call(call, account, "DELETE", path)["statusCode"] == 204
    assert account_call(call, account, "GET", path)["statusCode"] == 404


def test_settings_with_several_mistakes_get_one_422_listing_each(call, setup):
    account, campaign = setup["account"], setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/intercom"
    account_call(call, account, "POST", f"{path}/setup", body=CONTRACT_EXAMPLE)
    bad = copy.deepcopy(CONTRACT_EXAMPLE)
    del bad["sync"]["return_mapping"]["referral_link"]
    del bad["person_invited"]["mapping"]["first_name"]
    bad["person_referring"]["mapping"]["referral_link"] = "custom_attributes.nope"
    bad["commission"]["sale_value_attribute"] = "custom_attributes.also_nope"
    response = account_call(call, account, "PUT", path, body=bad)
    assert response["statusCode"] == 422
    fields = {d["field"] for d in body_of(response)["error"]["details"]}
    assert fields == {
        "sync.return_mapping.referral_link",
        "person_invited.mapping.first_name",
        "person_referring.mapping.referral_link",
        "commission.sale_value_attribute",
    }
    shape = account_call(call, account, "PUT", path, body={"person_invited": {"action": "explode"}})
    assert shape["statusCode"] == 422
    assert body_of(shape)["error"]["details"][0]["field"] == "person_invited.action"
    assert account_call(call, account, "GET", path)["statusCode"] == 404


def test_another_accounts_campaign_is_not_found(call, setup, new_account):
    other = new_account()
    response = account_call(
        call, setup["account"], "PUT", "/v1/campaigns/424242/intercom", body=CONTRACT_EXAMPLE
    )
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "campaign_not_found"
    assert (
        account_call(call, other, "GET", f"/v1/campaigns/{setup['campaigns'][0]}/intercom")["statusCode"]
        == 404
    )


def test_intercom_routes_need_a_connection(call, new_account):
    account = new_account()
    for path in ("/v1/intercom/attributes", "/v1/intercom/segments"):
        response = account_call(call, account, "GET", path)
        assert response["statusCode"] == 409
        assert body_of(response)["error"]["code"] == "not_connected"


def test_replacing_the_referral_factory_key_checks_it(call, setup, emulators):
    account = setup["account"]
    wrong = account_call(call, account, "PUT", "/v1/account/referral-factory", body={"api_key": "wrong"})
    assert wrong["statusCode"] == 422
    assert body_of(wrong)["error"]["details"][0]["field"] == "api_key"
    new_key = "rf-" + uuid.uuid4().hex
    httpx.post(f"{emulators.referral_factory}/_emulator/accounts", json={"api_key": new_key, "campaigns": []})
    ok = account_call(call, account, "PUT", "/v1/account/referral-factory", body={"api_key": new_key})
    assert ok["statusCode"] == 200, ok
    assert body_of(account_call(call, account, "GET", "/v1/campaigns"))["data"] == []


def test_an_api_base_where_nothing_answers_is_422_naming_it_and_changes_nothing(call, setup):
    account = setup["account"]
    body = {"api_key": "rf-anything", "api_base": "http://127.0.0.1:9/api/v2"}  # the discard port: refused
    refused = account_call(call, account, "PUT", "/v1/account/referral-factory", body=body)
    assert refused["statusCode"] == 422, refused
    [detail] = body_of(refused)["error"]["details"]
    assert detail["field"] == "api_base" and "nothing answered" in detail["message"]
    assert account_call(call, account, "GET", "/v1/campaigns")["statusCode"] == 200


def test_rotation_makes_the_old_key_and_secret_stop_working(call, setup, aws):
    account = setup["account"]
    rotated = account_call(call, account, "POST", "/v1/account/rotate", body={"what": "api_key"})
    assert rotated["statusCode"] == 200
    new_key = body_of(rotated)["value"]
    assert account_call(call, account, "GET", "/v1/campaigns")["statusCode"] == 401
    assert account_call(call, account, "GET", "/v1/campaigns", key=new_key)["statusCode"] == 200
    secret = account_call(
        call, account, "POST", "/v1/account/rotate", body={"what": "webhook_secret"}, key=new_key
    )
    new_secret = body_of(secret)["value"]
    accounts = Accounts(Store(aws.refs["MainTable"]), SecretBox(aws.refs["DataKey"]))
    old_secret = account["referral_factory_webhook"]["header_value"]
    assert not accounts.webhook_secret_ok(account["account_id"], old_secret)
    assert accounts.webhook_secret_ok(account["account_id"], new_secret)
    bad = account_call(call, account, "POST", "/v1/account/rotate", body={"what": "everything"}, key=new_key)
    assert bad["statusCode"] == 422


ACCOUNT_ROUTES = [
    ("GET", "/v1/intercom/attributes", None),
    ("POST", "/v1/intercom/attributes", {"name": "a", "data_type": "string"}),
    ("GET", "/v1/intercom/segments", None),
    ("GET", "/v1/campaigns", None),
    ("GET", "/v1/campaigns/1/intercom", None),
    ("PUT", "/v1/campaigns/1/intercom", CONTRACT_EXAMPLE),
    ("DELETE", "/v1/campaigns/1/intercom", None),
    ("POST", "/v1/campaigns/1/intercom/setup", None),
    ("PUT", "/v1/account/referral-factory", {"api_key": "k"}),
    ("POST", "/v1/account/rotate", {"what": "api_key"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_ROUTES)
@pytest.mark.parametrize("key", [None, "rfi_not-a-real-key"])
def test_every_account_route_needs_a_valid_key(call, method, path, body, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    event = api_event(method, path, body=body, headers=headers)
    response = call("AccountApiFunction", event)
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "unauthorized"


def test_accounts_are_isolated(call, setup, new_account, workspace, emulators):
    owner, campaign = setup["account"], setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/intercom"
    account_call(call, owner, "POST", f"{path}/setup", body=CONTRACT_EXAMPLE)
    assert account_call(call, owner, "PUT", path, body=CONTRACT_EXAMPLE)["statusCode"] == 200
    intruder_key = "rf-" + uuid.uuid4().hex
    httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": intruder_key, "campaigns": [{"id": random.randint(10**6, 10**9), "name": "Mine"}]},
    )
    intruder = new_account(rf_key=intruder_key, rf_base=f"{emulators.referral_factory}/api/v2")
    connect(call, intruder, workspace())
    # The intruder neither sees nor changes the owner's settings, campaigns or attributes.
    for method, route, body in (
        ("GET", path, None),
        ("DELETE", path, None),
        ("PUT", path, CONTRACT_EXAMPLE),
        ("POST", f"{path}/setup", CONTRACT_EXAMPLE),
    ):
        response = account_call(call, intruder, method, route, body=body)
        assert response["statusCode"] == 404, (method, route, response)
    campaigns = body_of(account_call(call, intruder, "GET", "/v1/campaigns"))["data"]
    assert [c["name"] for c in campaigns] == ["Mine"]
    attributes = body_of(
        account_call(call, intruder, "GET", "/v1/intercom/attributes", query={"refresh": "true"})
    )
    assert "custom_attributes.referral_link" not in {a["full_name"] for a in attributes["data"]}
    connection = body_of(
        call("OAuthCallbackFunction", api_event("GET", "/v1/intercom/connection", headers=bearer(intruder)))
    )
    assert connection["workspace_id"] != setup["workspace"]
    assert account_call(call, owner, "GET", path)["statusCode"] == 200


def test_values_that_could_never_work_get_one_422_naming_each(call, setup):
    """Contract §1, "[v2] Value rules": an initial value outside a list's options or equal to a
    qualifying value, and defaults that do not fit their attribute's data type."""
    account, campaign = setup["account"], setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/intercom"
    account_call(call, account, "POST", f"{path}/setup", body=CONTRACT_EXAMPLE)
    suffix = uuid.uuid4().hex[:6]
    for name, data_type, options in (
        (f"stage_{suffix}", "options", ["Open", "Won"]),
        (f"seats_{suffix}", "integer", None),
    ):
        body = {"name": name, "data_type": data_type, **({"options": options} if options else {})}
        created = account_call(call, account, "POST", "/v1/intercom/attributes", body=body)
        assert created["statusCode"] == 201, created
    stage, seats = f"custom_attributes.stage_{suffix}", f"custom_attributes.seats_{suffix}"

    bad = copy.deepcopy(CONTRACT_EXAMPLE)
    bad["person_invited"]["qualification"]["initial_value"] = " PAID"
    bad["person_invited"]["defaults"] = {"custom_attributes.plan": 3, seats: True}
    response = account_call(call, account, "PUT", path, body=bad)
    assert response["statusCode"] == 422
    details = body_of(response)["error"]["details"]
    assert sorted(d["field"] for d in details) == [
        "person_invited.defaults.custom_attributes.plan",
        f"person_invited.defaults.{seats}",
        "person_invited.qualification.initial_value",
    ]
    assert all(d["message"] for d in details)
    assert account_call(call, account, "GET", path)["statusCode"] == 404

    listed = copy.deepcopy(CONTRACT_EXAMPLE)
    listed["person_invited"]["qualification"] = {
        "attribute": stage,
        "initial_value": "draft",
        "qualifying_values": ["won"],
    }
    response = account_call(call, account, "PUT", path, body=listed)
    assert response["statusCode"] == 422
    [detail] = body_of(response)["error"]["details"]
    assert detail["field"] == "person_invited.qualification.initial_value"

    # The same settings spelled as the list's options are spelled differently are fine.
    listed["person_invited"]["qualification"]["initial_value"] = " open"
    listed["person_invited"]["defaults"] = {seats: 2}
    saved = account_call(call, account, "PUT", path, body=listed)
    assert saved["statusCode"] == 200, saved
