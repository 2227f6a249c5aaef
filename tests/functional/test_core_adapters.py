"""The DynamoDB store, the scheduler's due work and the placeholder consumers, against moto."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from shared.aws import queues
from shared.aws.store import ConditionFailed, Store
from shared.records.due_work import due_item, fire_due
from tests.factories import LambdaContext, sqs_event


@pytest.fixture
def store(aws):
    return Store(aws.refs["MainTable"])


def test_conditional_writes(store):
    pk = f"T#{uuid.uuid4()}"
    store.put({"pk": pk, "sk": "A", "n": 1, "ratio": 0.5}, if_absent=True)
    with pytest.raises(ConditionFailed):
        store.put({"pk": pk, "sk": "A", "n": 2}, if_absent=True)
    assert store.get(pk, "A") == {"pk": pk, "sk": "A", "n": 1, "ratio": 0.5}
    assert store.update(pk, "A", {"n": 3}, remove=("ratio",)) == {"pk": pk, "sk": "A", "n": 3}
    with pytest.raises(ConditionFailed):
        store.update(pk, "missing", {"n": 1})
    assert store.add(pk, "C", {"count": 2}, sets={"label": "x"})["count"] == 2
    assert store.add(pk, "C", {"count": 3})["count"] == 5
    assert store.delete(pk, "A", must_exist=True)["n"] == 3
    with pytest.raises(ConditionFailed):
        store.delete(pk, "A", must_exist=True)


def test_transactions_are_all_or_nothing(store):
    pk = f"T#{uuid.uuid4()}"
    store.put({"pk": pk, "sk": "taken"})
    with pytest.raises(ConditionFailed):
        store.transact(
            [
                {"put": {"pk": pk, "sk": "new"}, "if_absent": True},
                {"put": {"pk": pk, "sk": "taken"}, "if_absent": True},
            ]
        )
    assert store.get(pk, "new") is None
    store.transact([{"put": {"pk": pk, "sk": "new"}, "if_absent": True}, {"delete": (pk, "taken")}])
    assert store.get(pk, "taken") is None
    assert store.get(pk, "new") is not None


def test_query_pages_forward(store):
    pk = f"T#{uuid.uuid4()}"
    for i in range(5):
        store.put({"pk": pk, "sk": f"ITEM#{i}"})
    first, last = store.query(pk, sk_prefix="ITEM#", limit=2)
    assert [i["sk"] for i in first] == ["ITEM#0", "ITEM#1"]
    second, _ = store.query(pk, sk_prefix="ITEM#", limit=2, start_key=last)
    assert [i["sk"] for i in second] == ["ITEM#2", "ITEM#3"]
    assert len(list(store.query_all(pk))) == 5


def test_due_work_fires_once_per_interval_even_when_two_schedulers_overlap(store, aws):
    work_id = f"w-{uuid.uuid4()}"
    store.put(
        due_item(
            work_id,
            kind="sweep",
            queue="intercom_events",
            message={"campaign": "c1"},
            interval_s=300,
            next_run_at=1000,
        ).item()
    )
    sent: list[tuple[str, dict]] = []
    queues = {"intercom_events": "queue-url"}
    result = fire_due(store, 1000, lambda url, body: sent.append((url, body)), queues)
    assert result.fired >= 1
    assert ("queue-url", {"campaign": "c1", "kind": "sweep", "scheduled_at": 1000}) in sent
    mine = [s for s in sent if s[1].get("campaign") == "c1"]
    # A second run in the same tick finds nothing due: the claim moved next_run_at forward.
    fire_due(store, 1000, lambda url, body: mine.append((url, body)), queues)
    assert len(mine) == 1
    assert store.get(f"DUE#{work_id}", "DUE")["next_run_at"] == 1300
    # Made-up kinds must not fire later into the real consumers other tests drive.
    store.delete(f"DUE#{work_id}", "DUE")


def test_scheduler_handler_sends_due_work_to_its_queue(store, aws, lambda_module):
    work_id = f"w-{uuid.uuid4()}"
    store.put(
        due_item(
            work_id, kind="catch_up", queue="signup", message={"work": work_id}, interval_s=60, next_run_at=0
        ).item()
    )
    result = lambda_module("SchedulerFunction").handler({"source": "aws.events"}, LambdaContext())
    assert result["fired"] >= 1
    sqs = boto3.client("sqs")
    bodies = []
    # Other tests leave messages in this queue (connection events): read until it is empty.
    while batch := sqs.receive_message(QueueUrl=aws.refs["SignupQueue"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        bodies += [json.loads(m["Body"]) for m in batch]
        for m in batch:  # leave the queue empty for the tests that drain it
            sqs.delete_message(QueueUrl=aws.refs["SignupQueue"], ReceiptHandle=m["ReceiptHandle"])
    store.delete(f"DUE#{work_id}", "DUE")  # a made-up kind: it must not fire again into later tests
    assert any(b.get("work") == work_id for b in bodies)


@pytest.mark.parametrize(
    "function",
    ["SignupProcessorFunction", "IntercomEventsFunction", "SyncCoordinatorFunction", "SyncWorkerFunction"],
    ids=["signup-unknown-kind", "intercom-topic-pending", "sync-coordinator-pending", "sync-worker-pending"],
)
def test_consumers_keep_every_record_they_cannot_handle(lambda_module, function):
    handler = lambda_module(function).handler
    event = sqs_event({"a": 1}, {"b": 2})
    with pytest.raises(Exception, match="All records failed"):
        handler(event, LambdaContext())


def test_queue_batches_are_sent_in_tens(aws):
    url = aws.refs["SyncPagesDLQ"]
    queues.send_batch(url, [{"page": i} for i in range(23)])
    queues.send(url, {"page": 23}, delay_seconds=0)
    sqs = boto3.client("sqs")
    seen = set()
    for _ in range(10):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            seen.add(json.loads(m["Body"])["page"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert seen == set(range(24))


def test_the_app_secret_is_read_once_per_max_age_and_a_rotation_is_seen_after_it(aws):
    from shared.aws.app_secret import APP_SECRET_MAX_AGE_S, app_credentials

    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(
        Name=f"app-{uuid.uuid4()}", SecretString=json.dumps({"client_id": "id1", "client_secret": "s1"})
    )["ARN"]
    now = [1000.0]
    assert app_credentials(arn, clock=lambda: now[0]).client_secret == "s1"
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"client_id": "id2", "client_secret": "s2"})
    )
    now[0] += APP_SECRET_MAX_AGE_S - 1
    assert app_credentials(arn, clock=lambda: now[0]).client_secret == "s1"
    now[0] += 1
    assert app_credentials(arn, clock=lambda: now[0]) == type(app_credentials(arn))("id2", "s2")


def test_the_product_stores_and_reads_every_dynamodb_type_it_writes(store):
    """Through botocore and the product's own encoding (shared.aws.dynamodb), against DynamoDB's API."""
    pk = f"T#{uuid.uuid4()}"
    item = {"pk": pk, "sk": "A", "n": 12, "big": 2**62, "ratio": 0.25, "on": True, "off": None, "s": "é"}
    item |= {"list": [1, "x", {"deep": [0.5]}], "map": {"a": {"b": 2}}, "tags": {"x", "y"}}
    store.put(item)
    assert store.get(pk, "A") == item
    assert store.update(pk, "A", {"n": 13}, append={"list": [7]})["list"] == [1, "x", {"deep": [0.5]}, 7]
