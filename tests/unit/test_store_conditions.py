"""The store's own conditions: plain values records build, sent as exactly what boto3's builder made
of the conditions records used to write; and the one translation of a lost condition."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr as BotoAttr
from boto3.dynamodb.conditions import ConditionExpressionBuilder
from botocore.exceptions import ClientError

from shared.aws.store import (
    Absent,
    Attr,
    Both,
    Condition,
    ConditionFailed,
    Either,
    Equals,
    Exists,
    IsIn,
    LessThan,
    _expression,
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


def _built(condition: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    built = ConditionExpressionBuilder().build_expression(condition)
    return built.condition_expression, built.attribute_name_placeholders, built.attribute_value_placeholders


@pytest.mark.parametrize(("ours", "boto"), SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_a_condition_is_sent_as_boto3_would_have_built_it(ours: Condition, boto: Any):
    assert _built(_expression(ours)) == _built(boto)


def test_conditions_are_plain_values():
    built = Attr("a").eq(1) & (Attr("b").is_in([1, 2]) | Attr("c").lt(5))
    assert built == Both(Equals("a", 1), Either(IsIn("b", (1, 2)), LessThan("c", 5)))
    assert Attr("a").exists() == Exists("a")
    assert Attr("a").not_exists() == Absent("a")
    assert Attr("a").eq(1) != Attr("a").eq(2)


def test_only_store_conditions_translate():
    with pytest.raises(TypeError, match="not a store condition"):
        _expression(Condition())


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
