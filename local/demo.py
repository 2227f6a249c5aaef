"""`python -m local up --demo`: a scenario told in the terminal, step by step, through the running stack.

Everything goes through the same doors a person or a test would use: the product's HTTP API, the
emulators' real and control paths, the embedded AWS. Later issues add steps with `@step(...)`; each
step gets the `Demo` (URLs, one HTTP client, the state earlier steps left, narration and a progress
bar) and a step that fails is reported and does not stop the stack.
"""

from __future__ import annotations

import copy
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlencode, urlsplit

import httpx

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from local.stack import Stack

SEED_CONTACTS = 500
SEED_CHUNK = 50


class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise."""

    def __init__(self, out: TextIO, total: int, label: str, width: int = 30) -> None:
        self.out, self.total, self.label, self.width = out, max(total, 1), label, width
        self.done = 0
        self._tty = out.isatty()
        self._last_tenth = -1
        self._started = time.perf_counter()

    def advance(self, amount: int = 1) -> None:
        self.done = min(self.total, self.done + amount)
        fraction = self.done / self.total
        if self._tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.out.write(f"\r    {self.label} [{bar}] {self.done}/{self.total}")
            self.out.flush()
        elif int(fraction * 10) != self._last_tenth:
            self._last_tenth = int(fraction * 10)
            self.out.write(f"    {self.label}: {self.done}/{self.total}\n")

    def finish(self) -> None:
        elapsed = time.perf_counter() - self._started
        if self._tty:
            self.out.write("\n")
        self.out.write(f"    {self.label}: {self.done} in {elapsed:.1f} s\n")
        self.out.flush()


@dataclass
class Demo:
    info: dict[str, str]
    stack: Stack | None
    http: httpx.Client
    out: TextIO = sys.stderr
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.info["api"]

    @property
    def intercom(self) -> str:
        return self.info["intercom"]

    @property
    def rf(self) -> str:
        return self.info["referral_factory"]

    def say(self, text: str) -> None:
        self.out.write(f"    {text}\n")
        self.out.flush()

    def progress(self, total: int, label: str) -> Progress:
        return Progress(self.out, total, label)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.info['admin_token']}"}

    def account(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state['api_key']}"}


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[Demo], None]


STEPS: list[Step] = []


def step(title: str) -> Callable[[Callable[[Demo], None]], Callable[[Demo], None]]:
    """Register a demo step; steps run in the order they are registered."""

    def register(fn: Callable[[Demo], None]) -> Callable[[Demo], None]:
        STEPS.append(Step(title, fn))
        return fn

    return register


def _expect(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in statuses:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json() if response.content else None


@step("A Referral Factory account with two campaigns (Referral Factory emulator)")
def referral_factory_account(demo: Demo) -> None:
    api_key = f"rf_demo_{secrets.token_hex(8)}"
    body = {"api_key": api_key, "campaigns": [{"name": "Spring referral"}, {"name": "Partner programme"}]}
    created = _expect(demo.http.post(f"{demo.rf}/_emulator/accounts", json=body), 201)
    demo.state["rf_api_key"] = api_key
    demo.state["campaigns"] = created["campaigns"]
    for campaign in created["campaigns"]:
        demo.say(f"campaign {campaign['id']}: {campaign['name']}")


@step("A product account: POST /admin/accounts with the admin token")
def product_account(demo: Demo) -> None:
    body = {"name": "Demo Co", "referral_factory_api_key": demo.state["rf_api_key"]}
    created = _expect(demo.http.post(f"{demo.api}/admin/accounts", json=body, headers=demo.admin()), 201)
    demo.state.update(account_id=created["account_id"], api_key=created["api_key"])
    webhook = created["referral_factory_webhook"]
    demo.say(f"account {created['account_id']}; its API key (shown once): {created['api_key']}")
    # What the operator would paste into Referral Factory's webhook settings.
    _expect(
        demo.http.put(
            f"{demo.rf}/_emulator/accounts/{demo.state['rf_api_key']}/webhooks",
            json={"url": webhook["url"], "headers": {webhook["header_name"]: webhook["header_value"]}},
        ),
        200,
    )
    demo.say(f"Referral Factory now posts its webhooks to {webhook['url']}")


def empty_workspace(demo: Demo) -> str:
    """A new Intercom workspace without contacts; its id_code is also `demo.state["workspace"]`."""
    workspace = {"id_code": f"demo{secrets.token_hex(3)}", "name": "Demo Co", "region": "US"}
    _expect(demo.http.post(f"{demo.intercom}/_emulator/workspaces", json=workspace), 200, 201)
    demo.state["workspace"] = workspace["id_code"]
    return workspace["id_code"]


@step(f"An Intercom workspace with {SEED_CONTACTS} contacts (Intercom emulator)")
def intercom_workspace(demo: Demo) -> None:
    workspace = empty_workspace(demo)
    bar = demo.progress(SEED_CONTACTS, "seeding contacts")
    for start in range(0, SEED_CONTACTS, SEED_CHUNK):
        count = min(SEED_CHUNK, SEED_CONTACTS - start)
        role = "user" if start % (2 * SEED_CHUNK) == 0 else "lead"
        url = f"{demo.intercom}/_emulator/workspaces/{workspace}/contacts"
        _expect(demo.http.post(url, json={"generate": {"count": count, "role": role}}), 200, 201)
        bar.advance(count)
    bar.finish()


@step("Every part answers")
def every_part_answers(demo: Demo) -> None:
    health = demo.http.get(f"{demo.api}/health")
    demo.say(f"GET /health -> {health.status_code} {health.text}")
    missing = demo.http.get(f"{demo.api}/no/such/route")
    demo.say(f"GET /no/such/route -> {missing.status_code} {missing.text} (API Gateway's own answer)")
    if demo.stack is not None:
        routes: dict[str, str] = {}
        for name, fn in demo.stack.functions.items():
            if fn.routes:
                routes[name] = fn.routes[0].path
        for name, path in routes.items():
            concrete = path.replace("{", "").replace("}", "")
            response = demo.http.get(f"{demo.api}{concrete}", headers=demo.account())
            code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
            demo.say(f"{name}: GET {concrete} -> {response.status_code} {code}".rstrip())
        for name, pool in demo.stack.pools.items():
            demo.say(f"{name}: {len(pool.pids())} warm instance(s), pids {pool.pids()}")
        sqs = demo.stack.aws.client("sqs")
        for logical, url in sorted(demo.stack.provisioned.refs.items()):
            if logical in demo.stack.provisioned.queue_names:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                demo.say(f"queue {logical}: {attrs['Attributes']['ApproximateNumberOfMessages']} message(s)")
    for name, base in (("Intercom", demo.intercom), ("Referral Factory", demo.rf)):
        stats = _expect(demo.http.get(f"{base}/_emulator/stats"), 200)
        demo.say(f"{name} emulator stats: {stats}")


def connect_over_http(demo: Demo, workspace: str) -> dict[str, Any]:
    """Connect `workspace` to the demo account: connect, the consent page approved on the emulator's
    `auto_approve`, the callback asked for JSON; returns `GET /v1/intercom/connection`."""
    connect = demo.http.post(f"{demo.api}/v1/intercom/connect", json={}, headers=demo.account())
    authorize_url = _expect(connect, 200)["authorize_url"]
    demo.say(f"POST /v1/intercom/connect -> {connect.status_code}: authorize_url {authorize_url}")
    consent = demo.http.get(
        f"{authorize_url}&{urlencode({'auto_approve': 'true', 'workspace': workspace})}",
        follow_redirects=False,
    )
    location = consent.headers.get("location", "")
    if consent.status_code != 302 or not location.startswith(demo.api):
        raise RuntimeError(f"the consent page answered {consent.status_code} {location or consent.text}")
    demo.say(f"GET the consent page with auto_approve -> 302 to {urlsplit(location).path}?code=...&state=...")
    callback = demo.http.get(location, headers={"Accept": "application/json"}, follow_redirects=False)
    view = _expect(callback, 200)
    demo.say(
        f"GET {urlsplit(location).path} -> {callback.status_code}: {view['status']} {view['workspace_id']}"
    )
    connection: dict[str, Any] = _expect(
        demo.http.get(f"{demo.api}/v1/intercom/connection", headers=demo.account()), 200
    )
    if connection["status"] != "connected" or connection["workspace_id"] != workspace:
        raise RuntimeError(f"the account is not connected to {workspace}: {connection}")
    return connection


@step("Connecting the demo workspace over HTTP, as a script would (OAuth round trip)")
def connect_workspace(demo: Demo) -> None:
    connection = connect_over_http(demo, demo.state["workspace"])
    demo.say(
        f"GET /v1/intercom/connection -> {connection['status']}: workspace {connection['workspace_id']}"
        f" ({connection['workspace_name']}, {connection['region']})"
    )


# The contract's example settings (interfaces.md §1): friends become leads, referrers users.
DEMO_SETTINGS: dict[str, Any] = {
    "sync": {
        "inbound_mapping": {"first_name": "name", "email": "email"},
        "return_mapping": {
            "referral_link": "custom_attributes.referral_link",
            "referrals_count": "custom_attributes.referrals_count",
            "converted_referrals_count": "custom_attributes.converted_referrals",
        },
    },
    "person_invited": {
        "action": "create_lead",
        "mapping": {
            "first_name": "name",
            "email": "email",
            "campaign_name": "custom_attributes.referral_campaign",
            "source": "custom_attributes.referral_source",
        },
        "defaults": {"custom_attributes.plan": "trial"},
        "referrer_mapping": {
            "referrer_first_name": "custom_attributes.referrer_name",
            "referrer_email": "custom_attributes.referrer_email",
        },
        "qualification": {
            "attribute": "custom_attributes.customer_status",
            "initial_value": "trial",
            "qualifying_values": ["paid", "active"],
        },
        "duplicates": "skip",
    },
    "person_referring": {
        "action": "create_user",
        "mapping": {
            "referrer_first_name": "name",
            "referrer_email": "email",
            "referral_link": "custom_attributes.referral_link",
        },
        "defaults": {},
        "duplicates": "skip",
    },
    "commission": {"sale_value_attribute": "custom_attributes.deal_value"},
}
DEMO_REFERRER = ("Rita", "rita@demo-signups.example")
DEMO_FRIENDS = (
    ("Fred", "fred@demo-signups.example"),
    ("Fay", "fay@demo-signups.example"),
    ("Finn", "finn@demo-signups.example"),
)
SIGNUP_TIMEOUT_S = 30.0
POLL_S = 0.2


@step("The demo campaign's Intercom settings: attributes created, settings saved")
def campaign_settings(demo: Demo) -> None:
    campaign = demo.state["campaigns"][0]
    path = f"{demo.api}/v1/campaigns/{campaign['id']}/intercom"
    setup = _expect(demo.http.post(f"{path}/setup", json=DEMO_SETTINGS, headers=demo.account()), 200)
    demo.say(f"POST .../intercom/setup -> created in Intercom: {', '.join(setup['created']) or 'nothing'}")
    if setup["existing"]:
        demo.say(f"  already there: {', '.join(setup['existing'])}")
    _expect(demo.http.put(path, json=DEMO_SETTINGS, headers=demo.account()), 200)
    demo.say(
        f"PUT /v1/campaigns/{campaign['id']}/intercom -> 200: friends become leads, referrers users;"
        " existing contacts are skipped"
    )
    demo.state["campaign_id"] = str(campaign["id"])
    demo.state["campaign_name"] = campaign["name"]


def ready_for_signups(demo: Demo) -> None:
    """What the demo sets up before its signups, minus the seeded contacts, for tests and benchmarks:
    Referral Factory and product accounts with webhooks pointing at the product, an empty workspace
    connected, the first campaign configured with the contract's example settings."""
    referral_factory_account(demo)
    product_account(demo)
    empty_workspace(demo)
    connect_workspace(demo)
    campaign_settings(demo)


def _contacts_by_email(demo: Demo) -> dict[str, dict[str, Any]]:
    url = f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    return {str(c.get("email")): c for c in _expect(demo.http.get(url), 200)["data"] if c.get("email")}


def _show_contact(demo: Demo, contact: dict[str, Any]) -> None:
    custom = contact.get("custom_attributes") or {}
    attributes = ", ".join(f"{k}={v}" for k, v in sorted(custom.items()))
    demo.say(f"{contact['role']:<4} {contact['name']:<5} {contact['email']:<28} {attributes}")


def join(
    demo: Demo,
    first_name: str,
    email: str,
    referrer_code: str | None = None,
    *,
    campaign_id: str | None = None,
) -> dict[str, Any]:
    """Someone signs up on the demo campaign's page (or `campaign_id`'s; through a friend's link when
    `referrer_code` is given), as the Referral Factory emulator lets a test or a benchmark do; returns
    the new user."""
    body: dict[str, Any] = {
        "api_key": demo.state["rf_api_key"],
        "campaign_id": int(campaign_id or demo.state["campaign_id"]),
        "first_name": first_name,
        "email": email,
    }
    if referrer_code:
        body["referrer_code"] = referrer_code
    user: dict[str, Any] = _expect(demo.http.post(f"{demo.rf}/_emulator/signups", json=body), 201)
    return dict(user.get("data") or user)


@step("A referrer and three friends sign up on the campaign page and arrive in Intercom")
def signups_arrive(demo: Demo) -> None:
    rf_key = demo.state["rf_api_key"]
    hook = _expect(demo.http.get(f"{demo.rf}/_emulator/accounts/{rf_key}/webhooks"), 200)
    expected = f"{demo.api}/webhooks/referral-factory/{demo.state['account_id']}"
    if not hook or hook.get("url") != expected:
        raise RuntimeError(f"Referral Factory's webhooks do not point at the product: {hook}")
    demo.say(f"Referral Factory posts {', '.join(hook['events'])} to {hook['url']}")

    def join_and_say(first_name: str, email: str, referrer_code: str | None = None) -> dict[str, Any]:
        user = join(demo, first_name, email, referrer_code)
        demo.say(f"POST /_emulator/signups {first_name} <{email}> -> user {user['id']}, code {user['code']}")
        return user

    started = time.perf_counter()
    referrer = join_and_say(*DEMO_REFERRER)
    for name, email in DEMO_FRIENDS:
        join_and_say(name, email, referrer["code"])
    emails = [DEMO_REFERRER[1], *(email for _, email in DEMO_FRIENDS)]
    bar = demo.progress(len(emails), "contacts in Intercom")
    deadline = time.monotonic() + SIGNUP_TIMEOUT_S
    while True:
        found = _contacts_by_email(demo)
        arrived = [e for e in emails if e in found]
        bar.advance(len(arrived) - bar.done)
        counted = (found.get(DEMO_REFERRER[1]) or {}).get("custom_attributes", {}).get("referrals_count")
        if len(arrived) == len(emails) and counted == len(DEMO_FRIENDS):
            break
        if time.monotonic() > deadline:
            bar.finish()
            missing = sorted(set(emails) - set(arrived))
            raise RuntimeError(
                f"after {SIGNUP_TIMEOUT_S:.0f} s: missing {missing or 'none'},"
                f" the referrer's referrals_count is {counted}"
            )
        time.sleep(POLL_S)
    bar.finish()
    demo.say(f"all four in Intercom {time.perf_counter() - started:.1f} s after the first signup:")
    for email in emails:
        _show_contact(demo, found[email])
    demo.say(f"{DEMO_REFERRER[0]}'s referrals_count in Intercom: {counted}")


@step("The product's referral records: GET /v1/referrals?campaign_id=...")
def referral_records(demo: Demo) -> None:
    response = demo.http.get(
        f"{demo.api}/v1/referrals", params={"campaign_id": demo.state["campaign_id"]}, headers=demo.account()
    )
    for record in _expect(response, 200)["data"]:
        kinds = ", ".join(f"{e['kind']} via {e['via']}" for e in record["events"])
        demo.say(
            f"{record['email']:<28} {record['type']:<16} {record['intercom_status']:<8}"
            f" contact {record['intercom_contact_id']} can_qualify={record['can_qualify']}"
            f" status={record['status']} [{kinds}]"
        )
    demo.say(f"  curl -H 'Authorization: Bearer {demo.state['api_key']}' '{response.request.url}'")


@step("The consent page, to try by hand in a browser")
def consent_page_by_hand(demo: Demo) -> None:
    response = demo.http.post(f"{demo.api}/v1/intercom/connect", json={}, headers=demo.account())
    authorize_url = _expect(response, 200)["authorize_url"]
    demo.state["authorize_url"] = f"{authorize_url}&{urlencode({'workspace': demo.state['workspace']})}"
    demo.say("open this URL in a browser within 10 minutes (the state is single-use):")
    demo.say(f"  {demo.state['authorize_url']}")
    demo.say("'Authorize access' connects the demo workspace again and shows 'Intercom connected';")
    demo.say("'Deny access' shows 'Intercom was not connected' and leaves the connection as it is. Then:")
    demo.say(f"  curl -H 'Authorization: Bearer {demo.state['api_key']}' {demo.api}/v1/intercom/connection")


def run_steps(demo: Demo, steps: list[Step], stop: threading.Event | None = None) -> bool:
    """Run `steps` in order, narrated; returns whether every step succeeded."""
    ok = True
    for number, current in enumerate(steps, 1):
        if stop is not None and stop.is_set():
            return ok
        demo.out.write(f"\n==> {number}/{len(steps)} {current.title}\n")
        started = time.perf_counter()
        try:
            current.run(demo)
        except Exception as exc:
            ok = False
            demo.say(f"step failed: {type(exc).__name__}: {exc}")
            continue
        demo.say(f"({time.perf_counter() - started:.1f} s)")
    return ok


def run_demo(info: dict[str, str], stack: Stack | None, stop: threading.Event | None = None) -> bool:
    with httpx.Client(timeout=30) as http:
        demo = Demo(info, stack, http)
        ok = run_steps(demo, STEPS, stop)
    story = (
        f"\n==> demo {'done' if ok else 'finished with failures'}; the stack keeps serving on {info['api']}"
        " (Ctrl-C stops it)\n"
    )
    if "api_key" in demo.state:
        # Like the admin answer, the one place the demo shows its key: the fragment never reaches a server.
        link = console_link(info, demo.state["api_key"])
        story += f"==> the console, signed in as the demo account: {link}\n"
    demo.out.write(story)
    demo.out.flush()
    return ok


def console_link(info: dict[str, str], api_key: str) -> str:
    """The console's address that signs `api_key`'s account in (contract §4: `/console#key=<key>`)."""
    return f"{info['api']}/console#key={quote(api_key, safe='')}"


QUALIFY_TIMEOUT_S = 30.0
# Two of the friends become paying customers in Intercom, each with the deal's value.
DEMO_FLIPS = ((DEMO_FRIENDS[0][1], "paid", 249.0), (DEMO_FRIENDS[1][1], "active", 99.5))


@step("Two friends become paying customers in Intercom: each referral qualifies once, with its amount")
def friends_qualify(demo: Demo) -> None:
    rf_key = demo.state["rf_api_key"]
    found = _contacts_by_email(demo)
    started = time.perf_counter()
    for email, status, deal in DEMO_FLIPS:
        contact_id = found[email]["id"]
        # A person editing the contact in Intercom: Intercom notifies the product's webhook.
        body = {"custom_attributes": {"customer_status": status, "deal_value": deal}}
        _expect(demo.http.patch(f"{demo.intercom}/_emulator/contacts/{contact_id}", json=body), 200)
        demo.say(f"PATCH /_emulator/contacts/{contact_id} ({email}): {body['custom_attributes']}")
    wanted = {email for email, _, _ in DEMO_FLIPS}
    deadline = time.monotonic() + QUALIFY_TIMEOUT_S
    while True:
        users = _expect(demo.http.get(f"{demo.rf}/_emulator/accounts/{rf_key}/users"), 200)["data"]
        done = {u["email"]: u for u in users if u["email"] in wanted and u.get("qualified_at")}
        if len(done) == len(wanted):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"after {QUALIFY_TIMEOUT_S:.0f} s only {sorted(done)} qualified")
        time.sleep(POLL_S)
    demo.say(f"qualified in Referral Factory {time.perf_counter() - started:.1f} s after the edits:")
    for email, _, _ in DEMO_FLIPS:
        user = done[email]
        demo.say(
            f"  user {user['id']} {email:<28} qualified_at={user['qualified_at']} amount={user['amount']}"
            f" qualify_calls={user['qualify_calls']}"
        )
    others = sorted(u["email"] for u in users if u.get("qualified_at") and u["email"] not in wanted)
    demo.say(f"  other users qualified: {others or 'none'}")
    for email, _, _ in DEMO_FLIPS:
        response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
        view = _expect(response, 200)["data"][0]
        history = "; ".join(
            f"{e['kind']} via {e['via']}"
            + (f" (sale_value {e['details'].get('sale_value')})" if e["kind"] == "qualified" else "")
            for e in view["events"]
        )
        demo.say(
            f"  GET /v1/referrals?email={email}: status={view['status']} sale_value={view['sale_value']}"
        )
        demo.say(f"    history: {history}")


# The second campaign: a B2B programme whose sale value is the friend's company's, and a push Intercom
# refuses for a reason the account can fix, then retried.
B2B_COMPANY = {"company_id": "globex-demo", "name": "Globex Corp", "monthly_spend": 2400}
B2B_REFERRER = ("Paula", "paula@demo-partners.example")
B2B_FRIEND = ("Gus", "gus@demo-partners.example")
REFUSED_REFERRER = ("Olga", "olga@demo-partners.example")


def _b2b_settings() -> dict[str, Any]:
    settings = copy.deepcopy(DEMO_SETTINGS)
    # Referral Factory's guide: "select the Object and Field from Intercom" — the company's spend.
    settings["commission"] = {"object": "company", "sale_value_attribute": "monthly_spend"}
    return settings


def _wait(what: str, timeout_s: float, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(POLL_S)
    return found


def _referral(demo: Demo, email: str) -> dict[str, Any] | None:
    response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
    found = _expect(response, 200)["data"]
    return dict(found[0]) if found else None


@step("A B2B referral: the friend's company in Intercom gives the sale value (commission on a company field)")
def company_sale_value(demo: Demo) -> None:
    campaign = demo.state["campaigns"][1]
    campaign_id, workspace = str(campaign["id"]), demo.state["workspace"]
    path = f"{demo.api}/v1/campaigns/{campaign_id}/intercom"
    settings = _b2b_settings()
    _expect(demo.http.post(f"{path}/setup", json=settings, headers=demo.account()), 200)
    _expect(demo.http.put(path, json=settings, headers=demo.account()), 200)
    demo.state["b2b_campaign_id"] = campaign_id
    demo.say(
        f"PUT .../{campaign_id}/intercom ({campaign['name']}): commission from the company's monthly_spend"
    )
    company = _expect(
        demo.http.post(f"{demo.intercom}/_emulator/workspaces/{workspace}/companies", json=B2B_COMPANY),
        200,
        201,
    )
    demo.say(f"a company in Intercom: {B2B_COMPANY['name']}, monthly_spend {B2B_COMPANY['monthly_spend']}")
    referrer = join(demo, *B2B_REFERRER, campaign_id=campaign_id)
    friend = join(demo, *B2B_FRIEND, referrer["code"], campaign_id=campaign_id)
    demo.say(f"{B2B_REFERRER[0]} joins {campaign['name']}; {B2B_FRIEND[0]} signs up through her link")
    contact = _wait(
        f"{B2B_FRIEND[0]}'s contact in Intercom",
        SIGNUP_TIMEOUT_S,
        lambda: _contacts_by_email(demo).get(B2B_FRIEND[1]),
    )
    attach = {"id": company["id"]}
    _expect(demo.http.post(f"{demo.intercom}/_emulator/contacts/{contact['id']}/companies", json=attach), 200)
    demo.say(f"in Intercom, {B2B_FRIEND[0]} joins {B2B_COMPANY['name']}; then becomes a paying customer")
    body = {"custom_attributes": {"customer_status": "paid"}}
    _expect(demo.http.patch(f"{demo.intercom}/_emulator/contacts/{contact['id']}", json=body), 200)
    rf_key = demo.state["rf_api_key"]

    def qualified() -> dict[str, Any] | None:
        users = _expect(demo.http.get(f"{demo.rf}/_emulator/accounts/{rf_key}/users"), 200)["data"]
        return next((u for u in users if u["id"] == friend["id"] and u.get("qualified_at")), None)

    user = _wait(f"{B2B_FRIEND[0]} qualified", QUALIFY_TIMEOUT_S, qualified)
    demo.say(f"Referral Factory: user {user['id']} qualified, amount={user['amount']} (the company's spend)")
    view = _referral(demo, B2B_FRIEND[1]) or {}
    event: dict[str, Any] = next(
        (e for e in reversed(view.get("events", [])) if e["kind"] == "qualified"), {}
    )
    details = event.get("details", {})
    demo.say(
        f"  GET /v1/referrals?email={B2B_FRIEND[1]}: sale_value={view.get('sale_value')}"
        f" from company {details.get('sale_value_company_id')}"
    )


@step("A push Intercom refuses: the referral shows failed and why; fixed, then retried")
def refused_push_retried(demo: Demo) -> None:
    campaign_id = demo.state.get("b2b_campaign_id") or str(demo.state["campaigns"][1]["id"])
    path = f"{demo.api}/v1/campaigns/{campaign_id}/intercom"
    working = _expect(demo.http.get(path, headers=demo.account()), 200)
    tier = f"partner_tier_{secrets.token_hex(2)}"
    attribute = {"name": tier, "data_type": "options", "options": ["Gold", "Silver"]}
    _expect(demo.http.post(f"{demo.api}/v1/intercom/attributes", json=attribute, headers=demo.account()), 201)
    refusing = copy.deepcopy(working)
    refusing["person_referring"]["mapping"]["campaign_name"] = f"custom_attributes.{tier}"
    _expect(demo.http.put(path, json=refusing, headers=demo.account()), 200)
    demo.say(f"a mistake in the settings: the campaign's name goes to {tier}, a list of Gold and Silver")
    user = join(demo, *REFUSED_REFERRER, campaign_id=campaign_id)
    email = REFUSED_REFERRER[1]
    failed = _wait(
        "the refused push",
        SIGNUP_TIMEOUT_S,
        lambda: (r := _referral(demo, email)) and r["intercom_status"] == "failed" and r,
    )
    reason = failed["events"][-1]["details"]
    demo.say(f"GET /v1/referrals?email={email}: intercom_status=failed")
    demo.say(f"  Intercom said: {reason.get('code')}: {reason.get('message')}")
    _expect(demo.http.put(path, json=working, headers=demo.account()), 200)
    demo.say("the settings fixed (PUT .../intercom with the campaign's name mapped as before)")
    retry = demo.http.post(
        f"{demo.api}/v1/referrals/{user['id']}/retry",
        params={"campaign_id": campaign_id},
        headers=demo.account(),
    )
    _expect(retry, 202)
    demo.say(f"POST /v1/referrals/{user['id']}/retry?campaign_id={campaign_id} -> 202, pending")
    done = _wait(
        "the retried push",
        SIGNUP_TIMEOUT_S,
        lambda: (r := _referral(demo, email)) and r["intercom_status"] == "created" and r,
    )
    history = " -> ".join(e["kind"] for e in done["events"])
    demo.say(f"  intercom_status=created, contact {done['intercom_contact_id']}; history: {history}")


# The contact sync (issue 8). Referral Factory's 600 calls a minute pace it: 1,000 users take about
# 100 s, which the bar shows; DEMO_SYNC_CONTACTS makes the demo smaller (the e2e test of the demo).
SYNC_CONTACTS = int(os.environ.get("DEMO_SYNC_CONTACTS", "1000"))
SYNC_TIMEOUT_S = 600.0


@step(f"Syncing {SYNC_CONTACTS:,} Intercom users to Referral Factory, paced by its 600 calls a minute")
def contact_sync(demo: Demo) -> None:
    if "campaign_id" not in demo.state:
        campaign_settings(demo)
    campaign_id, workspace = demo.state["campaign_id"], demo.state["workspace"]
    segment = _expect(
        demo.http.post(
            f"{demo.intercom}/_emulator/workspaces/{workspace}/segments",
            json={"name": "Customers to sync", "person_type": "user"},
        ),
        200,
        201,
    )["id"]
    contacts_url = f"{demo.intercom}/_emulator/workspaces/{workspace}/contacts"
    for start in range(0, SYNC_CONTACTS, 500):
        count = min(500, SYNC_CONTACTS - start)
        body = {"generate": {"count": count, "role": "user", "segment_ids": [segment]}}
        _expect(demo.http.post(contacts_url, json=body), 200, 201)
    demo.say(f"{SYNC_CONTACTS:,} users in the Intercom segment 'Customers to sync' ({segment})")
    rf_before = _expect(demo.http.get(f"{demo.rf}/_emulator/stats"), 200)
    started = time.perf_counter()
    response = demo.http.post(
        f"{demo.api}/v1/campaigns/{campaign_id}/syncs",
        json={"audience": "segment", "segment_id": segment},
        headers=demo.account(),
    )
    sync_id = _expect(response, 202)["sync_id"]
    demo.say(f"POST /v1/campaigns/{campaign_id}/syncs -> 202: {sync_id}")
    demo.say("each user becomes a Referral Factory user and gets its referral link written back;")
    demo.say("GET /v1/syncs/{id} says how far it got:")
    bar = demo.progress(SYNC_CONTACTS, "contacts synced")
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while True:
        sync = _expect(demo.http.get(f"{demo.api}/v1/syncs/{sync_id}", headers=demo.account()), 200)
        bar.advance(sync["processed"] - bar.done)
        if sync["status"] not in ("queued", "running"):
            break
        if time.monotonic() > deadline:
            bar.finish()
            raise RuntimeError(f"the sync did not finish in {SYNC_TIMEOUT_S:.0f} s: {sync}")
        time.sleep(0.5)
    bar.finish()
    elapsed = time.perf_counter() - started
    names = ("total", "processed", "created", "updated", "skipped", "failed")
    counters = ", ".join(f"{k} {sync[k]}" for k in names)
    demo.say(f"{sync['status']}: {counters}")
    if sync["status"] != "completed" or sync["processed"] != SYNC_CONTACTS or sync["failed"]:
        raise RuntimeError(f"the sync ended {sync['status']} with {counters}; errors: {sync['errors'][:3]}")
    rf_after = _expect(demo.http.get(f"{demo.rf}/_emulator/stats"), 200)
    rf_calls = sum(rf_after["requests"].values()) - sum(rf_before["requests"].values())
    limit = _expect(demo.http.get(f"{demo.rf}/_emulator/config"), 200)["rate_limit_per_minute"]
    pace = f"{rf_calls / elapsed * 60:.0f} a minute against a limit of {limit}" if limit else "unlimited"
    demo.say(
        f"Referral Factory: {rf_calls} calls in {elapsed:.0f} s ({pace}),"
        f" {rf_after['responses_429'] - rf_before['responses_429']} answered 429"
    )
    everyone = _expect(demo.http.get(contacts_url), 200)["data"]
    members = [c for c in everyone if segment in (c.get("segment_ids") or [])]
    linked = [c for c in members if (c.get("custom_attributes") or {}).get("referral_link")]
    demo.say(f"{len(linked)} of {len(members)} contacts in the segment now carry their referral link, e.g.:")
    for contact in linked[:2]:
        _show_contact(demo, contact)
