"""Connecting Intercom workspaces: the OAuth round trip, the connections' states, disconnecting.

An account may connect several workspaces (each connect adds one, or gives one it has a new token); the
single-connection routes (`/v1/intercom/connection`) keep working while it has one and answer 409
`several_workspaces` otherwise; `/v1/intercom/connections` lists them and disconnects one.
"""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, HttpUrl

from shared import settings
from shared.api.docs import ACCOUNT_KEY, HTML, JSON, answers
from shared.api.pagination import ListEnvelope
from shared.api.resolver import interactive_policy, json_response, public_base_url
from shared.api.resolver import router as new_router
from shared.clients.errors import ConnectionRevoked, CredentialsRejected, UpstreamError
from shared.domain.errors import ApiError, BadRequest
from shared.observability import logger, metrics
from shared.records.accounts import Account
from shared.records.connections import (
    CONNECTED,
    Connection,
    Connections,
    ConnectionView,
    WorkspaceInfo,
    WorkspaceNotFound,
    WorkspaceView,
    public_view,
    usable,
    workspace_view,
)
from shared.records.oauth_states import OAuthStates
from shared.wiring import Services, services

router = new_router()
CALLBACK_PATH = "/oauth/intercom/callback"


def _settings() -> settings.OAuthSettings:
    return settings.load(settings.OAuthSettings)


def _services() -> Services:
    return services(_settings())


def _states(svc: Services) -> OAuthStates:
    return OAuthStates(svc.store, svc.app().client_secret.encode())


def _account() -> Account:
    return _services().accounts.authenticate(router.current_event.headers.get("authorization"))


class ConnectRequest(BaseModel):
    return_url: HttpUrl | None = None


class ExchangeFailed(ApiError):
    status = 400
    code = "exchange_failed"


def _page_or_json(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {HTML: {"schema": {"type": "string"}}, JSON: {"schema": {"type": "object"}}},
    }


# The browser lands here from Intercom: a page (JSON with `Accept: application/json`), or a redirect.
CALLBACK_ANSWERS: dict[int, Any] = {
    200: _page_or_json("Connected: a page saying so (the connection as JSON when asked for)."),
    302: {
        "description": "Connected: back to the `return_url` given to connect, with `?status=connected`.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
    400: _page_or_json("Consent denied, no code, or a bad, reused or expired state: nothing stored."),
    409: _page_or_json("The workspace is connected to another account (workspace_connected_elsewhere)."),
    502: _page_or_json("Intercom refused the code or could not be reached: nothing stored."),
}


class ConsentDenied(ApiError):
    status = 400
    code = "access_denied"


class IntercomUnavailable(ApiError):
    status = 502
    code = "intercom_unavailable"


@router.post("/v1/intercom/connect", security=ACCOUNT_KEY)
def connect(body: ConnectRequest | None = None) -> dict[str, str]:
    account = _account()
    svc = _services()
    s = _settings()
    return_url = str(body.return_url) if body and body.return_url else None
    state = _states(svc).issue(account.account_id, return_url)
    redirect_uri = public_base_url(router.current_event.raw_event, s.public_base_url) + CALLBACK_PATH
    query = urlencode({"client_id": svc.app().client_id, "state": state, "redirect_uri": redirect_uri})
    return {"authorize_url": f"{s.intercom_oauth_base.rstrip('/')}/oauth?{query}"}


def _wants_json() -> bool:
    accept = router.current_event.headers.get("accept") or ""
    return "application/json" in accept and "text/html" not in accept


def _page(status: int, title: str, message: str) -> Response[str]:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return Response(status_code=status, content_type=content_types.TEXT_HTML, body=body)


def _failure(error: ApiError) -> Response[Any]:
    logger.info("oauth callback refused", extra={"code": error.code})
    metrics.add_metric(name="OAuthCallbackRefused", unit="Count", value=1)
    if _wants_json():
        return json_response(error.envelope(), status_code=error.status)
    return _page(error.status, "Intercom was not connected", error.message)


def _with_status(url: str, status: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("status", status)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _complete(code: str | None, state: str | None, denied: str | None) -> tuple[Connection, str | None]:
    svc = _services()
    s = _settings()
    # The state is checked (and spent) first: nothing reaches Intercom for a forged or replayed one.
    claim = _states(svc).consume(state)
    if denied:
        raise ConsentDenied("Access to Intercom was not granted, so nothing was connected.")
    if not code:
        raise BadRequest("Intercom sent no authorization code.", code="missing_code")
    app = svc.app()
    from shared.clients.intercom import IntercomClient, exchange_code  # the callback alone calls Intercom

    try:
        token = exchange_code(
            code,
            client_id=app.client_id,
            client_secret=app.client_secret,
            base_url=s.intercom_api_base,
            policy=interactive_policy(),
        )
        workspace = IntercomClient(token, base_url=s.intercom_api_base, policy=interactive_policy()).me()
    except CredentialsRejected as exc:
        raise ExchangeFailed("Intercom refused the authorization code; start connecting again.") from exc
    except UpstreamError as exc:
        raise IntercomUnavailable("Intercom could not be reached to finish connecting; try again.") from exc
    connections = svc.connections()
    connection = connections.connect(
        claim.account_id, WorkspaceInfo(workspace.id, workspace.name, workspace.region), token
    )
    logger.info("intercom connected", extra={"account_id": claim.account_id, "workspace_id": workspace.id})
    metrics.add_metric(name="IntercomConnected", unit="Count", value=1)
    return connection, claim.return_url


@router.get(CALLBACK_PATH, responses=CALLBACK_ANSWERS)
def callback(
    code: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query()] = None,
) -> Response[Any]:
    try:
        connection, return_url = _complete(code, state, error)
    except ApiError as exc:
        return _failure(exc)
    if return_url:
        return Response(status_code=302, headers={"Location": _with_status(return_url, CONNECTED)}, body="")
    view = public_view(connection)
    if _wants_json():
        return json_response(view)
    return _page(
        200, "Intercom connected", f"Workspace {view['workspace_name'] or view['workspace_id']} is connected."
    )


@router.get("/v1/intercom/connection", security=ACCOUNT_KEY)
def get_connection() -> ConnectionView:
    """The account's one workspace (409 `several_workspaces` when it has more)."""
    account = _account()
    return public_view(_services().connections().sole(account.account_id))


@router.delete(
    "/v1/intercom/connection",
    responses=answers(204, description="Disconnected: revoked at Intercom, ongoing syncs off."),
    security=ACCOUNT_KEY,
)
def disconnect() -> Response[Any]:
    """Disconnect the account's one workspace (409 `several_workspaces` when it has more)."""
    account = _account()
    svc = _services()
    connections = svc.connections()
    current = connections.sole(account.account_id)
    if current is not None:
        _disconnect(svc, connections, current)
    return Response(status_code=204, body="")


@router.get("/v1/intercom/connections", security=ACCOUNT_KEY)
def list_connections() -> ListEnvelope[WorkspaceView]:
    """Every workspace the account connected, disconnected ones included, with the campaigns using each."""
    account = _account()
    connections = _services().connections()
    known = connections.all(account.account_id)
    uses: dict[str, list[str]] = {c.workspace_id: [] for c in known}
    for campaign_id, workspace_id in connections.campaign_workspaces(account.account_id).items():
        if workspace_id in uses:
            uses[workspace_id].append(campaign_id)
    return {"data": [workspace_view(c, uses[c.workspace_id]) for c in known], "next_cursor": None}


@router.delete(
    "/v1/intercom/connections/<workspace_id>",
    responses=answers(
        204,
        description="Disconnected: revoked at Intercom, its campaigns' ongoing syncs off and running "
        "ones cancelled; the account's other workspaces keep working.",
    ),
    security=ACCOUNT_KEY,
)
def disconnect_workspace(workspace_id: str) -> Response[Any]:
    account = _account()
    svc = _services()
    connections = svc.connections()
    current = connections.get(account.account_id, workspace_id)
    if current is None:
        raise WorkspaceNotFound(workspace_id)
    _disconnect(svc, connections, current)
    return Response(status_code=204, body="")


def _disconnect(svc: Services, connections: Connections, current: Connection) -> None:
    """Revoke the workspace's token at Intercom (when it still works), then forget it here."""
    if usable(current):
        try:
            svc.intercom_for(current, policy=interactive_policy()).uninstall()
        except ConnectionRevoked:
            pass  # already revoked at Intercom: disconnecting still forgets it here
        except UpstreamError as exc:
            raise IntercomUnavailable(
                "Intercom could not be reached to revoke access; nothing changed."
            ) from exc
    connections.disconnect(current.account_id, current.workspace_id)
