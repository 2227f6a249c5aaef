"""API Gateway (REST API, Lambda proxy integration) in front of the real handlers.

An HTTP request becomes the proxy event API Gateway would send: the resource matched as API Gateway
matches it (a literal segment beats `{param}`, which beats `{proxy+}`), path parameters, last-value
and multi-value query string parameters and headers, the body as text or base64, and a
`requestContext`. The function's proxy result becomes the HTTP response. What API Gateway answers
itself (no resource or method: MISSING_AUTHENTICATION_TOKEN; a function error or a malformed result:
502; throttling; an oversized body) goes through the template's `GatewayResponses`, rendered with
the same variable substitution API Gateway applies.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from local.lambda_runtime import ACCOUNT_ID, FunctionError, PoolClosed

# The local stack's own controls (local/controls.py), answered before anything API Gateway decides.
LOCAL_CONTROLS = "/_local/"

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from starlette.types import Receive, Scope, Send

    from local import template as tmpl
    from local.controls import LocalControls

log = logging.getLogger("local.apigw")

STAGE = "local"
API_ID = "local"
MAX_BODY_BYTES = 10 * 1024 * 1024

# API Gateway's own defaults for the responses it generates.
_DEFAULT_STATUS = {
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "THROTTLED": 429,
    "REQUEST_TOO_LARGE": 413,
    "INTEGRATION_TIMEOUT": 504,
    "ACCESS_DENIED": 403,
    "UNAUTHORIZED": 401,
}
_ERROR_TYPES = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "THROTTLED": "TooManyRequestsException",
    "REQUEST_TOO_LARGE": "RequestTooLargeException",
    "INTEGRATION_TIMEOUT": "InternalServerErrorException",
    "DEFAULT_5XX": "InternalServerErrorException",
}
_DEFAULT_TEMPLATE = '{"message":$context.error.messageString}'
_VARIABLE = re.compile(r"\$(?:\{context\.([A-Za-z.]+)\}|context\.([A-Za-z.]+))")


@dataclass(frozen=True)
class ApiRoute:
    path: str  # template form: /v1/syncs/{sync_id}
    method: str  # ANY or a verb
    function: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    rank: tuple[int, ...]  # per segment: 0 literal, 1 {param}, 2 {proxy+}

    @classmethod
    def of(cls, path: str, method: str, function: str) -> ApiRoute:
        regex, params, rank = "", [], []
        for segment in path.strip("/").split("/") if path.strip("/") else []:
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            param = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                regex += f"/(?P<{greedy[1]}>.+)"
                params.append(greedy[1])
                rank.append(2)
            elif param:
                regex += f"/(?P<{param[1]}>[^/]+)"
                params.append(param[1])
                rank.append(1)
            else:
                regex += "/" + re.escape(segment)
                rank.append(0)
        return cls(path, method.upper(), function, re.compile(f"{regex or '/'}"), tuple(params), tuple(rank))


class Router:
    """Resources and methods as API Gateway resolves them."""

    def __init__(self, routes: list[ApiRoute]) -> None:
        self.routes = routes

    @classmethod
    def from_functions(cls, functions: Mapping[str, tmpl.Function]) -> Router:
        return cls(
            [ApiRoute.of(r.path, r.method, r.function) for fn in functions.values() for r in fn.routes]
        )

    def match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        path = path.rstrip("/") or "/"
        candidates = [(r, m) for r in self.routes if (m := r.pattern.fullmatch(path))]
        if not candidates:
            return None
        best = min(r.rank for r, _ in candidates)
        on_resource = [(r, m) for r, m in candidates if r.rank == best]
        for verb in (method.upper(), "ANY"):
            for route, found in on_resource:
                if route.method == verb:
                    return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None


@dataclass
class GatewayResponses:
    """The RestApi's `GatewayResponses`, falling back like API Gateway: the type, then DEFAULT_4XX or
    DEFAULT_5XX by status, then API Gateway's own `{"message": ...}`."""

    configured: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> GatewayResponses:
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == "AWS::Serverless::Api":
                return cls(dict((resource.get("Properties") or {}).get("GatewayResponses") or {}))
        return cls()

    def render(
        self, response_type: str, message: str, request_id: str, default_status: int | None = None
    ) -> Response:
        status = default_status or _DEFAULT_STATUS.get(response_type, 500)
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        chosen = self.configured.get(response_type) or self.configured.get(family) or {}
        status = int(chosen.get("StatusCode") or status)
        body_template = (chosen.get("ResponseTemplates") or {}).get("application/json", _DEFAULT_TEMPLATE)
        values = {
            "error.message": message,
            "error.messageString": json.dumps(message),
            "error.responseType": response_type,
            "requestId": request_id,
            "stage": STAGE,
            "apiId": API_ID,
        }
        body = _VARIABLE.sub(lambda m: values.get(m[1] or m[2], ""), body_template)
        headers = {
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": _ERROR_TYPES.get(response_type, response_type),
        }
        for name, value in ((chosen.get("ResponseParameters") or {}).get("Headers") or {}).items():
            headers[name] = str(value).strip("'")
        return Response(body, status_code=status, headers=headers, media_type="application/json")


class TokenBucket:
    """The stage's throttle (`MethodSettings` rate and burst): past it, THROTTLED."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> TokenBucket | None:
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") != "AWS::Serverless::Api":
                continue
            for setting in (resource.get("Properties") or {}).get("MethodSettings") or []:
                if setting.get("ThrottlingRateLimit") is not None:
                    return cls(
                        float(setting["ThrottlingRateLimit"]), int(setting.get("ThrottlingBurstLimit", 1))
                    )
        return None


def _canonical(name: str) -> str:
    """HTTP/1.1 servers hand header names over lowercased; API Gateway passes the client's spelling,
    which for every common client is this one (Content-Type, X-Hub-Signature)."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def _or_none(values: dict[str, Any]) -> dict[str, Any] | None:
    return values or None


def build_event(
    request: Request, body: bytes, route: ApiRoute, params: dict[str, str], request_id: str
) -> dict[str, Any]:
    multi_headers: dict[str, list[str]] = {}
    for raw_name, raw_value in request.scope["headers"]:
        multi_headers.setdefault(_canonical(raw_name.decode("latin-1")), []).append(
            raw_value.decode("latin-1")
        )
    client_ip = request.client.host if request.client else "127.0.0.1"
    server_port = str(request.url.port or 80)
    trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    for name, value in (
        ("X-Forwarded-For", client_ip),
        ("X-Forwarded-Port", server_port),
        ("X-Forwarded-Proto", request.url.scheme),
        ("X-Amzn-Trace-Id", trace_id),
    ):
        multi_headers.setdefault(name, [value])
    multi_query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        multi_query.setdefault(key, []).append(value)
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    host = multi_headers.get("Host", ["127.0.0.1"])[-1]
    return {
        "resource": route.path,
        "path": request.url.path,
        "httpMethod": request.method,
        "headers": _or_none({k: v[-1] for k, v in multi_headers.items()}),
        "multiValueHeaders": _or_none(multi_headers),
        "queryStringParameters": _or_none({k: v[-1] for k, v in multi_query.items()}),
        "multiValueQueryStringParameters": _or_none(multi_query),
        "pathParameters": _or_none(params),
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "extendedRequestId": request_id[:16],
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": client_ip,
                "user": None,
                "userAgent": multi_headers.get("User-Agent", [None])[-1],
                "userArn": None,
            },
            # The local URL has no stage prefix, like a custom domain mapped to the stage.
            "path": request.url.path,
            "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": format(abs(hash(route.path)) % 0xFFFFFF, "06x"),
            "resourcePath": route.path,
            "stage": STAGE,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class MalformedResult(Exception):
    pass


def build_response(result: Any, request_id: str) -> Response:
    """The proxy result as API Gateway turns it into HTTP; anything else is a malformed result."""
    if not isinstance(result, dict):
        raise MalformedResult(f"result is {type(result).__name__}, not an object")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResult(f"statusCode {status!r} is not an HTTP status")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedResult("body is not a string")
    content = b""
    if body:
        if result.get("isBase64Encoded"):
            try:
                content = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MalformedResult("isBase64Encoded body is not base64") from exc
        else:
            content = body.encode("utf-8")
    response = Response(content, status_code=status)
    pairs: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise MalformedResult("headers are not objects")
    for name, values in multi.items():
        pairs.extend((name, str(v)) for v in (values if isinstance(values, list) else [values]))
    # API Gateway merges the two maps; a name in both keeps its multi-value list.
    lowered = {name.lower() for name in multi}
    pairs.extend((name, str(value)) for name, value in single.items() if name.lower() not in lowered)
    # API Gateway sets the framing headers itself; a function's own would contradict the body.
    framing = {"content-length", "transfer-encoding", "connection"}
    response.raw_headers = [
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs if k.lower() not in framing),
        (b"content-length", str(len(content)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
    ]
    return response


class RestApiAdapter:
    """The ASGI app: one catch-all, everything else decided the way API Gateway decides it."""

    def __init__(
        self,
        router: Router,
        invoke: Callable[[str, dict[str, Any]], Any],
        gateway: GatewayResponses,
        throttle: TokenBucket | None = None,
        *,
        max_concurrent: int = 64,
        controls: LocalControls | None = None,
    ) -> None:
        self.router = router
        self.controls = controls
        self.invoke = invoke
        self.gateway = gateway
        self.throttle = throttle
        # Each invocation blocks a thread while its instance works; anyio's default of 40 would
        # serialise a burst long before the functions' own concurrency does.
        self._limiter = anyio.CapacityLimiter(max_concurrent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        try:
            response = await self._handle(Request(scope, receive), request_id)
        except Exception:
            # Never an adapter error page: whatever goes wrong here is API Gateway's 5XX.
            log.exception("adapter error")
            response = self.gateway.render("DEFAULT_5XX", "Internal server error", request_id, 500)
        await response(scope, receive, send)

    async def _handle(self, request: Request, request_id: str) -> Response:
        """What API Gateway decides before the integration: throttle, resource and method, size."""
        if self.controls and request.url.path.startswith(LOCAL_CONTROLS):
            return await self.controls.handle(request)
        if self.throttle and not self.throttle.take():
            return self.gateway.render("THROTTLED", "Too Many Requests", request_id)
        matched = self.router.match(request.method, request.url.path)
        if matched is None:
            return self.gateway.render(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", request_id
            )
        route, params = matched
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return self.gateway.render("REQUEST_TOO_LARGE", "Request Too Long", request_id)
        return await self._integrate(build_event(request, body, route, params, request_id), route, request_id)

    async def _integrate(self, event: dict[str, Any], route: ApiRoute, request_id: str) -> Response:
        """The Lambda proxy integration: invoke, then the function's result or a 5XX."""
        started = time.perf_counter()
        try:
            result = await anyio.to_thread.run_sync(self.invoke, route.function, event, limiter=self._limiter)
            response = build_response(result, request_id)
        except FunctionError as exc:
            log.warning("%s failed: %s: %s", route.function, exc.error_type, exc.message)
            return self.gateway.render("DEFAULT_5XX", "Internal server error", request_id, 502)
        except MalformedResult as exc:
            log.warning("%s: malformed Lambda proxy response: %s", route.function, exc)
            return self.gateway.render("DEFAULT_5XX", "Internal server error", request_id, 502)
        except PoolClosed:
            return self.gateway.render("DEFAULT_5XX", "Service Unavailable", request_id, 503)
        log.debug(
            "%s %s -> %s %s (%.0f ms)",
            event["httpMethod"],
            event["path"],
            route.function,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response
