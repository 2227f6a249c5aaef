"""The Referral Factory emulator driven over real HTTP, as the product and the acceptance tests drive it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from local.emulators.referral_factory import ReferralFactoryEmulator, create_app
from local.emulators.server import RunningServer, serve_in_thread

KEY = "rf_key_alpha"
OTHER_KEY = "rf_key_beta"
CAMPAIGN = 101
SECOND_CAMPAIGN = 102
OTHER_CAMPAIGN = 201

OFFICIAL_USER_FIELDS = {
    "id",
    "campaign_id",
    "referrer_id",
    "code",
    "url",
    "first_name",
    "email",
    "reach",
    "source",
    "type",
    "ip",
    "signed_up_at",
    "qualified_at",
    "unsubscribed_at",
    "meta",
    "sharing",
}


# --- fixtures ---------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook endpoint that records what arrives and can be told to fail."""

    server: RunningServer
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/hook"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    async def hook(request: Request) -> JSONResponse:
        rec = state["r"]
        rec.attempts += 1
        if rec.fail_next > 0:
            rec.fail_next -= 1
            return JSONResponse({"error": "try later"}, status_code=503)
        rec.received.append((dict(request.headers), await request.json()))
        return JSONResponse({"ok": True})

    server = serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    state["r"] = Receiver(server)
    yield state["r"]
    server.stop()


class Clock:
    """The emulator's clock: real time until a test sets `now`, then that."""

    def __init__(self) -> None:
        self.now: float | None = None

    def __call__(self) -> float:
        return time.time() if self.now is None else self.now


CLOCK = Clock()
T0 = 1_800_000_000.0  # a minute boundary (a multiple of 60)


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[RunningServer, ReferralFactoryEmulator]]:
    app = create_app({"webhook_retry_delay_s": 0.2, "public_base_url": "https://rf.example/"}, clock=CLOCK)
    server = serve_in_thread(app)
    yield server, app.state.emulator
    server.stop()
    app.state.emulator.close()


@pytest.fixture
def emu(emulator: tuple[RunningServer, ReferralFactoryEmulator]) -> ReferralFactoryEmulator:
    return emulator[1]


@pytest.fixture
def http(
    emulator: tuple[RunningServer, ReferralFactoryEmulator], receiver: Receiver
) -> Iterator[httpx.Client]:
    """A client on a freshly reset emulator with two accounts, on real time."""
    CLOCK.now = None
    receiver.received.clear()
    receiver.fail_next = receiver.attempts = 0
    with httpx.Client(base_url=emulator[0].base_url, timeout=10) as client:
        assert client.post("/_emulator/reset").status_code == 200
        r = client.post(
            "/_emulator/accounts",
            json={
                "api_key": KEY,
                "campaigns": [{"id": CAMPAIGN, "name": "Spring"}, {"id": SECOND_CAMPAIGN, "name": "Autumn"}],
            },
        )
        assert r.status_code == 201
        r = client.post(
            "/_emulator/accounts",
            json={"api_key": OTHER_KEY, "campaigns": [{"id": OTHER_CAMPAIGN, "name": "X"}]},
        )
        assert r.status_code == 201
        yield client


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(
    http: httpx.Client, email: str, campaign: int = CAMPAIGN, key: str = KEY, **extra: Any
) -> dict[str, Any]:
    r = http.post(
        "/api/v2/users",
        json={
            "campaign_id": campaign,
            "first_name": email.split("@", maxsplit=1)[0].title(),
            "email": email,
            **extra,
        },
        headers=auth(key),
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def control_user(http: httpx.Client, user_id: int) -> dict[str, Any]:
    users = http.get(f"/_emulator/accounts/{KEY}/users").json()["data"]
    return next(u for u in users if u["id"] == user_id)


def qualify(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.put("/api/v2/users/qualification", json={"qualified": True, **body}, headers=auth())


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- control surface --------------------------------------------------------------------------------


def test_config_put_merges_top_level_keys_replaces_faults_and_reads_back(http: httpx.Client) -> None:
    config = http.get("/_emulator/config").json()
    assert config["rate_limit_per_minute"] == 600
    assert config["faults"] == {
        "error_rate_429": 0.0,
        "error_rate_500": 0.0,
        "latency_ms": 0.0,
        "webhook_drop_rate": 0.0,
        "webhook_duplicate_rate": 0.0,
    }

    assert http.put("/_emulator/config", json={"faults": {"latency_ms": 5}}).status_code == 200
    applied = http.put("/_emulator/config", json={"rate_limit_per_minute": 7}).json()
    assert applied["rate_limit_per_minute"] == 7
    assert applied["faults"]["latency_ms"] == 5, "a key not sent keeps its value"
    assert applied["public_base_url"] == "https://rf.example/"
    assert http.get("/_emulator/config").json() == applied

    applied = http.put("/_emulator/config", json={"faults": {"error_rate_500": 0.0}}).json()
    assert applied["faults"]["latency_ms"] == 0.0, "faults is replaced whole"
    assert http.put("/_emulator/config", json={"faults": {}}).json()["faults"]["latency_ms"] == 0.0
    assert (
        http.put("/_emulator/config", json={"rate_limit_per_minute": None}).json()["rate_limit_per_minute"]
        is None
    )

    bad = http.put(
        "/_emulator/config", json={"rate_limit_per_minute": "lots", "faults": {"error_rate_500": 2}}
    )
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"rate_limit_per_minute", "faults.error_rate_500"}

    http.post("/_emulator/reset")
    assert http.get("/_emulator/config").json()["rate_limit_per_minute"] == 600


def test_the_rate_limit_window_is_a_validated_config_key(http: httpx.Client) -> None:
    config = http.get("/_emulator/config").json()
    assert config["rate_limit_window"] == "clock"
    assert config["rate_limit_window_s"] == 60
    for mode in ("first_hit", "sliding", "clock"):
        applied = http.put("/_emulator/config", json={"rate_limit_window": mode})
        assert applied.status_code == 200 and applied.json()["rate_limit_window"] == mode

    for bad_value in ("hourly", None, 3, "SLIDING"):
        bad = http.put("/_emulator/config", json={"rate_limit_window": bad_value})
        assert bad.status_code == 422
        assert list(bad.json()["errors"]) == ["rate_limit_window"]
        assert "clock, first_hit, sliding" in bad.json()["errors"]["rate_limit_window"][0]
    for bad_length in (0, -5, "60", True, 7200):
        bad = http.put("/_emulator/config", json={"rate_limit_window_s": bad_length})
        assert bad.status_code == 422 and list(bad.json()["errors"]) == ["rate_limit_window_s"]
    # A refused config changes nothing, not even the keys that were right.
    bad = http.put("/_emulator/config", json={"rate_limit_window": "sliding", "rate_limit_window_s": 0})
    assert bad.status_code == 422
    assert http.get("/_emulator/config").json()["rate_limit_window"] == "clock"

    http.put("/_emulator/config", json={"rate_limit_window": "sliding", "rate_limit_window_s": 2})
    http.post("/_emulator/reset")
    config = http.get("/_emulator/config").json()
    assert (config["rate_limit_window"], config["rate_limit_window_s"]) == ("clock", 60)


def test_stats_count_every_real_request_by_route_template(http: httpx.Client) -> None:
    user = create(http, "ann@example.com")
    http.get(f"/api/v2/users/{user['id']}", headers=auth())
    http.get(f"/api/v2/users/{user['code']}", headers=auth())
    http.get("/api/v2/users/nobody@example.com", headers=auth("wrong"))
    http.put(f"/api/v2/users/{user['id']}", json={"first_name": "Annie"}, headers=auth())
    qualify(http, id=user["id"])
    http.get("/api/v2/campaigns", headers=auth())
    http.get("/_emulator/config")

    stats = http.get("/_emulator/stats").json()
    assert stats["requests"] == {
        "POST /api/v2/users": 1,
        "GET /api/v2/users/{identifier}": 3,
        "PUT /api/v2/users/{id}": 1,
        "PUT /api/v2/users/qualification": 1,
        "GET /api/v2/campaigns": 1,
    }
    assert stats["responses_429"] == 0
    http.post("/_emulator/reset")
    assert http.get("/_emulator/stats").json()["requests"] == {}


def test_accounts_upsert_and_campaign_ids_stay_unique_across_accounts(http: httpx.Client) -> None:
    r = http.post("/_emulator/accounts", json={"api_key": KEY, "campaigns": [{"name": "Generated"}]})
    assert r.status_code == 201
    generated = r.json()["campaigns"][-1]
    assert generated["name"] == "Generated"
    assert generated["id"] not in (CAMPAIGN, SECOND_CAMPAIGN, OTHER_CAMPAIGN)
    taken = http.post("/_emulator/accounts", json={"api_key": "rf_new", "campaigns": [{"id": CAMPAIGN}]})
    assert taken.status_code == 409
    assert http.post("/_emulator/accounts", json={"campaigns": []}).status_code == 422


# --- users ------------------------------------------------------------------------------------------


def test_create_returns_a_full_user_with_a_unique_code_and_link(http: httpx.Client) -> None:
    first = create(http, "ann@example.com", meta=[{"field": "Last Name", "value": "Lee"}])
    second = create(http, "bob@example.com")
    other = create(http, "cy@example.com", campaign=OTHER_CAMPAIGN, key=OTHER_KEY)

    assert set(first) >= OFFICIAL_USER_FIELDS
    assert first["referrals_count"] == 0 and first["converted_referrals_count"] == 0
    assert first["type"] == "person_referring" and first["source"] == "Api"
    assert first["referrer_id"] is None and first["qualified_at"] is None
    assert first["meta"] == [{"field": "Last Name", "value": "Lee"}]
    assert first["url"].startswith("https://rf.example/") and first["url"].endswith(f"code={first['code']}")
    assert {s["social"] for s in first["sharing"]["socials"]} >= {"email", "whatsapp", "twitter"}
    assert len({first["code"], second["code"], other["code"]}) == 3
    assert len({first["id"], second["id"], other["id"]}) == 3, "ids are unique across accounts"


def test_get_by_id_email_or_code_only_within_the_account(http: httpx.Client) -> None:
    spring = create(http, "ann@example.com")
    autumn = create(http, "Ann@example.com", campaign=SECOND_CAMPAIGN)

    for identifier in (spring["id"], spring["code"]):
        r = http.get(f"/api/v2/users/{identifier}", headers=auth())
        assert r.status_code == 200
        assert r.json()["data"]["id"] == spring["id"]
        assert r.json()["id"] == spring["id"], "fields are mirrored at the top level"
    by_email = http.get("/api/v2/users/ann@example.com", params={"campaign_id": CAMPAIGN}, headers=auth())
    assert by_email.json()["data"]["id"] == spring["id"]
    by_email = http.get(
        "/api/v2/users/ANN@example.com", params={"campaign_id": SECOND_CAMPAIGN}, headers=auth()
    )
    assert by_email.json()["data"]["id"] == autumn["id"]

    missing = http.get("/api/v2/users/nobody@example.com", headers=auth())
    assert missing.status_code == 404 and missing.json() == {"message": "User not found."}
    assert http.get(f"/api/v2/users/{spring['id']}", headers=auth(OTHER_KEY)).status_code == 404
    assert http.get(f"/api/v2/users/{spring['code']}", headers=auth(OTHER_KEY)).status_code == 404


def test_duplicate_email_in_a_campaign_is_422_naming_the_field(http: httpx.Client) -> None:
    create(http, "ann@example.com")
    r = http.post(
        "/api/v2/users",
        json={"campaign_id": CAMPAIGN, "first_name": "Ann", "email": "ANN@example.com"},
        headers=auth(),
    )
    assert r.status_code == 422
    assert r.json()["errors"] == {"email": ["The email has already been taken."]}
    assert r.json()["message"] == "The email has already been taken."
    create(http, "ann@example.com", campaign=SECOND_CAMPAIGN)


def test_create_validation_lists_every_bad_field(http: httpx.Client) -> None:
    r = http.post("/api/v2/users", json={}, headers=auth())
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"campaign_id", "first_name", "email"}
    assert "(and 2 more errors)" in r.json()["message"]

    for campaign in (999_999, OTHER_CAMPAIGN):
        r = http.post(
            "/api/v2/users",
            json={"campaign_id": campaign, "first_name": "A", "email": "not-an-email"},
            headers=auth(),
        )
        assert r.status_code == 422
        assert set(r.json()["errors"]) == {"campaign_id", "email"}


def test_referrer_attribution_by_id_code_and_email(http: httpx.Client) -> None:
    referrer = create(http, "ref@example.com")
    by = {
        "id": referrer["id"],
        "code": referrer["code"],
        "email": "REF@example.com",
    }
    for field_name, value in by.items():
        invited = create(http, f"by-{field_name}@example.com", referrer={"field": field_name, "value": value})
        assert invited["type"] == "person_invited"
        assert invited["source"] == "Referred"
        assert invited["referrer_id"] == referrer["id"]

    refreshed = http.get(f"/api/v2/users/{referrer['id']}", headers=auth()).json()["data"]
    assert refreshed["referrals_count"] == 3
    assert refreshed["converted_referrals_count"] == 0

    unknown = http.post(
        "/api/v2/users",
        json={
            "campaign_id": CAMPAIGN,
            "first_name": "X",
            "email": "x@example.com",
            "referrer": {"field": "code", "value": "nope"},
        },
        headers=auth(),
    )
    assert unknown.status_code == 422 and "referrer" in unknown.json()["errors"]
    other_campaign = http.post(
        "/api/v2/users",
        json={
            "campaign_id": SECOND_CAMPAIGN,
            "first_name": "X",
            "email": "x@example.com",
            "referrer": {"field": "id", "value": referrer["id"]},
        },
        headers=auth(),
    )
    assert other_campaign.status_code == 422, "a referral link belongs to one campaign"
    bad_field = http.post(
        "/api/v2/users",
        json={
            "campaign_id": CAMPAIGN,
            "first_name": "X",
            "email": "x@example.com",
            "referrer": {"field": "ip"},
        },
        headers=auth(),
    )
    assert bad_field.status_code == 422 and "referrer.field" in bad_field.json()["errors"]


def test_list_is_newest_first_in_pages(http: httpx.Client) -> None:
    ids = [create(http, f"u{i}@example.com")["id"] for i in range(7)]
    create(http, "elsewhere@example.com", campaign=SECOND_CAMPAIGN)

    pages = []
    for page in (1, 2, 3, 4):
        r = http.get(
            "/api/v2/users", params={"campaign_id": CAMPAIGN, "page": page, "per_page": 3}, headers=auth()
        )
        assert r.status_code == 200
        body = r.json()
        assert body["meta"]["current_page"] == page
        assert body["meta"]["last_page"] == 3
        assert body["meta"]["total"] == 7
        pages.append([u["id"] for u in body["data"]])
    assert pages == [ids[::-1][0:3], ids[::-1][3:6], ids[::-1][6:], []]

    default = http.get("/api/v2/users", params={"campaign_id": CAMPAIGN}, headers=auth()).json()
    assert default["meta"]["per_page"] == 25 and default["links"]["next"] is None
    capped = http.get("/api/v2/users", params={"per_page": 1000}, headers=auth()).json()
    assert capped["meta"]["per_page"] == 250
    assert capped["meta"]["total"] == 8, "without campaign_id: every user of the account"
    foreign = http.get("/api/v2/users", params={"campaign_id": OTHER_CAMPAIGN}, headers=auth())
    assert foreign.status_code == 422 and "campaign_id" in foreign.json()["errors"]


def test_search_by_flat_keys_and_by_filters(http: httpx.Client) -> None:
    referrer = create(http, "ref@example.com")
    invited = [
        create(http, f"inv{i}@example.com", referrer={"field": "id", "value": referrer["id"]})["id"]
        for i in range(3)
    ]
    same_email_elsewhere = create(http, "inv0@example.com", campaign=SECOND_CAMPAIGN)
    qualify(http, id=invited[1])

    def search(body: dict[str, Any]) -> list[int]:
        r = http.post("/api/v2/users/search", json=body, headers=auth())
        assert r.status_code == 200, r.text
        return [u["id"] for u in r.json()["data"]]

    assert search({"campaign_id": CAMPAIGN, "email": "INV0@example.com"}) == [invited[0]]
    assert search({"email": "inv0@example.com"}) == [same_email_elsewhere["id"], invited[0]]
    assert search({"referrer_id": referrer["id"]}) == invited[::-1]
    assert search({"referrer_id": referrer["id"], "qualified": True}) == [invited[1]]
    assert search({"code": referrer["code"]}) == [referrer["id"]]
    assert search({"campaign_id": CAMPAIGN, "type": "person_referring"}) == [referrer["id"]]
    filters = {
        "filters": {
            "operator": "AND",
            "value": [
                {"field": "email", "value": "inv2@example.com", "operator": "="},
                {"field": "campaign_id", "value": str(CAMPAIGN), "operator": "="},
            ],
        }
    }
    assert search(filters) == [invited[2]]
    either = {
        "filters": {
            "operator": "OR",
            "value": [
                {"field": "id", "value": invited[0]},
                {"field": "email", "value": "ref@%", "operator": "like"},
            ],
        }
    }
    assert search(either) == [invited[0], referrer["id"]]
    paged = http.post(
        "/api/v2/users/search", json={"campaign_id": CAMPAIGN, "per_page": 2, "page": 2}, headers=auth()
    )
    assert paged.json()["meta"] | {"path": None} == {
        "current_page": 2,
        "from": 3,
        "last_page": 2,
        "path": None,
        "per_page": 2,
        "to": 4,
        "total": 4,
    }
    bad = http.post(
        "/api/v2/users/search", json={"filters": {"value": [{"field": "password"}]}}, headers=auth()
    )
    assert bad.status_code == 422 and "filters.value.0.field" in bad.json()["errors"]
    foreign = http.post("/api/v2/users/search", json={"campaign_id": OTHER_CAMPAIGN}, headers=auth())
    assert foreign.status_code == 422


def test_update_changes_fields_and_the_email_index(http: httpx.Client) -> None:
    user = create(http, "ann@example.com")
    create(http, "bob@example.com")
    r = http.put(
        f"/api/v2/users/{user['id']}",
        json={
            "first_name": "Annie",
            "email": "annie@example.com",
            "meta": [{"field": "Plan", "value": "pro"}],
        },
        headers=auth(),
    )
    assert r.status_code == 200
    assert r.json()["data"]["first_name"] == "Annie"
    assert r.json()["data"]["meta"] == [{"field": "Plan", "value": "pro"}]
    found = http.get("/api/v2/users/annie@example.com", params={"campaign_id": CAMPAIGN}, headers=auth())
    assert found.json()["data"]["id"] == user["id"]
    assert http.get("/api/v2/users/ann@example.com", headers=auth()).status_code == 404

    taken = http.put(f"/api/v2/users/{user['id']}", json={"email": "bob@example.com"}, headers=auth())
    assert taken.status_code == 422 and taken.json()["errors"] == {
        "email": ["The email has already been taken."]
    }
    assert http.put("/api/v2/users/999999", json={"first_name": "X"}, headers=auth()).status_code == 404

    assert http.delete(f"/api/v2/users/{user['id']}", headers=auth()).status_code == 200
    assert http.get(f"/api/v2/users/{user['id']}", headers=auth()).status_code == 404


# --- qualification ----------------------------------------------------------------------------------


def test_qualification_happens_once_and_every_call_is_counted(http: httpx.Client) -> None:
    referrer = create(http, "ref@example.com")
    lead = create(http, "lead@example.com", referrer={"field": "code", "value": referrer["code"]})

    first = qualify(http, id=lead["id"], amount=120.5)
    assert first.status_code == 200
    qualified_at = first.json()["data"]["qualified_at"]
    assert qualified_at is not None

    time.sleep(0.01)
    again = qualify(http, code=lead["code"], amount=999)
    assert again.status_code == 200
    assert again.json()["data"]["qualified_at"] == qualified_at
    by_email = qualify(http, email="LEAD@example.com", campaign_id=CAMPAIGN)
    assert by_email.status_code == 200

    seen = control_user(http, lead["id"])
    assert seen["qualified_at"] == qualified_at
    assert seen["amount"] == 120.5
    assert seen["qualify_calls"] == 3
    counts = http.get(f"/api/v2/users/{referrer['id']}", headers=auth()).json()["data"]
    assert counts["referrals_count"] == 1 and counts["converted_referrals_count"] == 1

    reverted = http.put(
        "/api/v2/users/qualification", json={"id": lead["id"], "qualified": False}, headers=auth()
    )
    assert reverted.status_code == 200 and reverted.json()["data"]["qualified_at"] is None
    assert control_user(http, lead["id"])["qualify_calls"] == 3, "an unqualify is not a qualify call"
    counts = http.get(f"/api/v2/users/{referrer['id']}", headers=auth()).json()["data"]
    assert counts["converted_referrals_count"] == 0


def test_qualification_errors(http: httpx.Client) -> None:
    lead = create(http, "lead@example.com")
    assert qualify(http, id=999_999).status_code == 404
    assert qualify(http, code="nope").json() == {"message": "User not found."}
    missing = http.put("/api/v2/users/qualification", json={"id": lead["id"]}, headers=auth())
    assert missing.status_code == 422 and "qualified" in missing.json()["errors"]
    no_campaign = qualify(http, email="lead@example.com")
    assert no_campaign.status_code == 422 and "campaign_id" in no_campaign.json()["errors"]
    bad_amount = qualify(http, id=lead["id"], amount="lots")
    assert bad_amount.status_code == 422 and "amount" in bad_amount.json()["errors"]
    assert control_user(http, lead["id"])["qualify_calls"] == 0, "refused calls are not counted"


# --- campaigns --------------------------------------------------------------------------------------


def test_campaigns_are_the_accounts_own(http: httpx.Client) -> None:
    listed = http.get("/api/v2/campaigns", headers=auth()).json()
    assert [c["id"] for c in listed["data"]] == [CAMPAIGN, SECOND_CAMPAIGN]
    assert listed["meta"]["current_page"] == 1 and listed["meta"]["last_page"] == 1
    one = http.get(f"/api/v2/campaigns/{CAMPAIGN}", headers=auth())
    assert one.status_code == 200 and one.json()["data"]["name"] == "Spring"
    assert http.get(f"/api/v2/campaigns/{OTHER_CAMPAIGN}", headers=auth()).status_code == 404


# --- auth, rate limits, faults ----------------------------------------------------------------------


def test_wrong_or_missing_key_is_401(http: httpx.Client) -> None:
    for headers in (auth("nope"), {}, {"Authorization": KEY}):
        r = http.get("/api/v2/users", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"message": "Unauthenticated."}


def test_unknown_route_and_wrong_method_answer_in_the_envelope(http: httpx.Client) -> None:
    assert http.get("/api/v2/nothing", headers=auth()).status_code == 404
    wrong = http.patch("/api/v2/users", headers=auth())
    assert wrong.status_code == 405 and "GET, HEAD, POST" in wrong.json()["message"]


def test_rate_limit_answers_429_exactly_past_the_limit(http: httpx.Client) -> None:
    http.put("/_emulator/config", json={"rate_limit_per_minute": 5})
    CLOCK.now = T0 + 1
    remaining = []
    for _ in range(5):
        r = http.get("/api/v2/campaigns", headers=auth())
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "5"
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    limited = http.get("/api/v2/campaigns", headers=auth())
    assert limited.status_code == 429
    assert limited.json() == {"message": "Too Many Attempts."}
    assert limited.headers["Retry-After"] == "59"
    assert limited.headers["X-RateLimit-Reset"] == str(int(T0 + 60))
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert http.get("/api/v2/campaigns", headers=auth(OTHER_KEY)).status_code == 200, "the budget is per key"
    assert http.get("/_emulator/stats").json()["responses_429"] == 1
    assert http.get(f"/_emulator/accounts/{KEY}/users").status_code == 200

    http.put("/_emulator/config", json={"rate_limit_per_minute": None})
    for _ in range(20):
        r = http.get("/api/v2/campaigns", headers=auth())
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


def call_at(http: httpx.Client, at: float, key: str = KEY) -> httpx.Response:
    CLOCK.now = at
    return http.get("/api/v2/campaigns", headers=auth(key))


def statuses(http: httpx.Client, times: list[float]) -> list[int]:
    return [call_at(http, t).status_code for t in times]


def test_clock_windows_start_again_on_the_minute(http: httpx.Client) -> None:
    http.put("/_emulator/config", json={"rate_limit_per_minute": 3, "rate_limit_window": "clock"})
    assert statuses(http, [T0 + 59.5] * 3) == [200, 200, 200]
    refused = call_at(http, T0 + 59.6)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Reset"] == str(int(T0 + 60))
    assert refused.headers["Retry-After"] == "1"
    # The boundary refills the whole limit: six calls within one second, and no 429.
    assert statuses(http, [T0 + 60, T0 + 60, T0 + 60.4]) == [200, 200, 200]
    assert call_at(http, T0 + 60.5).headers["X-RateLimit-Reset"] == str(int(T0 + 120))
    # What a caller that blocks abusers would see: 8 calls (two of them refused) within one minute.
    assert http.get("/_emulator/stats").json()["peak_calls_in_any_window"] == 8


def test_first_hit_opens_a_window_with_the_first_call_after_the_last_one_closed(http: httpx.Client) -> None:
    http.put("/_emulator/config", json={"rate_limit_per_minute": 3, "rate_limit_window": "first_hit"})
    first = call_at(http, T0 + 59.5)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "2"
    # The minute boundary means nothing: the window runs to T0 + 119.5.
    assert statuses(http, [T0 + 60, T0 + 61]) == [200, 200]
    refused = call_at(http, T0 + 62)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Reset"] == str(int(T0 + 120))  # 119.5, rounded up
    assert refused.headers["Retry-After"] == "58"
    assert call_at(http, T0 + 119.4).status_code == 429
    # The first call once the window closed opens the next one, at that call.
    reopened = call_at(http, T0 + 119.5)
    assert reopened.status_code == 200 and reopened.headers["X-RateLimit-Remaining"] == "2"
    assert statuses(http, [T0 + 150, T0 + 179.4, T0 + 179.4]) == [200, 200, 429]
    assert call_at(http, T0 + 62, OTHER_KEY).status_code == 200, "the budget is per key"


def test_sliding_allows_the_limit_in_any_window_and_resets_when_the_oldest_call_leaves(
    http: httpx.Client,
) -> None:
    http.put("/_emulator/config", json={"rate_limit_per_minute": 3, "rate_limit_window": "sliding"})
    remaining = [call_at(http, t).headers["X-RateLimit-Remaining"] for t in (T0, T0 + 10, T0 + 20)]
    assert remaining == ["2", "1", "0"]
    refused = call_at(http, T0 + 30)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Reset"] == str(int(T0 + 60)), "the call at T0 leaves at T0 + 60"
    assert refused.headers["Retry-After"] == "30"
    # No boundary refills it: still refused just before the oldest call leaves, allowed when it does.
    assert call_at(http, T0 + 59.9).status_code == 429
    allowed = call_at(http, T0 + 60)
    assert allowed.status_code == 200 and allowed.headers["X-RateLimit-Remaining"] == "0"
    again = call_at(http, T0 + 60.5)
    assert again.status_code == 429 and again.headers["X-RateLimit-Reset"] == str(int(T0 + 70))
    assert call_at(http, T0 + 30, OTHER_KEY).status_code == 200, "the budget is per key"
    # Calls at 10, 20, 30 (refused), 59.9 (refused), 60 and 60.5 (refused) within [0.5, 60.5].
    assert http.get("/_emulator/stats").json()["peak_calls_in_any_window"] == 6


def test_a_shorter_window_for_tests_and_a_mode_change_starts_counting_afresh(http: httpx.Client) -> None:
    http.put(
        "/_emulator/config",
        json={"rate_limit_per_minute": 2, "rate_limit_window": "sliding", "rate_limit_window_s": 2},
    )
    assert statuses(http, [T0 + 0.5, T0 + 1.5, T0 + 2.4, T0 + 2.5]) == [200, 200, 429, 200]
    assert call_at(http, T0 + 2.6).headers["X-RateLimit-Reset"] == str(int(T0 + 4))  # 3.5, rounded up
    http.put("/_emulator/config", json={"rate_limit_window": "clock"})
    assert statuses(http, [T0 + 2.6, T0 + 2.7, T0 + 2.8, T0 + 4]) == [200, 200, 429, 200]


def test_the_real_clock_drives_a_short_sliding_window(http: httpx.Client) -> None:
    http.put(
        "/_emulator/config",
        json={"rate_limit_per_minute": 2, "rate_limit_window": "sliding", "rate_limit_window_s": 0.5},
    )
    assert [http.get("/api/v2/campaigns", headers=auth()).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.55)
    assert http.get("/api/v2/campaigns", headers=auth()).status_code == 200


def test_default_limit_is_600_a_minute(http: httpx.Client) -> None:
    r = http.get("/api/v2/campaigns", headers=auth())
    assert r.headers["X-RateLimit-Limit"] == "600"


def test_faults_answer_errors_and_add_latency_but_spare_the_control_surface(http: httpx.Client) -> None:
    http.put("/_emulator/config", json={"faults": {"error_rate_500": 1}})
    r = http.get("/api/v2/campaigns", headers=auth())
    assert r.status_code == 500 and r.json() == {"message": "Server Error"}
    assert http.get("/_emulator/config").status_code == 200

    http.put("/_emulator/config", json={"faults": {"error_rate_429": 1}})
    assert http.get("/api/v2/campaigns", headers=auth()).status_code == 429

    http.put("/_emulator/config", json={"faults": {"latency_ms": 200}})
    started = time.monotonic()
    assert http.get("/api/v2/campaigns", headers=auth()).status_code == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    http.get("/_emulator/stats")
    assert time.monotonic() - started < 0.2

    stats = http.get("/_emulator/stats").json()
    assert stats["requests"]["GET /api/v2/campaigns"] == 3
    assert stats["responses_429"] == 1


def test_a_slow_request_whose_caller_went_away_still_takes_effect(http: httpx.Client) -> None:
    """As with the real service: a request that arrived is acted on, even when the caller timed out or
    died while it was slow (what a killed Lambda instance leaves behind)."""
    http.put("/_emulator/config", json={"faults": {"latency_ms": 400}})
    body = {"campaign_id": CAMPAIGN, "first_name": "Gone", "email": "gone@x.example"}
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v2/users", json=body, headers=auth(), timeout=httpx.Timeout(5, read=0.1))
    time.sleep(0.6)
    http.put("/_emulator/config", json={"faults": {}})
    users = http.get(f"/_emulator/accounts/{KEY}/users").json()["data"]
    assert [u["email"] for u in users] == ["gone@x.example"]


# --- webhooks and signups ---------------------------------------------------------------------------


def test_webhooks_carry_the_configured_headers_and_only_the_chosen_events(
    http: httpx.Client, receiver: Receiver
) -> None:
    r = http.put(
        f"/_emulator/accounts/{KEY}/webhooks",
        json={
            "url": receiver.url,
            "headers": {"X-RF-Secret": "s3cret"},
            "events": ["user.join", "user.qualified"],
        },
    )
    assert r.status_code == 200
    referrer = create(http, "ref@example.com")
    signup = http.post(
        "/_emulator/signups",
        json={
            "api_key": KEY,
            "campaign_id": CAMPAIGN,
            "first_name": "Lea",
            "email": "lea@example.com",
            "referrer_code": referrer["code"],
        },
    )
    assert signup.status_code == 201
    lead = signup.json()
    assert lead["type"] == "person_invited" and lead["source"] == "Referred"
    assert lead["referrer_id"] == referrer["id"]
    qualify(http, id=lead["id"])
    qualify(http, id=lead["id"])

    # A signup after the repeated qualify is the marker: once its webhook and the three before it have
    # arrived, anything the repeat had sent would have been among them.
    create(http, "marker@example.com")
    arrived = receiver.wait_for(4)
    assert len(arrived) == 4, "a repeated qualify sends nothing; reward.issued was not chosen"
    received = [(h, body) for h, body in arrived if body["user"]["email"] != "marker@example.com"]
    by_event = sorted((body["event"], body["user"]["email"]) for _, body in received)
    assert by_event == [
        ("user.join", "lea@example.com"),
        ("user.join", "ref@example.com"),
        ("user.qualified", "lea@example.com"),
    ]
    for headers, body in received:
        assert headers["x-rf-secret"] == "s3cret"
        assert headers["content-type"] == "application/json"
        assert body["campaign"] == {"id": CAMPAIGN, "name": "Spring"}
        assert set(body["user"]) >= OFFICIAL_USER_FIELDS
    qualified = next(body for _, body in received if body["event"] == "user.qualified")
    assert qualified["user"]["qualified_at"] is not None

    http.put(f"/_emulator/accounts/{KEY}/webhooks", json={"url": receiver.url, "events": ["reward.issued"]})
    second = create(http, "second@example.com", referrer={"field": "id", "value": referrer["id"]})
    qualify(http, id=second["id"])
    (_, reward), *_ = receiver.wait_for(5)[4:]
    assert reward["event"] == "reward.issued"
    assert reward["user"]["id"] == referrer["id"]
    assert reward["user"]["converted_referrals_count"] == 2
    assert reward["referral"]["id"] == second["id"]


def test_a_failed_webhook_is_retried_once(http: httpx.Client, receiver: Receiver) -> None:
    http.put(f"/_emulator/accounts/{KEY}/webhooks", json={"url": receiver.url, "headers": {}})
    receiver.fail_next = 1
    create(http, "ann@example.com")
    assert len(receiver.wait_for(1)) == 1
    assert receiver.attempts == 2
    assert wait_until(lambda: http.get("/_emulator/stats").json()["webhooks_sent"] == 1)

    receiver.fail_next = 2
    create(http, "bob@example.com")
    assert wait_until(lambda: http.get("/_emulator/stats").json()["webhooks_failed"] == 1)
    assert receiver.attempts == 4 and len(receiver.received) == 1, "one retry, then given up"


def test_signups_join_through_the_campaign_page(http: httpx.Client) -> None:
    r = http.post(
        "/_emulator/signups",
        json={"api_key": KEY, "campaign_id": CAMPAIGN, "first_name": "Dee", "email": "dee@example.com"},
    )
    assert r.status_code == 201
    assert r.json()["type"] == "person_referring" and r.json()["source"] == "Direct"
    again = http.post(
        "/_emulator/signups",
        json={"api_key": KEY, "campaign_id": CAMPAIGN, "first_name": "Dee", "email": "dee@example.com"},
    )
    assert again.status_code == 422 and "email" in again.json()["errors"]
    bad_code = http.post(
        "/_emulator/signups",
        json={
            "api_key": KEY,
            "campaign_id": CAMPAIGN,
            "first_name": "E",
            "email": "e@example.com",
            "referrer_code": "nope",
        },
    )
    assert bad_code.status_code == 422 and "referrer_code" in bad_code.json()["errors"]
    assert http.post("/_emulator/signups", json={"api_key": "nobody"}).status_code == 404
    assert http.get("/_emulator/stats").json()["requests"] == {}, "control calls are not counted"


# --- scale ------------------------------------------------------------------------------------------


def test_a_hundred_thousand_users_page_and_search_fast(
    http: httpx.Client, emu: ReferralFactoryEmulator
) -> None:
    with emu.lock:
        account = emu.store.accounts[KEY]
        campaign = emu.store.campaigns[CAMPAIGN]
        started = time.perf_counter()
        for i in range(100_000):
            emu.store.create_user(campaign, first_name="P", email=f"p{i}@example.com", source="Added")
        seeded_in = time.perf_counter() - started
    assert len(account.user_ids) == 100_000
    assert seeded_in < 10

    def timed(call: Callable[[], httpx.Response]) -> float:
        started = time.perf_counter()
        assert call().is_success
        return time.perf_counter() - started

    last = {"campaign_id": CAMPAIGN, "page": 400, "per_page": 250}
    assert timed(lambda: http.get("/api/v2/users", params=last, headers=auth())) < 0.5
    assert timed(lambda: http.get("/api/v2/users/p99999@example.com", headers=auth())) < 0.1
    assert (
        timed(lambda: http.post("/api/v2/users/search", json={"email": "p5@example.com"}, headers=auth()))
        < 0.1
    )
    new_user = {"campaign_id": CAMPAIGN, "first_name": "New", "email": "new@example.com"}
    assert timed(lambda: http.post("/api/v2/users", json=new_user, headers=auth())) < 0.1


def test_control_user_listing_shows_what_the_product_did(http: httpx.Client) -> None:
    spring = create(http, "ann@example.com")
    autumn = create(http, "ann@example.com", campaign=SECOND_CAMPAIGN)
    qualify(http, id=autumn["id"], amount=30)

    listed = http.get(f"/_emulator/accounts/{KEY}/users").json()["data"]
    assert [u["id"] for u in listed] == [spring["id"], autumn["id"]]
    assert listed[0] | {"sharing": None} == spring | {"sharing": None, "amount": None, "qualify_calls": 0}
    assert "sharing" not in listed[0], "sharing only on request: it is most of a user's bytes"
    assert listed[1]["amount"] == 30 and listed[1]["qualify_calls"] == 1 and listed[1]["qualified_at"]

    narrowed = http.get(
        f"/_emulator/accounts/{KEY}/users",
        params={"email": "ANN@example.com", "campaign_id": SECOND_CAMPAIGN},
    ).json()["data"]
    assert [u["id"] for u in narrowed] == [autumn["id"]]
    full = http.get(f"/_emulator/accounts/{KEY}/users", params={"sharing": "true"}).json()["data"]
    assert full[0]["sharing"] == spring["sharing"]
    assert http.get("/_emulator/accounts/nobody/users").status_code == 404


def test_rotating_the_key_stops_the_old_one(http: httpx.Client) -> None:
    rotated = http.post(f"/_emulator/accounts/{KEY}/rotate", json={"api_key": "rf_key_new"})
    assert rotated.json() == {"api_key": "rf_key_new"}
    assert http.get("/api/v2/campaigns", headers=auth()).status_code == 401
    assert http.get("/api/v2/campaigns", headers=auth("rf_key_new")).status_code == 200
