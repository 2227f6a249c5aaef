"""The Intercom app's client id and secret, from Secrets Manager, cached with a max age.

Kept apart from the clients so the webhook receivers can verify signatures without importing them.
Read through botocore, not Powertools' `parameters.get_secret`: that module imports boto3, about
0.4 x `import boto3` more on the first request of the OAuth connect and of the Intercom receiver
(docs/cold-starts.md). The cache keeps get_secret's rule: one read per max age per process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared import caches

# How long a warm Lambda trusts its cached copy (a rotated secret is picked up within this time).
APP_SECRET_MAX_AGE_S = 300


@dataclass(frozen=True)
class AppCredentials:
    client_id: str
    client_secret: str


_read: dict[str, tuple[float, AppCredentials]] = {}
_lock = threading.Lock()


def app_credentials(secret_arn: str, *, clock: Callable[[], float] = time.monotonic) -> AppCredentials:
    now = clock()
    with _lock:
        kept = _read.get(secret_arn)
    if kept is not None and now < kept[0]:
        return kept[1]
    # botocore on the first read: the receivers import this module at init and must answer fast.
    from shared.aws import boto

    answer = boto.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    data = json.loads(answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"])
    credentials = AppCredentials(str(data.get("client_id", "")), str(data.get("client_secret", "")))
    with _lock:
        _read[secret_arn] = (now + APP_SECRET_MAX_AGE_S, credentials)
    return credentials


def _forget_app_secret() -> None:
    with _lock:
        _read.clear()


caches.register(f"{__name__}._read", _forget_app_secret)
