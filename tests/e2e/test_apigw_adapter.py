"""The API Gateway adapter in process, with the product's own gateway responses: what API Gateway
answers by itself is the contract's envelope and valid JSON."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from local import template as tmpl
from local.apigw import GatewayResponses, RestApiAdapter, Router, TokenBucket, build_response
from local.lambda_runtime import FunctionTimeout

with warnings.catch_warnings():
    # Starlette 1.x wants `httpx2` for its test client; plain httpx still works and is pinned here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Recorder:
    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.result = result if result is not None else {"statusCode": 204}
        self.error = error

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.calls.append((function, event))
        if self.error:
            raise self.error
        return self.result


def client(invoke: Recorder, throttle: TokenBucket | None = None) -> TestClient:
    template = tmpl.load()
    adapter = RestApiAdapter(
        Router.from_functions(tmpl.functions(template)),
        invoke,
        GatewayResponses.from_template(template),
        throttle,
    )
    return TestClient(adapter, raise_server_exceptions=False)


def assert_envelope(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["details"] == []


def test_routes_go_to_the_function_the_template_names() -> None:
    invoke = Recorder()
    c = client(invoke)
    c.get("/v1/syncs/s-1/cancel")
    c.get("/webhooks/referral-factory/acc-1")
    assert [(f, e["resource"], e["pathParameters"]) for f, e in invoke.calls] == [
        ("ContactSyncFunction", "/v1/syncs/{sync_id}/cancel", {"sync_id": "s-1"}),
        ("ReferralSignupFunction", "/webhooks/referral-factory/{account_id}", {"account_id": "acc-1"}),
    ]


def test_an_unknown_path_never_reaches_a_function() -> None:
    invoke = Recorder()
    assert_envelope(client(invoke).get("/v2/anything"), 404, "not_found")
    assert invoke.calls == []


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), FunctionTimeout("Sandbox.Timedout", "Task timed out after 10.00 seconds")]
)
def test_a_function_failure_is_a_502_envelope_with_api_gateways_message(error: Exception) -> None:
    invoke = Recorder(error=error)
    response = client(invoke).get("/health")
    if isinstance(error, FunctionTimeout):
        assert_envelope(response, 502, "gateway_error")
        assert response.json()["error"]["message"] == "Internal server error"
    else:
        # Not a function error but the adapter's own: still API Gateway's 5XX, never a stack trace.
        assert_envelope(response, 500, "gateway_error")
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "result",
    [
        ["a list"],
        "text",
        {"body": "no status"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 99},
    ],
)
def test_a_malformed_proxy_result_is_a_502(result: Any) -> None:
    assert_envelope(client(Recorder(result=result)).get("/health"), 502, "gateway_error")


def test_past_the_stage_throttle_the_gateway_answers_429() -> None:
    c = client(Recorder(), TokenBucket(rate=0.001, burst=2))
    assert [c.get("/health").status_code for _ in range(3)] == [204, 204, 429]
    assert c.get("/health").json()["error"]["code"] == "throttled"


def test_an_oversized_body_is_413_in_the_envelope() -> None:
    response = client(Recorder()).post("/admin/accounts", content=b"x" * (10 * 1024 * 1024 + 1))
    assert_envelope(response, 413, "bad_request")
    assert response.json()["error"]["message"] == "Request Too Long"


def test_multi_value_headers_merge_with_single_ones() -> None:
    response = build_response(
        {
            "statusCode": 201,
            "headers": {"X-One": "1", "Set-Cookie": "ignored"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "hi",
        },
        "req-1",
    )
    headers = [(k.decode(), v.decode()) for k, v in response.raw_headers]
    assert ("x-one", "1") in headers
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert ("content-length", "2") in headers
