"""Several Intercom workspaces on one account (contract §1 [v2], issue 16), against both emulators over
HTTP: two workspaces, a campaign bound to each; signups, syncs, qualification and commission each touch
only their campaign's workspace, with its own rate budget; disconnecting or losing one leaves the other
working; settings, attributes and segments name their workspace; and an account stored before several
workspaces existed keeps working, migrated once."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared import keys
from shared.aws.store import Store
from tests.factories import api_event, body_of
from tests.functional.oauth_flow import account_call, bearer, connect, connection
from tests.functional.signup_flow import contacts, deliver, drain, empty_queue, join, referrals
from tests.functional.sync_flow import empty, pump, start, status, sync_call
from tests.functional.test_qualification import Inbox, Note
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

STATUS, DEAL = "customer_status", "deal_value"


@dataclass
class Two:
    """An account with workspaces `a` and `b`; campaign `c1` is bound to `a`, `c2` to `b`."""

    call: Callable[[str, dict[str, Any]], Any]
    setup: dict[str, Any]
    a: str
    b: str

    @property
    def account(self) -> dict[str, Any]:
        return dict(self.setup["account"])

    @property
    def account_id(self) -> str:
        return str(self.setup["account"]["account_id"])

    @property
    def c1(self) -> str:
        return str(self.setup["campaigns"][0])

    @property
    def c2(self) -> str:
        return str(self.setup["campaigns"][1])


@pytest.fixture(scope="module")
def inbox(emulators) -> Iterator[Inbox]:
    """The Intercom emulator's notifications, kept here so each test hands them to the receiver."""
    from local.emulators.server import serve_in_thread

    box = Inbox()
    server = serve_in_thread(box.app)
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"webhook_url": f"{server.base_url}/"})
    yield box
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"webhook_url": None})
    server.stop()


@pytest.fixture(autouse=True)
def _own_queues(aws):
    empty_queue(aws.refs["SignupQueue"])
    empty_queue(aws.refs["IntercomEventsQueue"])
    empty(aws)


@pytest.fixture(autouse=True)
def _fast_leases(monkeypatch):
    """A push that met a revoked token waits for Intercom's search before trying again: not for long here."""
    from shared.flows import signup_push

    monkeypatch.setattr(signup_push, "SEARCH_TRUST_DELAY_S", 1)
    monkeypatch.setattr(signup_push, "PUSH_LEASE_S", 2)


def settings_for(workspace_id: str | None) -> dict[str, Any]:
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    if workspace_id is not None:
        settings["workspace_id"] = workspace_id
    return settings


def bind(call, account: dict[str, Any], campaign: str, workspace_id: str | None) -> Any:
    """Create the settings' attributes in the workspace, then save the settings bound to it."""
    path = f"/v1/campaigns/{campaign}/intercom"
    body = settings_for(workspace_id)
    created = account_call(call, account, "POST", f"{path}/setup", body=body)
    assert created["statusCode"] == 200, created
    return account_call(call, account, "PUT", path, body=body)


def new_workspace(emulators, name: str) -> str:
    id_code = "ws" + uuid.uuid4().hex[:8]
    created = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces", json={"id_code": id_code, "name": name, "region": "US"}
    )
    assert created.status_code == 201, created.text
    return id_code


@pytest.fixture
def two(call, new_account, emulators) -> Two:
    rf_key = "rf-" + uuid.uuid4().hex
    campaigns = [random.randint(10**6, 10**9), random.randint(10**6, 10**9)]
    httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": rf_key, "campaigns": [{"id": c, "name": f"Campaign {c}"} for c in campaigns]},
    ).raise_for_status()
    account = new_account(rf_key=rf_key, rf_base=f"{emulators.referral_factory}/api/v2")
    a, b = new_workspace(emulators, "Alpha"), new_workspace(emulators, "Beta")
    connect(call, account, a)
    connect(call, account, b)
    setup = {"account": account, "campaigns": [str(c) for c in campaigns], "rf_key": rf_key, "workspace": a}
    two = Two(call, setup, a, b)
    for campaign, ws in ((two.c1, a), (two.c2, b)):
        saved = bind(call, account, campaign, ws)
        assert saved["statusCode"] == 200, saved
    return two


# -- helpers ----------------------------------------------------------------------------------------
def by_email(emulators, workspace: str, email: str) -> list[dict[str, Any]]:
    return [c for c in contacts(emulators, workspace) if c.get("email") == email]


def listed(call, two: Two, email: str) -> dict[str, dict[str, Any]]:
    """The account's referrals with this email, by campaign."""
    return {r["campaign_id"]: r for r in referrals(call, two.setup, email=email)}


def connections(call, account: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = call(
        "OAuthCallbackFunction", api_event("GET", "/v1/intercom/connections", headers=bearer(account))
    )
    assert response["statusCode"] == 200, response
    return {w["workspace_id"]: w for w in body_of(response)["data"]}


def disconnect_workspace(call, account: dict[str, Any], workspace_id: str) -> Any:
    event = api_event(
        "DELETE",
        f"/v1/intercom/connections/{workspace_id}",
        headers=bearer(account),
        resource="/v1/intercom/connections/{workspace_id}",
        path_parameters={"workspace_id": workspace_id},
    )
    return call("OAuthCallbackFunction", event)


def edit(emulators, inbox: Inbox, workspace: str, contact_id: str, **custom: Any) -> Note:
    """A person edits the contact in Intercom; returns the notification Intercom sent."""

    def mine(note: Note) -> bool:
        return note.data.get("app_id") == workspace and note.contact_id == contact_id

    with inbox.lock:
        before = len([n for n in inbox.notes if mine(n)])
    response = httpx.patch(
        f"{emulators.intercom}/_emulator/contacts/{contact_id}", json={"custom_attributes": custom}
    )
    assert response.status_code == 200, response.text
    return inbox.wait(mine, before + 1)[-1]


def receive_and_process(call, lambda_module, aws, account_id: str, note: Note) -> None:
    """The receiver takes the notification, then the Intercom events processor takes the queue."""
    import boto3

    from tests.factories import LambdaContext, sqs_event

    event = api_event(
        "POST",
        "/webhooks/intercom",
        body=note.body.decode(),
        headers={"X-Hub-Signature": note.signature, "Content-Type": "application/json"},
    )
    assert body_of(call("IntercomWebhookFunction", event)) == {"status": "queued"}
    sqs = boto3.client("sqs")
    url = aws.refs["IntercomEventsQueue"]
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            body = json.loads(message["Body"])
            if body.get("account_id") == account_id:
                bodies.append(body)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    handler = lambda_module("IntercomEventsFunction").handler
    assert handler(sqs_event(*bodies), LambdaContext()) == {"batchItemFailures": []}


def rf_users(emulators, rf_key: str) -> dict[str, dict[str, Any]]:
    users = httpx.get(f"{emulators.referral_factory}/_emulator/accounts/{rf_key}/users").json()["data"]
    return {str(u["id"]): u for u in users}


def budget_partitions(aws) -> set[str]:
    """The Intercom budgets that have counted a request (their `RATE#intercom#{workspace}` partitions)."""
    import boto3

    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    found: set[str] = set()
    for item in table.scan(ProjectionExpression="pk").get("Items", []):
        pk = str(item["pk"])
        if pk.startswith(keys.budget_pk("intercom#")):
            found.add(pk)
    return found


# -- settings, attributes and segments name their workspace -------------------------------------------
def test_with_several_workspaces_settings_and_lists_name_theirs(call, two, emulators):
    account = two.account
    # The list routes need `workspace_id`: 422 naming it, then each workspace's own list.
    for path in ("/v1/intercom/attributes", "/v1/intercom/segments"):
        response = account_call(call, account, "GET", path)
        assert response["statusCode"] == 422, response
        assert [d["field"] for d in body_of(response)["error"]["details"]] == ["workspace_id"]
    created = account_call(
        call,
        account,
        "POST",
        "/v1/intercom/attributes",
        body={"name": "alpha_only", "data_type": "string"},
        query={"workspace_id": two.a},
    )
    assert created["statusCode"] == 201, created
    names = {}
    for ws in (two.a, two.b):
        response = account_call(
            call, account, "GET", "/v1/intercom/attributes", query={"workspace_id": ws, "refresh": "true"}
        )
        assert response["statusCode"] == 200, response
        names[ws] = {a["full_name"] for a in body_of(response)["data"]}
    assert "custom_attributes.alpha_only" in names[two.a]
    assert "custom_attributes.alpha_only" not in names[two.b]
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{two.b}/segments",
        json={"name": "Beta VIPs", "person_type": "user"},
    ).raise_for_status()
    segments = {
        ws: [
            s["name"]
            for s in body_of(
                account_call(call, account, "GET", "/v1/intercom/segments", query={"workspace_id": ws})
            )["data"]
        ]
        for ws in (two.a, two.b)
    }
    assert "Beta VIPs" in segments[two.b] and "Beta VIPs" not in segments[two.a]
    unknown = account_call(call, account, "GET", "/v1/intercom/segments", query={"workspace_id": "ws-nope"})
    assert (unknown["statusCode"], body_of(unknown)["error"]["code"]) == (404, "workspace_not_found")

    # Settings: `workspace_id` required, validated against that workspace's attributes.
    path = f"/v1/campaigns/{two.c2}/intercom"
    missing = account_call(call, account, "PUT", path, body=settings_for(None))
    assert missing["statusCode"] == 422, missing
    assert [d["field"] for d in body_of(missing)["error"]["details"]] == ["workspace_id"]
    alpha_only = settings_for(two.b)
    alpha_only["person_invited"]["mapping"]["source"] = "custom_attributes.alpha_only"
    refused = account_call(call, account, "PUT", path, body=alpha_only)
    assert refused["statusCode"] == 422, refused
    assert "person_invited.mapping.source" in [d["field"] for d in body_of(refused)["error"]["details"]]
    elsewhere = account_call(call, account, "PUT", path, body=settings_for("ws-nope"))
    assert (elsewhere["statusCode"], body_of(elsewhere)["error"]["code"]) == (404, "workspace_not_found")

    # Each campaign shows its workspace; the connections list the campaigns using each.
    for campaign, ws in ((two.c1, two.a), (two.c2, two.b)):
        got = account_call(call, account, "GET", f"/v1/campaigns/{campaign}/intercom")
        assert body_of(got)["workspace_id"] == ws
    listed_campaigns = body_of(account_call(call, account, "GET", "/v1/campaigns"))["data"]
    assert {str(c["id"]): c["intercom"]["workspace_id"] for c in listed_campaigns} == {
        two.c1: two.a,
        two.c2: two.b,
    }
    assert {ws: w["campaign_ids"] for ws, w in connections(call, account).items()} == {
        two.a: [two.c1],
        two.b: [two.c2],
    }


def test_a_campaign_moves_to_another_workspace_only_while_no_sync_runs(call, two, lambda_module, aws):
    account = two.account
    sync = sync_call(call, account, "POST", f"/v1/campaigns/{two.c1}/syncs", {"audience": "all"})
    assert sync["statusCode"] == 202, sync
    moving = bind(call, account, two.c1, two.b)
    assert (moving["statusCode"], body_of(moving)["error"]["code"]) == (409, "sync_in_progress")
    assert (
        body_of(account_call(call, account, "GET", f"/v1/campaigns/{two.c1}/intercom"))["workspace_id"]
        == two.a
    )
    # Saving it in the same workspace is fine while the sync runs.
    assert bind(call, account, two.c1, two.a)["statusCode"] == 200
    pump(lambda_module, aws)
    moved = bind(call, account, two.c1, two.b)
    assert moved["statusCode"] == 200, moved
    assert body_of(moved)["workspace_id"] == two.b
    assert {ws: w["campaign_ids"] for ws, w in connections(call, account).items()} == {
        two.a: [],
        two.b: sorted([two.c1, two.c2]),
    }


# -- each campaign's flows touch only its workspace --------------------------------------------------------
def test_signups_qualification_and_commission_touch_only_their_campaigns_workspace(
    call, two, lambda_module, aws, emulators, inbox
):
    setup = two.setup
    rita = join(emulators, setup, "Rita", f"rita-{two.a}@example.com", campaign=two.c1)
    ben = join(emulators, setup, "Ben", f"ben-{two.b}@example.com", campaign=two.c2)
    # The same person invited in both campaigns: one lead in each workspace.
    sam_email = f"sam-{uuid.uuid4().hex[:6]}@example.com"
    sam1 = join(emulators, setup, "Sam", sam_email, referrer_code=rita["code"], campaign=two.c1)
    sam2 = join(emulators, setup, "Sam", sam_email, referrer_code=ben["code"], campaign=two.c2)
    for user in (rita, ben, sam1, sam2):
        deliver(call, setup, user)
    drain(lambda_module, aws)

    assert [c["role"] for c in by_email(emulators, two.a, rita["email"])] == ["user"]
    assert by_email(emulators, two.b, rita["email"]) == []
    assert [c["role"] for c in by_email(emulators, two.b, ben["email"])] == ["user"]
    assert by_email(emulators, two.a, ben["email"]) == []
    [sam_in_a] = by_email(emulators, two.a, sam_email)
    [sam_in_b] = by_email(emulators, two.b, sam_email)
    sam = listed(call, two, sam_email)
    assert (sam[two.c1]["workspace_id"], sam[two.c1]["intercom_contact_id"]) == (two.a, sam_in_a["id"])
    assert (sam[two.c2]["workspace_id"], sam[two.c2]["intercom_contact_id"]) == (two.b, sam_in_b["id"])
    assert listed(call, two, rita["email"])[two.c1]["workspace_id"] == two.a
    assert listed(call, two, ben["email"])[two.c2]["workspace_id"] == two.b
    # Each workspace's budget counted its own requests.
    assert {keys.budget_pk(f"intercom#{two.a}"), keys.budget_pk(f"intercom#{two.b}")} <= budget_partitions(
        aws
    )

    # Sam becomes a customer in Beta only: only campaign 2's referral qualifies, with Beta's deal value.
    note = edit(emulators, inbox, two.b, sam_in_b["id"], **{STATUS: "paid", DEAL: 250.0})
    receive_and_process(call, lambda_module, aws, two.account_id, note)
    sam = listed(call, two, sam_email)
    assert (sam[two.c2]["status"], sam[two.c2]["sale_value"]) == ("qualified", 250.0)
    assert sam[two.c1]["status"] == "pending"
    users = rf_users(emulators, setup["rf_key"])
    assert users[str(sam2["id"])]["amount"] == 250.0 and users[str(sam2["id"])]["qualify_calls"] == 1
    assert users[str(sam1["id"])]["qualify_calls"] == 0
    # Ben's converted count is written to his contact in Beta; Rita's in Alpha is untouched.
    [ben_contact] = by_email(emulators, two.b, ben["email"])
    assert ben_contact["custom_attributes"].get("converted_referrals") == 1
    [rita_contact] = by_email(emulators, two.a, rita["email"])
    assert rita_contact["custom_attributes"].get("converted_referrals") in (None, 0)

    # Then in Alpha, with Alpha's value: campaign 1's referral qualifies once, campaign 2's stays as it was.
    note = edit(emulators, inbox, two.a, sam_in_a["id"], **{STATUS: "active", DEAL: 90.0})
    receive_and_process(call, lambda_module, aws, two.account_id, note)
    sam = listed(call, two, sam_email)
    assert (sam[two.c1]["status"], sam[two.c1]["sale_value"]) == ("qualified", 90.0)
    assert sam[two.c2]["sale_value"] == 250.0
    users = rf_users(emulators, setup["rf_key"])
    assert (users[str(sam1["id"])]["amount"], users[str(sam2["id"])]["qualify_calls"]) == (90.0, 1)
    [rita_contact] = by_email(emulators, two.a, rita["email"])
    assert rita_contact["custom_attributes"].get("converted_referrals") == 1


def test_syncs_touch_only_their_campaigns_workspace(call, two, lambda_module, aws, emulators):
    from tests.functional.sync_flow import seed

    in_a = [f"a{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(3)]
    in_b = [f"b{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(2)]
    seed(emulators, two.a, [{"role": "user", "email": e, "name": "In Alpha"} for e in in_a])
    seed(emulators, two.b, [{"role": "user", "email": e, "name": "In Beta"} for e in in_b])
    first = start(call, two.setup, {"audience": "users"}, campaign=two.c1)
    pump(lambda_module, aws)
    done = status(call, two.setup, first)
    assert (done["status"], done["total"], done["created"]) == ("completed", 3, 3)
    users = rf_users(emulators, two.setup["rf_key"]).values()
    assert sorted(u["email"] for u in users if str(u["campaign_id"]) == two.c1) == sorted(in_a)
    assert not [u for u in users if str(u["campaign_id"]) == two.c2]
    assert all(c["custom_attributes"].get("referral_link") for c in contacts(emulators, two.a))
    assert not [c for c in contacts(emulators, two.b) if c["custom_attributes"].get("referral_link")]

    second = start(call, two.setup, {"audience": "users"}, campaign=two.c2)
    pump(lambda_module, aws)
    done = status(call, two.setup, second)
    assert (done["status"], done["total"], done["created"]) == ("completed", 2, 2)
    users = rf_users(emulators, two.setup["rf_key"]).values()
    assert sorted(u["email"] for u in users if str(u["campaign_id"]) == two.c2) == sorted(in_b)
    assert all(c["custom_attributes"].get("referral_link") for c in contacts(emulators, two.b))


# -- one workspace gone, the other working -------------------------------------------------------------
def test_disconnecting_one_workspace_leaves_the_other_working(call, two, lambda_module, aws, emulators):
    account, setup = two.account, two.setup
    for campaign in (two.c1, two.c2):
        on = sync_call(call, account, "PUT", f"/v1/campaigns/{campaign}/syncs/ongoing", {"audience": "users"})
        assert on["statusCode"] == 200, on
    running = start(call, setup, {"audience": "users"}, campaign=two.c1)

    assert disconnect_workspace(call, account, two.a)["statusCode"] == 204
    pump(lambda_module, aws)
    drain(lambda_module, aws)
    assert status(call, setup, running)["status"] == "cancelled"
    ongoing = {
        c: body_of(sync_call(call, account, "GET", f"/v1/campaigns/{c}/syncs/ongoing"))["enabled"]
        for c in (two.c1, two.c2)
    }
    assert ongoing == {two.c1: False, two.c2: True}
    assert {ws: w["status"] for ws, w in connections(call, account).items()} == {
        two.a: "disconnected",
        two.b: "connected",
    }
    assert connection(call, account)["workspace_id"] == two.b

    # Beta's campaign goes on; Alpha's signups are held, saying why, in Alpha.
    nora = join(emulators, setup, "Nora", f"nora-{uuid.uuid4().hex[:6]}@example.com", campaign=two.c2)
    otto = join(emulators, setup, "Otto", f"otto-{uuid.uuid4().hex[:6]}@example.com", campaign=two.c1)
    deliver(call, setup, nora)
    deliver(call, setup, otto)
    drain(lambda_module, aws)
    assert len(by_email(emulators, two.b, nora["email"])) == 1
    held = listed(call, two, otto["email"])[two.c1]
    assert (held["intercom_status"], held["workspace_id"]) == ("not_pushed", two.a)
    assert held["events"][-1]["kind"] == "disconnected"
    assert by_email(emulators, two.a, otto["email"]) == by_email(emulators, two.b, otto["email"]) == []
    another = sync_call(call, account, "POST", f"/v1/campaigns/{two.c2}/syncs", {"audience": "users"})
    assert another["statusCode"] == 202, another
    refused = sync_call(call, account, "POST", f"/v1/campaigns/{two.c1}/syncs", {"audience": "users"})
    assert (refused["statusCode"], body_of(refused)["error"]["code"]) == (409, "not_connected")
    pump(lambda_module, aws)


def test_a_revoked_workspace_holds_only_its_campaigns_signups(call, two, lambda_module, aws, emulators):
    setup = two.setup
    httpx.post(f"{emulators.intercom}/_emulator/workspaces/{two.a}/uninstall").raise_for_status()
    walt = join(emulators, setup, "Walt", f"walt-{uuid.uuid4().hex[:6]}@example.com", campaign=two.c1)
    vic = join(emulators, setup, "Vic", f"vic-{uuid.uuid4().hex[:6]}@example.com", campaign=two.c2)
    deliver(call, setup, walt)
    deliver(call, setup, vic)
    drain(lambda_module, aws)
    waiting = listed(call, two, walt["email"])[two.c1]
    assert (waiting["intercom_status"], waiting["workspace_id"]) == ("waiting_for_connection", two.a)
    assert listed(call, two, vic["email"])[two.c2]["intercom_status"] == "created"
    assert {ws: w["status"] for ws, w in connections(call, two.account).items()} == {
        two.a: "revoked",
        two.b: "connected",
    }

    # Beta connecting again (a new token) releases nothing of Alpha's; Alpha connecting again does.
    connect(call, two.account, two.b)
    drain(lambda_module, aws)
    assert listed(call, two, walt["email"])[two.c1]["intercom_status"] == "waiting_for_connection"
    connect(call, two.account, two.a)
    drain(lambda_module, aws)
    [contact] = by_email(emulators, two.a, walt["email"])
    pushed = listed(call, two, walt["email"])[two.c1]
    assert (pushed["intercom_status"], pushed["intercom_contact_id"]) == ("created", contact["id"])
    assert by_email(emulators, two.b, walt["email"]) == []


# -- an account stored before several workspaces --------------------------------------------------------
def _as_stored_before(aws, account_id: str, workspace_id: str, campaign: str) -> Store:
    """Put the account back as the previous version stored it: its connection under `CONNECTION`, its
    campaign's settings without a workspace."""
    store = Store(aws.refs["MainTable"])
    item = store.get(*keys.workspace_connection_key(account_id, workspace_id))
    assert item is not None
    store.delete(*keys.workspace_connection_key(account_id, workspace_id))
    pk, sk = keys.connection_key(account_id)
    store.put({**item, "pk": pk, "sk": sk})
    store.update(*keys.settings_key(account_id, campaign), {}, remove=("workspace_id",))
    return store


def test_an_account_stored_before_keeps_working_and_is_migrated_once(
    call, connected_account, lambda_module, aws, emulators
):
    setup = connected_account
    account, account_id, ws = setup["account"], setup["account"]["account_id"], setup["workspace"]
    campaign = setup["campaigns"][0]
    assert bind(call, account, campaign, None)["statusCode"] == 200  # one workspace: bound to it
    store = _as_stored_before(aws, account_id, ws, campaign)
    assert store.get(*keys.settings_key(account_id, campaign)).get("workspace_id") is None  # type: ignore[union-attr]

    # The single-connection route works as before, and that first read migrated the account.
    view = connection(call, account)
    assert (view["status"], view["workspace_id"]) == ("connected", ws)
    assert store.get(*keys.connection_key(account_id)) is None
    assert store.get(*keys.workspace_connection_key(account_id, ws))["status"] == "connected"  # type: ignore[index]
    assert store.get(*keys.settings_key(account_id, campaign))["workspace_id"] == ws  # type: ignore[index]
    assert connections(call, account)[ws]["campaign_ids"] == [campaign]

    # Two readers moving it at once: the one that finds the new item there already just removes the old.
    _as_stored_before(aws, account_id, ws, campaign)
    old = store.get(*keys.connection_key(account_id))
    assert old is not None
    pk, sk = keys.workspace_connection_key(account_id, ws)
    store.put({**old, "pk": pk, "sk": sk})
    assert list(connections(call, account)) == [ws]
    assert store.get(*keys.connection_key(account_id)) is None
    assert store.get(*keys.settings_key(account_id, campaign))["workspace_id"] == ws  # type: ignore[index]

    # Its campaign's signups go on into the workspace; a second workspace connected later leaves the
    # campaign where it was.
    dora = join(emulators, setup, "Dora", f"dora-{uuid.uuid4().hex[:6]}@example.com")
    deliver(call, setup, dora)
    drain(lambda_module, aws)
    assert len(by_email(emulators, ws, dora["email"])) == 1
    _as_stored_before(aws, account_id, ws, campaign)
    other = new_workspace(emulators, "Later")
    connect(call, account, other)
    assert (
        body_of(account_call(call, account, "GET", f"/v1/campaigns/{campaign}/intercom"))["workspace_id"]
        == ws
    )
    eve = join(emulators, setup, "Eve", f"eve-{uuid.uuid4().hex[:6]}@example.com")
    deliver(call, setup, eve)
    drain(lambda_module, aws)
    assert len(by_email(emulators, ws, eve["email"])) == 1
    assert by_email(emulators, other, eve["email"]) == []


def test_a_connection_event_from_before_acts_on_every_campaign(call, two, lambda_module, aws):
    """Published by the previous version (no `workspace_id`), a disconnect turns every campaign's
    ongoing sync off, as it did then."""
    from shared.aws import queues

    for campaign in (two.c1, two.c2):
        on = sync_call(
            call, two.account, "PUT", f"/v1/campaigns/{campaign}/syncs/ongoing", {"audience": "users"}
        )
        assert on["statusCode"] == 200, on
    queues.send(
        aws.refs["SyncQueue"], {"kind": "connection.disconnected", "account_id": two.account_id, "at": 1}
    )
    pump(lambda_module, aws)
    for campaign in (two.c1, two.c2):
        assert (
            body_of(sync_call(call, two.account, "GET", f"/v1/campaigns/{campaign}/syncs/ongoing"))["enabled"]
            is False
        )
