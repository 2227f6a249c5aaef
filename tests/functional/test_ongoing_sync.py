"""The ongoing toggle (`GET`/`PUT`/`DELETE /v1/campaigns/{id}/syncs/ongoing`) through the real sync
API, scheduler, coordinator and workers, against both emulators: on without a pass now, the next
scheduled pass covering what the campaign's last completed sync of that audience did not."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from tests.factories import LambdaContext
from tests.functional.oauth_flow import account_with_campaigns
from tests.functional.signup_flow import configure, contacts
from tests.functional.sync_flow import empty, generate, pump, start, status, sync_call

DISABLED = {
    "enabled": False,
    "audience": None,
    "segment_id": None,
    "interval_s": None,
    "last_pass_at": None,
    "next_pass_at": None,
}


@pytest.fixture(autouse=True)
def _own_queues(aws):
    empty(aws)


@pytest.fixture
def campaign(call, connected_account):
    return configure(call, connected_account)


def ongoing(call, account, campaign, method="GET", body=None):
    return sync_call(call, account, method, f"/v1/campaigns/{campaign}/syncs/ongoing", body)


def shown(call, account, campaign):
    response = ongoing(call, account, campaign)
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def fire_now(lambda_module, aws, account, campaign):
    """Move the campaign's ongoing pass to now, run the scheduler, and drain the sync it starts."""
    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    work = f"DUE#sync:{account['account_id']}:{campaign}"
    now = int(time.time())
    table.update_item(
        Key={"pk": work, "sk": "DUE"},
        UpdateExpression="SET next_run_at = :n, gsi1sk = :s",
        ExpressionAttributeValues={":n": now, ":s": f"{now:012d}#{work[4:]}"},
    )
    lambda_module("SchedulerFunction").handler({"source": "aws.events"}, LambdaContext())
    pump(lambda_module, aws)


def syncs_of(call, account, campaign):
    response = sync_call(call, account, "GET", f"/v1/campaigns/{campaign}/syncs")
    return json.loads(response["body"])["data"]


def the_scheduled_pass(call, account, campaign):
    """The one scheduled sync (newest first orders by the second it started: a tie is in any order)."""
    [scheduled] = [s for s in syncs_of(call, account, campaign) if s["trigger"] == "schedule"]
    return scheduled


def stored_sync(aws, sync_id):
    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    return table.get_item(Key={"pk": f"SYNC#{sync_id}", "sk": "META"})["Item"]


def linked(emulators, workspace):
    return {
        c["id"]
        for c in contacts(emulators, workspace)
        if (c.get("custom_attributes") or {}).get("referral_link")
    }


def test_turned_on_without_a_prior_sync_the_next_pass_covers_the_whole_audience(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup, account = connected_account, connected_account["account"]
    leads = generate(emulators, setup["workspace"], 4, "lead")
    assert shown(call, account, campaign) == DISABLED
    before = int(time.time())
    on = ongoing(call, account, campaign, "PUT", {"audience": "leads"})
    assert on["statusCode"] == 200, on
    view = json.loads(on["body"])
    assert view == shown(call, account, campaign)
    assert (view["enabled"], view["audience"], view["segment_id"], view["interval_s"]) == (
        True,
        "leads",
        None,
        900,
    )
    assert view["last_pass_at"] is None
    assert before + 900 <= view["next_pass_at"] <= int(time.time()) + 900
    pump(lambda_module, aws)
    assert syncs_of(call, account, campaign) == []  # no pass now
    fire_now(lambda_module, aws, account, campaign)
    [scheduled] = syncs_of(call, account, campaign)
    assert scheduled["trigger"] == "schedule" and scheduled["status"] == "completed", scheduled
    assert (scheduled["total"], scheduled["created"]) == (4, 4)
    assert stored_sync(aws, scheduled["sync_id"]).get("updated_since") is None
    assert set(leads) <= linked(emulators, setup["workspace"])
    after = shown(call, account, campaign)
    assert after["enabled"] and after["last_pass_at"] >= before


def test_turned_on_after_a_completed_sync_the_next_pass_covers_what_changed_since_it_started(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup, account = connected_account, connected_account["account"]
    generate(emulators, setup["workspace"], 5, "lead")
    first = start(call, setup, {"audience": "leads"})
    pump(lambda_module, aws)
    first_sync = status(call, setup, first)
    assert first_sync["status"] == "completed"
    generate(emulators, setup["workspace"], 2, "user")  # another audience: not this one's business
    newcomers = generate(emulators, setup["workspace"], 3, "lead")
    on = ongoing(call, account, campaign, "PUT", {"audience": "leads", "interval_s": 120})
    assert on["statusCode"] == 200, on
    assert json.loads(on["body"])["interval_s"] == 120
    fire_now(lambda_module, aws, account, campaign)
    scheduled = the_scheduled_pass(call, account, campaign)
    assert scheduled["status"] == "completed", scheduled
    assert stored_sync(aws, scheduled["sync_id"])["updated_since"] == first_sync["started_at"]
    assert scheduled["created"] == 3
    assert set(newcomers) <= linked(emulators, setup["workspace"])
    # The next pass goes on from this one, at the interval set.
    view = shown(call, account, campaign)
    assert view["interval_s"] == 120 and view["next_pass_at"] - view["last_pass_at"] == 120


def test_post_ongoing_shows_with_the_default_interval_and_put_changes_only_the_interval(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup, account = connected_account, connected_account["account"]
    generate(emulators, setup["workspace"], 2, "user")
    sync_id = start(call, setup, {"audience": "users", "ongoing": True})
    pump(lambda_module, aws)
    started_at = status(call, setup, sync_id)["started_at"]
    view = shown(call, account, campaign)
    assert (view["enabled"], view["audience"], view["interval_s"]) == (True, "users", 900)
    assert view["last_pass_at"] == started_at and view["next_pass_at"] == started_at + 900
    faster = ongoing(call, account, campaign, "PUT", {"audience": "users", "interval_s": 60})
    assert faster["statusCode"] == 200, faster
    changed = json.loads(faster["body"])
    assert (changed["interval_s"], changed["last_pass_at"]) == (60, started_at)
    assert changed["next_pass_at"] <= max(started_at + 60, int(time.time()))
    fire_now(lambda_module, aws, account, campaign)
    scheduled = the_scheduled_pass(call, account, campaign)
    assert stored_sync(aws, scheduled["sync_id"])["updated_since"] == started_at  # `since` kept
    off = ongoing(call, account, campaign, "DELETE")
    assert off["statusCode"] == 204
    assert shown(call, account, campaign) == DISABLED


def test_ongoing_toggle_refusals_and_isolation(call, connected_account, new_account, emulators):
    setup, account = connected_account, connected_account["account"]
    campaign = setup["campaigns"][0]
    missing = ongoing(call, account, campaign, "PUT", {"audience": "all"})
    assert missing["statusCode"] == 409
    assert json.loads(missing["body"])["error"]["code"] == "settings_missing"
    configure(call, setup)
    for body, field in (
        ({"audience": "all", "interval_s": 59}, "interval_s"),
        ({"audience": "all", "interval_s": "often"}, "interval_s"),
        ({"audience": "segment"}, "body"),
        ({"audience": "everyone"}, "audience"),
        ({}, "audience"),
    ):
        bad = ongoing(call, account, campaign, "PUT", body)
        assert bad["statusCode"] == 422, (body, bad)
        error = json.loads(bad["body"])["error"]
        assert error["code"] == "validation_failed" and field in json.dumps(error), (body, error)
    assert shown(call, account, campaign) == DISABLED
    on = ongoing(call, account, campaign, "PUT", {"audience": "all", "interval_s": 60})
    assert on["statusCode"] == 200, on
    # Another account (with its own Referral Factory campaigns) finds no such campaign.
    stranger, _ = account_with_campaigns(new_account, emulators)
    for method, body in (("GET", None), ("PUT", {"audience": "all"}), ("DELETE", None)):
        refused = ongoing(call, stranger, campaign, method, body)
        assert refused["statusCode"] == 404, (method, refused)
        assert json.loads(refused["body"])["error"]["code"] == "campaign_not_found"
    assert shown(call, account, campaign) == json.loads(on["body"])
    assert ongoing(call, {"api_key": "not-a-key"}, campaign)["statusCode"] == 401
