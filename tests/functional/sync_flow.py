"""Running syncs in tests: the sync API in process, and the coordinator's and workers' queues
drained into the real handlers until the sync settles."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import httpx

from tests.factories import LambdaContext, api_event, sqs_event
from tests.functional.oauth_flow import bearer

QUEUES = (("SyncQueue", "SyncCoordinatorFunction"), ("SyncPagesQueue", "SyncWorkerFunction"))


def sync_call(call: Any, account: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    parts = path.strip("/").split("/")
    params: dict[str, str] = {}
    resource = path
    if parts[1] == "campaigns":
        params["campaign_id"] = parts[2]
        resource = resource.replace(f"/{parts[2]}/", "/{campaign_id}/", 1)
    elif parts[1] == "syncs":
        params["sync_id"] = parts[2]
        resource = "/v1/syncs/{sync_id}" + ("/cancel" if path.endswith("/cancel") else "")
    event = api_event(
        method, path, body=body, headers=bearer(account), resource=resource, path_parameters=params
    )
    return call("ContactSyncFunction", event)


def start(call: Any, setup: dict[str, Any], body: dict[str, Any], campaign: str | None = None) -> str:
    campaign = campaign or setup["campaigns"][0]
    response = sync_call(call, setup["account"], "POST", f"/v1/campaigns/{campaign}/syncs", body)
    assert response["statusCode"] == 202, response
    return str(json.loads(response["body"])["sync_id"])


def status(call: Any, setup: dict[str, Any], sync_id: str) -> dict[str, Any]:
    response = sync_call(call, setup["account"], "GET", f"/v1/syncs/{sync_id}")
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def pump(lambda_module: Any, aws: Any, *, timeout_s: float = 240.0, settle_s: float = 0.5) -> None:
    """Feed both sync queues to their handlers until both stay empty (delayed messages included)."""
    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout_s
    idle_since: float | None = None
    while time.monotonic() < deadline:
        busy = False
        for queue, function in QUEUES:
            url = aws.refs[queue]
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=1).get(
                "Messages"
            )
            if not batch:
                continue
            busy = True
            message = batch[0]
            try:
                result = lambda_module(function).handler(
                    sqs_event(json.loads(message["Body"])), LambdaContext()
                )
            except Exception:  # a crashed invocation: the message comes back, as in Lambda
                continue
            if not result["batchItemFailures"]:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if busy:
            idle_since = None
            continue
        pending = 0
        for queue, _ in QUEUES:
            attrs = sqs.get_queue_attributes(QueueUrl=aws.refs[queue], AttributeNames=["All"])["Attributes"]
            pending += sum(
                int(attrs[k])
                for k in (
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                )
            )
        if pending:
            time.sleep(0.2)
            continue
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since >= settle_s:
            return
        time.sleep(0.05)
    raise AssertionError(f"the sync queues did not settle in {timeout_s} s")


def empty(aws: Any) -> None:
    sqs = boto3.client("sqs")
    for queue, _ in QUEUES:
        url = aws.refs[queue]
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages"
        ):
            for m in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def seed(emulators: Any, workspace: str, contacts: list[dict[str, Any]]) -> list[str]:
    response = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{workspace}/contacts", json={"contacts": contacts}
    )
    assert response.status_code in (200, 201), response.text
    return list(response.json()["ids"])


def generate(
    emulators: Any, workspace: str, count: int, role: str, segment_ids: list[str] | None = None
) -> list[str]:
    body: dict[str, Any] = {"count": count, "role": role}
    if segment_ids:
        body["segment_ids"] = segment_ids
    response = httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{workspace}/contacts", json={"generate": body}
    )
    assert response.status_code in (200, 201), response.text
    return list(response.json()["ids"])


def rf_users(emulators: Any, rf_key: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulators.referral_factory}/_emulator/accounts/{rf_key}/users").json()["data"])


def stats(base: str) -> dict[str, int]:
    return dict(httpx.get(f"{base}/_emulator/stats").json()["requests"])
