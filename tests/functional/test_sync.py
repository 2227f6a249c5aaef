"""Contact sync end to end in process: audiences, links written back, re-syncs that cost nothing,
faults, crashes that resume, ongoing passes, and a revoked connection that pauses and resumes."""

from __future__ import annotations

import copy
import json

import boto3
import httpx
import pytest

from shared import messages
from shared.aws import queues
from shared.clients.errors import RateLimited, Transient
from shared.flows import sync as sync_engine
from shared.records import syncs as syncs_module
from tests.factories import LambdaContext
from tests.functional.oauth_flow import account_with_campaigns, connect
from tests.functional.signup_flow import configure, contacts, deliver, drain, join
from tests.functional.sync_flow import empty, generate, pump, rf_users, start, stats, status, sync_call
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE


@pytest.fixture(autouse=True)
def _own_queues(aws):
    empty(aws)


@pytest.fixture
def campaign(call, connected_account):
    return configure(call, connected_account)


def segment(emulators, workspace):
    response = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{workspace}/segments",
        json={"name": "Synced", "person_type": "user"},
    )
    return response.json()["id"]


def links(emulators, workspace):
    return {
        c["id"]: (c.get("custom_attributes") or {}).get("referral_link")
        for c in contacts(emulators, workspace)
    }


def test_a_segment_syncs_with_every_link_and_no_duplicate(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    seg = segment(emulators, setup["workspace"])
    members = generate(emulators, setup["workspace"], 160, "user", [seg])
    outsiders = generate(emulators, setup["workspace"], 5, "user")
    sync_id = start(call, setup, {"audience": "segment", "segment_id": seg})
    pump(lambda_module, aws)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert (result["total"], result["processed"], result["created"], result["updated"]) == (
        160,
        160,
        160,
        160,
    )
    assert result["failed"] == 0 and result["errors"] == []
    linked = links(emulators, setup["workspace"])
    assert all(linked[m] for m in members)
    assert not any(linked[o] for o in outsiders)
    users = rf_users(emulators, setup["rf_key"])
    assert len(users) == 160 == len({u["email"] for u in users})
    assert {u["url"] for u in users} == {linked[m] for m in members}


def test_an_unchanged_resync_costs_no_creates_and_no_writes(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    generate(emulators, setup["workspace"], 40, "lead")
    first = start(call, setup, {"audience": "leads"})
    pump(lambda_module, aws)
    assert status(call, setup, first)["created"] == 40
    before_rf, before_ic = stats(emulators.referral_factory), stats(emulators.intercom)
    second = start(call, setup, {"audience": "leads"})
    pump(lambda_module, aws)
    result = status(call, setup, second)
    assert result["status"] == "completed"
    assert (result["processed"], result["created"], result["updated"], result["skipped"]) == (40, 0, 0, 40)
    after_rf, after_ic = stats(emulators.referral_factory), stats(emulators.intercom)
    assert after_rf.get("POST /api/v2/users", 0) == before_rf.get("POST /api/v2/users", 0)
    assert after_ic.get("PUT /contacts/{id}", 0) == before_ic.get("PUT /contacts/{id}", 0)
    assert after_ic.get("POST /contacts/search", 0) - before_ic.get("POST /contacts/search", 0) == 1


def test_all_contacts_and_counters(call, lambda_module, aws, emulators, connected_account, campaign):
    setup = connected_account
    generate(emulators, setup["workspace"], 7, "lead")
    generate(emulators, setup["workspace"], 8, "user")
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={"contacts": [{"role": "lead", "name": "No Email"}]},
    )
    sync_id = start(call, setup, {"audience": "all"})
    pump(lambda_module, aws)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed"
    assert (result["total"], result["processed"], result["created"], result["skipped"]) == (16, 16, 15, 1)


def test_faults_do_not_lose_or_double_anything(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 60, "user")
    faults = {"faults": {"error_rate_429": 0.05, "error_rate_500": 0.05}}
    httpx.put(f"{emulators.intercom}/_emulator/config", json=faults)
    httpx.put(f"{emulators.referral_factory}/_emulator/config", json=faults)
    try:
        sync_id = start(call, setup, {"audience": "users"})
        pump(lambda_module, aws, timeout_s=300)
    finally:
        httpx.put(f"{emulators.intercom}/_emulator/config", json={"faults": {}})
        httpx.put(f"{emulators.referral_factory}/_emulator/config", json={"faults": {}})
    pump(lambda_module, aws, timeout_s=300)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert result["processed"] == 60
    linked = links(emulators, setup["workspace"])
    assert all(linked[i] for i in ids)
    users = rf_users(emulators, setup["rf_key"])
    assert len(users) == len({u["email"] for u in users}) == 60


def test_a_killed_coordinator_and_worker_resume(
    call, lambda_module, aws, emulators, connected_account, campaign, monkeypatch
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 320, "user")
    real_checkpoint = syncs_module.Syncs.checkpoint
    real_record = syncs_module.Syncs.record_chunk
    crashes = {"checkpoint": 1, "record": 1}

    def crashing_checkpoint(self, *args, **kwargs):
        if crashes["checkpoint"]:
            crashes["checkpoint"] -= 1
            raise RuntimeError("coordinator killed after sending its page")
        return real_checkpoint(self, *args, **kwargs)

    def crashing_record(self, *args, **kwargs):
        if crashes["record"]:
            crashes["record"] -= 1
            raise RuntimeError("worker killed before counting its page")
        return real_record(self, *args, **kwargs)

    monkeypatch.setattr(syncs_module.Syncs, "checkpoint", crashing_checkpoint)
    monkeypatch.setattr(syncs_module.Syncs, "record_chunk", crashing_record)
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws, timeout_s=300)
    result = status(call, setup, sync_id)
    assert crashes == {"checkpoint": 0, "record": 0}
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"]) == (320, 320)
    linked = links(emulators, setup["workspace"])
    assert all(linked[i] for i in ids)
    assert len(rf_users(emulators, setup["rf_key"])) == 320


def test_a_contact_retried_after_its_page_ran_on_is_still_synced(
    call, lambda_module, aws, emulators, connected_account, campaign, monkeypatch
):
    """A contact that failed goes along with its page's rest: the page, and so the sync, is not
    finished until that retry is done (it used to be retried on its own and dropped once the page
    completed before it)."""
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 5, "user")
    real_link = sync_engine.ChunkWorker.link
    failures = {ids[1]: 1}

    def flaky_link(self, contact):
        if failures.get(contact.id):
            failures[contact.id] -= 1
            raise Transient("500 from Referral Factory", service="referral_factory", status=500)
        return real_link(self, contact)

    monkeypatch.setattr(sync_engine.ChunkWorker, "link", flaky_link)
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws, timeout_s=60)
    result = status(call, setup, sync_id)
    assert failures == {ids[1]: 0}
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"], result["failed"]) == (5, 5, 0)
    assert all(links(emulators, setup["workspace"])[i] for i in ids)


def test_a_hand_back_delivered_again_after_it_was_counted_hands_on_the_same_rest(
    call, lambda_module, aws, emulators, connected_account, campaign, monkeypatch
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 6, "user")
    real_link = sync_engine.ChunkWorker.link
    real_send = queues.send
    budget = {"spent": 1}
    crashes = {"send": 1}

    def budget_spent_once(self, contact):
        if contact.id == ids[3] and budget["spent"]:
            budget["spent"] -= 1
            raise RateLimited("budget spent", retry_after=0.1, service="referral_factory")
        return real_link(self, contact)

    def crashing_send(url, body, **kwargs):
        if body.get("kind") == messages.SYNC_CHUNK and "+" in body["chunk_id"] and crashes["send"]:
            crashes["send"] -= 1
            raise RuntimeError("worker killed after counting, before handing on its rest")
        return real_send(url, body, **kwargs)

    monkeypatch.setattr(sync_engine.ChunkWorker, "link", budget_spent_once)
    monkeypatch.setattr(queues, "send", crashing_send)
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws, timeout_s=60)
    result = status(call, setup, sync_id)
    assert (budget, crashes) == ({"spent": 0}, {"send": 0})
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"]) == (6, 6)
    assert all(links(emulators, setup["workspace"])[i] for i in ids)


def test_a_user_made_by_an_attempt_that_died_before_linking_it_counts_as_created(
    call, lambda_module, aws, emulators, connected_account, campaign, monkeypatch
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 4, "user")
    real_link_new = sync_engine.ChunkWorker._link_new
    crashes = {"left": 1}

    def dying_after_referral_factory(self, contact, user, created):
        if contact.id == ids[2] and crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("worker killed after Referral Factory made the user, before the link")
        return real_link_new(self, contact, user, created)

    monkeypatch.setattr(sync_engine.ChunkWorker, "_link_new", dying_after_referral_factory)
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws, timeout_s=60)
    result = status(call, setup, sync_id)
    assert crashes == {"left": 0}
    assert result["status"] == "completed", result
    # The redelivered chunk found the user taken (a 422) and still counts it as this sync's creation.
    assert (result["processed"], result["created"], result["updated"], result["skipped"]) == (4, 4, 4, 0)
    users = rf_users(emulators, setup["rf_key"])
    assert len(users) == 4 == len({u["email"] for u in users})
    assert all(links(emulators, setup["workspace"])[i] for i in ids)


def test_a_contact_its_signup_push_linked_gets_its_referral_link_from_the_sync(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    referrer = join(emulators, setup, "Rae", "rae@sync-pushed.example")
    friend = join(emulators, setup, "Fox", "fox@sync-pushed.example", referrer["code"])
    for user in (referrer, friend):
        deliver(call, setup, user)
    drain(lambda_module, aws)
    [lead] = [c for c in contacts(emulators, setup["workspace"]) if c["email"] == friend["email"]]
    # The push linked the friend's lead to its user and, as its mapping says, wrote no link.
    assert "referral_link" not in (lead.get("custom_attributes") or {})
    sync_id = start(call, setup, {"audience": "leads"})
    pump(lambda_module, aws, timeout_s=60)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"], result["updated"]) == (1, 0, 1)
    assert links(emulators, setup["workspace"])[lead["id"]] == friend["url"]
    assert len(rf_users(emulators, setup["rf_key"])) == 2


def test_a_worker_hands_on_the_rest_after_its_slice_and_each_part_counts_once(
    call, lambda_module, aws, emulators, connected_account, campaign, monkeypatch
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 4, "user")
    monkeypatch.setattr(sync_engine, "SLICE_S", 0.0)  # one contact per invocation
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws, timeout_s=60)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"], result["updated"]) == (4, 4, 4)
    assert all(links(emulators, setup["workspace"])[i] for i in ids)
    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    markers = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": f"SYNC#{sync_id}", ":c": "CHUNK#"},
    )["Items"]
    # The page's three parts hold 1, 1 and 2 contacts; the third hands its second contact on.
    assert sorted(m["sk"] for m in markers) == ["CHUNK#0:0", "CHUNK#0:1", "CHUNK#0:2", "CHUNK#0:2+1"]


def test_ongoing_sync_links_new_contacts_without_anyone_starting_it(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    generate(emulators, setup["workspace"], 5, "lead")
    first = start(call, setup, {"audience": "leads", "ongoing": True})
    pump(lambda_module, aws)
    assert status(call, setup, first)["status"] == "completed"
    newcomers = generate(emulators, setup["workspace"], 3, "lead")
    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    work = f"DUE#sync:{setup['account']['account_id']}:{campaign}"
    item = table.get_item(Key={"pk": work, "sk": "DUE"})["Item"]
    table.update_item(
        Key={"pk": work, "sk": "DUE"},
        UpdateExpression="SET next_run_at = :z, gsi1sk = :s",
        ExpressionAttributeValues={":z": 0, ":s": f"{0:012d}#{work[4:]}"},
    )
    lambda_module("SchedulerFunction").handler({"source": "aws.events"}, LambdaContext())
    pump(lambda_module, aws)
    linked = links(emulators, setup["workspace"])
    assert all(linked[n] for n in newcomers)
    listed = json.loads(sync_call(call, setup["account"], "GET", f"/v1/campaigns/{campaign}/syncs")["body"])[
        "data"
    ]
    # Newest first; two syncs started within the same second may be listed either way round.
    assert sorted(s["trigger"] for s in listed) == ["manual", "schedule"]
    scheduled = next(s for s in listed if s["trigger"] == "schedule")
    assert scheduled["status"] == "completed" and scheduled["created"] == 3
    assert item["interval_s"] > 0
    off = sync_call(call, setup["account"], "DELETE", f"/v1/campaigns/{campaign}/syncs/ongoing")
    assert off["statusCode"] == 204
    assert "Item" not in table.get_item(Key={"pk": work, "sk": "DUE"})


def test_a_revoked_connection_pauses_and_a_reconnect_resumes(
    call, lambda_module, aws, emulators, connected_account, campaign
):
    setup = connected_account
    ids = generate(emulators, setup["workspace"], 200, "user")
    sync_id = start(call, setup, {"audience": "users"})
    httpx.post(f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/uninstall")
    pump(lambda_module, aws)
    assert status(call, setup, sync_id)["status"] == "paused"
    connect(call, setup["account"], setup["workspace"])
    pump(lambda_module, aws)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert result["processed"] == 200
    linked = links(emulators, setup["workspace"])
    assert all(linked[i] for i in ids)


def test_sync_api_refusals(call, lambda_module, aws, emulators, connected_account, new_account):
    setup = connected_account
    campaign = setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/syncs"
    missing = sync_call(call, setup["account"], "POST", path, {"audience": "all"})
    assert missing["statusCode"] == 409 and json.loads(missing["body"])["error"]["code"] == "settings_missing"
    configure(call, setup)
    bad = sync_call(call, setup["account"], "POST", path, {"audience": "segment"})
    assert bad["statusCode"] == 422
    bad = sync_call(call, setup["account"], "POST", path, {"audience": "everyone"})
    assert bad["statusCode"] == 422
    first = start(call, setup, {"audience": "all"})
    busy = sync_call(call, setup["account"], "POST", path, {"audience": "all"})
    assert busy["statusCode"] == 409 and json.loads(busy["body"])["error"]["code"] == "sync_in_progress"
    cancelled = sync_call(call, setup["account"], "POST", f"/v1/syncs/{first}/cancel")
    assert cancelled["statusCode"] == 202
    assert status(call, setup, first)["status"] == "cancelled"
    assert sync_call(call, setup["account"], "POST", f"/v1/syncs/{first}/cancel")["statusCode"] == 409
    again = start(call, setup, {"audience": "all"})
    pump(lambda_module, aws)
    assert status(call, setup, again)["status"] == "completed"
    stranger, [own] = account_with_campaigns(new_account, emulators)
    assert sync_call(call, stranger, "GET", f"/v1/syncs/{again}")["statusCode"] == 404
    # Another account's campaign is none of its own; its own needs a connection first.
    elsewhere = sync_call(call, stranger, "POST", path, {"audience": "all"})
    assert elsewhere["statusCode"] == 404
    assert json.loads(elsewhere["body"])["error"]["code"] == "campaign_not_found"
    lonely = sync_call(call, stranger, "POST", f"/v1/campaigns/{own}/syncs", {"audience": "all"})
    assert lonely["statusCode"] == 409 and json.loads(lonely["body"])["error"]["code"] == "not_connected"


def test_the_inbound_mapping_reads_exactly_the_mapped_attributes(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["sync"]["inbound_mapping"] = {"email": "custom_attributes.work_email", "first_name": "name"}
    configure(call, setup, settings)
    people = [
        {
            "role": "user",
            "email": "ada@home.example",
            "name": "Ada King Lovelace",
            "custom_attributes": {"work_email": "ada@engines.example"},
        },
        {"role": "user", "email": "charles@home.example", "name": "Charles Babbage"},
    ]
    added = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts", json={"contacts": people}
    )
    assert added.status_code in (200, 201), added.text
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert (result["processed"], result["created"], result["failed"]) == (2, 1, 1)
    [user] = rf_users(emulators, setup["rf_key"])
    assert (user["email"], user["first_name"]) == ("ada@engines.example", "Ada")
    [error] = result["errors"]
    charles = next(c for c in contacts(emulators, setup["workspace"]) if c["name"] == "Charles Babbage")
    assert error["contact_id"] == charles["id"] and error["code"] == "email_missing"
    assert "custom_attributes.work_email" in error["message"]
    ada = next(c for c in contacts(emulators, setup["workspace"]) if c["name"] == "Ada King Lovelace")
    assert ada["custom_attributes"]["referral_link"] == user["url"]
