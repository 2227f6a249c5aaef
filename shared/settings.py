"""Each function's environment as one pydantic model, validated at cold start.

A model's field aliases are exactly the environment variables the template gives that function;
`tests/functional/test_template_contract.py` holds the two together.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared import caches

DEFAULT_REFERRAL_FACTORY_API_BASE = "https://referral-factory.com/api/v2"
DEFAULT_INTERCOM_API_BASE = "https://api.intercom.io"
DEFAULT_INTERCOM_OAUTH_BASE = "https://app.intercom.com"


class BaseSettings(BaseModel):
    """What every function has: its name for logs and metrics, and the main table."""

    # Built when loaded: a function validates one of these models, not all twelve (docs/cold-starts.md).
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", defer_build=True)

    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME")
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE")
    log_level: str = Field("INFO", alias="POWERTOOLS_LOG_LEVEL")
    table_name: str = Field(alias="TABLE_NAME")


class SecretsSettings(BaseSettings):
    """Functions that read or write Intercom tokens and Referral Factory keys.

    Any of them may change a connection's state (a 401 from Intercom revokes it), so each has the
    queues every connection event goes to (`shared.messages.CONNECTION_EVENT_QUEUES`)."""

    kms_key_id: str = Field(alias="KMS_KEY_ID")
    intercom_app_secret_arn: str = Field(alias="INTERCOM_APP_SECRET_ARN")
    intercom_api_base: str = Field(DEFAULT_INTERCOM_API_BASE, alias="INTERCOM_API_BASE")
    # Empty in AWS: the public URL is then taken from the request (API Gateway's domain and stage).
    public_base_url: str = Field("", alias="PUBLIC_BASE_URL")
    signup_queue_url: str = Field(alias="SIGNUP_QUEUE_URL")
    sync_queue_url: str = Field(alias="SYNC_QUEUE_URL")


class AccountApiSettings(SecretsSettings):
    default_referral_factory_api_base: str = Field(
        DEFAULT_REFERRAL_FACTORY_API_BASE, alias="DEFAULT_REFERRAL_FACTORY_API_BASE"
    )
    # `iam` in AWS (API Gateway authorises /admin with SigV4); `token` locally (bearer admin token).
    admin_auth: str = Field("iam", alias="ADMIN_AUTH", pattern="^(iam|token)$")
    admin_token: str = Field("", alias="ADMIN_TOKEN")


class OAuthSettings(SecretsSettings):
    intercom_oauth_base: str = Field(DEFAULT_INTERCOM_OAUTH_BASE, alias="INTERCOM_OAUTH_BASE")


class ContactSyncSettings(SecretsSettings):
    sync_pages_queue_url: str = Field(alias="SYNC_PAGES_QUEUE_URL")
    # A contact that keeps failing is sent here (and recorded in the sync's errors).
    sync_pages_dlq_url: str = Field(alias="SYNC_PAGES_DLQ_URL")
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")


class IntercomWebhookSettings(BaseSettings):
    intercom_app_secret_arn: str = Field(alias="INTERCOM_APP_SECRET_ARN")
    intercom_events_queue_url: str = Field(alias="INTERCOM_EVENTS_QUEUE_URL")
    # Notification ids already seen (repeats are dropped before they are queued).
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")


class IntercomEventsSettings(SecretsSettings):
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")
    # Work handed back with a delay, and the rest of a long sweep, go back to the function's own queue.
    intercom_events_queue_url: str = Field(alias="INTERCOM_EVENTS_QUEUE_URL")


class SignupReceiverSettings(BaseSettings):
    signup_queue_url: str = Field(alias="SIGNUP_QUEUE_URL")


class SignupProcessorSettings(SecretsSettings):
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")


class ConsoleSettings(BaseSettings):
    """The console serves files only; it has what every function has and nothing more."""


class SchedulerSettings(BaseSettings):
    signup_queue_url: str = Field(alias="SIGNUP_QUEUE_URL")
    sync_queue_url: str = Field(alias="SYNC_QUEUE_URL")
    intercom_events_queue_url: str = Field(alias="INTERCOM_EVENTS_QUEUE_URL")


S = TypeVar("S", bound=BaseSettings)


@caches.resettable
@cache
def _load(model: type[BaseSettings]) -> BaseSettings:
    return model.model_validate(dict(os.environ))


def load(model: type[S]) -> S:
    """The function's settings from its environment, validated once per cold start."""
    loaded = _load(model)
    if not isinstance(loaded, model):  # pragma: no cover - _load builds exactly `model`
        raise TypeError(f"{model.__name__} loaded as {type(loaded).__name__}")
    return loaded
