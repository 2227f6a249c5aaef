"""Referral states as the contract's "[v2] Referral states, precisely" says, against the emulators over
HTTP: pending while the push runs, failed with Intercom's code and message (then retried once the cause
is fixed), not_pushed for a deliberate disconnect, waiting for a revoked workspace and pushed only into
that same workspace, the listing's state filters, and a sync contact Intercom refuses."""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from typing import Any

import boto3
import httpx
import pytest

from shared.records import referrals as referral_records
from tests.factories import api_event, body_of
from tests.functional.oauth_flow import account_call, bearer, connect
from tests.functional.signup_flow import (
    configure,
    contacts,
    deliver,
    drain,
    empty_queue,
    join,
    referrals,
)
from tests.functional.sync_flow import empty, pump, start, status
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

# The campaign name goes to a list attribute whose options do not include it: Intercom refuses the
# write (400 parameter_invalid), for a reason a person can fix.
CHOICES = ["Spring promo", "Autumn promo"]


@pytest.fixture(autouse=True)
def _own_queue(aws):
    empty_queue(aws.refs["SignupQueue"])


@pytest.fixture(autouse=True)
def _fast_leases(monkeypatch):
    from shared.flows import signup_push

    monkeypatch.setattr(signup_push, "SEARCH_TRUST_DELAY_S", 1)
    monkeypatch.setattr(signup_push, "PUSH_LEASE_S", 2)


@pytest.fixture
def faults(emulators):
    def set_faults(values: dict[str, float]) -> None:
        assert httpx.put(f"{emulators.intercom}/_emulator/config", json={"faults": values}).status_code == 200

    yield set_faults
    set_faults({})


def list_attribute(call, setup, name: str) -> str:
    body = {"name": name, "data_type": "options", "options": CHOICES}
    created = account_call(call, setup["account"], "POST", "/v1/intercom/attributes", body=body)
    assert created["statusCode"] == 201, created
    return f"custom_attributes.{name}"


def refusing_settings(call, setup) -> dict[str, Any]:
    """The contract's example, with the referrer's campaign name written to a list attribute that
    does not take it."""
    attribute = list_attribute(call, setup, f"campaign_choice_{uuid.uuid4().hex[:6]}")
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_referring"]["mapping"]["campaign_name"] = attribute
    return settings


def retry(call, setup, rf_user_id: str, campaign_id: str | None) -> Any:
    path = f"/v1/referrals/{rf_user_id}/retry"
    event = api_event(
        "POST",
        path,
        headers=bearer(setup["account"]),
        query={"campaign_id": campaign_id} if campaign_id is not None else None,
        resource="/v1/referrals/{rf_user_id}/retry",
        path_parameters={"rf_user_id": rf_user_id},
    )
    return call("AccountApiFunction", event)


def listing(call, setup, **query: str) -> Any:
    return account_call(call, setup["account"], "GET", "/v1/referrals", query=query or None)


def by_email(emulators, workspace, email):
    return [c for c in contacts(emulators, workspace) if c.get("email") == email]


def one(call, setup, email: str) -> dict[str, Any]:
    [record] = referrals(call, setup, email=email)
    return record


def disconnect(call, setup) -> None:
    event = api_event("DELETE", "/v1/intercom/connection", headers=bearer(setup["account"]))
    assert call("OAuthCallbackFunction", event)["statusCode"] == 204


def revoke(emulators, workspace) -> None:
    """The workspace removes the app in Intercom: its token stops working (the product finds out
    from the next 401; the functional emulator has no uninstall URL)."""
    assert httpx.post(f"{emulators.intercom}/_emulator/workspaces/{workspace}/uninstall").status_code == 200


# -- pending ------------------------------------------------------------------------------------------
def test_a_referral_is_pending_while_its_push_runs_never_not_pushed(
    call, lambda_module, aws, emulators, connected_account, faults
):
    setup = connected_account
    configure(call, setup)
    lambda_module("SignupProcessorFunction")
    lambda_module("AccountApiFunction")
    person = join(emulators, setup, "Pia", "pia@example.com")
    deliver(call, setup, person)
    faults({"latency_ms": 700})  # each Intercom call takes 0.7 s: the push takes a few seconds
    pushing = threading.Thread(target=drain, args=(lambda_module, aws))
    pushing.start()
    seen: list[str] = []
    while pushing.is_alive():
        seen += [r["intercom_status"] for r in referrals(call, setup, email="pia@example.com")]
        time.sleep(0.05)
    pushing.join()
    seen.append(one(call, setup, "pia@example.com")["intercom_status"])
    assert "pending" in seen, seen
    assert set(seen) == {"pending", "created"}, seen
    assert seen[-1] == "created"
    assert len(by_email(emulators, setup["workspace"], "pia@example.com")) == 1


# -- failed, fixed, retried -----------------------------------------------------------------------
def test_a_push_intercom_refuses_fails_with_its_reason_and_a_retry_after_the_fix_creates_it(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    campaign = configure(call, setup, refusing_settings(call, setup))
    rita = join(emulators, setup, "Rita", "rita-refused@example.com")
    deliver(call, setup, rita)
    drain(lambda_module, aws)  # returns: the message was handled, not failed towards the DLQ

    record = one(call, setup, "rita-refused@example.com")
    assert record["intercom_status"] == "failed"
    assert record["workspace_id"] == setup["workspace"]
    assert record["intercom_contact_id"] is None
    last = record["events"][-1]
    assert last["kind"] == "push_failed"
    assert last["details"]["code"] == "parameter_invalid"
    assert "not in the list of allowed values" in last["details"]["message"]
    assert f"Campaign {campaign}" in last["details"]["message"]
    assert by_email(emulators, setup["workspace"], "rita-refused@example.com") == []

    # Retried as it is, Intercom refuses again: still failed, with the reason again.
    assert retry(call, setup, str(rita["id"]), campaign)["statusCode"] == 202
    drain(lambda_module, aws)
    again = one(call, setup, "rita-refused@example.com")
    assert again["intercom_status"] == "failed"
    assert [e["kind"] for e in again["events"][-2:]] == ["retry_requested", "push_failed"]

    # The person fixes the settings (the campaign name no longer goes to that list), then retries.
    configure(call, setup)
    accepted = retry(call, setup, str(rita["id"]), campaign)
    assert accepted["statusCode"] == 202, accepted
    assert body_of(accepted)["intercom_status"] == "pending"
    drain(lambda_module, aws)
    [contact] = by_email(emulators, setup["workspace"], "rita-refused@example.com")
    assert contact["custom_attributes"]["referral_link"] == rita["url"]
    done = one(call, setup, "rita-refused@example.com")
    assert done["intercom_status"] == "created" and done["intercom_contact_id"] == contact["id"]
    assert done["events"][-1]["kind"] == "contact_created" and done["events"][-1]["via"] == "retry"

    # Only failed, not_pushed and waiting_for_connection referrals can be retried.
    refused = retry(call, setup, str(rita["id"]), campaign)
    assert refused["statusCode"] == 409
    assert body_of(refused)["error"]["code"] == "not_retryable"
    missing = retry(call, setup, "999999999", campaign)
    assert missing["statusCode"] == 404
    assert body_of(missing)["error"]["code"] == "referral_not_found"
    no_campaign = retry(call, setup, str(rita["id"]), None)
    assert no_campaign["statusCode"] == 422
    assert [d["field"] for d in body_of(no_campaign)["error"]["details"]] == ["query.campaign_id"]
    assert len(by_email(emulators, setup["workspace"], "rita-refused@example.com")) == 1


def test_a_retry_never_doubles_a_contact_intercom_already_has(
    call, lambda_module, aws, emulators, connected_account
):
    """A push refused after Intercom got the contact another way: the retry finds it by email."""
    setup = connected_account
    campaign = configure(call, setup, refusing_settings(call, setup))
    rosa = join(emulators, setup, "Rosa", "rosa-twice@example.com")
    deliver(call, setup, rosa)
    drain(lambda_module, aws)
    assert one(call, setup, "rosa-twice@example.com")["intercom_status"] == "failed"
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={"contacts": [{"role": "user", "email": "rosa-twice@example.com", "name": "Rosa Meanwhile"}]},
    )
    configure(call, setup)
    assert retry(call, setup, str(rosa["id"]), campaign)["statusCode"] == 202
    drain(lambda_module, aws)
    [contact] = by_email(emulators, setup["workspace"], "rosa-twice@example.com")
    record = one(call, setup, "rosa-twice@example.com")
    assert record["intercom_status"] == "existing_skipped"
    assert record["intercom_contact_id"] == contact["id"]


def test_intercoms_random_400s_fail_the_push_with_intercoms_code(
    call, lambda_module, aws, emulators, connected_account, faults
):
    setup = connected_account
    campaign = configure(call, setup)
    drain(lambda_module, aws)
    fay = join(emulators, setup, "Fay", "fay-400@example.com")
    faults({"error_rate_400": 1.0})
    deliver(call, setup, fay)
    drain(lambda_module, aws)
    record = one(call, setup, "fay-400@example.com")
    assert record["intercom_status"] == "failed"
    assert record["events"][-1]["details"]["code"] == "parameter_invalid"
    assert record["events"][-1]["details"]["status"] == 400
    faults({})
    assert retry(call, setup, str(fay["id"]), campaign)["statusCode"] == 202
    drain(lambda_module, aws)
    assert one(call, setup, "fay-400@example.com")["intercom_status"] == "created"
    assert len(by_email(emulators, setup["workspace"], "fay-400@example.com")) == 1


# -- a deliberate disconnect --------------------------------------------------------------------
def test_a_signup_while_disconnected_on_purpose_is_not_pushed_until_retried_after_connecting(
    call, lambda_module, aws, emulators, connected_account
):
    from tests.functional.test_signup_push import run_catch_up

    setup = connected_account
    campaign = configure(call, setup)
    disconnect(call, setup)
    drain(lambda_module, aws)
    dina = join(emulators, setup, "Dina", "dina-off@example.com")
    deliver(call, setup, dina)
    drain(lambda_module, aws)
    record = one(call, setup, "dina-off@example.com")
    # It carries its campaign's workspace, where a retry will push it.
    assert (record["intercom_status"], record["workspace_id"]) == ("not_pushed", setup["workspace"])
    assert record["events"][-1]["kind"] == "disconnected"

    refused = retry(call, setup, str(dina["id"]), campaign)
    assert refused["statusCode"] == 409
    assert body_of(refused)["error"]["code"] == "not_connected"
    assert "connect" in body_of(refused)["error"]["message"].lower()
    assert one(call, setup, "dina-off@example.com")["intercom_status"] == "not_pushed"

    # Connecting again pushes nothing on its own, nor does the catch-up: no user data synced.
    connect(call, setup["account"], setup["workspace"])
    drain(lambda_module, aws)
    run_catch_up(lambda_module, aws, setup, campaign)
    assert one(call, setup, "dina-off@example.com")["intercom_status"] == "not_pushed"
    assert by_email(emulators, setup["workspace"], "dina-off@example.com") == []

    assert retry(call, setup, str(dina["id"]), campaign)["statusCode"] == 202
    drain(lambda_module, aws)
    [contact] = by_email(emulators, setup["workspace"], "dina-off@example.com")
    record = one(call, setup, "dina-off@example.com")
    assert (record["intercom_status"], record["workspace_id"]) == ("created", setup["workspace"])
    assert record["intercom_contact_id"] == contact["id"]


# -- revoked by Intercom ------------------------------------------------------------------------
def test_a_revoked_workspace_holds_signups_and_the_same_workspace_gets_them(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    campaign = configure(call, setup)
    revoke(emulators, setup["workspace"])
    walt = join(emulators, setup, "Walt", "walt-revoked@example.com")
    deliver(call, setup, walt)
    drain(lambda_module, aws)
    record = one(call, setup, "walt-revoked@example.com")
    assert (record["intercom_status"], record["workspace_id"]) == (
        "waiting_for_connection",
        setup["workspace"],
    )
    refused = retry(call, setup, str(walt["id"]), campaign)
    assert (refused["statusCode"], body_of(refused)["error"]["code"]) == (409, "not_connected")
    assert "revoked" in body_of(refused)["error"]["message"]

    connect(call, setup["account"], setup["workspace"])
    drain(lambda_module, aws)
    [contact] = by_email(emulators, setup["workspace"], "walt-revoked@example.com")
    record = one(call, setup, "walt-revoked@example.com")
    assert (record["intercom_status"], record["intercom_contact_id"]) == ("created", contact["id"])
    assert [(e["kind"], e["via"]) for e in record["events"]] == [
        ("waiting_for_connection", "webhook"),
        ("contact_created", "reconnect"),
    ]


def test_signups_waiting_for_a_revoked_workspace_are_not_pushed_into_another(
    call, lambda_module, aws, emulators, connected_account, workspace
):
    setup = connected_account
    campaign = configure(call, setup)
    revoke(emulators, setup["workspace"])
    vera = join(emulators, setup, "Vera", "vera-moved@example.com")
    deliver(call, setup, vera)
    drain(lambda_module, aws)
    assert one(call, setup, "vera-moved@example.com")["intercom_status"] == "waiting_for_connection"

    # Another workspace connected beside it: the campaign still uses the revoked one, so she waits on.
    other = workspace("Elsewhere")
    connect(call, setup["account"], other)
    drain(lambda_module, aws)
    record = one(call, setup, "vera-moved@example.com")
    assert (record["intercom_status"], record["workspace_id"]) == (
        "waiting_for_connection",
        setup["workspace"],
    )

    # The campaign moves to the other workspace: she is not pushed there unasked.
    configure(call, setup, {**CONTRACT_EXAMPLE, "workspace_id": other})
    drain(lambda_module, aws)
    record = one(call, setup, "vera-moved@example.com")
    assert (record["intercom_status"], record["workspace_id"]) == ("not_pushed", other)
    last = record["events"][-1]
    assert last["kind"] == "workspace_changed"
    assert last["details"] == {"waited_for": setup["workspace"], "connected": other}
    assert by_email(emulators, other, "vera-moved@example.com") == []
    assert by_email(emulators, setup["workspace"], "vera-moved@example.com") == []

    # Asked to, the retry pushes it into the campaign's workspace, with the campaign's settings.
    assert retry(call, setup, str(vera["id"]), campaign)["statusCode"] == 202
    drain(lambda_module, aws)
    [contact] = by_email(emulators, other, "vera-moved@example.com")
    record = one(call, setup, "vera-moved@example.com")
    assert (record["intercom_status"], record["workspace_id"]) == ("created", other)
    assert record["intercom_contact_id"] == contact["id"]


def test_disconnecting_on_purpose_stops_signups_that_waited_for_a_revoked_workspace(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    configure(call, setup)
    revoke(emulators, setup["workspace"])
    will = join(emulators, setup, "Will", "will-waited@example.com")
    deliver(call, setup, will)
    drain(lambda_module, aws)
    assert one(call, setup, "will-waited@example.com")["intercom_status"] == "waiting_for_connection"
    disconnect(call, setup)
    drain(lambda_module, aws)
    record = one(call, setup, "will-waited@example.com")
    assert record["intercom_status"] == "not_pushed"
    assert record["events"][-1]["kind"] == "disconnected"
    assert record["events"][-1]["details"] == {"waited_for": setup["workspace"]}
    connect(call, setup["account"], setup["workspace"])
    drain(lambda_module, aws)
    assert one(call, setup, "will-waited@example.com")["intercom_status"] == "not_pushed"
    assert by_email(emulators, setup["workspace"], "will-waited@example.com") == []


# -- the listing's filters ------------------------------------------------------------------------
@pytest.fixture
def four_states(call, lambda_module, aws, emulators, connected_account) -> dict[str, Any]:
    """Campaign 0 refuses its referrers and takes its friends; campaign 1 has no settings."""
    setup = connected_account
    first, second = setup["campaigns"]
    configure(call, setup, refusing_settings(call, setup))
    rita = join(emulators, setup, "Rita", "rita-f@example.com")
    fred = join(emulators, setup, "Fred", "fred-f@example.com", referrer_code=rita["code"])
    nina = join(emulators, setup, "Nina", "nina-f@example.com", campaign=second)
    nick = join(emulators, setup, "Nick", "nick-f@example.com", campaign=second)
    for person in (rita, fred, nina, nick):
        deliver(call, setup, person)
    drain(lambda_module, aws)
    return {"setup": setup, "first": first, "second": second}


def emails(response: Any) -> list[str]:
    assert response["statusCode"] == 200, response
    return sorted(r["email"] for r in json.loads(response["body"])["data"])


def test_referrals_filter_by_intercom_status_and_status_with_the_other_filters(call, four_states):
    setup, first, second = four_states["setup"], four_states["first"], four_states["second"]
    assert emails(listing(call, setup, intercom_status="failed")) == ["rita-f@example.com"]
    assert emails(listing(call, setup, intercom_status="not_pushed")) == [
        "nick-f@example.com",
        "nina-f@example.com",
    ]
    assert emails(listing(call, setup, intercom_status="not_pushed", campaign_id=second)) == [
        "nick-f@example.com",
        "nina-f@example.com",
    ]
    assert emails(listing(call, setup, intercom_status="not_pushed", campaign_id=first)) == []
    assert emails(listing(call, setup, intercom_status="created", status="pending")) == ["fred-f@example.com"]
    assert emails(listing(call, setup, intercom_status="created", status="qualified")) == []
    assert emails(listing(call, setup, status="pending", campaign_id=first)) == [
        "fred-f@example.com",
        "rita-f@example.com",
    ]
    assert emails(listing(call, setup, email="fred-f@example.com", intercom_status="created")) == [
        "fred-f@example.com"
    ]
    assert emails(listing(call, setup, email="fred-f@example.com", intercom_status="failed")) == []
    assert emails(listing(call, setup, intercom_status="pending")) == []


@pytest.mark.parametrize("value", [{"intercom_status": "pushed"}, {"status": "done"}])
def test_an_unknown_state_filter_is_a_422_naming_the_parameter(call, connected_account, value):
    response = listing(call, connected_account, **value)
    assert response["statusCode"] == 422
    [detail] = body_of(response)["error"]["details"]
    [name] = value
    assert detail["field"] == f"query.{name}" and detail["message"]


@pytest.mark.parametrize(("read", "most"), [(1, 2000), (1, 1), (200, 2000)])
def test_filtered_pages_follow_their_cursors_to_every_match_once(call, four_states, monkeypatch, read, most):
    """However few records one request reads (a rare state in a large account gives short pages,
    even empty ones, each with a cursor), following the cursors lists every match once."""
    monkeypatch.setattr(referral_records, "FILTERED_READ", read)
    monkeypatch.setattr(referral_records, "FILTERED_READS_MAX", most)
    setup = four_states["setup"]
    found: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        query = {"intercom_status": "not_pushed", "limit": "1", **({"cursor": cursor} if cursor else {})}
        response = listing(call, setup, **query)
        page = json.loads(response["body"])
        assert len(page["data"]) <= 1
        found += [r["email"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(found) == ["nick-f@example.com", "nina-f@example.com"]


# -- a sync's contacts --------------------------------------------------------------------------
def test_a_sync_contact_intercom_refuses_names_intercoms_reason_and_skips_the_dlq(
    call, lambda_module, aws, emulators, connected_account
):
    empty(aws)
    setup = connected_account
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["sync"]["return_mapping"]["campaign_name"] = list_attribute(call, setup, "synced_campaign")
    configure(call, setup, settings)
    seeded = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={
            "contacts": [
                {"role": "user", "email": f"s{i}-refused@example.com", "name": f"S {i}"} for i in range(3)
            ]
        },
    )
    ids = seeded.json()["ids"]
    sqs = boto3.client("sqs")
    dlq = aws.refs["SyncPagesDLQ"]
    before = int(
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    sync_id = start(call, setup, {"audience": "users"})
    pump(lambda_module, aws)
    result = status(call, setup, sync_id)
    assert result["status"] == "completed", result
    assert (result["processed"], result["failed"]) == (3, 3)
    assert sorted(e["contact_id"] for e in result["errors"]) == sorted(ids)
    for error in result["errors"]:
        assert error["code"] == "parameter_invalid"
        assert "not in the list of allowed values" in error["message"]
        assert not error["message"].startswith("intercom")  # Intercom's own words
    after = int(
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    assert after == before


def test_a_retry_that_cannot_be_queued_leaves_the_referral_as_it_was(
    call, lambda_module, aws, emulators, connected_account, monkeypatch
):
    from shared.aws import queues

    setup = connected_account
    second = setup["campaigns"][1]  # no settings: its signups are not pushed
    nora = join(emulators, setup, "Nora", "nora-unqueued@example.com", campaign=second)
    deliver(call, setup, nora)
    drain(lambda_module, aws)
    assert one(call, setup, "nora-unqueued@example.com")["intercom_status"] == "not_pushed"

    def unavailable(*args, **kwargs):
        raise RuntimeError("SQS is unavailable")

    monkeypatch.setattr(queues, "send", unavailable)
    response = retry(call, setup, str(nora["id"]), second)
    assert response["statusCode"] == 500
    assert body_of(response)["error"]["code"] == "internal_error"
    assert one(call, setup, "nora-unqueued@example.com")["intercom_status"] == "not_pushed"
    monkeypatch.undo()
    assert retry(call, setup, str(nora["id"]), second)["statusCode"] == 202
