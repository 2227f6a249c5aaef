"""Intercom's uninstall notice revokes a connection only when the stored token really stopped working."""

from __future__ import annotations

import json

import boto3
import httpx
import pytest

from shared.domain.signatures import body_signature, hub_signature
from tests.factories import LambdaContext, api_event, body_of, sqs_event
from tests.functional.conftest import INTERCOM_CLIENT_SECRET
from tests.functional.oauth_flow import bearer, connect, connection


def notice(app_id: str, *, secret: str = INTERCOM_CLIENT_SECRET, header: str = "X-Body-Signature"):
    body = json.dumps({"app_id": app_id})
    signature = (
        body_signature(body.encode(), secret)
        if header == "X-Body-Signature"
        else hub_signature(body.encode(), secret)
    )
    return api_event(
        "POST",
        "/webhooks/intercom/uninstall",
        body=body,
        headers={header: signature, "Content-Type": "application/json"},
    )


def drain(aws) -> list[dict]:
    sqs = boto3.client("sqs")
    bodies = []
    while batch := sqs.receive_message(QueueUrl=aws.refs["IntercomEventsQueue"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for m in batch:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=aws.refs["IntercomEventsQueue"], ReceiptHandle=m["ReceiptHandle"])
    return bodies


def deliver(call, lambda_module, aws, event) -> list[dict]:
    """Receiver, then the queue, then the processor: as the stack runs them."""
    response = call("IntercomWebhookFunction", event)
    assert response["statusCode"] == 200, response
    # Other tests' due work may sit in this queue too; only the uninstall notices are ours.
    messages = [m for m in drain(aws) if m.get("kind") == "intercom.uninstall"]
    result = lambda_module("IntercomEventsFunction").handler(sqs_event(*messages), LambdaContext())
    assert result == {"batchItemFailures": []}
    return messages


@pytest.fixture
def connected(call, new_account, workspace):
    account = new_account()
    ws = workspace()
    connect(call, account, ws)
    return account, ws


@pytest.mark.parametrize("header", ["X-Body-Signature", "X-Hub-Signature"])
def test_a_real_uninstall_revokes_the_connection(call, lambda_module, aws, emulators, connected, header):
    account, ws = connected
    httpx.post(f"{emulators.intercom}/_emulator/workspaces/{ws}/uninstall")
    deliver(call, lambda_module, aws, notice(ws, header=header))
    assert connection(call, account)["status"] == "revoked"


def test_a_late_or_forged_notice_never_revokes_a_working_connection(call, lambda_module, aws, connected):
    account, ws = connected
    deliver(call, lambda_module, aws, notice(ws))
    assert connection(call, account)["status"] == "connected"


def test_a_bad_signature_is_401_and_nothing_is_queued(call, aws, connected):
    _, ws = connected
    response = call("IntercomWebhookFunction", notice(ws, secret="not-the-secret"))
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "bad_signature"
    assert drain(aws) == []


def test_malformed_notices_are_400(call, aws):
    body = "not json"
    event = api_event(
        "POST",
        "/webhooks/intercom/uninstall",
        body=body,
        headers={"X-Body-Signature": body_signature(body.encode(), INTERCOM_CLIENT_SECRET)},
    )
    assert call("IntercomWebhookFunction", event)["statusCode"] == 400
    body = json.dumps({"no": "app"})
    event = api_event(
        "POST",
        "/webhooks/intercom/uninstall",
        body=body,
        headers={"X-Body-Signature": body_signature(body.encode(), INTERCOM_CLIENT_SECRET)},
    )
    assert call("IntercomWebhookFunction", event)["statusCode"] == 400
    assert drain(aws) == []


def test_unknown_workspaces_and_our_own_disconnect_echo_are_ignored(call, lambda_module, aws, connected):
    account, ws = connected
    deliver(call, lambda_module, aws, notice("never-connected"))
    call("OAuthCallbackFunction", api_event("DELETE", "/v1/intercom/connection", headers=bearer(account)))
    deliver(call, lambda_module, aws, notice(ws))
    assert connection(call, account)["status"] == "disconnected"


def test_revocation_is_published_once(call, lambda_module, aws, emulators, connected):
    account, ws = connected
    sqs = boto3.client("sqs")
    url = aws.refs["SyncQueue"]

    def take() -> list[dict]:
        """Every message in the sync queue, deleted (not left in flight for the queue's long visibility
        timeout, where it would keep later tests' syncs from ever seeing the queue settle)."""
        bodies = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for m in batch:
                bodies.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return bodies

    take()
    httpx.post(f"{emulators.intercom}/_emulator/workspaces/{ws}/uninstall")
    deliver(call, lambda_module, aws, notice(ws))
    deliver(call, lambda_module, aws, notice(ws))
    events = take()
    revoked = [
        e for e in events if e["kind"] == "connection.revoked" and e["account_id"] == account["account_id"]
    ]
    assert len(revoked) == 1
    assert revoked[0]["workspace_id"] == ws
