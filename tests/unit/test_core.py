"""Pure pieces of the shared core: cursors, secrets, admin auth, error paths, template helpers."""

from __future__ import annotations

import pytest

from local import template as tmpl
from shared.api.auth import require_admin
from shared.api.pagination import decode_cursor, encode_cursor, page
from shared.api.resolver import _field_path, public_base_url
from shared.domain.errors import BadRequest, Unauthorized
from shared.records.accounts import hash_secret, secret_matches


def test_cursor_round_trips_within_its_partition():
    key = {"pk": "ACCOUNT#a", "sk": "REFERRAL#42"}
    cursor = encode_cursor(key)
    assert cursor and "ACCOUNT" not in cursor
    assert decode_cursor(cursor, partition="ACCOUNT#a") == key
    assert page([1], None) == {"data": [1], "next_cursor": None}


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", encode_cursor({"pk": "ACCOUNT#other", "sk": "x"})])
def test_foreign_or_garbled_cursors_are_refused(cursor):
    with pytest.raises(BadRequest) as exc:
        decode_cursor(cursor, partition="ACCOUNT#a")
    assert exc.value.code == "invalid_cursor"


def test_secret_comparison():
    stored = hash_secret("s3cret")
    assert secret_matches("s3cret", stored)
    assert not secret_matches("s3cre", stored)
    assert not secret_matches(None, stored)
    assert not secret_matches("s3cret", None)


def test_admin_token_mode():
    require_admin(mode="token", admin_token="t0k", authorization="Bearer t0k", request_context={})
    for auth in (None, "Bearer nope", "Basic t0k"):
        with pytest.raises(Unauthorized):
            require_admin(mode="token", admin_token="t0k", authorization=auth, request_context={})
    with pytest.raises(Unauthorized):
        require_admin(mode="token", admin_token="", authorization="Bearer ", request_context={})


def test_iam_mode_trusts_api_gateway_but_needs_a_signed_identity():
    signed = {"identity": {"userArn": "arn:aws:iam::1:user/ops"}}
    require_admin(mode="iam", admin_token="", authorization=None, request_context=signed)
    with pytest.raises(Unauthorized):
        require_admin(mode="iam", admin_token="", authorization=None, request_context={"identity": {}})


def test_field_paths_drop_the_body_prefix():
    assert _field_path(("body", "person_invited", "mapping", "email")) == "person_invited.mapping.email"
    assert _field_path(("query", "refresh")) == "query.refresh"
    assert _field_path(("body",)) == "body"


def test_public_base_url():
    stage_event = {"requestContext": {"domainName": "x.execute-api.eu-west-1.amazonaws.com", "stage": "prod"}}
    assert public_base_url(stage_event, "") == "https://x.execute-api.eu-west-1.amazonaws.com/prod"
    custom = {"requestContext": {"domainName": "api.example.com", "stage": "prod"}}
    assert public_base_url(custom, "") == "https://api.example.com"
    assert public_base_url(custom, "http://127.0.0.1:3000/") == "http://127.0.0.1:3000"


def test_rate_expressions():
    assert tmpl.rate_seconds("rate(1 minute)") == 60
    assert tmpl.rate_seconds("rate(5 minutes)") == 300
    assert tmpl.rate_seconds("rate(2 hours)") == 7200


def test_template_model_reads_intrinsics():
    data = tmpl.load_text("A: !GetAtt Q.Arn\nB: !Sub 'x-${Y}'\nC: !Ref Z\nD: !If [c, [1], [2]]\n")
    assert data == {
        "A": {"Fn::GetAtt": ["Q", "Arn"]},
        "B": {"Fn::Sub": "x-${Y}"},
        "C": {"Ref": "Z"},
        "D": {"Fn::If": ["c", [1], [2]]},
    }


def test_the_products_errors_and_upstream_failures_share_no_class_name():
    import inspect

    from shared.clients import errors as upstream
    from shared.domain import errors as product

    def names(module: object) -> set[str]:
        return {
            name
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == getattr(module, "__name__", None)
        }

    assert names(upstream) and names(product)
    assert names(upstream) & names(product) == set()
