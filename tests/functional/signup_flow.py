"""Signups in tests: people join through the Referral Factory emulator, the product's receiver takes
the webhook in process, and the signup queue is drained into the real processor."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import httpx

from shared.records.accounts import WEBHOOK_HEADER_NAME
from tests.factories import LambdaContext, api_event, sqs_event
from tests.functional.oauth_flow import account_call
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE


def configure(call: Any, setup: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    """Create the attributes and save `settings` (the contract's example by default) for campaign 0."""
    campaign = setup["campaigns"][0]
    path = f"/v1/campaigns/{campaign}/intercom"
    settings = settings or CONTRACT_EXAMPLE
    created = account_call(call, setup["account"], "POST", f"{path}/setup", body=settings)
    assert created["statusCode"] == 200, created
    saved = account_call(call, setup["account"], "PUT", path, body=settings)
    assert saved["statusCode"] == 200, saved
    return campaign


def join(
    emulators: Any,
    setup: dict[str, Any],
    first_name: str,
    email: str,
    referrer_code: str | None = None,
    campaign: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "api_key": setup["rf_key"],
        "campaign_id": int(campaign or setup["campaigns"][0]),
        "first_name": first_name,
        "email": email,
    }
    if referrer_code:
        body["referrer_code"] = referrer_code
    response = httpx.post(f"{emulators.referral_factory}/_emulator/signups", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return dict(data.get("data") or data)


def webhook_event(
    setup: dict[str, Any],
    user: dict[str, Any],
    event: str = "user.join",
    *,
    secret: str | None = None,
    form: bool = False,
) -> dict[str, Any]:
    account = setup["account"]
    secret = secret or account["referral_factory_webhook"]["header_value"]
    account_id = account["account_id"]
    headers = {WEBHOOK_HEADER_NAME: secret}
    if form:
        from urllib.parse import urlencode

        fields = {k: v for k, v in user.items() if isinstance(v, str | int) and v is not None}
        body: Any = urlencode({**fields, "event": event})
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        body = {"event": event, "campaign": {"id": user.get("campaign_id")}, "user": user}
    return api_event(
        "POST",
        f"/webhooks/referral-factory/{account_id}",
        body=body,
        headers=headers,
        resource="/webhooks/referral-factory/{account_id}",
        path_parameters={"account_id": account_id},
    )


def deliver(call: Any, setup: dict[str, Any], user: dict[str, Any], event: str = "user.join") -> None:
    response = call("ReferralSignupFunction", webhook_event(setup, user, event))
    assert response["statusCode"] == 200, response


def drain(lambda_module: Any, aws: Any, *, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Run the signup processor until the queue is empty (delayed messages included)."""
    sqs = boto3.client("sqs")
    url = aws.refs["SignupQueue"]
    handler = lambda_module("SignupProcessorFunction").handler
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = (
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1).get("Messages")
            or []
        )
        if not batch:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if (
                int(attrs["ApproximateNumberOfMessagesDelayed"]) == 0
                and int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0
            ):
                return seen
            time.sleep(0.2)
            continue
        bodies = [json.loads(m["Body"]) for m in batch]
        seen += bodies
        result = handler(sqs_event(*bodies), LambdaContext())
        failed = {int(f["itemIdentifier"].split("-")[1]) for f in result["batchItemFailures"]}
        for i, message in enumerate(batch):
            if i not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError(f"the signup queue did not drain in {timeout_s} s; last messages: {seen[-3:]}")


def contacts(emulators: Any, workspace: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulators.intercom}/_emulator/workspaces/{workspace}/contacts").json()["data"])


def referrals(call: Any, setup: dict[str, Any], **query: str) -> list[dict[str, Any]]:
    response = account_call(call, setup["account"], "GET", "/v1/referrals", query=query or None)
    assert response["statusCode"] == 200, response
    return list(json.loads(response["body"])["data"])


def empty_queue(url: str, timeout_s: float = 5.0) -> None:
    """Delete everything in a queue, in-flight messages included once they reappear."""
    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages")
        for message in batch or []:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not batch:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if not any(
                int(attrs[k])
                for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
            ):
                return
            time.sleep(0.2)
