"""Qualification: Intercom notifications (and the sweep) qualify each referral in Referral Factory
exactly once, with its sale value, whatever happens to the notifications on the way.

The Intercom emulator's notifications go to a small inbox here, so each test decides what the
receiver gets: every notification, repeats, a shuffle, or a few dropped. The receiver and the
processor are the real handlers in process; both emulators answer over HTTP.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.aws.store import Store
from shared.domain.signatures import hub_signature
from shared.records.referrals import Referral, ReferralEvent, Referrals
from tests.factories import LambdaContext, api_event, body_of, sqs_event
from tests.functional.conftest import ADMIN_TOKEN, INTERCOM_CLIENT_SECRET
from tests.functional.oauth_flow import account_call, connect
from tests.functional.signup_flow import configure, contacts, deliver, drain, empty_queue, join
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

STATUS, DEAL = "customer_status", "deal_value"


class LambdaKilled(BaseException):
    """Lambda ending an invocation at its timeout: no `except Exception` sees it, nothing cleans up."""


@dataclass
class Note:
    body: bytes
    signature: str
    data: dict[str, Any]

    @property
    def contact_id(self) -> str:
        return str(self.data["data"]["item"]["id"])


class Inbox:
    """Where the Intercom emulator sends its notifications during these tests."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.lock = threading.Lock()

        async def receive(request: Request) -> Response:
            body = await request.body()
            note = Note(body, request.headers.get("x-hub-signature", ""), json.loads(body))
            with self.lock:
                self.notes.append(note)
            return Response(status_code=200)

        self.app = Starlette(routes=[Route("/", receive, methods=["POST"])])

    def wait(self, predicate: Callable[[Note], bool], count: int = 1, timeout_s: float = 5) -> list[Note]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                found = [n for n in self.notes if predicate(n)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} of {count} notifications arrived"
                return found
            time.sleep(0.02)


@dataclass
class World:
    call: Callable[[str, dict[str, Any]], Any]
    lambda_module: Any
    aws: Any
    emulators: Any
    inbox: Inbox
    setup: dict[str, Any]
    referrer: dict[str, Any]
    seen: set[int] = field(default_factory=set)

    @property
    def account_id(self) -> str:
        return str(self.setup["account"]["account_id"])

    @property
    def campaign(self) -> str:
        return str(self.setup["campaigns"][0])

    @property
    def workspace(self) -> str:
        return str(self.setup["workspace"])

    def notes(self, contact_id: str | None = None, topic: str | None = None) -> list[Note]:
        with self.inbox.lock:
            return [
                n
                for n in self.inbox.notes
                if n.data.get("app_id") == self.workspace
                and (contact_id is None or n.contact_id == contact_id)
                and (topic is None or n.data.get("topic") == topic)
            ]


def _call(lambda_module: Any) -> Callable[[str, dict[str, Any]], Any]:
    def invoke(function: str, event: dict[str, Any]) -> Any:
        return lambda_module(function).handler(event, LambdaContext(function_name=function))

    return invoke


@pytest.fixture(scope="module")
def world(lambda_module, aws, emulators) -> Iterator[World]:
    """One connected account for the module: campaign 0 with the contract's settings, a referrer in
    it, and the emulator's notifications going to an inbox."""
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
                "name": "Qualifiers",
                "referral_factory_api_key": rf_key,
                "referral_factory_api_base": f"{emulators.referral_factory}/api/v2",
            },
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ),
    )
    account = body_of(created)
    workspace = "wsq" + uuid.uuid4().hex[:8]
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces", json={"id_code": workspace, "name": "Qualifiers"}
    ).raise_for_status()
    connect(call, account, workspace)
    setup = {
        "account": account,
        "workspace": workspace,
        "campaigns": [str(c) for c in campaigns],
        "rf_key": rf_key,
    }
    empty_queue(aws.refs["SignupQueue"])
    configure(call, setup)
    referrer = join(emulators, setup, "Rita", f"rita-{workspace}@example.com")
    deliver(call, setup, referrer)
    drain(lambda_module, aws)
    yield World(call, lambda_module, aws, emulators, inbox, setup, referrer)
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"webhook_url": None})
    server.stop()


@pytest.fixture(autouse=True)
def _clean(world: World) -> Iterator[None]:
    empty_queue(world.aws.refs["IntercomEventsQueue"])
    yield
    httpx.put(f"{world.emulators.referral_factory}/_emulator/config", json={"faults": {}})
    httpx.put(
        f"{world.emulators.intercom}/_emulator/config",
        json={"faults": {}, "webhook_timestamp_format": "unix"},
    )


# -- helpers ----------------------------------------------------------------------------------------
def friends(world: World, *names: str, campaign: str | None = None) -> list[dict[str, Any]]:
    """People invited by the referrer, pushed to Intercom as leads; each with its `contact`."""
    people = []
    for name in names:
        email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
        user = join(world.emulators, world.setup, name, email, world.referrer["code"], campaign=campaign)
        deliver(world.call, world.setup, user)
        people.append(user)
    drain(world.lambda_module, world.aws)
    by_email = {c.get("email"): c for c in contacts(world.emulators, world.workspace)}
    for person in people:
        person["contact"] = by_email[person["email"]]
    return people


def edit(world: World, contact_id: str, **custom: Any) -> Note:
    """A person edits the contact in Intercom; returns the notification Intercom sent."""
    before = len(world.notes(contact_id))
    response = httpx.patch(
        f"{world.emulators.intercom}/_emulator/contacts/{contact_id}", json={"custom_attributes": custom}
    )
    assert response.status_code == 200, response.text
    return world.inbox.wait(
        lambda n: n.data.get("app_id") == world.workspace and n.contact_id == contact_id, before + 1
    )[-1]


def receive(world: World, note: Note) -> dict[str, Any]:
    event = api_event(
        "POST",
        "/webhooks/intercom",
        body=note.body.decode(),
        headers={"X-Hub-Signature": note.signature, "Content-Type": "application/json"},
    )
    response = world.call("IntercomWebhookFunction", event)
    assert response["statusCode"] == 200, response
    return dict(body_of(response))


def signed(world: World, envelope: dict[str, Any]) -> Note:
    body = json.dumps(envelope).encode()
    return Note(body, hub_signature(body, INTERCOM_CLIENT_SECRET), envelope)


def variant(world: World, note: Note, **custom: Any) -> Note:
    """The same notification as Intercom would send it for other attribute values (a new id)."""
    envelope = copy.deepcopy(note.data)
    envelope["id"] = f"notif_{uuid.uuid4()}"
    item = envelope["data"]["item"]
    item["custom_attributes"] = {**item.get("custom_attributes", {}), **custom}
    return signed(world, envelope)


def pull(world: World) -> list[dict[str, Any]]:
    """Every message in the Intercom events queue, taken off it."""
    sqs = boto3.client("sqs")
    url = world.aws.refs["IntercomEventsQueue"]
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def process(world: World, *bodies: dict[str, Any], remaining_ms: int = 10_000) -> dict[str, Any]:
    handler = world.lambda_module("IntercomEventsFunction").handler
    return dict(handler(sqs_event(*bodies), LambdaContext(remaining_ms=remaining_ms)))


def drain_events(world: World, timeout_s: float = 30.0) -> None:
    """Run the processor until the Intercom events queue is empty, delayed messages included."""
    sqs = boto3.client("sqs")
    url = world.aws.refs["IntercomEventsQueue"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1).get("Messages")
        if not batch:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if not int(attrs["ApproximateNumberOfMessagesDelayed"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            ):
                return
            time.sleep(0.2)
            continue
        # Other tests' leftovers (the scheduler fires every due item of the session) are not ours.
        mine = [m for m in batch if json.loads(m["Body"]).get("account_id") == world.account_id]
        for message in batch:
            if message not in mine:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not mine:
            continue
        result = process(world, *[json.loads(m["Body"]) for m in mine])
        failed = {int(f["itemIdentifier"].split("-")[1]) for f in result["batchItemFailures"]}
        for i, message in enumerate(mine):
            if i not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError(f"the Intercom events queue did not drain in {timeout_s} s")


def rf_users(world: World) -> dict[int, dict[str, Any]]:
    response = httpx.get(
        f"{world.emulators.referral_factory}/_emulator/accounts/{world.setup['rf_key']}/users"
    )
    return {u["id"]: u for u in response.json()["data"]}


def rf_requests(world: World) -> int:
    return sum(httpx.get(f"{world.emulators.referral_factory}/_emulator/stats").json()["requests"].values())


def referral(world: World, person: dict[str, Any]) -> Referral:
    record = Referrals(Store(world.aws.refs["MainTable"])).get(
        world.setup["account"]["account_id"], str(person["campaign_id"]), str(person["id"])
    )
    assert record is not None
    return record


def listed(world: World, person: dict[str, Any]) -> dict[str, Any]:
    response = account_call(
        world.call, world.setup["account"], "GET", "/v1/referrals", query={"email": person["email"]}
    )
    [view] = json.loads(response["body"])["data"]
    return dict(view)


def qualified_events(record: Referral) -> list[ReferralEvent]:
    return [e for e in record.events if e.kind == "qualified"]


# -- tests ------------------------------------------------------------------------------------------
def test_a_flip_qualifies_once_with_the_sale_value_and_refreshes_the_referrer(world: World):
    [fred] = friends(world, "Fred")
    note = edit(world, fred["contact"]["id"], **{STATUS: "paid", DEAL: 120.5})
    assert receive(world, note) == {"status": "queued"}
    assert receive(world, note) == {"status": "duplicate"}  # Intercom's retry: dropped by id
    drain_events(world)

    user = rf_users(world)[fred["id"]]
    assert user["qualified_at"] and user["amount"] == 120.5 and user["qualify_calls"] == 1
    view = listed(world, fred)
    assert view["status"] == "qualified" and view["sale_value"] == 120.5 and view["qualified_at"]
    assert [e["kind"] for e in view["events"]] == ["contact_created", "qualified"]
    [event] = [e for e in view["events"] if e["kind"] == "qualified"]
    assert event["via"] == "webhook"
    assert event["details"]["sale_value"] == 120.5 and event["details"]["sale_value_note"] is None
    rita = next(
        c for c in contacts(world.emulators, world.workspace) if c["email"] == world.referrer["email"]
    )
    assert rita["custom_attributes"]["converted_referrals"] >= 1


def test_duplicated_shuffled_and_dropped_notifications_end_with_each_qualified_once(
    world: World, monkeypatch
):
    people = friends(world, "Ann", "Ben", "Cat", "Dan", "Eve", "Fay")
    flipped, untouched = people[:4], people[4:]
    notes, dropped = [], set()
    for i, person in enumerate(flipped):
        cid = person["contact"]["id"]
        notes.append(edit(world, cid, plan="pro"))  # another attribute: costs nothing
        notes.append(edit(world, cid, **{STATUS: "active" if i % 2 else "paid", DEAL: 10 * (i + 1)}))
        if i < 2:
            # Ann's and Ben's qualifying notifications are the last about them, and they are dropped.
            dropped.add(notes[-1].data["id"])
        else:
            notes.append(edit(world, cid, plan="enterprise"))  # after qualifying: nothing more
    for person in untouched:
        notes.append(edit(world, person["contact"]["id"], **{STATUS: "churned"}))
    # Everything else arrives twice, shuffled.
    delivered = [n for n in notes if n.data["id"] not in dropped] * 2
    random.Random(9).shuffle(delivered)
    for note in delivered:
        receive(world, note)
    drain_events(world)
    users = rf_users(world)
    assert [bool(users[p["id"]]["qualified_at"]) for p in people] == [False, False, True, True, False, False]

    # The sweep finds what the webhooks missed, a page at a time here (the rest goes back to the queue).
    from shared.aws import queues
    from shared.flows import sweep as qualification_sweep

    monkeypatch.setattr(qualification_sweep, "PAGE_SIZE", 2)
    monkeypatch.setattr(qualification_sweep, "PAGES_PER_MESSAGE", 1)

    queues.send(
        world.aws.refs["IntercomEventsQueue"],
        {
            "kind": "qualification.sweep",
            "account_id": world.setup["account"]["account_id"],
            "campaign_id": world.campaign,
        },
    )
    drain_events(world)
    users = rf_users(world)
    for i, person in enumerate(flipped):
        user = users[person["id"]]
        assert user["qualify_calls"] == 1 and user["amount"] == 10 * (i + 1)
        [event] = qualified_events(referral(world, person))
        assert event.via == ("sweep" if i < 2 else "webhook")
    for person in untouched:
        assert users[person["id"]]["qualify_calls"] == 0
        assert referral(world, person).status == "pending"


def test_echoes_other_attributes_and_strangers_cost_no_referral_factory_call(world: World):
    [gus] = friends(world, "Gus")
    stranger_id = httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/contacts",
        json={"contacts": [{"role": "user", "email": f"s-{uuid.uuid4().hex[:6]}@example.com"}]},
    ).json()["ids"][0]
    edits = [
        edit(world, gus["contact"]["id"], plan="pro"),
        edit(world, gus["contact"]["id"], **{STATUS: "churned"}),
        edit(world, stranger_id, **{STATUS: "paid", DEAL: 99}),
    ]
    # The product's own writes echo back: the lead it created (with the initial value), the counts it
    # wrote to the referrer.
    echoes = world.notes(gus["contact"]["id"], "contact.lead.created")
    assert echoes and echoes[0].data["data"]["item"]["custom_attributes"][STATUS] == "trial"
    rita = next(
        c for c in contacts(world.emulators, world.workspace) if c["email"] == world.referrer["email"]
    )
    counts_echo = world.notes(rita["id"], "contact.user.updated")
    assert counts_echo
    before = rf_requests(world)
    for note in [*edits, *echoes, *counts_echo] * 2:
        receive(world, note)
    drain_events(world)
    assert rf_requests(world) == before
    assert referral(world, gus).status == "pending"


def test_a_timeout_after_the_referral_factory_call_never_calls_twice(world: World, monkeypatch):
    from shared.clients.referral_factory import ReferralFactoryClient

    [hal] = friends(world, "Hal")
    receive(world, edit(world, hal["contact"]["id"], **{STATUS: "paid", DEAL: 75}))
    [message] = pull(world)
    real_qualify = ReferralFactoryClient.qualify

    def qualify_then_die(self, **kwargs):
        real_qualify(self, **kwargs)
        raise LambdaKilled

    monkeypatch.setattr(ReferralFactoryClient, "qualify", qualify_then_die)
    with pytest.raises(LambdaKilled):
        process(world, message, remaining_ms=300)
    monkeypatch.setattr(ReferralFactoryClient, "qualify", real_qualify)
    # SQS makes the message visible again; the first attempt's in-progress record has expired by then.
    time.sleep(0.4)
    assert process(world, message) == {"batchItemFailures": []}
    assert pull(world) == []
    user = rf_users(world)[hal["id"]]
    assert user["qualify_calls"] == 1 and user["amount"] == 75
    [event] = qualified_events(referral(world, hal))
    assert event.details["sale_value"] == 75


def test_a_timeout_before_the_bookkeeping_finishes_it_on_the_retry(world: World, monkeypatch):
    [ivy] = friends(world, "Ivy")
    receive(world, edit(world, ivy["contact"]["id"], **{STATUS: "active", DEAL: 42}))
    [message] = pull(world)
    real_mark = Referrals.mark_qualified

    def die(self, *args, **kwargs):
        raise LambdaKilled

    monkeypatch.setattr(Referrals, "mark_qualified", die)
    with pytest.raises(LambdaKilled):
        process(world, message)
    assert rf_users(world)[ivy["id"]]["qualify_calls"] == 1
    assert referral(world, ivy).status == "pending"
    monkeypatch.setattr(Referrals, "mark_qualified", real_mark)
    assert process(world, message) == {"batchItemFailures": []}
    assert rf_users(world)[ivy["id"]]["qualify_calls"] == 1
    record = referral(world, ivy)
    assert record.status == "qualified" and record.sale_value == 42
    assert len(qualified_events(record)) == 1


def test_a_concurrent_attempt_is_handed_back_while_the_first_is_in_progress(world: World, monkeypatch):
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.flows import qualify as qualifier

    [jo] = friends(world, "Jo")
    receive(world, edit(world, jo["contact"]["id"], **{STATUS: "paid"}))
    [message] = pull(world)
    real_qualify = ReferralFactoryClient.qualify

    def qualify_then_die(self, **kwargs):
        real_qualify(self, **kwargs)
        raise LambdaKilled

    monkeypatch.setattr(ReferralFactoryClient, "qualify", qualify_then_die)
    with pytest.raises(LambdaKilled):
        process(world, message, remaining_ms=60_000)
    monkeypatch.setattr(ReferralFactoryClient, "qualify", real_qualify)
    # Still in progress (the first invocation could still be running): back to the queue with a delay.
    monkeypatch.setattr(qualifier, "IN_PROGRESS_RETRY_S", 1)
    assert process(world, message) == {"batchItemFailures": []}
    assert pull(world) == []
    time.sleep(1.2)
    [handed_back] = pull(world)
    assert handed_back["requeues"] == 1
    assert rf_users(world)[jo["id"]]["qualify_calls"] == 1
    assert referral(world, jo).status == "pending"


def test_referral_factory_429s_and_500s_still_qualify_each_exactly_once(world: World):
    people = friends(world, *[f"K{i}" for i in range(4)])
    notes = [edit(world, p["contact"]["id"], **{STATUS: "paid", DEAL: 5}) for p in people]
    faults = {"error_rate_429": 0.25, "error_rate_500": 0.25}
    before = rf_requests(world)
    httpx.put(f"{world.emulators.referral_factory}/_emulator/config", json={"faults": faults})
    for note in notes * 2:
        receive(world, note)
    drain_events(world, timeout_s=45)
    httpx.put(f"{world.emulators.referral_factory}/_emulator/config", json={"faults": {}})
    drain_events(world, timeout_s=30)
    users = rf_users(world)
    for person in people:
        assert users[person["id"]]["qualify_calls"] == 1
        assert len(qualified_events(referral(world, person))) == 1
    # Two calls a qualification (the user read again, the qualification): the rest were faulted and retried.
    assert rf_requests(world) - before > 2 * len(people)


def test_sale_values_as_numbers_strings_or_missing_and_iso_timestamps(world: World):
    httpx.put(f"{world.emulators.intercom}/_emulator/config", json={"webhook_timestamp_format": "iso"})
    lea, max_, ned = friends(world, "Lea", "Max", "Ned")
    template = edit(world, lea["contact"]["id"], plan="pro")
    assert isinstance(template.data["data"]["item"]["updated_at"], str)  # ISO-8601
    notes = [
        variant(world, template, **{STATUS: "paid", DEAL: 300}),
        variant(
            world, edit(world, max_["contact"]["id"], plan="pro"), **{STATUS: "paid", DEAL: " 1,250.00 "}
        ),
        variant(world, edit(world, ned["contact"]["id"], plan="pro"), **{STATUS: "paid", DEAL: "call me"}),
    ]
    for note in notes:
        receive(world, note)
    drain_events(world)
    users = rf_users(world)
    assert [users[p["id"]]["amount"] for p in (lea, max_, ned)] == [300, 1250, None]
    assert all(users[p["id"]]["qualify_calls"] == 1 for p in (lea, max_, ned))
    [event] = qualified_events(referral(world, ned))
    assert event.details["sale_value"] is None
    assert event.details["sale_value_note"].startswith("unparsable")
    [event] = qualified_events(referral(world, max_))
    assert event.details["sale_value"] == 1250


def test_merges_move_the_referral_and_removals_are_recorded(world: World, monkeypatch):
    [ola, pam] = friends(world, "Ola", "Pam")
    user_id = httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/contacts",
        json={"contacts": [{"role": "user", "email": f"ola-user-{uuid.uuid4().hex[:6]}@example.com"}]},
    ).json()["ids"][0]
    httpx.post(
        f"{world.emulators.intercom}/_emulator/contacts/merge",
        json={"from": ola["contact"]["id"], "into": user_id},
    ).raise_for_status()
    [merged] = world.inbox.wait(lambda n: n.data.get("topic") == "contact.merged" and n.contact_id == user_id)
    receive(world, merged)
    receive(world, merged)
    drain_events(world)
    record = referral(world, ola)
    assert record.intercom_contact_id == user_id
    assert [e.kind for e in record.events].count("contact_merged") == 1
    # The survivor carries the referral: its change qualifies it. (This notification is too big for the
    # queue, so the processor reads the contact back from Intercom.)
    from shared.api.routes import intercom_webhooks

    monkeypatch.setattr(intercom_webhooks, "MAX_ITEM_BYTES", 10)
    receive(world, edit(world, user_id, **{STATUS: "paid", DEAL: 1}))
    drain_events(world)
    assert rf_users(world)[ola["id"]]["qualify_calls"] == 1

    pam_id = pam["contact"]["id"]
    for topic, flag in (("contact.archived", "archived"), ("contact.deleted", "deleted")):
        minimal = {
            "type": "notification_event",
            "app_id": world.workspace,
            "topic": topic,
            "id": f"notif_{uuid.uuid4()}",
            "data": {
                "type": "notification_event_data",
                "item": {"id": pam_id, "type": "contact", flag: True},
            },
            "created_at": int(time.time()),
        }
        receive(world, signed(world, minimal))
    drain_events(world)
    kinds = [e.kind for e in referral(world, pam).events]
    assert kinds[-2:] == ["contact_archived", "contact_deleted"]


def test_a_late_notification_for_a_merged_away_contact_follows_the_merge(world: World, monkeypatch):
    """Intercom 2.16 answers 410 for a contact merged away. A late, too-big notification about the
    lead is read back through that 410 to the survivor, which takes the referral and qualifies it
    once, not an error retried into the DLQ; the `contact.merged` notification, when it comes at
    last, finds nothing left to move."""
    from shared.api.routes import intercom_webhooks

    [uma] = friends(world, "Uma")
    lead_id = uma["contact"]["id"]
    late = edit(world, lead_id, **{STATUS: "paid", DEAL: 40})
    user_id = httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/contacts",
        json={"contacts": [{"role": "user", "email": f"uma-user-{uuid.uuid4().hex[:6]}@example.com"}]},
    ).json()["ids"][0]
    httpx.post(
        f"{world.emulators.intercom}/_emulator/contacts/merge", json={"from": lead_id, "into": user_id}
    ).raise_for_status()
    [merged] = world.inbox.wait(lambda n: n.data.get("topic") == "contact.merged" and n.contact_id == user_id)
    with monkeypatch.context() as patch:
        patch.setattr(intercom_webhooks, "MAX_ITEM_BYTES", 10)
        receive(world, late)
        drain_events(world)
    record = referral(world, uma)
    assert record.intercom_contact_id == user_id
    assert [(e.kind, e.via) for e in record.events if e.kind == "contact_merged"] == [
        ("contact_merged", "read")
    ]
    assert rf_users(world)[uma["id"]]["qualify_calls"] == 1
    receive(world, merged)
    drain_events(world)
    record = referral(world, uma)
    assert record.intercom_contact_id == user_id
    assert [e.kind for e in record.events].count("contact_merged") == 1
    assert rf_users(world)[uma["id"]]["qualify_calls"] == 1


def test_an_existing_contact_qualifies_only_after_a_change_from_a_value_seen_first(world: World, monkeypatch):
    from shared.flows import qualify as qualifier

    # Warm processes take up to half a minute to see new settings; here, at once.
    monkeypatch.setattr(qualifier, "SETTINGS_TTL_S", 0)
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_invited"]["duplicates"] = "update"
    campaign = world.setup["campaigns"][1]
    path = f"/v1/campaigns/{campaign}/intercom"
    assert account_call(world.call, world.setup["account"], "PUT", path, body=settings)["statusCode"] == 200
    emails = [f"{n}-{uuid.uuid4().hex[:6]}@example.com" for n in ("quinn", "rose")]
    httpx.post(
        f"{world.emulators.intercom}/_emulator/workspaces/{world.workspace}/contacts",
        json={
            "contacts": [
                {"role": "user", "email": emails[0], "custom_attributes": {STATUS: "paid"}},
                {"role": "user", "email": emails[1], "custom_attributes": {STATUS: "churned"}},
            ]
        },
    ).raise_for_status()
    referrer = join(
        world.emulators, world.setup, "Rex", f"rex-{uuid.uuid4().hex[:6]}@example.com", campaign=campaign
    )
    quinn, rose = (
        join(world.emulators, world.setup, n, e, referrer["code"], campaign=campaign)
        for n, e in zip(("Quinn", "Rose"), emails, strict=True)
    )
    for person in (referrer, quinn, rose):
        deliver(world.call, world.setup, person)
    drain(world.lambda_module, world.aws)
    ids = {c["email"]: c["id"] for c in contacts(world.emulators, world.workspace)}
    # Quinn was paying before being referred: touching her contact is no qualifying change...
    receive(world, edit(world, ids[emails[0]], plan="pro"))
    # ...until she goes from a non-qualifying value to a qualifying one. Rose goes straight there.
    receive(world, edit(world, ids[emails[1]], **{STATUS: "active"}))
    drain_events(world)
    users = rf_users(world)
    assert users[quinn["id"]]["qualify_calls"] == 0 and users[rose["id"]]["qualify_calls"] == 1
    receive(world, edit(world, ids[emails[0]], **{STATUS: "churned"}))
    drain_events(world)
    receive(world, edit(world, ids[emails[0]], **{STATUS: "active"}))
    drain_events(world)
    assert rf_users(world)[quinn["id"]]["qualify_calls"] == 1


def test_the_sweep_is_scheduled_with_the_settings_and_fires_through_the_scheduler(world: World):
    account_id = world.setup["account"]["account_id"]
    store = Store(world.aws.refs["MainTable"])
    due = store.get(f"DUE#qualsweep:{account_id}:{world.campaign}", "DUE")
    assert due is not None and due["queue"] == "intercom_events" and due["interval_s"] == 300
    [sam] = friends(world, "Sam")
    edit(world, sam["contact"]["id"], **{STATUS: "paid", DEAL: 7})  # its notification is lost
    now = int(time.time())
    store.update(
        due["pk"],
        "DUE",
        {"next_run_at": now, "gsi1sk": f"{now:012d}#qualsweep:{account_id}:{world.campaign}"},
    )
    world.lambda_module("SchedulerFunction").handler({"source": "aws.events"}, LambdaContext())
    # It fires every due item of the session: what went to the other queues is other tests' business.
    empty_queue(world.aws.refs["SignupQueue"])
    empty_queue(world.aws.refs["SyncQueue"])
    drain_events(world)
    assert rf_users(world)[sam["id"]]["qualify_calls"] == 1
    [event] = qualified_events(referral(world, sam))
    assert event.via == "sweep" and event.details["sale_value"] == 7
    mark = store.get(f"ACCOUNT#{account_id}", f"QUALSWEEP#{world.campaign}")
    assert mark is not None and mark["last_run_at"] >= now


def test_the_receiver_checks_the_signature_the_body_and_the_workspace(world: World):
    [tom] = friends(world, "Tom")
    note = edit(world, tom["contact"]["id"], plan="pro")

    def post(body: str, signature: str | None = None) -> dict[str, Any]:
        sig = signature if signature is not None else hub_signature(body.encode(), INTERCOM_CLIENT_SECRET)
        event = api_event("POST", "/webhooks/intercom", body=body, headers={"X-Hub-Signature": sig})
        return dict(world.call("IntercomWebhookFunction", event))

    assert post(note.body.decode(), "sha1=" + "0" * 40)["statusCode"] == 401
    assert post(note.body.decode(), "")["statusCode"] == 401
    assert post("{not json")["statusCode"] == 400
    assert post(json.dumps({"topic": "contact.user.updated"}))["statusCode"] == 400
    ping = post(json.dumps({"type": "notification_event", "topic": "ping", "data": {"item": {}}}))
    assert ping["statusCode"] == 200 and body_of(ping) == {"status": "pong"}
    stranger = copy.deepcopy(note.data)
    stranger.update(app_id="not-connected-anywhere", id=f"notif_{uuid.uuid4()}")
    answered = post(json.dumps(stranger))
    assert answered["statusCode"] == 200 and body_of(answered) == {"status": "ignored"}
    tagged = copy.deepcopy(note.data)
    tagged.update(topic="contact.user.tag.created", id=f"notif_{uuid.uuid4()}")
    assert body_of(post(json.dumps(tagged))) == {"status": "ignored"}
    assert pull(world) == []
    assert post(note.body.decode(), note.signature)["statusCode"] == 200
    assert post(note.body.decode(), note.signature)["statusCode"] == 200  # a repeat: not queued again
    [queued] = pull(world)
    assert (
        queued["kind"] == "intercom.notification"
        and queued["account_id"] == world.setup["account"]["account_id"]
    )
    assert queued["item"]["id"] == tom["contact"]["id"] and "tags" not in queued["item"]


def test_a_sweep_for_an_account_without_a_connection_waits_for_it(world: World):
    sweep = {"kind": "qualification.sweep", "account_id": "acc_never_connected", "campaign_id": "1"}
    assert process(world, sweep) == {"batchItemFailures": []}
    # What the queue does not know stays on it (and ends in the DLQ), never acknowledged.
    mixed = process(world, sweep, {"kind": "something.else"})
    assert mixed == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_a_referral_qualified_by_hand_in_referral_factory_is_recorded_not_qualified_again(world: World):
    [una] = friends(world, "Una")
    httpx.put(
        f"{world.emulators.referral_factory}/api/v2/users/qualification",
        headers={"Authorization": f"Bearer {world.setup['rf_key']}"},
        json={"id": una["id"], "qualified": True},
    ).raise_for_status()
    receive(world, edit(world, una["contact"]["id"], **{STATUS: "paid", DEAL: 80}))
    drain_events(world)
    assert rf_users(world)[una["id"]]["qualify_calls"] == 1  # the one by hand
    record = referral(world, una)
    assert record.status == "qualified" and record.sale_value is None
    [event] = qualified_events(record)
    assert event.details["sale_value_note"].startswith("qualified in Referral Factory before the product")


def test_a_notification_that_could_not_be_queued_is_not_dropped_as_a_repeat_on_retry(
    world: World, monkeypatch
):
    from shared.aws import queues

    [val] = friends(world, "Val")
    note = edit(world, val["contact"]["id"], **{STATUS: "paid", DEAL: 12})
    real_send = queues.send

    def refuse(*args, **kwargs):
        raise RuntimeError("SQS is unavailable")

    monkeypatch.setattr(queues, "send", refuse)
    event = api_event(
        "POST", "/webhooks/intercom", body=note.body.decode(), headers={"X-Hub-Signature": note.signature}
    )
    assert world.call("IntercomWebhookFunction", event)["statusCode"] == 500  # never 410
    monkeypatch.setattr(queues, "send", real_send)
    assert receive(world, note) == {"status": "queued"}  # Intercom's retry, a minute later
    [message] = pull(world)
    # Delivered twice to the processor (SQS at least once): the second changes nothing.
    assert process(world, message, message) == {"batchItemFailures": []}
    assert rf_users(world)[val["id"]]["qualify_calls"] == 1
    assert len(qualified_events(referral(world, val))) == 1


def test_idempotency_keys_are_pinned_so_moving_code_keeps_deduplication(world: World):
    """Powertools derives an idempotency record's id from the function's module and name unless a
    prefix is given; moving the qualifier would then forget every qualification in flight. The ids
    written here are the ones a deployed stack already holds, character for character."""
    import hashlib

    [ivy] = friends(world, "Ivy")
    note = edit(world, ivy["contact"]["id"], **{STATUS: "paid", DEAL: 10})
    assert receive(world, note) == {"status": "queued"}
    drain_events(world)
    assert rf_users(world)[ivy["id"]]["qualify_calls"] == 1

    table = boto3.resource("dynamodb").Table(world.aws.refs["IdempotencyTable"])
    business_key = f"{world.account_id}:qualify:{world.campaign}:{ivy['id']}"
    digest = hashlib.md5(json.dumps(business_key).encode()).hexdigest()  # Powertools' own hash
    record = table.get_item(Key={"id": f"referral-qualification#{digest}"}).get("Item")
    assert record is not None and record["status"] == "COMPLETED"
    seen = table.get_item(Key={"id": f"intercom-notification#{note.data['id']}"}).get("Item")
    assert seen is not None


# -- value rules (contract §1, "[v2] Value rules") ---------------------------------------------------
def test_a_contact_edited_to_a_differently_spelled_qualifying_value_qualifies_once(world: World):
    [una] = friends(world, "Una")
    note = edit(world, una["contact"]["id"], **{STATUS: " Paid ", DEAL: 15})
    assert receive(world, note) == {"status": "queued"}
    drain_events(world)
    # Spelled yet another way later: the same qualifying value, no second qualification.
    receive(world, edit(world, una["contact"]["id"], **{STATUS: "PAID"}))
    drain_events(world)
    user = rf_users(world)[una["id"]]
    assert user["qualified_at"] and user["qualify_calls"] == 1 and user["amount"] == 15
    [event] = qualified_events(referral(world, una))
    assert event.via == "webhook" and event.details["value"] == "paid"


def test_numbers_compare_as_numbers(world: World, monkeypatch):
    from shared.flows import qualify as qualifier

    monkeypatch.setattr(qualifier, "SETTINGS_TTL_S", 0)
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_invited"]["qualification"]["qualifying_values"] = ["paid", "1"]
    campaign = world.setup["campaigns"][1]
    path = f"/v1/campaigns/{campaign}/intercom"
    assert account_call(world.call, world.setup["account"], "PUT", path, body=settings)["statusCode"] == 200
    referrer = join(
        world.emulators, world.setup, "Nora", f"nora-{uuid.uuid4().hex[:6]}@example.com", campaign=campaign
    )
    deliver(world.call, world.setup, referrer)
    people = []
    for name in ("Otto", "Pia"):
        email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
        people.append(join(world.emulators, world.setup, name, email, referrer["code"], campaign=campaign))
        deliver(world.call, world.setup, people[-1])
    drain(world.lambda_module, world.aws)
    ids = {c["email"]: c["id"] for c in contacts(world.emulators, world.workspace)}
    otto, pia = people
    receive(world, edit(world, ids[otto["email"]], **{STATUS: "1.0"}))
    receive(world, edit(world, ids[pia["email"]], **{STATUS: "1.5"}))
    drain_events(world)
    users = rf_users(world)
    assert users[otto["id"]]["qualify_calls"] == 1
    assert users[pia["id"]]["qualify_calls"] == 0 and referral(world, pia).status == "pending"


def test_the_sweep_finds_a_differently_cased_qualifying_value(world: World):
    vic, wes = friends(world, "Vic", "Wes")
    # Both notifications are lost; only the sweep can see these edits.
    edit(world, vic["contact"]["id"], **{STATUS: "  PAID ", DEAL: 20})
    edit(world, wes["contact"]["id"], **{STATUS: "unpaid", DEAL: 30})
    from shared.aws import queues

    queues.send(
        world.aws.refs["IntercomEventsQueue"],
        {"kind": "qualification.sweep", "account_id": world.account_id, "campaign_id": world.campaign},
    )
    drain_events(world)
    users = rf_users(world)
    assert users[vic["id"]]["qualify_calls"] == 1 and users[vic["id"]]["amount"] == 20
    [event] = qualified_events(referral(world, vic))
    assert event.via == "sweep"
    # Found by the search for the word "paid", and turned down by the rule.
    assert users[wes["id"]]["qualify_calls"] == 0 and referral(world, wes).status == "pending"
