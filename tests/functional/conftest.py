"""Real handlers in process against moto, with every resource created from template.yaml."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from local import template as tmpl
from local.provision import Provisioned, parameter_defaults, provision, resolve_environment

ADMIN_TOKEN = "test-admin-token"
INTERCOM_CLIENT_ID = "test-client-id"
INTERCOM_CLIENT_SECRET = "test-client-secret"
PUBLIC_BASE_URL = "http://testserver"


@pytest.fixture(scope="session")
def aws() -> Iterator[Provisioned]:
    with mock_aws():
        import boto3

        from shared.aws import boto

        boto.reset()
        yield provision(boto3.session.Session(), stack="test")


@dataclass
class Emulators:
    intercom: str
    referral_factory: str
    intercom_app: Any
    rf_app: Any


@pytest.fixture(scope="session")
def emulators(aws: Provisioned) -> Iterator[Emulators]:
    """Both emulators over real HTTP, the Intercom one's OAuth app wired to the product's callback
    and its credentials in the provisioned secret, as the local stack does it."""
    import boto3

    from local.emulators.intercom.app import create_app as intercom_app
    from local.emulators.referral_factory.app import create_app as rf_app
    from local.emulators.server import serve_in_thread

    intercom = intercom_app(
        {
            "client_id": INTERCOM_CLIENT_ID,
            "client_secret": INTERCOM_CLIENT_SECRET,
            "redirect_uris": [f"{PUBLIC_BASE_URL}/oauth/intercom/callback"],
            "webhook_retry_delay_s": 0.2,
        }
    )
    rf = rf_app({"webhook_retry_delay_s": 0.2})
    running = [serve_in_thread(intercom), serve_in_thread(rf)]
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["IntercomAppSecret"],
        SecretString=json.dumps({"client_id": INTERCOM_CLIENT_ID, "client_secret": INTERCOM_CLIENT_SECRET}),
    )
    yield Emulators(running[0].base_url, running[1].base_url, intercom, rf)
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def function_env(aws: Provisioned, emulators: Emulators) -> Callable[[str], dict[str, str]]:
    functions = tmpl.functions()
    params = parameter_defaults()
    local_overrides = {
        "ADMIN_AUTH": "token",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "INTERCOM_API_BASE": emulators.intercom,
        "INTERCOM_OAUTH_BASE": emulators.intercom,
        "DEFAULT_REFERRAL_FACTORY_API_BASE": f"{emulators.referral_factory}/api/v2",
    }

    def env(name: str) -> dict[str, str]:
        return resolve_environment(functions[name], aws, params, local_overrides)

    return env


@pytest.fixture(scope="session")
def lambda_module(function_env: Callable[[str], dict[str, str]]) -> Callable[[str], ModuleType]:
    """Import a function's handler module as Lambda would, with its template environment applied."""
    functions = tmpl.functions()

    def load(name: str) -> ModuleType:
        fn = functions[name]
        os.environ.update(function_env(name))
        package = fn.code_uri.strip("/").replace("/", ".")
        return importlib.import_module(f"{package}.{fn.handler.rpartition('.')[0]}")

    return load


@pytest.fixture
def call(lambda_module: Callable[[str], ModuleType]) -> Callable[[str, dict[str, Any]], Any]:
    from tests.factories import LambdaContext

    def invoke(function: str, event: dict[str, Any]) -> Any:
        return lambda_module(function).handler(event, LambdaContext(function_name=function))

    return invoke


@pytest.fixture
def new_account(call: Callable[[str, dict[str, Any]], Any]) -> Callable[..., dict[str, Any]]:
    """Create a product account through the admin API; returns its creation answer."""
    from tests.factories import api_event, body_of

    def create(name: str = "Acme", rf_key: str = "rf-key", rf_base: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "referral_factory_api_key": rf_key}
        if rf_base:
            body["referral_factory_api_base"] = rf_base
        event = api_event(
            "POST", "/admin/accounts", body=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        response = call("AccountApiFunction", event)
        assert response["statusCode"] == 201, response
        return dict(body_of(response))

    return create


@pytest.fixture
def workspace(emulators: Emulators) -> Callable[..., str]:
    """A fresh Intercom workspace in the emulator; returns its id_code."""
    import uuid

    import httpx

    def create(name: str = "Hogwarts", region: str = "US") -> str:
        id_code = "ws" + uuid.uuid4().hex[:8]
        response = httpx.post(
            f"{emulators.intercom}/_emulator/workspaces",
            json={"id_code": id_code, "name": name, "region": region},
        )
        assert response.status_code == 201, response.text
        return id_code

    return create


@pytest.fixture
def connected_account(
    call: Callable[[str, dict[str, Any]], Any],
    new_account: Callable[..., dict[str, Any]],
    workspace: Callable[..., str],
    emulators: Emulators,
) -> dict[str, Any]:
    """A Referral Factory account with two campaigns, a product account on it, and a connected
    Intercom workspace with one segment."""
    import random
    import uuid

    import httpx

    from tests.functional.oauth_flow import connect

    rf_key = "rf-" + uuid.uuid4().hex
    campaigns = [random.randint(10**6, 10**9), random.randint(10**6, 10**9)]
    response = httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": rf_key, "campaigns": [{"id": c, "name": f"Campaign {c}"} for c in campaigns]},
    )
    assert response.status_code == 201, response.text
    account = new_account(rf_key=rf_key, rf_base=f"{emulators.referral_factory}/api/v2")
    ws = workspace()
    connect(call, account, ws)
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{ws}/segments",
        json={"name": "VIPs", "person_type": "user"},
    )
    return {"account": account, "workspace": ws, "campaigns": [str(c) for c in campaigns], "rf_key": rf_key}
