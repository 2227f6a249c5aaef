"""Cached boto3 factories: built on first use, not at import, so tests and the local stack point them
at moto through the standard `AWS_ENDPOINT_URL`, and a cold start pays for boto3 only when it is used
(the webhook receivers import this module but must answer fast)."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared import caches


@caches.resettable
@cache
def _config() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)


@caches.resettable
@cache
def session() -> Any:
    import boto3

    return boto3.session.Session()


@caches.resettable
@cache
def client(service: str) -> Any:
    return session().client(service, config=_config())


@caches.resettable
@cache
def table(name: str) -> Any:
    return session().resource("dynamodb", config=_config()).Table(name)


def reset() -> None:
    """Forget every client (tests that swap endpoints or credentials)."""
    client.cache_clear()
    table.cache_clear()
    session.cache_clear()
