"""Real handlers in process against moto, with every resource created from template.yaml."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from local import template as tmpl
from local.provision import Provisioned, parameter_defaults, provision, resolve_environment

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def aws() -> Iterator[Provisioned]:
    with mock_aws():
        import boto3

        from shared import aws as shared_aws

        shared_aws.reset()
        yield provision(boto3.session.Session(), stack="test")


@pytest.fixture(scope="session")
def function_env(aws: Provisioned) -> Callable[[str], dict[str, str]]:
    functions = tmpl.functions()
    params = parameter_defaults()
    local_overrides = {
        "ADMIN_AUTH": "token",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_BASE_URL": "http://testserver",
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
