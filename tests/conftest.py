"""Every test runs with fake AWS credentials: nothing here may reach a real account. Each starts as a
cold process would: with every process-global cache of `shared/` empty."""

from __future__ import annotations

import os

import pytest

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "RfIntercomTests",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    """What an earlier test left in a warm process's caches (clients, settings, routes, names) must
    not decide this one's outcome."""
    from shared.caches import reset_caches

    reset_caches()
