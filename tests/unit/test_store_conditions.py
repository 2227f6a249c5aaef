"""The store's own conditions: plain values records build, rendered as exactly what boto3's condition
builder made of the conditions records used to write (boto3 is the oracle here; the product no longer
imports it: docs/cold-starts.md); and the one translation of a lost condition."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr as BotoAttr
from boto3.dynamodb.conditions import ConditionExpressionBuilder
from boto3.dynamodb.conditions import Key as BotoKey
from botocore.exceptions import ClientError

from shared.aws.store import (
    Absent,
    AtMost,
    Attr,
    BeginsWith,
    Both,
    Condition,
    ConditionFailed,
    Either,
    Equals,
    Exists,
    IsIn,
    LessThan,
    _Placeholders,
    conditional,
)

# Each condition the records write, beside the boto3 condition they wrote before.
SHAPES = [
    (
        Attr("pk").not_exists() | Attr("account_id").eq("acc_1"),
        BotoAttr("pk").not_exists() | BotoAttr("account_id").eq("acc_1"),
    ),
    (Attr("status").eq("connected"), BotoAttr("status").eq("connected")),
    (Attr("status").is_in(["queued", "running"]), BotoAttr("status").is_in(["queued", "running"])),
    (
        Attr("next_page").eq(3) & Attr("status").is_in(("queued", "running")),
        BotoAttr("next_page").eq(3) & BotoAttr("status").is_in(["queued", "running"]),
    ),
    (
        Attr("push_claimed_at").not_exists() | Attr("push_claimed_at").lt(100),
        BotoAttr("push_claimed_at").not_exists() | BotoAttr("push_claimed_at").lt(100),
    ),
    (
        Attr("status").eq("pending") & Attr("pk").exists(),
        BotoAttr("status").eq("pending") & BotoAttr("pk").exists(),
    ),
]


def _built(condition: Any, *, key: bool = False) -> tuple[str, dict[str, str], dict[str, Any]]:
    built = ConditionExpressionBuilder().build_expression(condition, is_key_condition=key)
    return built.condition_expression, built.attribute_name_placeholders, built.attribute_value_placeholders


def _rendered(condition: Condition) -> tuple[str, dict[str, str], dict[str, Any]]:
    placeholders = _Placeholders()
    expression = placeholders.expression(condition)
    return expression, placeholders.names, placeholders.values


@pytest.mark.parametrize(("ours", "boto"), SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_a_condition_is_sent_as_boto3_would_have_built_it(ours: Condition, boto: Any):
    assert _rendered(ours) == _built(boto)


@pytest.mark.parametrize(
    ("ours", "boto"),
    [
        (Equals("pk", "ACCOUNT#a"), BotoKey("pk").eq("ACCOUNT#a")),
        (
            Equals("gsi2pk", "E#x") & BeginsWith("gsi2sk", "C#1#"),
            BotoKey("gsi2pk").eq("E#x") & BotoKey("gsi2sk").begins_with("C#1#"),
        ),
        (Equals("pk", "DUE") & AtMost("sk", "0099"), BotoKey("pk").eq("DUE") & BotoKey("sk").lte("0099")),
    ],
    ids=["partition", "prefix", "at-most"],
)
def test_a_key_condition_is_sent_as_boto3_would_have_built_it(ours: Condition, boto: Any):
    assert _rendered(ours) == _built(boto, key=True)


def test_placeholders_count_across_a_requests_expressions_and_join_its_own():
    """A query's filter, then its key condition (boto3's order), share one count; the request's own
    names and values stay beside them."""
    placeholders = _Placeholders()
    where = placeholders.expression(Attr("status").eq("pending"))
    key = placeholders.expression(Equals("pk", "P") & BeginsWith("sk", "S#"))
    request = placeholders.into({"ExpressionAttributeNames": {"#set0": "a"}})
    assert (where, key) == ("#n0 = :v0", "(#n1 = :v1 AND begins_with(#n2, :v2))")
    assert request == {
        "ExpressionAttributeNames": {"#set0": "a", "#n0": "status", "#n1": "pk", "#n2": "sk"},
        "ExpressionAttributeValues": {":v0": "pending", ":v1": "P", ":v2": "S#"},
    }
    assert _Placeholders().into({"Key": {}}) == {"Key": {}}


def test_conditions_are_plain_values():
    built = Attr("a").eq(1) & (Attr("b").is_in([1, 2]) | Attr("c").lt(5))
    assert built == Both(Equals("a", 1), Either(IsIn("b", (1, 2)), LessThan("c", 5)))
    assert Attr("a").exists() == Exists("a")
    assert Attr("a").not_exists() == Absent("a")
    assert Attr("a").eq(1) != Attr("a").eq(2)


def test_only_store_conditions_translate():
    with pytest.raises(TypeError, match="not a store condition"):
        _Placeholders().expression(Condition())


def _failing(code: str) -> Any:
    def call(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")

    return call


@pytest.mark.parametrize("code", ["ConditionalCheckFailedException", "TransactionCanceledException"])
def test_a_lost_condition_is_condition_failed(code: str):
    with pytest.raises(ConditionFailed):
        conditional(_failing(code), Item={})


def test_other_dynamodb_errors_propagate_and_answers_return():
    with pytest.raises(ClientError):
        conditional(_failing("ResourceNotFoundException"), Item={})
    assert conditional(lambda **kwargs: kwargs, Item={"id": "x"}) == {"Item": {"id": "x"}}
