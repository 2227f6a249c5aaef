"""The embedded AWS answers exactly what plain moto answers: its speed-ups (local/moto_server.py,
local/moto_sqs.py) change what a request costs, never what it returns. The same requests go to the
stack's embedded AWS and to an unpatched moto server in this process, and the answers are compared
with what differs by nature (request ids, message ids, receipt handles, clocks) taken out."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.services import Service, free_ports

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

VOLATILE = {"ResponseMetadata", "MessageId", "ReceiptHandle", "MD5OfMessageAttributes"}
ITEMS: list[dict[str, Any]] = [
    {"pk": {"S": "a"}, "sk": {"S": "1"}, "s": {"S": "héllo ✓"}, "n": {"N": "12.5"}, "t": {"BOOL": True}},
    {"pk": {"S": "a"}, "sk": {"S": "2"}, "none": {"NULL": True}, "f": {"BOOL": False}, "empty": {"S": ""}},
    {
        "pk": {"S": "a"},
        "sk": {"S": "3"},
        "events": {"L": [{"M": {"kind": {"S": "created"}, "at": {"N": "1700000000"}}}] * 3},
        "nested": {"M": {"deep": {"M": {"list": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}}}}},
        "ss": {"SS": ["b", "a"]},
        "ns": {"NS": ["1", "2.5"]},
        "g": {"S": "index-value"},
    },
    {
        "pk": {"S": "b"},
        "sk": {"S": "1"},
        "blob": {"B": b"\x00\x01binary"},
        "blobs": {"BS": [b"one", b"two"]},
        "mixed": {"M": {"blob": {"B": b"in a map"}, "s": {"S": "beside it"}}},
        "g": {"S": "index-value"},
    },
]


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[str, str]]:
    embedded_port, plain_port = free_ports(2)
    embedded = Service.spawn("aws", embedded_port)
    plain = ThreadedMotoServer(ip_address="127.0.0.1", port=plain_port, verbose=False)
    plain.start()
    try:
        embedded.wait_ready()
        yield embedded.url, f"http://127.0.0.1:{plain_port}"
    finally:
        plain.stop()
        embedded.stop()


def _clients(url: str) -> tuple[Any, Any]:
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    return session.client("dynamodb", endpoint_url=url), session.client("sqs", endpoint_url=url)


def _both(endpoints: tuple[str, str], script: Callable[[Any, Any], list[Any]]) -> tuple[list[Any], list[Any]]:
    embedded, plain = (script(*_clients(url)) for url in endpoints)
    return _stable(embedded), _stable(plain)


def _dynamodb_script(ddb: Any, _sqs: Any) -> list[Any]:
    ddb.create_table(
        TableName="same",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    answers: list[Any] = [ddb.put_item(TableName="same", Item=item, ReturnValues="ALL_OLD") for item in ITEMS]
    key, binary_key = {"pk": {"S": "a"}, "sk": {"S": "3"}}, {"pk": {"S": "b"}, "sk": {"S": "1"}}
    answers += [
        ddb.get_item(TableName="same", Key=key),
        ddb.get_item(
            TableName="same", Key={"pk": {"S": "b"}, "sk": {"S": "1"}}, ReturnConsumedCapacity="TOTAL"
        ),
        ddb.get_item(TableName="same", Key={"pk": {"S": "missing"}, "sk": {"S": "0"}}),
        ddb.query(
            TableName="same", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}}
        ),
        ddb.query(
            TableName="same",
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "index-value"}},
        ),
        ddb.query(
            TableName="same",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "a"}},
            Limit=1,
        ),
        ddb.scan(TableName="same"),
        ddb.update_item(
            TableName="same",
            Key=key,
            UpdateExpression="SET events = list_append(events, :e), n2 = :n ADD ss :s",
            ExpressionAttributeValues={
                ":e": {"L": [{"M": {"kind": {"S": "linked"}}}]},
                ":n": {"N": "7"},
                ":s": {"SS": ["c"]},
            },
            ReturnValues="ALL_NEW",
        ),
        ddb.batch_get_item(RequestItems={"same": {"Keys": [key, binary_key]}}),
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "same", "Key": key}}]),
        ddb.delete_item(TableName="same", Key={"pk": {"S": "a"}, "sk": {"S": "2"}}, ReturnValues="ALL_OLD"),
    ]
    try:
        ddb.put_item(
            TableName="same",
            Item=ITEMS[0],
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ddb.exceptions.ConditionalCheckFailedException as exc:
        answers.append(exc.response)
    return answers


def _sqs_script(_ddb: Any, sqs: Any) -> list[Any]:
    dlq = sqs.create_queue(QueueName="same-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="same",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=900)
    sqs.send_message(
        QueueUrl=queue,
        MessageBody="now",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}},
    )
    answers: list[Any] = []
    # Received twice and not deleted (visibility 0): the third receive moves it to the DLQ.
    for _ in range(3):
        received = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])
        answers.append([(m["Body"], m.get("MessageAttributes")) for m in received.get("Messages", [])])
    counts = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    answers.append(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=counts)["Attributes"])
    answers.append(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=counts)["Attributes"])
    sqs.send_message(QueueUrl=queue, MessageBody="in flight")
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "600"})
    answers.append([m["Body"] for m in sqs.receive_message(QueueUrl=queue).get("Messages", [])])
    answers.append(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=counts)["Attributes"])
    return answers


def test_dynamodb_answers_as_plain_moto_does(endpoints: tuple[str, str]) -> None:
    embedded, plain = _both(endpoints, _dynamodb_script)
    assert embedded == plain
    # The comparison saw the items, not two empty answers.
    assert embedded[4]["Item"]["events"]["L"][0]["M"]["kind"] == {"S": "created"}
    assert embedded[5]["Item"]["blob"] == {"B": b"\x00\x01binary"}


def test_sqs_answers_as_plain_moto_does(endpoints: tuple[str, str]) -> None:
    embedded, plain = _both(endpoints, _sqs_script)
    assert embedded == plain
    assert embedded[0] == [("now", {"kind": {"DataType": "String", "StringValue": "x"}})]
    assert embedded[2] == []  # moved to the DLQ on its third receive
    assert embedded[4]["ApproximateNumberOfMessages"] == "1"
    assert embedded[6]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_standard_queue_serves_message_groups_fairly(endpoints: tuple[str, str]) -> None:
    """SQS fair queues: one group's backlog sent first does not hold back another group's messages."""
    _ddb, sqs = _clients(endpoints[0])
    url = sqs.create_queue(QueueName="fair", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for i in range(8):
        sqs.send_message(QueueUrl=url, MessageBody=f"big-{i}", MessageGroupId="big")
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=f"small-{i}", MessageGroupId="small")
    received = []
    for _ in range(6):  # one at a time, nothing deleted: each received message stays in flight
        (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
        received.append(message["Body"])
    assert received == ["big-0", "small-0", "big-1", "small-1", "big-2", "big-3"]
    # A late message of the quieter group (two in flight against four) goes ahead of the backlog.
    sqs.send_message(QueueUrl=url, MessageBody="small-2", MessageGroupId="small")
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert message["Body"] == "small-2"
