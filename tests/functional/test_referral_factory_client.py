"""The Referral Factory client against the Referral Factory emulator over real HTTP, its budget in moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.emulators.referral_factory.app import create_app
from local.emulators.server import RunningServer, serve_in_thread
from local.provision import Provisioned
from shared.clients.errors import CredentialsRejected, Invalid, RateLimited, UpstreamNotFound
from shared.clients.http import RetryPolicy
from shared.clients.rate_budget import referral_factory_budget
from shared.clients.referral_factory import SALE_VALUE_FIELD, ReferralFactoryClient, Referrer
from shared.domain.pacing import HOLD_S, MARGIN_S, QUANTUM_S, TICK_S

API_KEY = "rf-key-client-tests"
CAMPAIGN = 7101
OTHER_CAMPAIGN = 7102


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app())
    yield running
    running.stop()


@pytest.fixture
def control(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.post("/_emulator/reset").raise_for_status()
        client.post(
            "/_emulator/accounts",
            json={
                "api_key": API_KEY,
                "campaigns": [{"id": CAMPAIGN, "name": "Spring"}, {"id": OTHER_CAMPAIGN, "name": "Summer"}],
            },
        ).raise_for_status()
        yield client


@pytest.fixture
def rf(server: RunningServer, control: httpx.Client, aws: Provisioned) -> ReferralFactoryClient:
    return ReferralFactoryClient(
        API_KEY,
        base_url=f"{server.base_url}/api/v2",
        budget=referral_factory_budget(aws.refs["MainTable"], API_KEY),
    )


def emulated_users(control: httpx.Client) -> dict[int, dict[str, Any]]:
    return {u["id"]: u for u in control.get(f"/_emulator/accounts/{API_KEY}/users").json()["data"]}


def test_create_with_referrer_attribution_and_get(rf: ReferralFactoryClient) -> None:
    referrer, created = rf.create_user(CAMPAIGN, "ref@example.com", "Rita")
    assert created and referrer.type == "person_referring" and referrer.code and referrer.url
    invited, created = rf.create_user(
        CAMPAIGN,
        "lead@example.com",
        "Leo",
        referrer=Referrer("code", referrer.code),
        meta=[{"field": "company", "value": "Acme"}],
    )
    assert created and invited.referrer_id == referrer.id and invited.type == "person_invited"
    assert rf.get_user(invited.id).email == "lead@example.com"
    assert rf.get_user("lead@example.com", campaign_id=CAMPAIGN).id == invited.id
    assert rf.get_user(invited.code).id == invited.id
    with pytest.raises(UpstreamNotFound):
        rf.get_user(999_999_999)


def test_a_422_for_an_email_already_in_the_campaign_resolves_to_that_user(
    control: httpx.Client, rf: ReferralFactoryClient
) -> None:
    first, _ = rf.create_user(CAMPAIGN, "twice@example.com", "Tia")
    again, created = rf.create_user(CAMPAIGN, "twice@example.com", "Tia")
    assert (again.id, created) == (first.id, False)
    # The same email in another campaign is another user.
    other, created = rf.create_user(OTHER_CAMPAIGN, "twice@example.com", "Tia")
    assert created and other.id != first.id
    assert len(emulated_users(control)) == 2
    # Any other 422 stays an error the caller sees, with the field that was wrong.
    with pytest.raises(Invalid) as info:
        rf.create_user(CAMPAIGN, "new@example.com", "Ned", referrer=Referrer("code", "NO-SUCH-CODE"))
    assert info.value.status == 422 and info.value.fields


def test_users_list_by_campaign_in_pages(rf: ReferralFactoryClient) -> None:
    for n in range(7):
        rf.create_user(CAMPAIGN, f"p{n}@example.com", f"P{n}")
    rf.create_user(OTHER_CAMPAIGN, "elsewhere@example.com", "E")
    page = rf.list_users(CAMPAIGN, per_page=3)
    assert (len(page.items), page.page, page.last_page, page.has_more) == (3, 1, 3, True)
    rest = [rf.list_users(CAMPAIGN, page=n, per_page=3) for n in (2, 3)]
    assert [p.has_more for p in rest] == [True, False]
    everyone = [u.email for p in (page, *rest) for u in p.items]
    assert sorted(everyone) == sorted(f"p{n}@example.com" for n in range(7))


def test_qualification_carries_the_sale_value_once(control: httpx.Client, rf: ReferralFactoryClient) -> None:
    referrer, _ = rf.create_user(CAMPAIGN, "r@example.com", "R")
    lead, _ = rf.create_user(CAMPAIGN, "l@example.com", "L", referrer=Referrer("id", referrer.id))
    rf.qualify(email="l@example.com", campaign_id=CAMPAIGN, sale_value=49.5)
    rf.qualify(user_id=lead.id, sale_value=10)  # a repeat changes nothing
    stored = emulated_users(control)[lead.id]
    assert stored["qualified_at"] is not None and stored[SALE_VALUE_FIELD] == 49.5
    assert stored["qualify_calls"] == 2
    rf.qualify(code=lead.code, qualified=False)
    assert emulated_users(control)[lead.id]["qualified_at"] is None
    with pytest.raises(ValueError, match="qualify needs"):
        rf.qualify(email="l@example.com")


def test_campaigns(rf: ReferralFactoryClient) -> None:
    assert {c.id for c in rf.list_campaigns()} == {CAMPAIGN, OTHER_CAMPAIGN}
    assert rf.get_campaign(CAMPAIGN).name == "Spring"


def test_a_wrong_key_is_unauthorized(server: RunningServer, control: httpx.Client) -> None:
    wrong = ReferralFactoryClient("not-a-key", base_url=f"{server.base_url}/api/v2")
    with pytest.raises(CredentialsRejected):
        wrong.list_campaigns()
    assert "not-a-key" not in repr(wrong)


def test_a_spent_budget_hands_the_work_back_before_the_service_refuses(
    server: RunningServer, control: httpx.Client, aws: Provisioned
) -> None:
    """A key limited to 5 a minute: the sixth call is not sent but raised with the wait."""
    rf = ReferralFactoryClient(
        "rf-key-small",
        base_url=f"{server.base_url}/api/v2",
        budget=referral_factory_budget(aws.refs["MainTable"], "rf-key-small", per_minute=5),
        policy=RetryPolicy(max_wait_s=2),
    )
    control.post(
        "/_emulator/accounts", json={"api_key": "rf-key-small", "campaigns": [{"id": 7201, "name": "S"}]}
    )
    for _ in range(5):
        rf.get_campaign(7201)
    before = control.get("/_emulator/stats").json()
    with pytest.raises(RateLimited) as info:
        rf.get_campaign(7201)
    after = control.get("/_emulator/stats").json()
    # Until the first call leaves the sliding minute (shared/domain/pacing.py): about a minute.
    assert 55 < info.value.retry_after <= 60 + HOLD_S + MARGIN_S + QUANTUM_S + TICK_S
    assert after["requests"] == before["requests"] and after["responses_429"] == 0
