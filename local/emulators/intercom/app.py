"""The Intercom emulator as one Starlette app: Intercom's real paths plus the `/_emulator/` control
surface, wrapped in the shared stats-and-faults middleware."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from local.emulators.common import FaultsAndStatsMiddleware
from local.emulators.intercom.api import api_routes
from local.emulators.intercom.control import control_routes
from local.emulators.intercom.core import IntercomEmulator, error_response
from local.emulators.intercom.oauth import oauth_routes


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
        )
    return error_response(status, "not_found", "Resource Not Found")


def create_app(config: Mapping[str, Any] | None = None) -> Starlette:
    """A fresh emulator; its state is `app.state.emulator` (an `IntercomEmulator`)."""
    emu = IntercomEmulator(config)
    routes = [*oauth_routes(emu), *api_routes(emu), *control_routes(emu)]
    routing = SimpleNamespace(routes=routes)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                FaultsAndStatsMiddleware,
                stats=lambda: emu.stats,
                faults=lambda: emu.config.get("faults") or {},
                error_body=error_response,
                routes_app=lambda: routing,
            )
        ],
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.emulator = emu
    return app
