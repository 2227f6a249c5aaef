"""`python -m local up --demo`, as `make run` starts it: every step succeeds, the demo account ends up
connected to the demo workspace, the referrer and three friends it signs up arrive in Intercom once
each, and the consent URL it prints works when someone opens it."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.conftest import _running

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningStack

DEMO_TIMEOUT_S = 240  # a liveness bound on a shared machine, not a performance goal


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp_path: Path = tmp_path_factory.mktemp("demo")
    # The demo's sync of 1,000 users takes about 100 s at Referral Factory's limit; 100 do here.
    env = {"DEMO_SYNC_CONTACTS": "100"}
    for running in _running(tmp_path, "--demo", "--schedule-interval", "3600", env=env):
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while "\n==> demo " not in running.stderr():
            if time.monotonic() > deadline or running.process.poll() is not None:
                pytest.fail(f"the demo did not finish in {DEMO_TIMEOUT_S} s:\n{running.stderr()[-4000:]}")
            time.sleep(0.2)
        yield running


def narration(stack: RunningStack, pattern: str) -> str:
    found = re.search(pattern, stack.stderr(), re.MULTILINE)
    assert found, f"{pattern!r} not in the demo's narration:\n{stack.stderr()[-4000:]}"
    return found.group(1)


def test_every_step_succeeds(demo_stack: RunningStack) -> None:
    assert "==> demo done" in demo_stack.stderr(), demo_stack.stderr()[-4000:]
    assert "step failed" not in demo_stack.stderr()


def test_the_terminal_tells_the_story_and_the_function_logs_go_to_their_file(
    demo_stack: RunningStack,
) -> None:
    story = demo_stack.stderr()
    # No JSON log line, Python warning or traceback among the narration: those are the functions' own.
    # (The stack's own WARNING lines report a failed invocation or batch: news, not noise.)
    assert not [line for line in story.splitlines() if line.startswith("{")]
    noise = [line for line in story.splitlines() if re.search(r"\w+Warning\b|Traceback", line)]
    assert noise == []
    logs = Path(demo_stack.info["logs"])
    entries = [json.loads(line) for line in logs.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("message") == "account created" for e in entries)
    assert f"function logs: {logs}" in story


def test_the_console_link_signs_the_demo_account_in(demo_stack: RunningStack) -> None:
    api_key = narration(demo_stack, r"its API key \(shown once\): (\S+)$")
    link = narration(demo_stack, r"^==> the console, signed in as the demo account: (\S+)$")
    assert link == f"{demo_stack.api}/console#key={api_key}"
    page = httpx.get(link.split("#", 1)[0])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


def test_the_demo_account_is_connected_to_the_demo_workspace(demo_stack: RunningStack) -> None:
    api_key = narration(demo_stack, r"its API key \(shown once\): (\S+)$")
    workspace = narration(demo_stack, r"workspace=(demo[0-9a-f]+)$")
    response = httpx.get(
        f"{demo_stack.api}/v1/intercom/connection", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["status"], view["workspace_id"], view["workspace_name"]) == (
        "connected",
        workspace,
        "Demo Co",
    )


def test_the_printed_consent_url_works_by_hand(demo_stack: RunningStack) -> None:
    """What a browser does with the printed URL, over plain HTTP: the page, its form, the callback."""
    url = narration(demo_stack, r"^\s+(http://\S+/oauth\?\S+)$")
    page = httpx.get(url)
    assert page.status_code == 200
    assert "Authorize access" in page.text
    assert "<strong>Demo Co</strong>" in page.text
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type=hidden name="([^"]*)" value="([^"]*)">', page.text)
    }
    consent = httpx.post(
        f"{demo_stack.info['intercom']}/oauth/authorize", data={**fields, "decision": "approve"}
    )
    assert consent.status_code == 302
    location = consent.headers["location"]
    assert location.startswith(f"{demo_stack.api}/oauth/intercom/callback?code=")
    callback = httpx.get(location, headers={"Accept": "application/json"})
    assert callback.status_code == 200, callback.text
    assert callback.json()["status"] == "connected"
    assert callback.json()["workspace_id"] == fields["workspace"]
    # The state was single-use: the same URL cannot connect twice.
    again = httpx.get(location, headers={"Accept": "application/json"})
    assert again.status_code in (400, 403, 409), again.text


def test_the_referrer_and_three_friends_arrived_once_each(demo_stack: RunningStack) -> None:
    """The demo's signups went the whole way: Referral Factory's webhooks, the receiver, the queue, the
    processor, Intercom; each person is one contact with the campaign's attributes."""
    api_key = narration(demo_stack, r"its API key \(shown once\): (\S+)$")
    workspace = narration(demo_stack, r"workspace=(demo[0-9a-f]+)$")
    listing = httpx.get(f"{demo_stack.info['intercom']}/_emulator/workspaces/{workspace}/contacts")
    people = [c for c in listing.json()["data"] if str(c.get("email")).endswith("@demo-signups.example")]
    by_email = {c["email"]: c for c in people}
    assert len(people) == len(by_email) == 4, people
    rita = by_email.pop("rita@demo-signups.example")
    assert (rita["role"], rita["name"], rita["custom_attributes"]["referrals_count"]) == ("user", "Rita", 3)
    assert sorted(c["name"] for c in by_email.values()) == ["Fay", "Finn", "Fred"]
    for friend in by_email.values():
        assert friend["role"] == "lead"
        assert friend["custom_attributes"]["referrer_email"] == "rita@demo-signups.example"
        assert friend["custom_attributes"]["referral_campaign"] == "Spring referral"
    records = {}
    for email in (rita["email"], *by_email):
        referrals = httpx.get(
            f"{demo_stack.api}/v1/referrals",
            params={"email": email},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        records.update({r["email"]: r for r in referrals.json()["data"]})
    assert {email: r["intercom_status"] for email, r in records.items()} == dict.fromkeys(
        [rita["email"], *by_email], "created"
    )
    assert records[rita["email"]]["intercom_contact_id"] == rita["id"]
    assert "rita@demo-signups.example    person_referring created" in demo_stack.stderr()


def _referral(demo_stack: RunningStack, email: str) -> dict[str, object]:
    api_key = narration(demo_stack, r"its API key \(shown once\): (\S+)$")
    answer = httpx.get(
        f"{demo_stack.api}/v1/referrals",
        params={"email": email},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    [record] = answer.json()["data"]
    return dict(record)


def test_the_b2b_friend_qualifies_with_the_companys_spend_as_sale_value(demo_stack: RunningStack) -> None:
    assert float(narration(demo_stack, r"qualified, amount=(\S+) \(the company.s spend\)$")) == 2400
    record = _referral(demo_stack, "gus@demo-partners.example")
    assert (record["status"], record["sale_value"]) == ("qualified", 2400)


def test_the_refused_push_shows_why_and_the_retry_after_the_fix_creates_the_contact(
    demo_stack: RunningStack,
) -> None:
    reason = narration(demo_stack, r"Intercom said: (.+)$")
    assert reason.startswith("parameter_invalid:"), reason
    record = _referral(demo_stack, "olga@demo-partners.example")
    assert record["intercom_status"] == "created"
    kinds = [e["kind"] for e in record["events"]]  # type: ignore[attr-defined]
    assert kinds[-3:] == ["push_failed", "retry_requested", "contact_created"], kinds
