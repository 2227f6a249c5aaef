"""The account API: Intercom attributes and segments, the account's campaigns and their Intercom
settings, setup of missing attributes, the Referral Factory key, and key rotation (its referrals:
`shared/api/routes/referrals.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, Field, HttpUrl, ValidationError
from typing_extensions import TypedDict

from shared import keys, settings
from shared.api.docs import ACCOUNT_KEY, answers
from shared.api.pagination import ListEnvelope
from shared.api.resolver import json_response
from shared.api.resolver import router as new_router
from shared.clients.errors import ConnectionRevoked, CredentialsRejected, RateLimited, UpstreamError
from shared.domain.campaign_settings import (
    COMPANY,
    CONTACT,
    Attribute,
    CampaignSettings,
    ObjectKind,
    named_attributes,
    names_company_attributes,
    validate,
)
from shared.domain.errors import ApiError, Conflict, FieldError, NotFound, ValidationFailed, field_error
from shared.observability import logger
from shared.records.accounts import Account
from shared.records.campaigns import CampaignStore
from shared.records.connections import REVOKED, AccessRevoked, Connection, NotConnected, usable
from shared.wiring import Services, services

if TYPE_CHECKING:
    from shared.clients.intercom import IntercomClient
    from shared.clients.referral_factory import Campaign

router = new_router()

# How long listed attributes and segments are served from the cache without `?refresh=true`.
CACHE_MAX_AGE_S = 900
CACHE_TTL_S = 86_400


def _settings() -> settings.AccountApiSettings:
    return settings.load(settings.AccountApiSettings)


def _services() -> Services:
    return services(_settings())


def _account() -> Account:
    return _services().accounts.authenticate(router.current_event.headers.get("authorization"))


class UpstreamUnavailable(ApiError):
    status = 502
    code = "upstream_unavailable"


def _connection(account: Account) -> Connection:
    connection = _services().connections().get(account.account_id)
    if connection is not None and connection.status == REVOKED:
        raise AccessRevoked
    if not usable(connection):
        raise NotConnected
    return connection


@contextmanager
def _upstream(account: Account, service: str) -> Iterator[None]:
    """Intercom's and Referral Factory's failures as the caller should see them."""
    try:
        yield
    except ConnectionRevoked as exc:
        _services().connections().revoked_by_intercom(account.account_id)
        raise AccessRevoked from exc
    except CredentialsRejected as exc:
        raise Conflict(
            f"{service} rejected the account's credentials.", code="upstream_unauthorized"
        ) from exc
    except RateLimited as exc:
        raise UpstreamUnavailable(
            f"{service} is rate limiting us; retry in {int(exc.retry_after or 1)} s."
        ) from exc
    except UpstreamError as exc:
        raise UpstreamUnavailable(f"{service} could not answer: {exc.message}") from exc


def _intercom(account: Account) -> tuple[Connection, IntercomClient]:
    connection = _connection(account)
    return connection, _services().intercom_for(connection)


# -- cached lists ------------------------------------------------------------------------------
class Segment(TypedDict):
    """An Intercom segment as `GET /v1/intercom/segments` lists it."""

    id: str | None
    name: str | None
    person_type: str | None
    count: int | None


Listed = TypeVar("Listed", Attribute, Segment)


def _cached(
    account: Account, name: str, refresh: bool, load: Callable[[IntercomClient], list[Listed]]
) -> list[Listed]:
    """The workspace's list `name` as last loaded (for CACHE_MAX_AGE_S), or loaded now and kept."""
    connection, client = _intercom(account)
    store = _services().store
    pk, sk = keys.cache_key(account.account_id, name, connection.workspace_id)
    now = int(time.time())
    if not refresh:
        item = store.get(pk, sk, consistent=False)
        if item and now - item["fetched_at"] < CACHE_MAX_AGE_S:
            return list(item["data"])
    with _upstream(account, "Intercom"):
        data = load(client)
    store.put({"pk": pk, "sk": sk, "data": data, "fetched_at": now, "expires_at": now + CACHE_TTL_S})
    return data


def _load_attributes(client: IntercomClient) -> list[Attribute]:
    return [a.view() for a in client.list_data_attributes(CONTACT) if not a.archived]


def _load_company_attributes(client: IntercomClient) -> list[Attribute]:
    return [a.view() for a in client.list_data_attributes(COMPANY) if not a.archived]


# Each model's attribute list: its cache name and its loader.
_ATTRIBUTE_LISTS: dict[str, tuple[str, Callable[[IntercomClient], list[Attribute]]]] = {
    CONTACT: ("attributes", _load_attributes),
    COMPANY: ("company_attributes", _load_company_attributes),
}


def _attributes(account: Account, model: str, refresh: bool) -> list[Attribute]:
    name, load = _ATTRIBUTE_LISTS[model]
    return _cached(account, name, refresh, load)


def _load_segments(client: IntercomClient) -> list[Segment]:
    return [
        {"id": s.id, "name": s.name, "person_type": s.person_type, "count": s.count}
        for s in client.list_segments(include_count=True)
    ]


def _invalidate_attributes(account: Account, workspace_id: str, model: str = CONTACT) -> None:
    name, _ = _ATTRIBUTE_LISTS[model]
    _services().store.delete(*keys.cache_key(account.account_id, name, workspace_id))


@router.get("/v1/intercom/attributes", security=ACCOUNT_KEY)
def list_attributes(
    refresh: Annotated[bool, Query()] = False, model: Annotated[ObjectKind, Query()] = CONTACT
) -> ListEnvelope[Attribute]:
    """The contact's data attributes, or with `model=company` the company's."""
    return {"data": _attributes(_account(), model, refresh), "next_cursor": None}


class NewAttribute(BaseModel):
    name: str = Field(min_length=1, max_length=190, pattern=r"^[A-Za-z0-9_\-$€£¥]+$")
    data_type: Literal["string", "integer", "float", "boolean", "date", "options"]
    options: list[str] | None = Field(default=None, min_length=2)
    description: str | None = Field(default=None, max_length=500)
    model: ObjectKind = CONTACT


@router.post(
    "/v1/intercom/attributes",
    responses=answers(201, Attribute, "The attribute, created in Intercom."),
    security=ACCOUNT_KEY,
)
def create_attribute(body: NewAttribute) -> Response[Attribute]:
    account = _account()
    if (body.data_type == "options") != bool(body.options):
        raise ValidationFailed(
            "Invalid request: options.",
            details=[
                field_error("options", "a list attribute needs at least two options; other types take none")
            ],
        )
    connection, client = _intercom(account)
    with _upstream(account, "Intercom"):
        created = client.create_data_attribute(
            body.name, body.data_type, model=body.model, description=body.description, options=body.options
        )
    _invalidate_attributes(account, connection.workspace_id, body.model)
    return json_response(created.view(), status_code=201)


@router.get("/v1/intercom/segments", security=ACCOUNT_KEY)
def list_segments(refresh: Annotated[bool, Query()] = False) -> ListEnvelope[Segment]:
    return {"data": _cached(_account(), "segments", refresh, _load_segments), "next_cursor": None}


# -- campaigns -----------------------------------------------------------------------------------
def _campaigns() -> CampaignStore:
    return CampaignStore(_services().store)


def _rf_campaigns(account: Account) -> list[Campaign]:
    with _upstream(account, "Referral Factory"):
        return _services().referral_factory_for(account).list_campaigns()


def _own_campaign(account: Account, campaign_id: str) -> Campaign:
    """The campaign, if it is this account's in Referral Factory (so ids cannot be guessed across)."""
    for campaign in _rf_campaigns(account):
        if str(campaign.id) == campaign_id:
            return campaign
    raise NotFound(
        f"Referral Factory has no campaign {campaign_id} for this account.", code="campaign_not_found"
    )


class CampaignIntegration(TypedDict):
    configured: bool
    ongoing_sync: bool


class ListedCampaign(TypedDict):
    """A campaign as `GET /v1/campaigns` lists it: Referral Factory's, with its Intercom status."""

    id: int | str | None
    name: str | None
    status: str | None
    intercom: CampaignIntegration


@router.get("/v1/campaigns", security=ACCOUNT_KEY)
def list_campaigns() -> ListEnvelope[ListedCampaign]:
    account = _account()
    store = _campaigns()
    configured = store.configured(account.account_id)
    data: list[ListedCampaign] = []
    for campaign in _rf_campaigns(account):
        cid = str(campaign.id)
        data.append(
            {
                "id": campaign.id,
                "name": campaign.name,
                "status": campaign.status,
                "intercom": {
                    "configured": cid in configured,
                    "ongoing_sync": cid in configured and store.has_ongoing_sync(account.account_id, cid),
                },
            }
        )
    return {"data": data, "next_cursor": None}


@router.get("/v1/campaigns/<campaign_id>/intercom", security=ACCOUNT_KEY)
def get_campaign_settings(campaign_id: str) -> dict[str, Any]:
    account = _account()
    found = _campaigns().get_settings(account.account_id, campaign_id)
    if found is None:
        raise NotFound(f"Campaign {campaign_id} has no Intercom settings yet.", code="settings_missing")
    return found


def _parse_settings(raw: Any) -> CampaignSettings:
    try:
        return CampaignSettings.model_validate(raw)
    except ValidationError as exc:
        details = [field_error(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
        raise ValidationFailed("Invalid campaign settings.", details=details) from exc


@router.put("/v1/campaigns/<campaign_id>/intercom", security=ACCOUNT_KEY)
def put_campaign_settings(campaign_id: str, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    account = _account()
    parsed = _parse_settings(body)
    _own_campaign(account, campaign_id)
    # Validated against the live lists: a cached one could accept an attribute deleted since.
    attributes = _attributes(account, CONTACT, True)
    company_attributes = _attributes(account, COMPANY, True) if names_company_attributes(parsed) else []
    problems = validate(parsed, attributes, company_attributes)
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problem(s) with the campaign's Intercom settings.", details=problems
        )
    stored = parsed.model_dump(mode="json")
    _campaigns().put_settings(account.account_id, campaign_id, stored)
    logger.info(
        "campaign settings saved", extra={"account_id": account.account_id, "campaign_id": campaign_id}
    )
    return stored


@router.delete(
    "/v1/campaigns/<campaign_id>/intercom",
    responses=answers(204, description="The settings are gone and the ongoing sync is off."),
    security=ACCOUNT_KEY,
)
def delete_campaign_settings(campaign_id: str) -> Response[Any]:
    account = _account()
    if not _campaigns().delete_settings(account.account_id, campaign_id):
        raise NotFound(f"Campaign {campaign_id} has no Intercom settings.", code="settings_missing")
    return Response(status_code=204, body="")


@router.post("/v1/campaigns/<campaign_id>/intercom/setup", security=ACCOUNT_KEY)
def setup_campaign(
    campaign_id: str, body: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, list[str]]:
    """Create the custom attributes the settings name and Intercom lacks. The body may carry the
    settings to set up (so attributes can exist before `PUT` validates them); else the stored ones."""
    account = _account()
    _own_campaign(account, campaign_id)
    parsed = _parse_settings(body) if body else _campaigns().settings(account.account_id, campaign_id)
    if parsed is None:
        raise Conflict("Send the settings to set up, or save them first.", code="settings_missing")
    connection, client = _intercom(account)
    created: list[str] = []
    existing: list[str] = []
    problems: list[FieldError] = []
    for model in (CONTACT, COMPANY):
        named = named_attributes(parsed, model)
        if not named:
            continue
        existing_names = {a["full_name"] for a in _attributes(account, model, True)}
        made = 0
        for full_name, data_type in sorted(named.items()):
            if full_name in existing_names:
                existing.append(full_name)
            elif full_name.startswith("custom_attributes."):
                with _upstream(account, "Intercom"):
                    name = full_name.removeprefix("custom_attributes.")
                    client.create_data_attribute(name, data_type, model=model)
                created.append(full_name)
                made += 1
            else:
                message = f"is not a custom attribute and Intercom has no such {model} attribute"
                problems.append(field_error(full_name, message))
        if made:
            _invalidate_attributes(account, connection.workspace_id, model)
    if problems:
        raise ValidationFailed("Some attributes cannot be created.", details=problems)
    return {"created": created, "existing": existing}


# -- the account itself -----------------------------------------------------------------------
class ReferralFactoryKey(BaseModel):
    api_key: str = Field(min_length=1, max_length=500)
    api_base: HttpUrl | None = None


@router.put("/v1/account/referral-factory", security=ACCOUNT_KEY)
def put_referral_factory(body: ReferralFactoryKey) -> dict[str, str]:
    account = _account()
    svc = _services()
    api_base = str(body.api_base or account.rf_api_base or _settings().default_referral_factory_api_base)
    candidate = account.model_copy(
        update={
            "rf_api_key": svc.box.encrypt(body.api_key, account.account_id),
            "rf_api_base": api_base.rstrip("/"),
        }
    )
    try:
        svc.referral_factory_for(candidate).list_campaigns()
    except CredentialsRejected as exc:
        raise ValidationFailed(
            "Referral Factory rejected the key.",
            details=[field_error("api_key", "Referral Factory rejected it")],
        ) from exc
    except UpstreamError as exc:
        raise UpstreamUnavailable(f"Referral Factory could not check the key: {exc.message}") from exc
    svc.accounts.set_referral_factory(account, body.api_key, api_base)
    return {"api_base": api_base.rstrip("/"), "status": "updated"}


class Rotate(BaseModel):
    what: Literal["api_key", "webhook_secret"]


@router.post("/v1/account/rotate", security=ACCOUNT_KEY)
def rotate(body: Rotate) -> dict[str, str]:
    account = _account()
    accounts = _services().accounts
    value = (
        accounts.rotate_api_key(account)
        if body.what == "api_key"
        else accounts.rotate_webhook_secret(account)
    )
    logger.info("credential rotated", extra={"account_id": account.account_id, "what": body.what})
    return {"what": body.what, "value": value}
