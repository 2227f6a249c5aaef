"""Operator routes: health and account creation."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from pydantic import AfterValidator, BaseModel, Field, HttpUrl
from typing_extensions import TypedDict

from shared import caches, settings
from shared.api import docs
from shared.api.auth import require_admin
from shared.api.docs import answers
from shared.api.resolver import json_response, public_base_url
from shared.api.resolver import router as new_router
from shared.aws.crypto import SecretBox
from shared.aws.store import Store
from shared.observability import logger, metrics
from shared.records.accounts import WEBHOOK_HEADER_NAME, Accounts

router = new_router()


def _settings() -> settings.AccountApiSettings:
    return settings.load(settings.AccountApiSettings)


@caches.resettable
@cache
def accounts() -> Accounts:
    s = _settings()
    return Accounts(Store(s.table_name), SecretBox(s.kms_key_id))


class HealthAnswer(TypedDict):
    status: str


def _header_safe(key: str) -> str:
    # Referral Factory's key travels in an HTTP header (`Authorization: Bearer ...`).
    if not all("!" <= ch <= "~" for ch in key):
        raise ValueError("must be the key as Referral Factory shows it: visible ASCII characters, no spaces")
    return key


RfApiKey = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_header_safe)]


class CreateAccount(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    referral_factory_api_key: RfApiKey
    referral_factory_api_base: HttpUrl | None = None


class WebhookSetup(TypedDict):
    """Where and how Referral Factory should send the account's webhooks."""

    url: str
    header_name: str
    header_value: str


class CreatedAccount(TypedDict):
    """`POST /admin/accounts`: the account key and webhook secret, shown this once."""

    account_id: str
    api_key: str
    referral_factory_webhook: WebhookSetup


@router.get("/health", responses=answers(200, HealthAnswer, "The API answers."))
def health() -> HealthAnswer:
    return {"status": "ok"}


@router.get("/openapi.json", responses=answers(200, description="This API's OpenAPI 3.1 document."))
def openapi() -> Response[str]:
    from shared.api.openapi import document_json  # every route module: only when the document is asked for

    return Response(status_code=200, content_type="application/json", body=document_json())


@router.post(
    "/admin/accounts",
    responses=answers(201, CreatedAccount, "The account, its key and webhook secret, shown this once."),
    security=docs.ADMIN,
)
def create_account(body: CreateAccount) -> Response[CreatedAccount]:
    s = _settings()
    event = router.current_event
    require_admin(
        mode=s.admin_auth,
        admin_token=s.admin_token,
        authorization=event.headers.get("authorization") or event.headers.get("Authorization"),
        request_context=event.raw_event.get("requestContext") or {},
    )
    api_base = str(body.referral_factory_api_base or s.default_referral_factory_api_base)
    created = accounts().create(body.name, body.referral_factory_api_key, api_base)
    logger.info("account created", extra={"account_id": created.account_id})
    metrics.add_metric(name="AccountsCreated", unit="Count", value=1)
    base = public_base_url(event.raw_event, s.public_base_url)
    return json_response(
        {
            "account_id": created.account_id,
            "api_key": created.api_key,
            "referral_factory_webhook": {
                "url": f"{base}/webhooks/referral-factory/{created.account_id}",
                "header_name": WEBHOOK_HEADER_NAME,
                "header_value": created.webhook_secret,
            },
        },
        status_code=201,
    )
