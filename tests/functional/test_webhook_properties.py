"""Property tests of the three webhook receivers (hypothesis): whatever body and signature arrive,
the answer is never a 5xx (nor the 410 that would make Intercom drop the subscription), every 4xx is
the contract's envelope, and a refused body puts nothing on a queue (contract §1, issue 17)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.signatures import body_signature, hub_signature
from tests.factories import api_event, body_of
from tests.functional.conftest import INTERCOM_CLIENT_SECRET

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.provision import Provisioned

# Bounded so that the three properties together take seconds, not minutes, in `make test`.
EXAMPLES = 120
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
WEBHOOK_HEADER_NAME = "X-Referral-Factory-Secret"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Bodies that look like what the senders send, with any value anywhere, and bodies that do not.
intercom_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["notification_event", "other"]) | scalars,
        "topic": st.sampled_from(
            ["contact.user.updated", "contact.lead.updated", "contact.merged", "ping", "company.updated"]
        )
        | scalars,
        "app_id": st.sampled_from(["test-app", ""]) | scalars,
        "id": st.text(max_size=12) | scalars,
        "data": st.fixed_dictionaries({}, optional={"item": json_values}) | json_values,
        "created_at": st.integers() | scalars,
    },
)
rf_user = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(min_value=-5, max_value=10**12) | scalars,
        "email": st.emails() | scalars,
        "campaign_id": st.integers() | scalars,
        "first_name": st.text(max_size=10) | scalars,
        "referrer_id": st.integers() | scalars,
        "code": st.text(max_size=8) | scalars,
    },
)
rf_like = st.one_of(
    rf_user,
    st.fixed_dictionaries(
        {"user": rf_user | json_values},
        optional={
            "event": st.sampled_from(["user.join", "user.qualified", "reward.issued", "nope"]) | scalars,
            "campaign": json_values,
        },
    ),
    st.fixed_dictionaries({"data": rf_user | json_values}),
)


def raw_bodies(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        structured.map(lambda value: json.dumps(value).encode()),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
    )


def queued(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def empty(url: str) -> None:
    sqs = boto3.client("sqs")
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages"
    ):
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def raw_event(path: str, body: bytes, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    event = api_event("POST", path, body="", headers=headers, **kwargs)
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def assert_answer(response: dict[str, Any], allowed: set[int]) -> int:
    status = int(response["statusCode"])
    assert status in allowed, response
    assert status != 410 and status < 500, response
    if status >= 400:
        error = body_of(response)["error"]
        assert set(error) == {"code", "message", "details"}, response
        assert error["code"] and error["message"], response
    return status


@given(body=raw_bodies(intercom_like), signed=st.booleans(), signature=st.text(max_size=50))
@PROPERTY
def test_the_intercom_receiver_never_fails_and_queues_nothing_it_refuses(
    call: Callable[[str, dict[str, Any]], Any], aws: Provisioned, body: bytes, signed: bool, signature: str
) -> None:
    url = aws.refs["IntercomEventsQueue"]
    before = queued(url)
    header = hub_signature(body, INTERCOM_CLIENT_SECRET) if signed else signature
    event = raw_event(
        "/webhooks/intercom", body, {"X-Hub-Signature": header, "Content-Type": "application/json"}
    )
    status = assert_answer(call("IntercomWebhookFunction", event), {200, 202, 400, 401})
    if not signed:
        assert status == 401
    if status >= 400:
        assert queued(url) == before
    empty(url)


@given(
    body=raw_bodies(st.fixed_dictionaries({"app_id": scalars})),
    how=st.sampled_from(["body", "hub", "none", "bad"]),
)
@PROPERTY
def test_the_uninstall_receiver_never_fails(
    call: Callable[[str, dict[str, Any]], Any], body: bytes, how: str
) -> None:
    headers = {
        "body": {"X-Body-Signature": body_signature(body, INTERCOM_CLIENT_SECRET)},
        "hub": {"X-Hub-Signature": hub_signature(body, INTERCOM_CLIENT_SECRET)},
        "none": {},
        "bad": {"X-Body-Signature": "0" * 64},
    }[how]
    event = raw_event("/webhooks/intercom/uninstall", body, {**headers, "Content-Type": "application/json"})
    status = assert_answer(call("IntercomWebhookFunction", event), {200, 202, 400, 401})
    if how in ("none", "bad"):
        assert status == 401


@pytest.fixture
def rf_account(new_account: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return new_account(name="Fuzzed", rf_key="rf-fuzz")


@given(
    body=raw_bodies(rf_like),
    form=st.booleans(),
    secret_ok=st.booleans(),
    account=st.sampled_from(["mine", "unknown"]),
)
@PROPERTY
def test_the_referral_factory_receiver_never_fails_and_queues_nothing_it_refuses(
    call: Callable[[str, dict[str, Any]], Any],
    aws: Provisioned,
    rf_account: dict[str, Any],
    body: bytes,
    form: bool,
    secret_ok: bool,
    account: str,
) -> None:
    url = aws.refs["SignupQueue"]
    before = queued(url)
    account_id = rf_account["account_id"] if account == "mine" else "acc_unknown"
    webhook = rf_account["referral_factory_webhook"]
    secret = webhook["header_value"] if secret_ok else "wrong-secret"
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    event = raw_event(
        f"/webhooks/referral-factory/{account_id}",
        body,
        {webhook["header_name"]: secret, "Content-Type": content_type},
        resource="/webhooks/referral-factory/{account_id}",
        path_parameters={"account_id": account_id},
    )
    status = assert_answer(call("ReferralSignupFunction", event), {200, 202, 400, 401, 404, 422})
    if not secret_ok or account != "mine":
        assert status in (401, 404)
    if status >= 400:
        assert queued(url) == before
    empty(url)
