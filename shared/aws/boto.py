"""Cached botocore factories: clients are built on first use, not at import, so tests and the local
stack point them at moto through the standard `AWS_ENDPOINT_URL`.

botocore, not boto3: the product uses low-level clients and its own DynamoDB encoding
(`shared.aws.dynamodb`), and `import boto3` would add s3transfer and the resource machinery to every
cold start (docs/cold-starts.md); Powertools' parameters and idempotency import boto3 where used.
botocore itself is imported with this module: a function whose first request reads the table loads it
at init (where SnapStart keeps it), and the webhook receivers, which must answer fast, reach this
module on their first request only (`queues`, `crypto` and the receivers' routes import it there).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

from shared import caches
from shared.aws.dynamodb import Table


@caches.resettable
@cache
def _config() -> Any:
    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)


@caches.resettable
@cache
def session() -> Any:
    return botocore.session.get_session()


@caches.resettable
@cache
def client(service: str) -> Any:
    return session().create_client(service, config=_config())


@caches.resettable
@cache
def table(name: str) -> Table:
    return Table(client("dynamodb"), name)


def reset() -> None:
    """Forget every client (tests that swap endpoints or credentials)."""
    client.cache_clear()
    table.cache_clear()
    session.cache_clear()
