"""Starting, tracking and cancelling contact syncs; a campaign's ongoing sync: shown, on, off."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field, model_validator

from shared import keys, settings
from shared.api.docs import ACCOUNT_KEY, answers
from shared.api.pagination import decode_cursor, page
from shared.api.resolver import interactive_policy, json_response
from shared.api.resolver import router as new_router
from shared.aws import queues
from shared.clients.errors import CredentialsRejected, UpstreamError
from shared.domain.errors import ApiError, Conflict, NotFound
from shared.flows.sync import MIN_ONGOING_INTERVAL_S, ONGOING_INTERVAL_S, Engine, ongoing_view
from shared.records.accounts import Account
from shared.records.campaigns import CampaignStore
from shared.records.connections import NotConnected, usable
from shared.records.syncs import CANCELLED, PAUSED, QUEUED, RUNNING, Sync, public_view
from shared.wiring import Services, services

router = new_router()


def _settings() -> settings.ContactSyncSettings:
    return settings.load(settings.ContactSyncSettings)


def _services() -> Services:
    return services(_settings())


def _engine() -> Engine:
    return Engine(_services(), _settings(), queues)


def _account() -> Account:
    return _services().accounts.authenticate(router.current_event.headers.get("authorization"))


class UpstreamUnavailable(ApiError):
    status = 502
    code = "upstream_unavailable"


def _own_campaign(account: Account, campaign_id: str) -> None:
    """404 `campaign_not_found` unless the campaign is the account's: one it saved settings for, or
    else one Referral Factory lists for its key (so another account's campaign ids lead nowhere)."""
    svc = _services()
    if CampaignStore(svc.store).get(account.account_id, campaign_id) is not None:
        return
    try:
        campaigns = svc.referral_factory_for(account, policy=interactive_policy()).list_campaigns()
    except CredentialsRejected as exc:
        raise Conflict(
            "Referral Factory rejected the account's credentials.", code="upstream_unauthorized"
        ) from exc
    except UpstreamError as exc:
        raise UpstreamUnavailable(f"Referral Factory could not answer: {exc.message}") from exc
    if not any(str(c.id) == campaign_id for c in campaigns):
        raise NotFound(
            f"Referral Factory has no campaign {campaign_id} for this account.", code="campaign_not_found"
        )


class _Audience(BaseModel):
    audience: Literal["leads", "users", "all", "segment"]
    segment_id: str | None = None

    @model_validator(mode="after")
    def _segment(self) -> _Audience:
        if (self.audience == "segment") != bool(self.segment_id):
            raise ValueError("segment_id is required for the segment audience, and only for it")
        return self


class StartSync(_Audience):
    ongoing: bool = False


class TurnOngoingOn(_Audience):
    interval_s: int = Field(ONGOING_INTERVAL_S, ge=MIN_ONGOING_INTERVAL_S)


def _ready_to_sync(account: Account, campaign_id: str) -> None:
    """What a sync, or an ongoing one, needs: the campaign's workspace connected and its sync settings."""
    _own_campaign(account, campaign_id)
    svc = _services()
    connection = svc.connections().for_campaign(account.account_id, campaign_id)
    if not usable(connection):
        raise NotConnected(
            f"Campaign {campaign_id}'s Intercom workspace is not connected; connect it "
            "(POST /v1/intercom/connect), or bind the campaign to a connected one."
        )
    campaign = CampaignStore(svc.store).settings(account.account_id, campaign_id)
    if campaign is None or campaign.sync is None:
        raise Conflict(
            f"Campaign {campaign_id} has no sync settings; PUT /v1/campaigns/{campaign_id}/intercom first.",
            code="settings_missing",
        )


@router.post(
    "/v1/campaigns/<campaign_id>/syncs",
    responses=answers(202, description="The sync is queued: `{sync_id, status}`."),
    security=ACCOUNT_KEY,
)
def start_sync(campaign_id: str, body: StartSync) -> Response[dict[str, Any]]:
    account = _account()
    _ready_to_sync(account, campaign_id)
    sync = _engine().start(
        account.account_id,
        campaign_id,
        audience=body.audience,
        segment_id=body.segment_id,
        ongoing=body.ongoing,
        trigger="manual",
    )
    return json_response({"sync_id": sync.sync_id, "status": QUEUED}, status_code=202)


@router.get("/v1/campaigns/<campaign_id>/syncs", security=ACCOUNT_KEY)
def list_syncs(
    campaign_id: str,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    account = _account()
    _own_campaign(account, campaign_id)
    start = decode_cursor(
        cursor, partition=keys.campaign_syncs_key(account.account_id, campaign_id), partition_key="gsi1pk"
    )
    items, last = _engine().syncs.for_campaign(account.account_id, campaign_id, limit=limit, start_key=start)
    return page([public_view(i) for i in items], last)


@router.get("/v1/campaigns/<campaign_id>/syncs/ongoing", security=ACCOUNT_KEY)
def get_ongoing(campaign_id: str) -> dict[str, Any]:
    account = _account()
    _own_campaign(account, campaign_id)
    return ongoing_view(_engine().ongoing(account.account_id, campaign_id))


@router.put("/v1/campaigns/<campaign_id>/syncs/ongoing", security=ACCOUNT_KEY)
def turn_ongoing_on(campaign_id: str, body: TurnOngoingOn) -> dict[str, Any]:
    """On, or a new audience or interval, without a pass now (`Engine.turn_ongoing_on`)."""
    account = _account()
    _ready_to_sync(account, campaign_id)
    due = _engine().turn_ongoing_on(
        account.account_id, campaign_id, body.audience, body.segment_id, body.interval_s
    )
    return ongoing_view(due)


@router.delete(
    "/v1/campaigns/<campaign_id>/syncs/ongoing",
    responses=answers(204, description="The ongoing sync is off."),
    security=ACCOUNT_KEY,
)
def stop_ongoing(campaign_id: str) -> Response[Any]:
    account = _account()
    _own_campaign(account, campaign_id)
    CampaignStore(_services().store).turn_ongoing_sync_off(account.account_id, campaign_id)
    return Response(status_code=204, body="")


def _own_sync(sync_id: str) -> Sync:
    account = _account()
    sync = _engine().syncs.get(sync_id)
    if sync is None or sync.account_id != account.account_id:
        raise NotFound(f"No sync {sync_id}.", code="sync_not_found")
    return sync


@router.get("/v1/syncs/<sync_id>", security=ACCOUNT_KEY)
def get_sync(sync_id: str) -> dict[str, Any]:
    return public_view(_own_sync(sync_id))


@router.post(
    "/v1/syncs/<sync_id>/cancel",
    responses=answers(202, description="The sync is stopping: the sync as it is now."),
    security=ACCOUNT_KEY,
)
def cancel_sync(sync_id: str) -> Response[dict[str, Any]]:
    sync = _own_sync(sync_id)
    syncs = _engine().syncs
    if not syncs.set_status(sync, CANCELLED, only_from=(QUEUED, RUNNING, PAUSED)):
        raise Conflict(
            f"Sync {sync_id} is {sync.status}; only a queued, running or paused sync stops.",
            code="sync_not_running",
        )
    return json_response(public_view(syncs.get(sync_id) or sync), status_code=202)


__all__ = ["RUNNING", "router"]
