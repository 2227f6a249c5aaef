"""The account API: Intercom attributes and segments (of the workspace a request names, or the
account's only one), the account's campaigns and their Intercom settings (each bound to a workspace),
setup of missing attributes, the Referral Factory key, and key rotation (its referrals:
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

from shared import keys, messages, settings
from shared.api.docs import ACCOUNT_KEY, answers
from shared.api.pagination import ListEnvelope
from shared.api.resolver import interactive_policy, json_response
from shared.api.resolver import router as new_router
from shared.api.routes.operator import RfApiKey
from shared.aws import queues
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
from shared.records.connections import REVOKED, AccessRevoked, Connection
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


# `?workspace_id=` of the attribute and segment routes: required when the account has several.
WorkspaceQuery = Annotated[str | None, Query(min_length=1, max_length=200)]


def _connection(account: Account, workspace_id: str | None) -> Connection:
    """The workspace the request names, or the account's only one (`Connections.chosen`), usable."""
    connection = _services().connections().chosen(account.account_id, workspace_id)
    if connection.status == REVOKED:
        raise AccessRevoked
    return connection


@contextmanager
def _upstream(account: Account, service: str, connection: Connection | None = None) -> Iterator[None]:
    """Intercom's and Referral Factory's failures as the caller should see them."""
    try:
        yield
    except ConnectionRevoked as exc:
        if connection is not None:
            _services().connections().revoked_by_intercom(account.account_id, connection.workspace_id)
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


def _intercom(account: Account, workspace_id: str | None) -> tuple[Connection, IntercomClient]:
    connection = _connection(account, workspace_id)
    return connection, _services().intercom_for(connection, policy=interactive_policy())


# -- cached lists ------------------------------------------------------------------------------
class Segment(TypedDict):
    """An Intercom segment as `GET /v1/intercom/segments` lists it."""

    id: str | None
    name: str | None
    person_type: str | None
    count: int | None


Listed = TypeVar("Listed", Attribute, Segment)


def _cached(
    account: Account,
    workspace_id: str | None,
    name: str,
    refresh: bool,
    load: Callable[[IntercomClient], list[Listed]],
) -> list[Listed]:
    """The workspace's list `name` as last loaded (for CACHE_MAX_AGE_S), or loaded now and kept."""
    connection, client = _intercom(account, workspace_id)
    store = _services().store
    pk, sk = keys.cache_key(account.account_id, name, connection.workspace_id)
    now = int(time.time())
    if not refresh:
        item = store.get(pk, sk, consistent=False)
        if item and now - item["fetched_at"] < CACHE_MAX_AGE_S:
            return list(item["data"])
    with _upstream(account, "Intercom", connection):
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


def _attributes(account: Account, workspace_id: str | None, model: str, refresh: bool) -> list[Attribute]:
    name, load = _ATTRIBUTE_LISTS[model]
    return _cached(account, workspace_id, name, refresh, load)


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
    refresh: Annotated[bool, Query()] = False,
    model: Annotated[ObjectKind, Query()] = CONTACT,
    workspace_id: WorkspaceQuery = None,
) -> ListEnvelope[Attribute]:
    """The contact's data attributes, or with `model=company` the company's, of the workspace named
    (required when the account has several)."""
    return {"data": _attributes(_account(), workspace_id, model, refresh), "next_cursor": None}


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
def create_attribute(body: NewAttribute, workspace_id: WorkspaceQuery = None) -> Response[Attribute]:
    account = _account()
    if (body.data_type == "options") != bool(body.options):
        raise ValidationFailed(
            "Invalid request: options.",
            details=[
                field_error("options", "a list attribute needs at least two options; other types take none")
            ],
        )
    connection, client = _intercom(account, workspace_id)
    with _upstream(account, "Intercom", connection):
        created = client.create_data_attribute(
            body.name, body.data_type, model=body.model, description=body.description, options=body.options
        )
    _invalidate_attributes(account, connection.workspace_id, body.model)
    return json_response(created.view(), status_code=201)


@router.get("/v1/intercom/segments", security=ACCOUNT_KEY)
def list_segments(
    refresh: Annotated[bool, Query()] = False, workspace_id: WorkspaceQuery = None
) -> ListEnvelope[Segment]:
    segments = _cached(_account(), workspace_id, "segments", refresh, _load_segments)
    return {"data": segments, "next_cursor": None}


# -- campaigns -----------------------------------------------------------------------------------
def _campaigns() -> CampaignStore:
    return CampaignStore(_services().store)


def _rf_campaigns(account: Account) -> list[Campaign]:
    with _upstream(account, "Referral Factory"):
        return _services().referral_factory_for(account, policy=interactive_policy()).list_campaigns()


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
    # The Intercom workspace a configured campaign uses (None when not configured).
    workspace_id: str | None


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
    configured = _services().connections().campaign_workspaces(account.account_id)
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
                    "workspace_id": configured.get(cid),
                },
            }
        )
    return {"data": data, "next_cursor": None}


@router.get("/v1/campaigns/<campaign_id>/intercom", security=ACCOUNT_KEY)
def get_campaign_settings(campaign_id: str) -> dict[str, Any]:
    """The settings as saved, with the workspace the campaign uses."""
    account = _account()
    found = _campaigns().get_settings(account.account_id, campaign_id)
    if found is None:
        raise NotFound(f"Campaign {campaign_id} has no Intercom settings yet.", code="settings_missing")
    workspace_id = _services().connections().workspace_of(account.account_id, campaign_id)
    return {"workspace_id": workspace_id, **found}


def _parse_settings(raw: Any) -> CampaignSettings:
    try:
        return CampaignSettings.model_validate(raw)
    except ValidationError as exc:
        details = [field_error(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
        raise ValidationFailed("Invalid campaign settings.", details=details) from exc


@router.put("/v1/campaigns/<campaign_id>/intercom", security=ACCOUNT_KEY)
def put_campaign_settings(campaign_id: str, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Save the settings, validated against the attributes of the campaign's workspace (`workspace_id`,
    required when the account has several; the campaign is bound to it)."""
    account = _account()
    parsed = _parse_settings(body)
    _own_campaign(account, campaign_id)
    workspace_id = _connection(account, parsed.workspace_id).workspace_id
    previous = _rebinding(account, campaign_id, workspace_id)
    # Validated against the live lists: a cached one could accept an attribute deleted since.
    attributes = _attributes(account, workspace_id, CONTACT, True)
    company_attributes = (
        _attributes(account, workspace_id, COMPANY, True) if names_company_attributes(parsed) else []
    )
    problems = validate(parsed, attributes, company_attributes)
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problem(s) with the campaign's Intercom settings.", details=problems
        )
    stored = parsed.model_dump(mode="json") | {"workspace_id": workspace_id}
    campaigns = _campaigns()
    campaigns.put_settings(account.account_id, campaign_id, stored, workspace_id)
    if previous is not None:
        _moved(account, campaign_id, previous, workspace_id)
    logger.info(
        "campaign settings saved",
        extra={"account_id": account.account_id, "campaign_id": campaign_id, "workspace_id": workspace_id},
    )
    return stored


def _rebinding(account: Account, campaign_id: str, workspace_id: str) -> str | None:
    """The workspace the campaign moves away from when its settings now name another (None when it
    does not move); 409 `sync_in_progress` while one of its syncs runs in the old one."""
    svc = _services()
    if _campaigns().get(account.account_id, campaign_id) is None:
        return None
    current = svc.connections().workspace_of(account.account_id, campaign_id)
    if current in (None, workspace_id):
        return None
    from shared.records.syncs import SyncInProgress, Syncs  # only a move loads the syncs' records

    running = Syncs(svc.store).running_for(account.account_id, campaign_id)
    if running:
        raise SyncInProgress(
            f"Sync {running} is running for this campaign in workspace {current}; wait for it or cancel "
            "it before moving the campaign to another workspace."
        )
    return current


def _moved(account: Account, campaign_id: str, previous: str, workspace_id: str) -> None:
    """The campaign now uses another workspace: its ongoing sync (whose audience and segment were the
    old workspace's) is turned off, and its signups waiting for the old workspace are looked at again
    (the push records them `not_pushed`, saying the campaign's workspace changed)."""
    from shared.records.referrals import Referrals  # only a move loads the referrals' records

    _campaigns().turn_ongoing_sync_off(account.account_id, campaign_id)
    waiting = [
        r
        for r in Referrals(_services().store).waiting_for_connection(account.account_id)
        if r.campaign_id == campaign_id
    ]
    queues.send_batch(
        _settings().signup_queue_url,
        [
            messages.RfWebhook(
                account_id=account.account_id,
                event="user.join",
                rf_user_id=r.rf_user_id,
                campaign_id=campaign_id,
                via="workspace_changed",
            ).body()
            for r in waiting
        ],
    )
    logger.info(
        "campaign moved to another workspace",
        extra={
            "account_id": account.account_id,
            "campaign_id": campaign_id,
            "from": previous,
            "to": workspace_id,
            "waiting": len(waiting),
        },
    )


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
    chosen = parsed.workspace_id if body else None
    if chosen is None and _campaigns().get(account.account_id, campaign_id) is not None:
        # Saved settings: their campaign's workspace.
        chosen = _services().connections().workspace_of(account.account_id, campaign_id)
    connection, client = _intercom(account, chosen)
    workspace_id = connection.workspace_id
    created: list[str] = []
    existing: list[str] = []
    problems: list[FieldError] = []
    for model in (CONTACT, COMPANY):
        named = named_attributes(parsed, model)
        if not named:
            continue
        existing_names = {a["full_name"] for a in _attributes(account, workspace_id, model, True)}
        made = 0
        for full_name, data_type in sorted(named.items()):
            if full_name in existing_names:
                existing.append(full_name)
            elif full_name.startswith("custom_attributes."):
                with _upstream(account, "Intercom", connection):
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
    api_key: RfApiKey
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
        svc.referral_factory_for(candidate, policy=interactive_policy()).list_campaigns()
    except CredentialsRejected as exc:
        raise ValidationFailed(
            "Referral Factory rejected the key.",
            details=[field_error("api_key", "Referral Factory rejected it")],
        ) from exc
    except UpstreamError as exc:
        if body.api_base is not None and exc.status is None:
            # Nothing answers at the address the caller gave: theirs to correct, not our outage.
            raise ValidationFailed(
                "Referral Factory could not be reached at api_base.",
                details=[field_error("api_base", f"nothing answered there ({exc.message})")],
            ) from exc
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
