"""Lambda's semantics in the local stack, against a test-only template: SQS batches, partial failures,
visibility timeouts, the DLQ, timeouts, separate instances, and the proxy event over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from boto3.dynamodb.conditions import Key

from tests.e2e.conftest import alive, boto3_client, boto3_resource, descendants, queue_drained

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningStack


class Probe:
    """Sends messages to a test queue and reads back what the probe consumer saw."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.sqs = boto3_client(stack, "sqs")
        self.ledger = boto3_resource(stack, "dynamodb").Table("local-LedgerTable")
        self.run = uuid.uuid4().hex

    def url(self, queue: str) -> str:
        return self.sqs.get_queue_url(QueueName=f"local-{queue}")["QueueUrl"]

    def send(self, queue: str, *messages: dict[str, Any]) -> None:
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"run": self.run, **m})} for i, m in enumerate(messages)
        ]
        self.sqs.send_message_batch(QueueUrl=self.url(queue), Entries=entries)

    def deliveries(self, key: str | None = None) -> list[dict[str, Any]]:
        items = self.ledger.query(KeyConditionExpression=Key("pk").eq(self.run))["Items"]
        found = [i for i in items if key is None or i["key"] == key]
        return sorted(found, key=lambda i: (int(i["started_ms"]), int(i["receive_count"])))

    def wait_for(self, predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; deliveries: {self.deliveries()}")

    def dlq_bodies(self, queue: str) -> list[dict[str, Any]]:
        found = []
        for _ in range(3):
            response = self.sqs.receive_message(QueueUrl=self.url(queue), MaxNumberOfMessages=10)
            found += [json.loads(m["Body"]) for m in response.get("Messages", [])]
        return [b for b in found if b["run"] == self.run]

    def drained(self, queue: str) -> bool:
        return queue_drained(self.stack, queue)

    def in_flight(self, queue: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url(queue), AttributeNames=["All"])[
            "Attributes"
        ]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def probe(probe_stack: RunningStack) -> Probe:
    return Probe(probe_stack)


def test_a_failed_record_is_redelivered_alone(probe: Probe) -> None:
    probe.send("BatchQueue", {"key": "a"}, {"key": "b", "fail": "first"}, {"key": "c"})
    probe.wait_for(lambda: len(probe.deliveries("b")) >= 2, 15, "b's second delivery")
    # Every delivery there will be has happened: a redelivered a or c would still be in the queue.
    probe.wait_for(lambda: probe.drained("BatchQueue"), 15, "the queue drained")
    assert len(probe.deliveries("a")) == 1
    assert len(probe.deliveries("c")) == 1
    first, second = probe.deliveries("b")
    assert (first["receive_count"], second["receive_count"]) == (1, 2)
    # The batch that brought b back carried neither a nor c: they were deleted after the first batch.
    assert not {"a", "c"} & set(second["batch_keys"])
    # Redelivered only once the visibility timeout (3 s) ran out.
    assert int(second["started_ms"]) - int(first["started_ms"]) >= 2900
    assert probe.in_flight("BatchQueue") == 0


def test_a_function_error_fails_the_whole_batch(probe: Probe) -> None:
    probe.send("BatchQueue", {"key": "x", "raise": True}, {"key": "y"})
    probe.wait_for(lambda: len(probe.deliveries("x")) >= 2, 15, "x redelivered")
    failed_batch = probe.deliveries("x")[0]["batch_keys"]
    # Every record of the batch that raised comes back, not only the one that caused it.
    for key in failed_batch:
        probe.wait_for(lambda key=key: len(probe.deliveries(key)) >= 2, 10, f"{key} redelivered")
        assert [d["receive_count"] for d in probe.deliveries(key)] == [1, 2]


def test_a_record_that_always_fails_lands_in_the_dlq_after_max_receive_count(probe: Probe) -> None:
    probe.send("BatchQueue", {"key": "poison", "fail": "always"})
    probe.wait_for(lambda: probe.dlq_bodies("BatchDLQ"), 20, "the DLQ")
    # maxReceiveCount is 2: two deliveries to the function, then SQS moved it.
    assert [d["receive_count"] for d in probe.deliveries("poison")] == [1, 2]
    assert probe.in_flight("BatchQueue") == 0


def test_a_slow_consumer_is_not_redelivered_inside_the_visibility_timeout(probe: Probe) -> None:
    # 2.5 s of work under a 5 s visibility timeout, with a second poller idle and polling all along.
    probe.send("SlowQueue", {"key": "slow", "sleep": 2.5})
    probe.wait_for(lambda: probe.deliveries("slow"), 10, "the delivery")
    # Deleted after its 2.5 s of work: from then on nothing can be redelivered.
    probe.wait_for(lambda: probe.drained("SlowQueue"), 15, "the queue drained")
    deliveries = probe.deliveries("slow")
    assert len(deliveries) == 1
    assert probe.in_flight("SlowQueue") == 0


def test_two_consumers_are_two_processes(probe_stack: RunningStack, probe: Probe) -> None:
    probe.send("SlowQueue", {"key": "p1", "sleep": 1.5}, {"key": "p2", "sleep": 1.5})
    probe.wait_for(lambda: probe.deliveries("p1") and probe.deliveries("p2"), 10, "both deliveries")
    (one,), (two,) = probe.deliveries("p1"), probe.deliveries("p2")
    assert one["pid"] != two["pid"]
    # Both children of the stack, and working at the same time: two instances, not one reused.
    assert {int(one["pid"]), int(two["pid"])} <= descendants(probe_stack.process.pid)
    assert abs(int(one["started_ms"]) - int(two["started_ms"])) < 1000


def test_a_timed_out_instance_is_discarded_and_its_batch_retried(probe: Probe) -> None:
    # The function's timeout is 3 s; the first delivery sleeps past it.
    probe.send("SlowQueue", {"key": "late", "sleep": 30, "sleep_first_only": True})
    probe.wait_for(lambda: len(probe.deliveries("late")) >= 2, 20, "the retry")
    first, second = probe.deliveries("late")
    assert first["remaining_ms"] <= 3000
    assert not alive(int(first["pid"]))
    assert second["pid"] != first["pid"]
    probe.wait_for(lambda: probe.in_flight("SlowQueue") == 0, 5, "the retry's delete")


def test_schedules_fire_every_interval_with_eventbridges_event(probe: Probe) -> None:
    def ticks() -> list[dict[str, Any]]:
        return probe.ledger.query(KeyConditionExpression=Key("pk").eq("schedule"))["Items"]

    probe.wait_for(lambda: len(ticks()) >= 2, 10, "two ticks")
    event = json.loads(ticks()[-1]["event"])
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")


# -- the API Gateway adapter over real HTTP, into a real instance ------------------------------------


@pytest.fixture(scope="module")
def api(probe_stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=probe_stack.api, timeout=15) as client:
        yield client


def test_the_proxy_event_carries_the_request(api: httpx.Client) -> None:
    response = api.post(
        "/echo/it%20em?tag=a&tag=b&one=1",
        content=b'{"x": 1}',
        headers={"Content-Type": "application/json", "X-Custom": "v"},
    )
    assert response.status_code == 200, response.text
    echoed = response.json()
    event = echoed["event"]
    assert event["resource"] == "/echo/{item}"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"item": "it em"}
    assert event["queryStringParameters"] == {"tag": "b", "one": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "one": ["1"]}
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == "/echo/{item}"
    assert context["stage"] == "local"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == response.headers["x-amzn-requestid"]
    assert echoed["function_name"] == "EchoFunction"
    assert 0 < echoed["remaining_ms"] <= 5000
    # The instance sees the function's environment and the runtime's, never the host's.
    assert echoed["environ"]["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert echoed["environ"]["LEDGER_TABLE"] == "local-LedgerTable"
    assert echoed["environ"]["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert echoed["environ"]["STACK_TEST_LEAK"] is None
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_a_binary_body_arrives_base64_encoded_and_leaves_decoded(api: httpx.Client) -> None:
    raw = bytes(range(256))
    event = api.put("/echo/bin", content=raw).json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw
    response = api.get("/echo/bin?binary=1")
    assert response.content == raw


def test_a_literal_resource_wins_and_an_undeclared_method_is_the_gateway_404(api: httpx.Client) -> None:
    assert api.get("/echo/fixed").json()["event"]["resource"] == "/echo/fixed"
    # /echo/fixed declares GET only: API Gateway does not fall back to /echo/{item}.
    response = api.post("/echo/fixed")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    greedy = api.get("/files/a/b/c.txt").json()["event"]
    assert greedy["pathParameters"] == {"path": "a/b/c.txt"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_crash_or_a_malformed_result_is_a_502_in_the_envelope(api: httpx.Client, method: str) -> None:
    response = api.request(method, "/crash")
    assert response.status_code == 502
    assert response.json() == {
        "error": {"code": "gateway_error", "message": "Internal server error", "details": []}
    }
    assert "Traceback" not in response.text
    # The instance that raised stays warm and answers the next request.
    assert api.get("/echo/again").status_code == 200


def test_a_function_whose_init_fails_answers_502_and_the_rest_still_serves(
    probe_stack: RunningStack, api: httpx.Client
) -> None:
    response = api.get("/broken")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "gateway_error"
    assert "BrokenFunction could not start" in probe_stack.stderr()
    assert api.get("/echo/still-here").status_code == 200


def _instances(api: httpx.Client, function: str) -> list[dict[str, Any]]:
    response = api.get("/_local/instances")
    assert response.status_code == 200, response.text
    return [i for i in response.json()["data"] if i["function"] == function]


def test_local_instances_lists_every_warm_instance_busy_or_not(probe: Probe, api: httpx.Client) -> None:
    probe.send("SlowQueue", {"key": "busy", "sleep": 2})
    probe.wait_for(lambda: probe.deliveries("busy"), 10, "the delivery")
    (delivery,) = probe.deliveries("busy")
    listed = {i["pid"]: i["busy"] for i in _instances(api, "SlowFunction")}
    assert listed[int(delivery["pid"])] is True
    probe.wait_for(lambda: probe.drained("SlowQueue"), 10, "the queue drained")
    assert all(not i["busy"] for i in _instances(api, "SlowFunction"))
    assert {i["function"] for i in api.get("/_local/instances").json()["data"]} >= {
        "SlowFunction",
        "EchoFunction",
    }


def test_killing_a_busy_instance_redelivers_its_batch_after_the_visibility_timeout(
    probe: Probe, api: httpx.Client
) -> None:
    probe.send("SlowQueue", {"key": "doomed", "sleep": 2.5, "sleep_first_only": True})
    probe.wait_for(lambda: probe.deliveries("doomed"), 10, "the delivery")
    killed = api.post("/_local/kill", json={"function": "SlowFunction", "busy_only": True})
    assert killed.status_code == 200, killed.text
    (first,) = probe.deliveries("doomed")
    assert killed.json()["pid"] == int(first["pid"])
    # SlowQueue's visibility timeout is 5 s: the batch the killed instance held comes back then, once.
    probe.wait_for(lambda: len(probe.deliveries("doomed")) >= 2, 15, "the redelivery")
    first, second = probe.deliveries("doomed")
    assert second["receive_count"] == 2
    assert int(second["started_ms"]) - int(first["started_ms"]) >= 4000
    assert second["pid"] != first["pid"]
    assert not alive(int(first["pid"]))
    probe.wait_for(lambda: probe.in_flight("SlowQueue") == 0, 10, "the retry's delete")


def test_a_killed_idle_instance_is_replaced_on_demand(api: httpx.Client) -> None:
    assert api.get("/echo/warm").status_code == 200
    killed = api.post("/_local/kill", json={"function": "EchoFunction"})
    assert killed.status_code == 200, killed.text
    assert api.get("/echo/again").status_code == 200  # a new instance, not a 502
    assert killed.json()["pid"] not in {i["pid"] for i in _instances(api, "EchoFunction")}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"function": "NoSuchFunction"}, 404, "no_instance"),
        ({"function": "BrokenFunction", "busy_only": True}, 404, "no_instance"),
        ({}, 422, "validation_failed"),
        ({"function": "EchoFunction", "busy_only": "yes"}, 422, "validation_failed"),
    ],
)
def test_local_kill_refuses_what_it_cannot_do_in_the_envelope(
    api: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    response = api.post("/_local/kill", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
