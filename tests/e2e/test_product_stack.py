"""The product through the local stack over HTTP, as the contract's §2 promises: the ready line, the
error envelope for everything a caller can get wrong, and a shutdown that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.conftest import alive, descendants, listening

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningStack

ADMIN = {"Authorization": "Bearer e2e-admin-token"}


@pytest.fixture(scope="module")
def api(product_stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=product_stack.api, timeout=15) as client:
        yield client


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return body["error"]


def test_ready_line_names_every_part_on_the_chosen_ports(product_stack: RunningStack) -> None:
    info = product_stack.info
    api_port, intercom_port, rf_port, aws_port = product_stack.ports
    assert info == {
        "event": "ready",
        "api": f"http://127.0.0.1:{api_port}",
        "intercom": f"http://127.0.0.1:{intercom_port}",
        "referral_factory": f"http://127.0.0.1:{rf_port}",
        "aws": f"http://127.0.0.1:{aws_port}",
        "admin_token": "e2e-admin-token",
        "logs": str(Path(tempfile.gettempdir(), f"rf-intercom-local-{api_port}.log").resolve()),
    }


def test_every_part_answers_once_ready(product_stack: RunningStack, api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    for base in (product_stack.info["intercom"], product_stack.info["referral_factory"]):
        assert httpx.get(f"{base}/_emulator/config").status_code == 200
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=product_stack.info["aws"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    names = {url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]}
    assert {"local-SignupQueue", "local-SignupDLQ", "local-SyncPagesQueue"} <= names


def test_intercom_app_points_at_the_product(product_stack: RunningStack) -> None:
    config = httpx.get(f"{product_stack.info['intercom']}/_emulator/config").json()
    api = product_stack.api
    assert config["redirect_uris"] == [f"{api}/oauth/intercom/callback"]
    assert config["webhook_url"] == f"{api}/webhooks/intercom"
    assert config["uninstall_url"] == f"{api}/webhooks/intercom/uninstall"


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/admin/accounts", content=b"{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    envelope(response, 400, "malformed_json")


def test_json_that_is_not_utf8_is_400_through_the_gateway(api: httpx.Client) -> None:
    body = b'{"name": "Acme \xff", "referral_factory_api_key": "k"}'
    response = api.post(
        "/admin/accounts", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    envelope(response, 400, "malformed_json")


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=b"])
def test_a_body_of_another_media_type_is_415_through_the_gateway(
    api: httpx.Client, content_type: str
) -> None:
    body = b'{"name": "Acme", "referral_factory_api_key": "k"}'
    response = api.post("/admin/accounts", content=body, headers={**ADMIN, "Content-Type": content_type})
    envelope(response, 415, "unsupported_media_type")


def test_missing_field_is_422_naming_it(api: httpx.Client) -> None:
    error = envelope(
        api.post("/admin/accounts", json={"name": "Acme"}, headers=ADMIN), 422, "validation_failed"
    )
    assert error["details"] == [{"field": "referral_factory_api_key", "message": "is required"}]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope/deeper", "/health/extra", "/"])
def test_unknown_route_is_404_from_the_gateway(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    envelope(response, 404, "not_found")
    assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"


def test_wrong_method_is_405_from_the_function(api: httpx.Client) -> None:
    response = api.delete("/health")
    envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_admin_route_without_the_admin_token_is_401(api: httpx.Client, headers: dict[str, str]) -> None:
    body = {"name": "Acme", "referral_factory_api_key": "rf-key"}
    envelope(api.post("/admin/accounts", json=body, headers=headers), 401, "unauthorized")


def test_account_creation_defaults_to_the_referral_factory_emulator(
    product_stack: RunningStack, api: httpx.Client
) -> None:
    body = {"name": "Acme", "referral_factory_api_key": "rf-key"}
    response = api.post("/admin/accounts", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["api_key"]
    webhook = created["referral_factory_webhook"]
    assert webhook["url"] == f"{product_stack.api}/webhooks/referral-factory/{created['account_id']}"


def test_function_logs_go_to_the_file_the_ready_line_names(
    product_stack: RunningStack, api: httpx.Client
) -> None:
    api.post("/admin/accounts", json={"name": "Log", "referral_factory_api_key": "k"}, headers=ADMIN)
    deadline = time.monotonic() + 5
    while '"account created"' not in product_stack.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"account created"' in product_stack.logs()
    # The terminal keeps the story: where the console and the logs are, none of the JSON lines.
    assert '"account created"' not in product_stack.stderr()
    assert f"function logs: {product_stack.info['logs']}" in product_stack.stderr()
    assert f"console: {product_stack.api}/console" in product_stack.stderr()


def test_sigterm_stops_every_process_and_frees_every_port(product_stack: RunningStack) -> None:
    """Last in this module: it stops the module's stack."""
    stack_pid = product_stack.process.pid
    children = descendants(stack_pid)
    # moto, two emulators and at least one warm function instance (more once all have warmed).
    assert len(children) >= 4
    started = time.monotonic()
    status, rest_of_stdout = product_stack.stop(signal.SIGTERM)
    elapsed = time.monotonic() - started
    assert status == 0, product_stack.stderr()[-3000:]
    assert rest_of_stdout == b""
    assert elapsed < 30
    time.sleep(0.5)
    assert [pid for pid in children if alive(pid)] == []
    assert [port for port in product_stack.ports if listening(port)] == []
    assert os.getpid() not in children
