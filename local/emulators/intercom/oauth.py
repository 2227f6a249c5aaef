"""Intercom's OAuth: the consent page, approval or denial, and the code-for-token exchange
(reference §1.2, §1.3)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from local.emulators.intercom.core import error_response

if TYPE_CHECKING:
    from local.emulators.intercom.core import IntercomEmulator
    from local.emulators.intercom.state import Workspace


class OAuthError(Exception):
    """A request Intercom answers with an error page instead of a redirect."""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status)


def _error_page(message: str) -> HTMLResponse:
    return _page(
        "Intercom - error", f"<h1>Something went wrong</h1><p class=error>{html.escape(message)}</p>", 400
    )


def _with_params(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class OAuthFlow:
    def __init__(self, emu: IntercomEmulator) -> None:
        self.emu = emu

    def _check(self, params: Mapping[str, str]) -> tuple[str, Workspace | None]:
        """The redirect target and chosen workspace for an authorization request, or OAuthError."""
        config = self.emu.config
        if params.get("client_id") != config.get("client_id"):
            raise OAuthError("This app could not be found: the client_id is not registered.")
        registered = [str(u) for u in config.get("redirect_uris") or []]
        redirect_uri = params.get("redirect_uri") or (registered[0] if registered else "")
        if not redirect_uri:
            raise OAuthError("No redirect URL is registered for this app.")
        if registered and redirect_uri not in registered:
            raise OAuthError("The redirect_uri is not one of the app's registered redirect URLs.")
        workspaces = self.emu.state.workspaces
        chosen = params.get("workspace")
        if chosen:
            if chosen not in workspaces:
                raise OAuthError(f"Workspace '{chosen}' does not exist.")
            return redirect_uri, workspaces[chosen]
        if len(workspaces) == 1:
            return redirect_uri, next(iter(workspaces.values()))
        if not workspaces:
            raise OAuthError("There is no workspace to install this app into.")
        return redirect_uri, None

    def _approve(self, redirect_uri: str, ws: Workspace, state: str | None) -> Response:
        code = self.emu.state.issue_code(ws.id_code, str(self.emu.config["client_id"]))
        params = {"code": code}
        if state is not None:
            params["state"] = state
        return RedirectResponse(_with_params(redirect_uri, params), status_code=302)

    @staticmethod
    def _deny(redirect_uri: str, state: str | None) -> Response:
        params = {"error": "access_denied", "error_description": "The user denied access to your app"}
        if state is not None:
            params["state"] = state
        return RedirectResponse(_with_params(redirect_uri, params), status_code=302)

    async def consent(self, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            redirect_uri, ws = self._check(params)
        except OAuthError as exc:
            return _error_page(str(exc))
        if params.get("auto_approve", "").lower() in ("true", "1", "yes"):
            if ws is None:
                return _error_page("auto_approve needs a workspace= parameter when several workspaces exist.")
            return self._approve(redirect_uri, ws, params.get("state"))
        return self._consent_page(params, redirect_uri, ws)

    def _consent_page(self, params: Mapping[str, str], redirect_uri: str, ws: Workspace | None) -> Response:
        hidden = {"client_id": params.get("client_id", ""), "redirect_uri": redirect_uri}
        if "state" in params:
            hidden["state"] = params["state"]
        fields = "".join(
            f'<input type=hidden name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in hidden.items()
        )
        if ws is not None:
            fields += f'<input type=hidden name="workspace" value="{html.escape(ws.id_code)}">'
            target = f"<p>Workspace: <strong>{html.escape(ws.name)}</strong></p>"
        else:
            options = "".join(
                f'<option value="{html.escape(w.id_code)}">{html.escape(w.name)}</option>'
                for w in self.emu.state.workspaces.values()
            )
            target = f'<label>Workspace <select name="workspace">{options}</select></label>'
        cancel = "/oauth/authorize?" + urlencode({**hidden, "decision": "deny"})
        body = (
            "<h1>Connect to Intercom</h1>"
            "<p>This app would like to access your Intercom data: read and write users, "
            "read and write data attributes, read admins.</p>"
            '<form method="post" action="/oauth/authorize">'
            f"{fields}{target}"
            '<button type="submit" name="decision" value="approve" id="authorize">Authorize access</button> '
            '<button type="submit" name="decision" value="deny" id="deny">Deny access</button>'
            "</form>"
            f'<p><a href="{html.escape(cancel)}" id="cancel">Cancel</a></p>'
        )
        return _page("Intercom - Authorize access", body)

    async def decide(self, request: Request) -> Response:
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            params = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
        try:
            redirect_uri, ws = self._check(params)
        except OAuthError as exc:
            return _error_page(str(exc))
        state = params.get("state")
        if params.get("decision") != "approve" or request.method == "GET":
            return self._deny(redirect_uri, state)
        if ws is None:
            return _error_page("Choose a workspace to install this app into.")
        return self._approve(redirect_uri, ws, state)

    async def token(self, request: Request) -> Response:
        raw = await request.body()
        data: dict[str, str] = dict(request.query_params)
        if "json" in request.headers.get("content-type", ""):
            try:
                parsed = json.loads(raw or b"{}")
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return error_response(400, "parameter_invalid", "The request body is not valid JSON")
            data.update({k: str(v) for k, v in parsed.items() if v is not None})
        else:
            data.update(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        config = self.emu.config
        if data.get("client_id") != config.get("client_id") or data.get("client_secret") != config.get(
            "client_secret"
        ):
            return error_response(401, "unauthorized", "Unauthorized Client")
        token = self.emu.state.redeem_code(data.get("code", ""), str(config["client_id"]))
        if token is None:
            # What Intercom answers when the code's trailing "=" was dropped (reference §1.3).
            return error_response(401, "unauthorized", "Unauthorized Code")
        return JSONResponse({"token_type": "Bearer", "token": token, "access_token": token})


def oauth_routes(emu: IntercomEmulator) -> list[Route]:
    flow = OAuthFlow(emu)
    return [
        Route("/oauth", flow.consent, methods=["GET"]),
        Route("/oauth/authorize", flow.decide, methods=["GET", "POST"]),
        Route("/auth/eagle/token", flow.token, methods=["POST"]),
    ]
