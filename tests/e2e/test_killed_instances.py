"""Killed instances lose nothing and double nothing: busy instances of the signup processor, the
Intercom events consumer and the sync worker are SIGKILLed in the middle of their batches (as Lambda
ends an instance on a timeout or out of memory), their batches come back after the queue's visibility
timeout, and every signup is pushed once, every qualification made once, every contact synced once.

The stack runs the product's template with short timeouts (tests/short_template.py: 5 s, so each
killed batch returns 30 s later); nothing else differs. Each flow gets its own account and workspace,
so the three recoveries can overlap: the three kills happen one after another (each with an emulator
slowed only until its kill, so the instance is caught inside a call), then each test waits for its
flow's recovery. A push killed after it claimed its signup is taken over only once the push lease
(`PUSH_LEASE_S`, 120 s) has run out, whatever the visibility timeout; it sets this module's pace.
"""

from __future__ import annotations

import io
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from local import template as tmpl
from local.demo import Demo, ready_for_signups
from local.demo import join as demo_join
from shared.flows.signup_push import PUSH_LEASE_S
from tests.e2e.conftest import alive, queue_drained, start_stack
from tests.short_template import write_short_template
from tests.template_check import SAFETY_FACTOR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.e2e.conftest import RunningStack

TIMEOUT_S = 5
SHORT = {
    "SignupProcessorFunction": TIMEOUT_S,
    "IntercomEventsFunction": TIMEOUT_S,
    "SyncWorkerFunction": TIMEOUT_S,
}
VISIBILITY_S = SAFETY_FACTOR * TIMEOUT_S
# A killed batch comes back at least this long after the kill: the visibility timeout runs from when
# the batch was received, at most the function's timeout before the kill.
RETURNS_AFTER_S = VISIBILITY_S - TIMEOUT_S
# Liveness bounds on a shared machine, not performance goals.
KILL_WITHIN_S = 30.0
RECOVERY_S = VISIBILITY_S + 90.0
SIGNUP_RECOVERY_S = PUSH_LEASE_S + VISIBILITY_S + 90.0
POLL_S = 0.2
SYNC_USERS = 60  # one search page: three chunks of 20 for the workers
SLOW_MS = 1000  # an emulator's latency while the kill is being aimed
MOST_KILLS = 8  # more than any of the three functions has instances


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_short_template(tmp_path_factory.mktemp("short-template"), SHORT)


@pytest.fixture(scope="module")
def stack(template: Path) -> Iterator[RunningStack]:
    # Schedules an hour apart: no sweep or catch-up may do the work a redelivery must do.
    running = start_stack(template.parent, "--template", str(template), "--schedule-interval", "3600")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def test_the_stack_runs_the_short_timeouts(template: Path, stack: RunningStack) -> None:
    """The premise of every wait below: each killed consumer's queue hands its batch back after 30 s."""
    short = tmpl.load(template)
    queues = tmpl.queues(short)
    for name, fn in tmpl.functions(short).items():
        if name in SHORT:
            assert fn.timeout == TIMEOUT_S
            assert [queues[c.queue].visibility_timeout for c in fn.consumers] == [VISIBILITY_S]
    for queue in ("SignupQueue", "IntercomEventsQueue", "SyncPagesQueue"):
        assert f"<- {queue}: " in stack.stderr()
        assert f"visibility {VISIBILITY_S}s" in _line_with(stack.stderr(), f"<- {queue}: ")


# -- helpers -------------------------------------------------------------------------------------


def _line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def wait_for(check: Callable[[], Any], what: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(POLL_S)
    return found


def requests(base: str, route: str) -> int:
    """How many requests an emulator has received on `route` (`METHOD /path/{template}`), counted as
    each arrives, before any latency fault holds it."""
    return int(httpx.get(f"{base}/_emulator/stats").json()["requests"].get(route, 0))


def slow(base: str, latency_ms: float) -> None:
    response = httpx.put(f"{base}/_emulator/config", json={"faults": {"latency_ms": latency_ms}})
    assert response.status_code == 200, response.text


def crashed_batches(stack: RunningStack, function: str) -> list[int]:
    """The sizes of the batches `function`'s pollers saw fail because their instance died."""
    pattern = re.compile(rf"{function}: batch of (\d+) failed \(Runtime\.ExitError")
    return [int(m.group(1)) for m in pattern.finditer(stack.stderr())]


@dataclass(frozen=True)
class Kill:
    function: str
    pids: tuple[int, ...]  # every instance killed: each was busy
    at: float  # epoch seconds, as the product stamps its records
    busy: frozenset[int]  # the function's busy instances just before the kill


def kill_busy(stack: RunningStack, function: str, aimed: Callable[[], bool]) -> Kill:
    """Once `aimed()` holds (the call to catch is in flight), SIGKILL every busy instance of
    `function`: whichever holds that call, its batch is lost with it."""
    deadline = time.monotonic() + KILL_WITHIN_S
    while not aimed():
        if time.monotonic() > deadline:
            pytest.fail(f"{function} never made the call to catch within {KILL_WITHIN_S:.0f} s")
        time.sleep(0.05)
    killed: list[int] = []
    busy: set[int] = set()
    for _ in range(MOST_KILLS):
        busy |= busy_instances(stack, function)
        response = httpx.post(f"{stack.api}/_local/kill", json={"function": function, "busy_only": True})
        if response.status_code == 404:
            break
        assert response.status_code == 200, response.text
        killed.append(int(response.json()["pid"]))
    assert killed, f"{function} had no busy instance while its call was in flight"
    return Kill(function, tuple(killed), time.time(), frozenset(busy))


def busy_instances(stack: RunningStack, function: str) -> frozenset[int]:
    listed = httpx.get(f"{stack.api}/_local/instances").json()["data"]
    return frozenset(i["pid"] for i in listed if i["function"] == function and i["busy"])


def assert_killed_mid_batch(stack: RunningStack, kill: Kill) -> None:
    assert set(kill.pids) <= kill.busy, "an instance killed was not working on a batch"
    assert not any(alive(pid) for pid in kill.pids)
    # Each one's poller saw the invocation end with the runtime gone: its batch was not deleted.
    assert len(crashed_batches(stack, kill.function)) == len(kill.pids)
    assert not set(kill.pids) & busy_instances(stack, kill.function)


def iso_seconds(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def account(stack: RunningStack, http: httpx.Client) -> Demo:
    """A fresh account set up as the demo sets one up: its own Referral Factory account, workspace,
    connection and configured campaign."""
    demo = Demo(stack.info, None, http, out=io.StringIO())
    ready_for_signups(demo)
    return demo


def join(demo: Demo, first_name: str, referrer_code: str | None = None) -> dict[str, Any]:
    email = f"{first_name.lower()}.{secrets.token_hex(3)}@killed.example"
    return demo_join(demo, first_name, email, referrer_code)


def contacts(demo: Demo, email: str | None = None) -> list[dict[str, Any]]:
    url = f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    found = demo.http.get(url).json()["data"]
    return [c for c in found if email is None or c.get("email") == email]


def records(demo: Demo, email: str) -> list[dict[str, Any]]:
    response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def rf_users(demo: Demo) -> list[dict[str, Any]]:
    url = f"{demo.rf}/_emulator/accounts/{demo.state['rf_api_key']}/users"
    return list(demo.http.get(url).json()["data"])


def pushed(demo: Demo, email: str) -> dict[str, Any] | None:
    found = records(demo, email)
    return found[0] if len(found) == 1 and found[0]["intercom_contact_id"] else None


def custom(contact: dict[str, Any]) -> dict[str, Any]:
    return dict(contact.get("custom_attributes") or {})


# -- the three crashes -----------------------------------------------------------------------------


@dataclass
class Crashes:
    signups: Demo
    signup_people: list[dict[str, Any]]
    signup_kill: Kill
    signup_creates_before: int
    qualify: Demo
    qualify_referrer: dict[str, Any]
    qualify_friends: list[tuple[dict[str, Any], float]]  # each friend and the deal value set
    qualify_kill: Kill
    sync: Demo
    sync_user_ids: list[str]
    sync_id: str
    sync_kill: Kill


@pytest.fixture(scope="module")
def crashes(stack: RunningStack) -> Iterator[Crashes]:
    """Three accounts set up, then one kill per flow, each aimed at an instance inside a call."""
    with httpx.Client(timeout=30) as http:
        signups, qualify, sync = (account(stack, http) for _ in range(3))

        # Qualification's people are pushed before any kill: their leads must exist to change.
        referrer = join(qualify, "Quinn")
        friends = [join(qualify, name, referrer["code"]) for name in ("Fern", "Flo", "Faye")]
        for person in (referrer, *friends):
            wait_for(lambda p=person: pushed(qualify, p["email"]), f"{person['email']} pushed", RECOVERY_S)
        generated = http.post(
            f"{sync.intercom}/_emulator/workspaces/{sync.state['workspace']}/contacts",
            json={"generate": {"count": SYNC_USERS, "role": "user"}},
        )
        assert generated.status_code in (200, 201), generated.text
        wait_for(lambda: queue_drained(stack, "SignupQueue"), "the signup queue drained", RECOVERY_S)
        wait_for(lambda: queue_drained(stack, "IntercomEventsQueue"), "the events queue drained", RECOVERY_S)

        # 1. Signups: killed while Intercom holds a contact's create (it completes without the pusher).
        creates_before = requests(stack.info["intercom"], "POST /contacts")
        slow(signups.intercom, SLOW_MS)
        try:
            rita = join(signups, "Rita")
            people = [rita, join(signups, "Gus", rita["code"]), join(signups, "Gil", rita["code"])]
            signup_kill = kill_busy(
                stack,
                "SignupProcessorFunction",
                lambda: requests(stack.info["intercom"], "POST /contacts") > creates_before,
            )
        finally:
            slow(signups.intercom, 0)

        # 2. Qualification: killed while Referral Factory holds a qualification.
        wait_for(lambda: queue_drained(stack, "IntercomEventsQueue"), "the events queue drained", RECOVERY_S)
        qualifications_before = requests(qualify.rf, "PUT /api/v2/users/qualification")
        deals = [(friend, 100.0 * (i + 1)) for i, friend in enumerate(friends)]
        slow(qualify.rf, SLOW_MS)
        try:
            for friend, deal in deals:
                lead = contacts(qualify, friend["email"])[0]
                edited = http.patch(
                    f"{qualify.intercom}/_emulator/contacts/{lead['id']}",
                    json={"custom_attributes": {"customer_status": "paid", "deal_value": deal}},
                )
                assert edited.status_code == 200, edited.text
            qualify_kill = kill_busy(
                stack,
                "IntercomEventsFunction",
                lambda: requests(qualify.rf, "PUT /api/v2/users/qualification") > qualifications_before,
            )
        finally:
            slow(qualify.rf, 0)

        # 3. Sync: a worker killed while Referral Factory holds one of its contacts' user creation.
        users_before = requests(sync.rf, "POST /api/v2/users")
        slow(sync.rf, SLOW_MS // 2)
        try:
            started = http.post(
                f"{sync.api}/v1/campaigns/{sync.state['campaign_id']}/syncs",
                json={"audience": "users"},
                headers=sync.account(),
            )
            assert started.status_code == 202, started.text
            sync_kill = kill_busy(
                stack, "SyncWorkerFunction", lambda: requests(sync.rf, "POST /api/v2/users") > users_before
            )
        finally:
            slow(sync.rf, 0)

        yield Crashes(
            signups=signups,
            signup_people=people,
            signup_kill=signup_kill,
            signup_creates_before=creates_before,
            qualify=qualify,
            qualify_referrer=referrer,
            qualify_friends=deals,
            qualify_kill=qualify_kill,
            sync=sync,
            sync_user_ids=[str(i) for i in generated.json()["ids"]],
            sync_id=started.json()["sync_id"],
            sync_kill=sync_kill,
        )


# -- what each flow made of its crash (quickest recovery first) ------------------------------------


def test_a_killed_sync_worker_links_every_contact_once(stack: RunningStack, crashes: Crashes) -> None:
    demo, kill = crashes.sync, crashes.sync_kill

    def finished() -> dict[str, Any] | None:
        url = f"{demo.api}/v1/syncs/{crashes.sync_id}"
        sync: dict[str, Any] = demo.http.get(url, headers=demo.account()).json()
        return sync if sync["status"] not in ("queued", "running") else None

    sync = wait_for(finished, "the sync", RECOVERY_S)
    assert_killed_mid_batch(stack, kill)
    assert sync["status"] == "completed", sync
    assert (sync["total"], sync["processed"], sync["failed"]) == (SYNC_USERS, SYNC_USERS, 0), sync
    assert sync["errors"] == []
    # Every contact written back, each counted once. A user a killed attempt created counts as this
    # sync's when the redelivered chunk finds it; one its own signup webhook linked first (the push
    # found the contact by email) counts as linked, not created: `created` may miss one per kill.
    assert (sync["updated"], sync["skipped"]) == (SYNC_USERS, 0), sync
    assert SYNC_USERS - len(kill.pids) <= sync["created"] <= SYNC_USERS, sync
    # The killed chunk could only finish once it came back, a visibility timeout after the kill.
    assert sync["finished_at"] >= int(kill.at) + RETURNS_AFTER_S
    users = [u for u in rf_users(demo) if str(u["campaign_id"]) == demo.state["campaign_id"]]
    by_email = Counter(u["email"] for u in users)
    assert len(users) == SYNC_USERS and set(by_email.values()) == {1}, by_email.most_common(3)
    links = {c["id"]: custom(c).get("referral_link") for c in contacts(demo)}
    emails = {c["id"]: c["email"] for c in contacts(demo)}
    url_by_email = {u["email"]: u["url"] for u in users}
    assert {i: links[i] for i in crashes.sync_user_ids} == {
        i: url_by_email[emails[i]] for i in crashes.sync_user_ids
    }


def test_a_killed_events_consumer_qualifies_each_referral_once(stack: RunningStack, crashes: Crashes) -> None:
    demo, kill = crashes.qualify, crashes.qualify_kill
    for friend, _ in crashes.qualify_friends:
        wait_for(
            lambda f=friend: (r := pushed(demo, f["email"])) and r["status"] == "qualified",
            f"{friend['email']} qualified",
            RECOVERY_S,
        )
    referrer_email = crashes.qualify_referrer["email"]
    wait_for(
        lambda: (
            custom(contacts(demo, referrer_email)[0]).get("converted_referrals")
            == len(crashes.qualify_friends)
        ),
        "the referrer's converted count in Intercom",
        RECOVERY_S,
    )
    wait_for(lambda: queue_drained(stack, "IntercomEventsQueue"), "the events queue drained", RECOVERY_S)
    assert_killed_mid_batch(stack, kill)
    users = {u["id"]: u for u in rf_users(demo)}
    qualified_at = []
    for friend, deal in crashes.qualify_friends:
        user = users[friend["id"]]
        assert (user["qualify_calls"], user["amount"]) == (1, deal)
        assert user["qualified_at"]
        [record] = records(demo, friend["email"])
        qualified = [e for e in record["events"] if e["kind"] == "qualified"]
        assert [(e["via"], e["details"]["sale_value"]) for e in qualified] == [("webhook", deal)]
        qualified_at.append(qualified[0]["at"])
    assert users[crashes.qualify_referrer["id"]]["qualify_calls"] == 0
    # The qualification in flight when its instance was killed went through in Referral Factory, and
    # the redelivery, a visibility timeout later, recorded it without calling again.
    taken_over = [
        (friend["email"], at)
        for (friend, _), at in zip(crashes.qualify_friends, qualified_at, strict=True)
        if iso_seconds(users[friend["id"]]["qualified_at"]) <= kill.at + 2
    ]
    assert taken_over, "no qualification was in flight at the kill"
    assert all(at >= int(kill.at) + RETURNS_AFTER_S for _, at in taken_over), taken_over


def test_a_killed_signup_processor_pushes_each_signup_once(stack: RunningStack, crashes: Crashes) -> None:
    demo, kill = crashes.signups, crashes.signup_kill
    people = crashes.signup_people
    for person in people:
        wait_for(lambda p=person: pushed(demo, p["email"]), f"{person['email']} pushed", SIGNUP_RECOVERY_S)
    rita = people[0]
    wait_for(
        lambda: custom(contacts(demo, rita["email"])[0]).get("referrals_count") == len(people) - 1,
        "the referrer's referrals_count",
        RECOVERY_S,
    )
    wait_for(lambda: queue_drained(stack, "SignupQueue"), "the signup queue drained", RECOVERY_S)
    assert_killed_mid_batch(stack, kill)
    # The workspace holds these people and nobody else, each once.
    assert sorted(c["email"] for c in contacts(demo)) == sorted(p["email"] for p in people)
    taken_over = []
    for person in people:
        [contact] = contacts(demo, person["email"])
        [record] = records(demo, person["email"])
        assert record["intercom_contact_id"] == contact["id"]
        assert record["intercom_status"] == "created"
        created = [e for e in record["events"] if e["kind"] == "contact_created"]
        assert [(e["via"], e["details"]["contact_id"]) for e in created] == [("webhook", contact["id"])]
        if created[0]["at"] - contact["created_at"] >= RETURNS_AFTER_S:
            taken_over.append(person["email"])
    # The contact whose creation was in flight at the kill was made by the killed push and recorded by
    # the push that took its signup over (once the lease ran out), not made again.
    assert taken_over, "no contact was made by a killed push and recorded by a later one"
