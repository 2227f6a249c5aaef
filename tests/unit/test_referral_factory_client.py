"""The Referral Factory client on answers the emulator does not give: pure, with httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shared.clients.errors import Invalid, Transient
from shared.clients.http import RetryPolicy
from shared.clients.referral_factory import SALE_VALUE_FIELD, ReferralFactoryClient


def client(handler: Callable[[httpx.Request], httpx.Response]) -> ReferralFactoryClient:
    return ReferralFactoryClient(
        "key",
        base_url="https://rf.test/api/v2",
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        policy=RetryPolicy(max_attempts=1),
        sleep=lambda _: None,
    )


def test_the_sale_value_field_is_named_in_one_place() -> None:
    assert SALE_VALUE_FIELD == "amount"


def test_single_resources_read_either_shape() -> None:
    bare = client(lambda _: httpx.Response(200, json={"id": 3, "name": "Bare"}))
    assert bare.get_campaign(3).model_dump(exclude_unset=True) == {"id": 3, "name": "Bare"}
    wrapped = client(lambda _: httpx.Response(200, json={"data": {"id": 4}}))
    assert wrapped.get_campaign(4).model_dump(exclude_unset=True) == {"id": 4}
    odd = client(lambda _: httpx.Response(200, json=[1, 2]))
    assert odd.get_campaign(5).model_dump(exclude_unset=True) == {}


def test_campaigns_are_read_across_pages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return httpx.Response(
            200, json={"data": [{"id": page}], "meta": {"current_page": page, "last_page": 3}}
        )

    assert [c.id for c in client(handler).list_campaigns()] == [1, 2, 3]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(422, text="<html>nope</html>"), "Unprocessable Entity"),
        (httpx.Response(422, json=["x"]), "HTTP 422"),
        (httpx.Response(422, json={"errors": "flat"}), "HTTP 422"),
    ],
)
def test_error_bodies_that_are_not_the_envelope(answer: httpx.Response, message: str) -> None:
    with pytest.raises(Invalid) as info:
        client(lambda _: answer).create_user(1, "a@b.c", "A")
    assert info.value.message == message and info.value.fields == {}


def test_server_errors_that_outlast_the_retries_are_transient() -> None:
    with pytest.raises(Transient):
        client(lambda _: httpx.Response(503, json={"message": "down"})).list_users(1)
