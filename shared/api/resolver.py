"""The REST resolver every API function uses: the contract's error envelope for every error, and
405 for a known path with a wrong method."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shared.domain.errors import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
    field_error,
)
from shared.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.event_handler.types import EventHandlerInstance

    from shared.clients.http import RetryPolicy


# Powertools' router takes no arguments but its constructor is not annotated; typed here, once.
_new_router: Callable[[], APIGatewayRouter] = APIGatewayRouter


def router() -> APIGatewayRouter:
    """A new group of routes, included into a function's resolver."""
    return _new_router()


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=error.envelope(),
        headers=headers,
    )


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status_code,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=headers,
    )


def _field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_response(exc: RequestValidationError) -> Response[Any]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            ApiError("The request body is not valid JSON.", code="malformed_json").with_status(400)
        )
    details = []
    for e in errors:
        message = str(e.get("msg") or e.get("type") or "is invalid")
        if e.get("type") == "missing":
            message = "is required"
        details.append(field_error(_field_path(e.get("loc", ())), message))
    fields = ", ".join(d["field"] for d in details)
    return error_response(
        ApiError(f"Invalid request: {fields}.", code="validation_failed").with_status(422, details)
    )


# Webhook senders keep their own rules (signatures over the raw bytes, form bodies): contract §1.
OWN_BODY_RULES = ("/webhooks/",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_json_media_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def check_json_body(app: APIGatewayRestResolver) -> None:
    """Where JSON is expected, a body of another media type is 415 and one that is not UTF-8 JSON is
    400 `malformed_json` (contract, top). A request without a Content-Type is read as JSON, as most
    clients that send JSON expect."""
    event = app.current_event
    if event.http_method in BODY_METHODS and not event.path.startswith(OWN_BODY_RULES):
        body = raw_body(event.raw_event)
        if body.strip():
            content_type = event.headers.get("content-type") or event.headers.get("Content-Type") or ""
            if content_type and not _is_json_media_type(content_type):
                media = content_type.split(";", 1)[0].strip()
                raise UnsupportedMediaType(f"The body must be application/json, not {media}.")
            try:
                parsed = json.loads(body.decode("utf-8"))
            except ValueError as exc:  # UnicodeDecodeError is a ValueError too
                raise BadRequest("The request body is not valid UTF-8 JSON.", code="malformed_json") from exc
            if parsed is not None and not isinstance(parsed, dict):
                # Every body this API reads is an object (Powertools lets a list through to an optional one).
                raise ValidationFailed(
                    "Invalid request: body.", details=[field_error("body", "must be a JSON object")]
                )


class BodyRulesFirst(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with the body rules checked before it: that middleware is
    always first in a route's stack, and reads a form body as a form and a non-UTF-8 body as an
    exception of its own, so the rules cannot be a middleware after it."""

    def handler(self, app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response[Any]:
        assert isinstance(app, APIGatewayRestResolver)
        check_json_body(app)
        return super().handler(app, next_middleware)


# Powertools' middleware constructor is not annotated; typed here, once.
_new_validation: Callable[[], BodyRulesFirst] = BodyRulesFirst


class ProductResolver(APIGatewayRestResolver):
    """APIGatewayRestResolver with the contract's error handling wired in once."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("enable_validation", True)
        super().__init__(**kwargs)
        # Powertools keeps the request validation middleware it puts first in every route's stack here.
        self._request_validation_middleware = _new_validation()
        self.exception_handler(ApiError)(error_response)
        self.exception_handler(RequestValidationError)(validation_response)
        self.exception_handler(RequestUnsupportedContentType)(self._unsupported_media_type)
        self.exception_handler(NotFoundError)(self._no_route)
        self.exception_handler(ServiceError)(self._service_error)
        self.exception_handler(Exception)(self._unexpected)

    def allowed_methods(self, path: str) -> list[str]:
        """Methods registered for a path that did not match the request's method."""
        routes = self._static_routes + self._dynamic_routes
        return sorted({r.method for r in routes if r.rule.match(path)})

    def _no_route(self, _exc: NotFoundError) -> Response[Any]:
        event = self.current_event
        allowed = self.allowed_methods(event.path)
        if allowed:
            error: ApiError = MethodNotAllowed(f"{event.http_method} is not allowed on {event.path}.")
            return error_response(error, headers={"Allow": ", ".join(allowed)})
        return error_response(NotFound(f"No route for {event.http_method} {event.path}."))

    @staticmethod
    def _unsupported_media_type(_exc: RequestUnsupportedContentType) -> Response[Any]:
        # Reached only for a JSON media type Powertools does not read as JSON (`Application/JSON`).
        return error_response(UnsupportedMediaType("The body must be sent as application/json."))

    @staticmethod
    def _service_error(exc: ServiceError) -> Response[Any]:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return error_response(ApiError(str(exc.msg), code=code).with_status(exc.status_code))

    @staticmethod
    def _unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return error_response(ApiError("Something went wrong on our side; it has been logged."))


def interactive_policy() -> RetryPolicy:
    """The retry policy of an upstream call a person waits on behind API Gateway (the API functions
    time out after 10 s); the clients' module loads with the first call out, not at init."""
    from shared.clients.http import INTERACTIVE_POLICY

    return INTERACTIVE_POLICY


def public_base_url(event: dict[str, Any], configured: str) -> str:
    """The URL callers reach this API at: configured (custom domain, local stack) or the stage URL."""
    if configured:
        return configured.rstrip("/")
    ctx = event.get("requestContext") or {}
    domain = ctx.get("domainName") or (event.get("headers") or {}).get("Host", "localhost")
    stage = ctx.get("stage")
    # A custom domain's base path mapping hides the stage; execute-api URLs carry it.
    if stage and "execute-api" in domain:
        return f"https://{domain}/{stage}"
    return f"https://{domain}"


def raw_body(event: dict[str, Any]) -> bytes:
    """The request body exactly as sent (signatures are computed over these bytes)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def json_object(body: bytes, *, not_json: str, not_json_code: str = "malformed_json") -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why not (`not_json` when it is not JSON at all)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(not_json, code=not_json_code) from exc
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="malformed_body")
    return data
