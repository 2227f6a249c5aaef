"""Signup push: Referral Factory signups become Intercom leads and users, once, nothing lost."""

from __future__ import annotations

import copy
import json
import threading

import boto3
import httpx
import pytest

from shared.clients.errors import Transient
from shared.clients.referral_factory import ReferralFactoryClient
from shared.consumers import handback
from shared.flows import signup_push
from tests.factories import LambdaContext, api_event, body_of, sqs_event
from tests.functional.oauth_flow import account_call, bearer, connect
from tests.functional.signup_flow import (
    configure,
    contacts,
    deliver,
    drain,
    empty_queue,
    join,
    referrals,
    webhook_event,
)
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE


@pytest.fixture(autouse=True)
def _own_queue(aws):
    # Each test drains the signup queue to empty: earlier tests' messages are not its business.
    empty_queue(aws.refs["SignupQueue"])


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    # Search becomes trustworthy at once in the emulator; keep the doubt window short in tests.
    monkeypatch.setattr(signup_push, "SEARCH_TRUST_DELAY_S", 1)
    monkeypatch.setattr(signup_push, "PUSH_LEASE_S", 2)


def by_email(emulators, setup, email):
    return [c for c in contacts(emulators, setup["workspace"]) if c.get("email") == email]


def test_a_referrer_and_a_friend_arrive_as_user_and_lead(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    campaign = configure(call, setup)
    referrer = join(emulators, setup, "Rita", "rita@example.com")
    deliver(call, setup, referrer)
    drain(lambda_module, aws)
    friend = join(emulators, setup, "Fred", "fred@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)

    [rita] = by_email(emulators, setup, "rita@example.com")
    assert rita["role"] == "user" and rita["name"] == "Rita"
    assert rita["custom_attributes"]["referral_link"] == referrer["url"]
    assert rita["custom_attributes"]["referrals_count"] == 1  # written by the counts writer
    [fred] = by_email(emulators, setup, "fred@example.com")
    assert fred["role"] == "lead" and fred["name"] == "Fred"
    custom = fred["custom_attributes"]
    assert custom["referrer_name"] == "Rita" and custom["referrer_email"] == "rita@example.com"
    assert custom["referral_campaign"] == f"Campaign {campaign}"
    assert custom["plan"] == "trial" and custom["customer_status"] == "trial"
    assert custom["referral_source"] == friend["source"]
    assert fred.get("external_id") in (None, "")

    records = {r["email"]: r for r in referrals(call, setup, campaign_id=campaign)}
    assert records["fred@example.com"]["type"] == "person_invited"
    assert records["fred@example.com"]["intercom_status"] == "created"
    assert records["fred@example.com"]["intercom_contact_id"] == fred["id"]
    assert records["fred@example.com"]["can_qualify"] is True
    assert records["fred@example.com"]["status"] == "pending"
    assert [e["kind"] for e in records["fred@example.com"]["events"]] == ["contact_created"]
    assert records["rita@example.com"]["type"] == "person_referring"
    assert records["rita@example.com"]["can_qualify"] is False  # person_referring has no qualification


def test_duplicates_skip_leaves_the_contact_untouched(call, lambda_module, aws, emulators, connected_account):
    setup = connected_account
    configure(call, setup)
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={"contacts": [{"role": "lead", "email": "olga@example.com", "name": "Olga Original"}]},
    )
    referrer = join(emulators, setup, "Rita", "rita2@example.com")
    friend = join(emulators, setup, "Olga", "olga@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    [olga] = by_email(emulators, setup, "olga@example.com")
    assert olga["name"] == "Olga Original" and not olga.get("custom_attributes")
    [record] = referrals(call, setup, email="olga@example.com")
    assert record["intercom_status"] == "existing_skipped"
    assert record["can_qualify"] is False
    assert record["intercom_contact_id"] == olga["id"]


def test_duplicates_update_marks_the_contact_but_not_its_qualification(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_invited"]["duplicates"] = "update"
    configure(call, setup, settings)
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={
            "contacts": [
                {
                    "role": "user",
                    "email": "uma@example.com",
                    "name": "Uma Original",
                    "custom_attributes": {"customer_status": "churned"},
                }
            ]
        },
    )
    referrer = join(emulators, setup, "Rita", "rita3@example.com")
    friend = join(emulators, setup, "Uma", "uma@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    [uma] = by_email(emulators, setup, "uma@example.com")
    assert uma["name"] == "Uma Original"
    assert uma["custom_attributes"]["customer_status"] == "churned"
    assert uma["custom_attributes"]["referrer_email"] == "rita3@example.com"
    [record] = referrals(call, setup, email="uma@example.com")
    assert record["intercom_status"] == "existing_updated"
    assert record["can_qualify"] is True


def test_missing_settings_are_recorded_then_the_catch_up_pushes(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    friend = join(emulators, setup, "Nina", "nina@example.com")
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    [record] = referrals(call, setup, email="nina@example.com")
    assert record["intercom_status"] == "not_pushed"
    assert record["events"][-1]["kind"] == "settings_missing"
    assert by_email(emulators, setup, "nina@example.com") == []
    campaign = configure(call, setup)
    run_catch_up(lambda_module, aws, setup, campaign)
    assert len(by_email(emulators, setup, "nina@example.com")) == 1
    [record] = referrals(call, setup, email="nina@example.com")
    assert record["intercom_status"] == "created"


def run_catch_up(lambda_module, aws, setup, campaign):
    from shared.aws import queues

    queues.send(
        aws.refs["SignupQueue"],
        {"kind": "signup.catch_up", "account_id": setup["account"]["account_id"], "campaign_id": campaign},
    )
    drain(lambda_module, aws)


def test_a_dropped_webhook_is_caught_up(call, lambda_module, aws, emulators, connected_account):
    setup = connected_account
    campaign = configure(call, setup)
    join(emulators, setup, "Dora", "dora@example.com")  # its webhook never arrives
    run_catch_up(lambda_module, aws, setup, campaign)
    assert len(by_email(emulators, setup, "dora@example.com")) == 1
    [record] = referrals(call, setup, email="dora@example.com")
    assert record["events"][-1]["via"] == "catch_up"


def test_the_catch_up_schedules_a_missing_qualification_sweep(lambda_module, aws, call, connected_account):
    from shared.aws.store import Store
    from shared.keys import qualification_sweep_work_id

    setup = connected_account
    campaign = configure(call, setup)  # the contract's example qualifies on customer_status
    store = Store(aws.refs["MainTable"])
    due_pk = f"DUE#{qualification_sweep_work_id(setup['account']['account_id'], campaign)}"
    store.delete(due_pk, "DUE")  # as for settings saved before sweeps existed

    run_catch_up(lambda_module, aws, setup, campaign)

    scheduled = store.get(due_pk, "DUE")
    assert scheduled is not None
    assert scheduled["kind"] == "qualification.sweep"


def test_a_revoked_connection_holds_signups_until_reconnect(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    configure(call, setup)
    httpx.post(f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/uninstall")
    friend = join(emulators, setup, "Walt", "walt@example.com")
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    [record] = referrals(call, setup, email="walt@example.com")
    assert record["intercom_status"] == "waiting_for_connection"
    status = call(
        "OAuthCallbackFunction",
        api_event("GET", "/v1/intercom/connection", headers=bearer(setup["account"])),
    )
    assert body_of(status)["status"] == "revoked"
    connect(call, setup["account"], setup["workspace"])
    drain(lambda_module, aws)
    assert len(by_email(emulators, setup, "walt@example.com")) == 1
    [record] = referrals(call, setup, email="walt@example.com")
    assert record["intercom_status"] == "created"
    assert [e["kind"] for e in record["events"]] == ["waiting_for_connection", "contact_created"]


def test_duplicated_and_concurrent_deliveries_make_one_contact(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    configure(call, setup)
    friend = join(emulators, setup, "Dan", "dan@example.com")
    for _ in range(3):
        deliver(call, setup, friend)
    # Two processors racing on the same messages, as two Lambda instances would.
    threads = [threading.Thread(target=drain, args=(lambda_module, aws)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain(lambda_module, aws)
    assert len(by_email(emulators, setup, "dan@example.com")) == 1
    assert len(referrals(call, setup, email="dan@example.com")) == 1


@pytest.mark.parametrize("fault", ["error_rate_429", "error_rate_500"])
def test_intercom_errors_during_creation_still_make_one_contact(
    call, lambda_module, aws, emulators, connected_account, fault
):
    setup = connected_account
    configure(call, setup)
    people = [join(emulators, setup, f"P{i}", f"p{i}-{fault}@example.com") for i in range(6)]
    httpx.put(f"{emulators.intercom}/_emulator/config", json={"faults": {fault: 0.3}})
    try:
        for person in people:
            deliver(call, setup, person)
        drain(lambda_module, aws, timeout_s=300)
    finally:
        httpx.put(f"{emulators.intercom}/_emulator/config", json={"faults": {}})
    drain(lambda_module, aws, timeout_s=300)
    for i in range(6):
        assert len(by_email(emulators, setup, f"p{i}-{fault}@example.com")) == 1
    assert all(
        r["intercom_status"] == "created"
        for r in referrals(call, setup)
        if r["email"].endswith(f"-{fault}@example.com")
    )


def test_a_transient_failure_is_handed_back_with_a_delay_not_failed(
    call, lambda_module, aws, emulators, connected_account, monkeypatch
):
    setup = connected_account
    configure(call, setup)
    drain(lambda_module, aws)  # the connection's own event
    tara = join(emulators, setup, "Tara", "tara-transient@example.com")
    deliver(call, setup, tara)
    monkeypatch.setattr(handback, "TRANSIENT_RETRY_S", 2)
    real_get_user = ReferralFactoryClient.get_user

    def failing(self, *args, **kwargs):
        raise Transient("kept failing through the retries", service="Referral Factory", status=503)

    monkeypatch.setattr(ReferralFactoryClient, "get_user", failing)
    sqs, url = boto3.client("sqs"), aws.refs["SignupQueue"]
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    processor = lambda_module("SignupProcessorFunction").handler

    assert processor(sqs_event(json.loads(message["Body"])), LambdaContext()) == {"batchItemFailures": []}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1  # back on the queue, later

    monkeypatch.setattr(ReferralFactoryClient, "get_user", real_get_user)
    assert [m.get("requeues") for m in drain(lambda_module, aws)] == [1]
    assert len(by_email(emulators, setup, "tara-transient@example.com")) == 1


def test_qualified_events_refresh_counts_and_never_create(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    configure(call, setup)
    referrer = join(emulators, setup, "Rex", "rex@example.com")
    deliver(call, setup, referrer)
    friend = join(emulators, setup, "Fay", "fay@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    before = len(contacts(emulators, setup["workspace"]))
    httpx.put(
        f"{emulators.referral_factory}/api/v2/users/qualification",
        headers={"Authorization": f"Bearer {setup['rf_key']}"},
        json={"id": friend["id"], "qualified": True},
    )
    stranger = join(emulators, setup, "Sam", "sam@example.com")
    deliver(call, setup, {**friend, "qualified_at": "now"}, event="user.qualified")
    deliver(call, setup, stranger, event="reward.issued")
    drain(lambda_module, aws)
    assert len(contacts(emulators, setup["workspace"])) == before
    [rex] = by_email(emulators, setup, "rex@example.com")
    assert rex["custom_attributes"]["converted_referrals"] == 1
    assert rex["custom_attributes"]["referrals_count"] == 1


def test_receiver_checks_the_secret_and_the_body(call, aws, connected_account, emulators):
    setup = connected_account
    user = join(emulators, setup, "Zed", "zed@example.com")
    assert call("ReferralSignupFunction", webhook_event(setup, user, secret="wrong"))["statusCode"] == 401
    event = webhook_event(setup, user)
    event["body"] = "{broken"
    assert call("ReferralSignupFunction", event)["statusCode"] == 400
    event = webhook_event(setup, {"first_name": "No id"})
    response = call("ReferralSignupFunction", event)
    assert response["statusCode"] == 422
    assert body_of(response)["error"]["details"][0]["field"] == "user.id"
    assert call("ReferralSignupFunction", webhook_event(setup, user, form=True))["statusCode"] == 200
    other = webhook_event(setup, user)
    other["path"] = other["path"].replace(setup["account"]["account_id"], "acc_nobody")
    other["pathParameters"] = {"account_id": "acc_nobody"}
    assert call("ReferralSignupFunction", other)["statusCode"] == 401


def test_referrals_are_listed_with_cursors_and_per_account(
    call, lambda_module, aws, emulators, connected_account, new_account
):
    setup = connected_account
    configure(call, setup)
    for i in range(3):
        deliver(call, setup, join(emulators, setup, f"L{i}", f"list{i}@example.com"))
    drain(lambda_module, aws)
    first = account_call(call, setup["account"], "GET", "/v1/referrals", query={"limit": "2"})
    page1 = json.loads(first["body"])
    assert len(page1["data"]) == 2 and page1["next_cursor"]
    second = account_call(
        call, setup["account"], "GET", "/v1/referrals", query={"limit": "2", "cursor": page1["next_cursor"]}
    )
    page2 = json.loads(second["body"])
    emails = {r["email"] for r in page1["data"] + page2["data"]}
    assert emails == {"list0@example.com", "list1@example.com", "list2@example.com"}
    intruder = new_account()
    listed = account_call(call, intruder, "GET", "/v1/referrals")
    assert json.loads(listed["body"]) == {"data": [], "next_cursor": None}
    stolen = account_call(call, intruder, "GET", "/v1/referrals", query={"cursor": page1["next_cursor"]})
    assert stolen["statusCode"] == 400


def test_a_friend_counted_before_the_referrer_arrives_is_written_when_it_does(
    call, lambda_module, aws, emulators, connected_account
):
    """Webhooks race: the friend's push counts them while the referrer has no contact yet (nothing to
    write to); the referrer's own push then writes the count it finds."""
    setup = connected_account
    configure(call, setup)
    referrer = join(emulators, setup, "Rhea", "rhea@example.com")
    friend = join(emulators, setup, "Flo", "flo@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    deliver(call, setup, referrer)
    drain(lambda_module, aws)
    [rhea] = by_email(emulators, setup, "rhea@example.com")
    assert rhea["custom_attributes"]["referrals_count"] == 1


def test_a_skipped_referrers_contact_never_gets_counts(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    configure(call, setup)
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={"contacts": [{"role": "user", "email": "kept@example.com", "name": "Kept As Is"}]},
    )
    referrer = join(emulators, setup, "Kept", "kept@example.com")
    deliver(call, setup, referrer)
    friend = join(emulators, setup, "Fern", "fern@example.com", referrer_code=referrer["code"])
    deliver(call, setup, friend)
    drain(lambda_module, aws)
    [kept] = by_email(emulators, setup, "kept@example.com")
    assert kept["name"] == "Kept As Is" and not kept.get("custom_attributes")
    [record] = referrals(call, setup, email="kept@example.com")
    assert record["intercom_status"] == "existing_skipped"


def test_a_push_writes_mapped_custom_attributes_where_intercom_keeps_them(
    call, lambda_module, aws, emulators, connected_account
):
    setup = connected_account
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_referring"]["mapping"] = {
        "referrer_first_name": "custom_attributes.given_name",
        "referrer_email": "email",
        "referral_code": "custom_attributes.ref_code",
        "referral_link": "custom_attributes.referral_link",
    }
    configure(call, setup, settings)
    referrer = join(emulators, setup, "Rosa", "rosa@example.com")
    deliver(call, setup, referrer)
    drain(lambda_module, aws)
    [rosa] = by_email(emulators, setup, "rosa@example.com")
    custom = rosa["custom_attributes"]
    assert custom["given_name"] == "Rosa" and custom["ref_code"] == referrer["code"]
    assert "custom_attributes.given_name" not in rosa and "given_name" not in rosa


def test_a_mapping_to_a_nested_read_only_attribute_is_refused(call, connected_account):
    # Intercom nests `location.city` in the contact and lists it as not writable through the API.
    setup = connected_account
    configure(call, setup)
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_invited"]["mapping"]["source"] = "location.city"
    path = f"/v1/campaigns/{setup['campaigns'][0]}/intercom"
    saved = account_call(call, setup["account"], "PUT", path, body=settings)
    assert saved["statusCode"] == 422, saved
    fields = [d["field"] for d in json.loads(saved["body"])["error"]["details"]]
    assert fields == ["person_invited.mapping.source"]
