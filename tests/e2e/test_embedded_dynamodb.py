"""The embedded AWS's DynamoDB keeps DynamoDB's atomicity when several instances write at once: a
transaction's put-if-absent marker counts once, a conditional ADD never grants past its limit, and a
cancelled transaction undoes only its own items; and its indexed queries answer what a scan of the
whole table would, whatever was written, updated, deleted or rolled back (local/moto_dynamodb.py)."""

from __future__ import annotations

import contextlib
import random
import threading
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.services import Service, free_ports

if TYPE_CHECKING:
    from collections.abc import Iterator

WORKERS = 6
ROUNDS = 30
MARKERS = 10  # each worker tries each of its markers 3 times
LIMIT = 50


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    service = Service.spawn("aws", free_ports(1)[0])
    service.wait_ready()
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    client = session.client("dynamodb", endpoint_url=service.url)
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield session, service.url
    finally:
        service.stop()


def _count_once(client: Any, marker: str) -> None:
    client.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": "t",
                    "Item": {"pk": {"S": "SYNC"}, "sk": {"S": marker}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "SYNC"}, "sk": {"S": "META"}},
                    "UpdateExpression": "ADD counted :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )


def _reserve(client: Any) -> bool:
    try:
        client.update_item(
            TableName="t",
            Key={"pk": {"S": "RATE"}, "sk": {"S": "W"}},
            UpdateExpression="ADD used :one",
            ConditionExpression="attribute_not_exists(used) OR used < :limit",
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(LIMIT)}},
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def test_concurrent_transactions_and_conditional_writes_stay_exact(dynamodb: Any) -> None:
    session, url = dynamodb
    errors: list[str] = []
    granted: list[int] = []

    def worker(w: int) -> None:
        client = session.client("dynamodb", endpoint_url=url)
        mine = 0
        for i in range(ROUNDS):
            try:
                _count_once(client, f"m{w}-{i % MARKERS}")
            except client.exceptions.TransactionCanceledException:
                pass
            except Exception as exc:
                errors.append(repr(exc)[:200])
            # Each round also writes an item of its own, which a cancelled transaction must not undo.
            client.put_item(TableName="t", Item={"pk": {"S": f"OWN#{w}"}, "sk": {"S": str(i)}})
            mine += _reserve(client)
        granted.append(mine)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = session.client("dynamodb", endpoint_url=url)

    def get(pk: str, sk: str) -> dict[str, Any]:
        return dict(client.get_item(TableName="t", Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"])

    assert errors == []
    assert int(get("SYNC", "META")["counted"]["N"]) == WORKERS * MARKERS
    assert sum(granted) == LIMIT == int(get("RATE", "W")["used"]["N"])
    for w in range(WORKERS):
        own = client.query(
            TableName="t",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"OWN#{w}"}},
        )
        assert own["Count"] == ROUNDS


def test_queries_answer_what_a_scan_would_after_any_writes(dynamodb: Any) -> None:
    session, url = dynamodb
    client = session.client("dynamodb", endpoint_url=url)
    client.create_table(
        TableName="g",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(8)
    values = [f"V{i}" for i in range(5)]

    def key(n: int) -> dict[str, Any]:
        return {"pk": {"S": f"P{n % 3}"}, "sk": {"S": f"S{n}"}}

    def by_scan(value: str) -> set[str]:
        items = client.scan(TableName="g")["Items"]
        return {i["sk"]["S"] for i in items if i.get("gsi1pk", {}).get("S") == value}

    def by_query(value: str) -> set[str]:
        found = client.query(
            TableName="g",
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :v",
            ExpressionAttributeValues={":v": {"S": value}},
        )["Items"]
        return {i["sk"]["S"] for i in found}

    for step in range(80):
        n, value, kind = rng.randrange(12), rng.choice(values), rng.randrange(4)
        if kind == 0:
            client.put_item(TableName="g", Item={**key(n), "gsi1pk": {"S": value}, "gsi1sk": {"S": "x"}})
        elif kind == 1:
            client.update_item(
                TableName="g",
                Key=key(n),
                UpdateExpression="SET gsi1pk = :v, gsi1sk = :s",
                ExpressionAttributeValues={":v": {"S": value}, ":s": {"S": "x"}},
            )
        elif kind == 2:
            client.delete_item(TableName="g", Key=key(n))
        else:  # a transaction that sets one item's value, then is cancelled by its second item
            with contextlib.suppress(client.exceptions.TransactionCanceledException):
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "g",
                                "Key": key(n),
                                "UpdateExpression": "SET gsi1pk = :v, gsi1sk = :s",
                                "ExpressionAttributeValues": {":v": {"S": value}, ":s": {"S": "x"}},
                            }
                        },
                        {
                            "ConditionCheck": {
                                "TableName": "g",
                                "Key": key(99),
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        },
                    ]
                )
        if step % 20 == 19:
            for v in values:
                assert by_query(v) == by_scan(v), (step, v)
    for partition in ("P0", "P1", "P2"):
        queried = client.query(
            TableName="g",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": partition}},
        )["Items"]
        scanned = [i for i in client.scan(TableName="g")["Items"] if i["pk"]["S"] == partition]
        assert sorted(i["sk"]["S"] for i in queried) == sorted(i["sk"]["S"] for i in scanned)
