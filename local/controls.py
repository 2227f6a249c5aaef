"""Lambda's failures on demand, under `/_local/` on the API port (contract §2): which warm instances
each function has, and killing one as Lambda ends an instance on a timeout or out of memory. Local
stack only; nothing here is in the template."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.requests import Request

    from local.lambda_runtime import FunctionPool


def _error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details or []}}, status)


class LocalControls:
    def __init__(self, pools: Mapping[str, FunctionPool]) -> None:
        self.pools = pools

    def instances(self) -> list[dict[str, Any]]:
        return [
            {"function": name, "pid": pid, "busy": busy}
            for name, pool in sorted(self.pools.items())
            for pid, busy in pool.instances()
        ]

    async def handle(self, request: Request) -> JSONResponse:
        path, method = request.url.path, request.method
        if path == "/_local/instances":
            if method != "GET":
                return _error(405, "method_not_allowed", f"{method} is not allowed on {path}.")
            return JSONResponse({"data": self.instances()})
        if path == "/_local/kill":
            if method != "POST":
                return _error(405, "method_not_allowed", f"{method} is not allowed on {path}.")
            return self._kill(await request.body())
        return _error(404, "not_found", f"No local control at {path}.")

    def _kill(self, raw: bytes) -> JSONResponse:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "malformed_json", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "malformed_body", "The body must be a JSON object.")
        function, busy_only = body.get("function"), body.get("busy_only", False)
        problems = []
        if not isinstance(function, str) or not function:
            problems.append({"field": "function", "message": "is required: a function's logical id"})
        if not isinstance(busy_only, bool):
            problems.append({"field": "busy_only", "message": "must be true or false"})
        if problems or not isinstance(function, str):
            return _error(422, "validation_failed", "Invalid request.", problems)
        pool = self.pools.get(function)
        pid = pool.kill(busy_only) if pool else None
        if pid is None:
            which = "busy instance" if busy_only else "instance"
            return _error(404, "no_instance", f"{function} has no {which} to kill.")
        return JSONResponse({"pid": pid})
