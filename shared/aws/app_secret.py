"""The Intercom app's client id and secret, from Secrets Manager, cached with a max age.

Kept apart from the clients so the webhook receivers can verify signatures without importing them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from shared import caches

# How long a warm Lambda trusts its cached copy (a rotated secret is picked up within this time).
APP_SECRET_MAX_AGE_S = 300


@dataclass(frozen=True)
class AppCredentials:
    client_id: str
    client_secret: str


def app_credentials(secret_arn: str) -> AppCredentials:
    from aws_lambda_powertools.utilities import parameters

    value: Any = parameters.get_secret(secret_arn, max_age=APP_SECRET_MAX_AGE_S)
    data = json.loads(value) if isinstance(value, str | bytes) else value
    return AppCredentials(str(data.get("client_id", "")), str(data.get("client_secret", "")))


def _forget_app_secret() -> None:
    """Powertools keeps the secret in its own process-global cache; not imported, nothing is cached."""
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()


caches.register(f"{__name__}.app_credentials", _forget_app_secret)
