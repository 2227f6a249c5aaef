"""DynamoDB's encoding through botocore (`shared.aws.dynamodb`) is boto3's, rule for rule: every value
the Table resource accepted is sent the same, every value it refused is refused, and what comes back
reads the same. boto3 is the oracle here; the product does not import it (docs/cold-starts.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.aws.dynamodb import Table, deserialize, serialize


def _values(*, nan: bool) -> st.SearchStrategy[Any]:
    numbers = st.integers(-(10**40), 10**40) | st.decimals(allow_nan=nan, places=None)
    scalars = st.none() | st.booleans() | numbers | st.text(max_size=8) | st.binary(max_size=8)
    sets = (
        st.frozensets(st.text(max_size=4), max_size=3)
        | st.frozensets(st.integers(-1000, 1000), max_size=3)
        | st.frozensets(st.binary(max_size=4), max_size=3)
    )
    return st.recursive(
        scalars | sets,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", encode(value)
    except Exception as exc:  # the kind of refusal is what is compared
        return "refused", type(exc)


@settings(max_examples=300, deadline=None)
@given(_values(nan=True))
def test_a_value_is_sent_as_boto3_sends_it_or_refused_as_boto3_refuses_it(value: Any):
    assert _outcome(serialize, value) == _outcome(TypeSerializer().serialize, value)


# DynamoDB never answers NaN (it refuses one on the way in), and NaN is not equal to itself.
@settings(max_examples=300, deadline=None)
@given(_values(nan=False))
def test_what_comes_back_reads_as_boto3_reads_it(value: Any):
    try:
        wire = TypeSerializer().serialize(value)
    except Exception:  # refused values never reach DynamoDB
        return
    # boto3 wraps binary in its Binary type, which compares equal to the bytes it holds.
    assert deserialize(wire) == TypeDeserializer().deserialize(wire)


def test_floats_are_refused_as_boto3_refuses_them():
    with pytest.raises(TypeError, match="Float types are not supported"):
        serialize({"a": [1.5]})
    assert serialize({"n": Decimal("1.50"), "i": 7}) == {"M": {"n": {"N": "1.50"}, "i": {"N": "7"}}}
    with pytest.raises(TypeError, match="not supported"):
        deserialize({"X": "?"})


class _Client:
    """Records each call and answers with DynamoDB's wire format."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            self.calls.append((operation, params))
            return self.answer

        return call


def test_a_table_call_names_its_table_and_encodes_items_keys_and_values():
    client = _Client({"Attributes": {"n": {"N": "2"}}, "ConsumedCapacity": {"CapacityUnits": 1}})
    answer = Table(client, "main").update_item(
        Key={"pk": "A", "sk": "B"},
        UpdateExpression="SET #n = :n",
        ExpressionAttributeNames={"#n": "n"},
        ExpressionAttributeValues={":n": 2},
        ReturnValues="ALL_NEW",
    )
    assert answer == {"Attributes": {"n": Decimal(2)}, "ConsumedCapacity": {"CapacityUnits": 1}}
    assert client.calls == [
        (
            "update_item",
            {
                "TableName": "main",
                "Key": {"pk": {"S": "A"}, "sk": {"S": "B"}},
                "UpdateExpression": "SET #n = :n",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":n": {"N": "2"}},
                "ReturnValues": "ALL_NEW",
            },
        )
    ]


def test_a_query_page_and_its_continuation_key_read_back_as_plain_values():
    client = _Client(
        {"Items": [{"pk": {"S": "A"}, "tags": {"SS": ["x"]}}], "LastEvaluatedKey": {"pk": {"S": "A"}}}
    )
    page = Table(client, "main").query(KeyConditionExpression="#n0 = :v0", ExclusiveStartKey={"pk": "Z"})
    assert page == {"Items": [{"pk": "A", "tags": {"x"}}], "LastEvaluatedKey": {"pk": "A"}}
    assert client.calls[0][1]["ExclusiveStartKey"] == {"pk": {"S": "Z"}}
    client.answer = {"Item": {"on": {"BOOL": True}}}
    assert Table(client, "main").get_item(Key={"pk": "A"}) == {"Item": {"on": True}}


def test_transactions_encode_each_operation_and_keep_its_table():
    client = _Client({})
    Table(client, "main").transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "main", "Item": {"pk": "A", "n": 1}, "ConditionExpression": "x"}},
            {"Update": {"TableName": "main", "Key": {"pk": "B"}, "ExpressionAttributeValues": {":v": None}}},
            {"ConditionCheck": {"TableName": "other", "Key": {"pk": "C"}}},
            {"Delete": {"TableName": "main", "Key": {"pk": "D"}}},
        ]
    )
    assert client.calls == [
        (
            "transact_write_items",
            {
                "TransactItems": [
                    {
                        "Put": {
                            "TableName": "main",
                            "Item": {"pk": {"S": "A"}, "n": {"N": "1"}},
                            "ConditionExpression": "x",
                        }
                    },
                    {
                        "Update": {
                            "TableName": "main",
                            "Key": {"pk": {"S": "B"}},
                            "ExpressionAttributeValues": {":v": {"NULL": True}},
                        }
                    },
                    {"ConditionCheck": {"TableName": "other", "Key": {"pk": {"S": "C"}}}},
                    {"Delete": {"TableName": "main", "Key": {"pk": {"S": "D"}}}},
                ]
            },
        )
    ]
