"""Company qualification and sale values (`object: company`, contract §1, [v2]) through the real
handlers in process, against both emulators over HTTP.

A campaign qualifies its friends when a company they belong to goes from a non-qualifying account
stage to `customer`, and reads the sale value (`arr`) from their companies. The Intercom emulator's
notifications (`company.updated`, `company.contact.attached`) go to an inbox, so each test decides
what the receiver gets: all of them, repeats, or none (then the sweep finds the change).
"""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.aws import queues
from tests.factories import api_event, body_of
from tests.functional.conftest import ADMIN_TOKEN
from tests.functional.oauth_flow import account_call, connect
from tests.functional.signup_flow import configure, contacts, deliver, drain, empty_queue, join
from tests.functional.test_qualification import (
    Inbox,
    LambdaKilled,
    Note,
    World,
    _call,
    drain_events,
    process,
    pull,
    qualified_events,
    receive,
    referral,
    rf_users,
    signed,
)
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

STAGE, ARR = "account_stage", "arr"
COMPANY_SETTINGS: dict[str, Any] = copy.deepcopy(CONTRACT_EXAMPLE)
COMPANY_SETTINGS["person_invited"]["qualification"] = {
    "object": "company",
    "attribute": f"custom_attributes.{STAGE}",
    "qualifying_values": ["customer"],
}
# Existing contacts (people already in a company) are linked and marked, so they can qualify.
COMPANY_SETTINGS["person_invited"]["duplicates"] = "update"
COMPANY_SETTINGS["commission"] = {"object": "company", "sale_value_attribute": f"custom_attributes.{ARR}"}


@pytest.fixture(scope="module")
def world(lambda_module, aws, emulators) -> Iterator[World]:
    """One connected account for the module: campaign 0 qualifies by company, a referrer in it, and
    the Intercom emulator's notifications going to an inbox."""
    from local.emulators.server import serve_in_thread

    call = _call(lambda_module)
    inbox = Inbox()
    server = serve_in_thread(inbox.app)
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"webhook_url": f"{server.base_url}/"})
    rf_key = "rf-" + uuid.uuid4().hex
    campaigns = [random.randint(10**6, 10**9) for _ in range(2)]
    httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": rf_key, "campaigns": [{"id": c, "name": f"Campaign {c}"} for c in campaigns]},
    ).raise_for_status()
    created = call(
        "AccountApiFunction",
        api_event(
            "POST",
            "/admin/accounts",
            body={
                "name": "Companies",
                "referral_factory_api_key": rf_key,
                "referral_factory_api_base": f"{emulators.referral_factory}/api/v2",
            },
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ),
    )
    account = body_of(created)
    workspace = "wsc" + uuid.uuid4().hex[:8]
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces", json={"id_code": workspace, "name": "Companies"}
    ).raise_for_status()
    connect(call, account, workspace)
    setup = {
        "account": account,
        "workspace": workspace,
        "campaigns": [str(c) for c in campaigns],
        "rf_key": rf_key,
    }
    empty_queue(aws.refs["SignupQueue"])
    configure(call, setup, COMPANY_SETTINGS)
    referrer = join(emulators, setup, "Cora", f"cora-{workspace}@example.com")
    deliver(call, setup, referrer)
    drain(lambda_module, aws)
    yield World(call, lambda_module, aws, emulators, inbox, setup, referrer)
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"webhook_url": None})
    server.stop()


@pytest.fixture(autouse=True)
def _clean(world: World) -> Iterator[None]:
    empty_queue(world.aws.refs["IntercomEventsQueue"])
    yield
    httpx.put(f"{world.emulators.intercom}/_emulator/config", json={"faults": {}})


# -- helpers ----------------------------------------------------------------------------------------
def friends(world: World, *names: str) -> list[dict[str, Any]]:
    """People invited by the referrer, pushed to Intercom as leads (each with its `contact`)."""
    people = []
    for name in names:
        email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
        user = join(world.emulators, world.setup, name, email, world.referrer["code"])
        deliver(world.call, world.setup, user)
        people.append(user)
    drain(world.lambda_module, world.aws)
    by_email = {c.get("email"): c for c in contacts(world.emulators, world.workspace)}
    for person in people:
        person["contact"] = by_email[person["email"]]
    return people


def company(world: World, stage: str | None = None, arr: float | None = None, **fields: Any) -> str:
    """A company that exists in the workspace already (no notification); its Intercom id."""
    custom = {k: v for k, v in ((STAGE, stage), (ARR, arr)) if v is not None}
    name = f"co-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/companies",
        json={"company_id": name, "name": name.title(), "custom_attributes": custom, **fields},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _notes(world: World, topic: str, company_id: str) -> list[Note]:
    with world.inbox.lock:
        found = [n for n in world.inbox.notes if n.data.get("topic") == topic]
    item = "company" if topic == "company.contact.attached" else None
    return [
        n
        for n in found
        if (n.data["data"]["item"][item] if item else n.data["data"]["item"])["id"] == company_id
    ]


def _arrived(world: World, topic: str, company_id: str, before: int) -> Note:
    deadline = time.monotonic() + 5
    while len(found := _notes(world, topic, company_id)) <= before:
        assert time.monotonic() < deadline, f"no {topic} notification for {company_id}"
        time.sleep(0.02)
    return found[-1]


def attach(world: World, contact_id: str, company_id: str) -> Note:
    """A person attaches the contact to the company in Intercom; the notification Intercom sent."""
    before = len(_notes(world, "company.contact.attached", company_id))
    response = httpx.post(
        f"{world.emulators.intercom}/_emulator/contacts/{contact_id}/companies", json={"id": company_id}
    )
    assert response.status_code == 200, response.text
    return _arrived(world, "company.contact.attached", company_id, before)


def edit(world: World, company_id: str, **changes: Any) -> Note:
    """A person edits the company in Intercom; the `company.updated` notification Intercom sent."""
    before = len(_notes(world, "company.updated", company_id))
    response = httpx.patch(
        f"{world.emulators.intercom}/_emulator/companies/{company_id}", json={"custom_attributes": changes}
    )
    assert response.status_code == 200, response.text
    return _arrived(world, "company.updated", company_id, before)


def sweep(world: World) -> None:
    queues.send(
        world.aws.refs["IntercomEventsQueue"],
        {"kind": "qualification.sweep", "account_id": world.account_id, "campaign_id": world.campaign},
    )
    drain_events(world)


def qualify_calls(world: World, person: dict[str, Any]) -> int:
    return int(rf_users(world)[person["id"]]["qualify_calls"])


# -- attributes and settings ------------------------------------------------------------------------
def test_company_attributes_are_listed_and_created_apart_from_contact_ones(world: World):
    account = world.setup["account"]
    listed = account_call(world.call, account, "GET", "/v1/intercom/attributes", query={"model": "company"})
    assert listed["statusCode"] == 200, listed
    attributes = {a["full_name"]: a for a in body_of(listed)["data"]}
    # Intercom's standard company attributes, and the custom ones setup created in the company model.
    assert (
        attributes["monthly_spend"]["data_type"] == "float" and attributes["monthly_spend"]["custom"] is False
    )
    assert attributes["user_count"]["api_writable"] is False and "plan.name" in attributes
    assert attributes[f"custom_attributes.{ARR}"]["data_type"] == "float"
    assert attributes[f"custom_attributes.{STAGE}"]["custom"] is True
    contact_names = {
        a["full_name"]
        for a in body_of(account_call(world.call, account, "GET", "/v1/intercom/attributes"))["data"]
    }
    assert f"custom_attributes.{ARR}" not in contact_names and "monthly_spend" not in contact_names

    created = account_call(
        world.call,
        account,
        "POST",
        "/v1/intercom/attributes",
        body={"name": "seats_paid", "data_type": "integer", "model": "company"},
    )
    assert created["statusCode"] == 201, created
    assert body_of(created)["full_name"] == "custom_attributes.seats_paid"
    refreshed = account_call(
        world.call, account, "GET", "/v1/intercom/attributes", query={"model": "company"}
    )
    assert "custom_attributes.seats_paid" in {a["full_name"] for a in body_of(refreshed)["data"]}
    bad = account_call(world.call, account, "GET", "/v1/intercom/attributes", query={"model": "deal"})
    assert bad["statusCode"] == 422 and "model" in json.dumps(body_of(bad)["error"]["details"])


def test_company_settings_are_validated_against_the_company_attributes(world: World):
    account, campaign = world.setup["account"], world.setup["campaigns"][1]
    path = f"/v1/campaigns/{campaign}/intercom"
    saved = account_call(world.call, account, "PUT", path, body=COMPANY_SETTINGS)
    assert saved["statusCode"] == 200, saved
    stored = body_of(saved)
    assert stored["person_invited"]["qualification"]["object"] == "company"
    assert stored["commission"] == {"object": "company", "sale_value_attribute": f"custom_attributes.{ARR}"}
    # Without an object, the contact's attribute: the default is said explicitly when saved.
    contact_commission = {
        **COMPANY_SETTINGS,
        "commission": {"sale_value_attribute": "custom_attributes.plan"},
    }
    plain = account_call(world.call, account, "PUT", path, body=contact_commission)
    assert plain["statusCode"] == 200, plain
    assert body_of(plain)["commission"] == {
        "object": "contact",
        "sale_value_attribute": "custom_attributes.plan",
    }

    bad = copy.deepcopy(COMPANY_SETTINGS)
    bad["person_invited"]["qualification"]["initial_value"] = "prospect"
    bad["person_referring"]["qualification"] = {
        "object": "company",
        "attribute": "custom_attributes.referral_link",  # a contact attribute, not a company one
        "qualifying_values": ["x"],
    }
    bad["commission"]["sale_value_attribute"] = "custom_attributes.deal_value"  # the contact's
    refused = account_call(world.call, account, "PUT", path, body=bad)
    assert refused["statusCode"] == 422, refused
    details = {d["field"]: d["message"] for d in body_of(refused)["error"]["details"]}
    assert set(details) == {
        "person_invited.qualification.initial_value",
        "person_referring.qualification.attribute",
        "commission.sale_value_attribute",
    }
    assert "creates no companies" in details["person_invited.qualification.initial_value"]
    shape = copy.deepcopy(COMPANY_SETTINGS)
    shape["commission"]["object"] = "deal"
    refused = account_call(world.call, account, "PUT", path, body=shape)
    assert refused["statusCode"] == 422
    assert [d["field"] for d in body_of(refused)["error"]["details"]] == ["commission.object"]


# -- qualification ----------------------------------------------------------------------------------
def test_attach_then_a_change_to_customer_qualifies_once_with_the_companys_sale_value(world: World):
    ada, bo = friends(world, "Ada", "Bo")
    acme = company(world, stage="prospect", arr=1200.5)
    for person in (ada, bo):
        assert receive(world, attach(world, person["contact"]["id"], acme)) == {"status": "queued"}
    drain_events(world)
    assert qualify_calls(world, ada) == qualify_calls(world, bo) == 0  # first seen: a prospect
    note = edit(world, acme, **{STAGE: "Customer "})
    assert receive(world, note) == {"status": "queued"}
    assert receive(world, note) == {"status": "duplicate"}
    drain_events(world)
    users = rf_users(world)
    for person in (ada, bo):
        assert users[person["id"]]["qualify_calls"] == 1 and users[person["id"]]["amount"] == 1200.5
        [event] = qualified_events(referral(world, person))
        assert event.via == "webhook" and event.details["company_id"] == acme
        assert event.details["reason"] == "company_changed_from_non_qualifying"
        assert event.details["sale_value"] == 1200.5 and event.details["sale_value_company_id"] == acme
    # Every later sight of the company (another edit, the sweep, a change away and back) changes nothing.
    receive(world, edit(world, acme, **{ARR: 99.0}))
    receive(world, edit(world, acme, **{STAGE: "churned"}))
    receive(world, edit(world, acme, **{STAGE: "customer"}))
    drain_events(world)
    sweep(world)
    for person in (ada, bo):
        assert qualify_calls(world, person) == 1 and len(qualified_events(referral(world, person))) == 1


def test_a_worker_dying_after_recording_the_change_leaves_it_for_the_retry(world: World, monkeypatch):
    from shared.clients.intercom import IntercomClient

    [jan] = friends(world, "Jan")
    co = company(world, stage="prospect", arr=8.0)
    receive(world, attach(world, jan["contact"]["id"], co))
    drain_events(world)
    receive(world, edit(world, co, **{STAGE: "customer"}))
    [message] = pull(world)

    def die(self, company_id):
        raise LambdaKilled
        yield  # a generator, as the real one

    with monkeypatch.context() as patch:
        patch.setattr(IntercomClient, "company_contact_ids", die)
        with pytest.raises(LambdaKilled):
            process(world, message)
    # The change was recorded before the worker died, so the company now looks unchanged; the change
    # is still pending, and SQS's redelivery acts on it.
    assert qualify_calls(world, jan) == 0
    assert process(world, message) == {"batchItemFailures": []}
    assert qualify_calls(world, jan) == 1
    assert process(world, message) == {"batchItemFailures": []}  # and once more: nothing
    assert qualify_calls(world, jan) == 1


def test_a_company_first_seen_as_a_customer_never_counts(world: World):
    [cy] = friends(world, "Cy")
    already = company(world, stage="customer", arr=10.0)
    receive(world, attach(world, cy["contact"]["id"], already))
    drain_events(world)
    receive(world, edit(world, already, **{ARR: 20.0}))  # still a customer
    drain_events(world)
    sweep(world)
    assert qualify_calls(world, cy) == 0 and referral(world, cy).status == "pending"


def existing_friend(world: World, name: str, *companies: str) -> dict[str, Any]:
    """Someone already in Intercom, in `companies` (the attachments' notifications never delivered),
    who then signs up through the referrer's link: the push links and marks the existing contact."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
    [contact_id] = httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/contacts",
        json={"contacts": [{"role": "user", "email": email}]},
    ).json()["ids"]
    for company_id in companies:
        httpx.post(
            f"{world.emulators.intercom}/_emulator/contacts/{contact_id}/companies", json={"id": company_id}
        ).raise_for_status()
    person = join(world.emulators, world.setup, name, email, world.referrer["code"])
    deliver(world.call, world.setup, person)
    drain(world.lambda_module, world.aws)
    record = referral(world, person)
    assert record.intercom_status == "existing_updated" and record.intercom_contact_id == contact_id
    person["contact"] = {"id": contact_id}
    return person


def test_linking_a_contact_shows_the_product_its_companies_as_they_are(world: World):
    """Dan's company is a prospect when his contact is linked: its first change to customer is one
    the product saw, so it counts. Dee's is a customer already: only a change away and back counts."""
    prospect = company(world, stage="prospect", arr=40.0)
    customer = company(world, stage="customer", arr=500.0)
    dan = existing_friend(world, "Dan", prospect)
    dee = existing_friend(world, "Dee", customer)
    receive(world, edit(world, prospect, **{STAGE: "customer"}))
    receive(world, edit(world, customer, **{ARR: 600.0}))
    drain_events(world)
    sweep(world)
    assert qualify_calls(world, dan) == 1 and rf_users(world)[dan["id"]]["amount"] == 40.0
    assert qualify_calls(world, dee) == 0
    receive(world, edit(world, customer, **{STAGE: "churned"}))
    drain_events(world)
    receive(world, edit(world, customer, **{STAGE: "customer"}))
    drain_events(world)
    assert qualify_calls(world, dee) == 1 and rf_users(world)[dee["id"]]["amount"] == 600.0


def test_a_change_from_before_a_contact_was_linked_counts_for_the_others_only(world: World):
    """The company became a customer (notification lost) before Ely signed up; Ivo was in it all
    along. The sweep sees the change: Ivo qualifies, Ely's first sight was a customer."""
    [ivo] = friends(world, "Ivo")
    shared_co = company(world, stage="trial", arr=30.0)
    receive(world, attach(world, ivo["contact"]["id"], shared_co))
    drain_events(world)
    edit(world, shared_co, **{STAGE: "customer"})  # not delivered
    time.sleep(3.1)  # Ely links well after the change (the rule allows two clocks 2 s apart)
    ely = existing_friend(world, "Ely", shared_co)
    sweep(world)
    assert qualify_calls(world, ivo) == 1
    assert qualify_calls(world, ely) == 0 and referral(world, ely).status == "pending"


def test_the_sweep_finds_a_change_whose_notification_was_lost(world: World):
    [eve] = friends(world, "Eve")
    lost = company(world, stage="trial", arr=75.0)
    receive(world, attach(world, eve["contact"]["id"], lost))
    drain_events(world)
    edit(world, lost, **{STAGE: "customer"})  # dropped: never reaches the receiver
    sweep(world)
    assert qualify_calls(world, eve) == 1
    [event] = qualified_events(referral(world, eve))
    assert event.via == "sweep" and event.details["sale_value"] == 75.0
    sweep(world)
    assert qualify_calls(world, eve) == 1


def test_the_sweep_records_first_sight_when_the_attachment_was_lost(world: World):
    """Both notifications lost: the sweep sees the company for the first time as a customer, which
    never counts; a later change it sees does."""
    [fay] = friends(world, "Fay")
    quiet = company(world, stage="customer", arr=5.0)
    attach(world, fay["contact"]["id"], quiet)  # not delivered
    sweep(world)
    assert qualify_calls(world, fay) == 0
    edit(world, quiet, **{STAGE: "lapsed"})  # not delivered
    sweep(world)
    edit(world, quiet, **{STAGE: "customer"})  # not delivered
    sweep(world)
    assert qualify_calls(world, fay) == 1


# -- commission -------------------------------------------------------------------------------------
def test_the_sale_value_is_read_from_the_most_recently_updated_company_with_one(world: World):
    gus, hal = friends(world, "Gus", "Hal")
    now = int(time.time())
    old = company(world, arr=100.0, updated_at=now - 5000)
    recent = company(world, arr=250.0, updated_at=now - 60)
    newest_without = company(world, updated_at=now - 10)
    qualifying = company(world, stage="prospect")
    for co in (old, recent, newest_without, qualifying):
        receive(world, attach(world, gus["contact"]["id"], co))
    # Hal's only other company has no sale value: he qualifies without one, and the event says why.
    receive(world, attach(world, hal["contact"]["id"], qualifying))
    drain_events(world)
    receive(world, edit(world, qualifying, **{STAGE: "customer"}))
    drain_events(world)
    users = rf_users(world)
    assert users[gus["id"]]["qualify_calls"] == 1 and users[gus["id"]]["amount"] == 250.0
    [event] = qualified_events(referral(world, gus))
    assert event.details["sale_value_company_id"] == recent
    assert users[hal["id"]]["qualify_calls"] == 1 and users[hal["id"]]["amount"] is None
    [event] = qualified_events(referral(world, hal))
    assert event.details["sale_value"] is None
    assert (
        event.details["sale_value_note"]
        == f"none of the contact's 1 companies has a value for custom_attributes.{ARR}"
    )
    assert referral(world, hal).sale_value is None


def test_a_company_qualification_may_take_the_sale_value_from_the_contact(world: World, monkeypatch):
    """Qualified by its company, commissioned on the contact's own `deal_value`: read at qualification."""
    from shared.flows import qualify as qualifier

    monkeypatch.setattr(qualifier, "SETTINGS_TTL_S", 0)  # warm processes see new settings at once
    account, campaign = world.setup["account"], world.setup["campaigns"][1]
    created = account_call(
        world.call,
        account,
        "POST",
        "/v1/intercom/attributes",
        body={"name": "deal_value", "data_type": "float"},
    )
    assert created["statusCode"] == 201, created
    settings = {**COMPANY_SETTINGS, "commission": {"sale_value_attribute": "custom_attributes.deal_value"}}
    saved = account_call(world.call, account, "PUT", f"/v1/campaigns/{campaign}/intercom", body=settings)
    assert saved["statusCode"] == 200, saved
    rex = join(
        world.emulators, world.setup, "Rex", f"rex-{uuid.uuid4().hex[:6]}@example.com", campaign=campaign
    )
    kim = join(
        world.emulators, world.setup, "Kim", f"kim-{uuid.uuid4().hex[:6]}@example.com", rex["code"], campaign
    )
    for person in (rex, kim):
        deliver(world.call, world.setup, person)
    drain(world.lambda_module, world.aws)
    kim_id = next(c["id"] for c in contacts(world.emulators, world.workspace) if c["email"] == kim["email"])
    httpx.patch(
        f"{world.emulators.intercom}/_emulator/contacts/{kim_id}",
        json={"custom_attributes": {"deal_value": 42.5}},
    ).raise_for_status()
    co = company(world, stage="prospect", arr=1.0)
    receive(world, attach(world, kim_id, co))
    drain_events(world)
    receive(world, edit(world, co, **{STAGE: "customer"}))
    drain_events(world)
    user = rf_users(world)[kim["id"]]
    assert user["qualify_calls"] == 1 and user["amount"] == 42.5
    [event] = qualified_events(referral(world, kim))
    assert event.details["company_id"] == co and "sale_value_company_id" not in event.details


def test_a_company_too_big_for_the_queue_is_read_back(world: World, monkeypatch):
    from shared.api.routes import intercom_webhooks

    [lou] = friends(world, "Lou")
    big = company(world, stage="prospect", arr=64.0)
    receive(world, attach(world, lou["contact"]["id"], big))
    drain_events(world)
    note = edit(world, big, **{STAGE: "customer"})
    monkeypatch.setattr(intercom_webhooks, "MAX_ITEM_BYTES", 10)
    assert receive(world, note) == {"status": "queued"}
    [message] = pull(world)
    assert message["trimmed"] is True and "custom_attributes" not in message["item"]
    assert process(world, message) == {"batchItemFailures": []}
    assert qualify_calls(world, lou) == 1 and rf_users(world)[lou["id"]]["amount"] == 64.0


# -- the receiver -----------------------------------------------------------------------------------
def test_the_receiver_takes_both_company_topics_and_refuses_a_malformed_attachment(world: World):
    note = edit(world, company(world, stage="prospect"), **{STAGE: "prospect", ARR: 1.0})
    assert receive(world, note) == {"status": "queued"}
    envelope = copy.deepcopy(note.data)
    envelope.update(topic="company.contact.attached", id=f"notif_{uuid.uuid4()}")
    envelope["data"]["item"] = {"company": envelope["data"]["item"]}  # no contact
    malformed = signed(world, envelope)
    event = api_event(
        "POST",
        "/webhooks/intercom",
        body=malformed.body.decode(),
        headers={"X-Hub-Signature": malformed.signature, "Content-Type": "application/json"},
    )
    response = world.call("IntercomWebhookFunction", event)
    assert response["statusCode"] == 400 and body_of(response)["error"]["code"] == "malformed_body"
    drain_events(world)
