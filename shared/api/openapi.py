"""`GET /openapi.json`: the product API's OpenAPI 3.1 document, generated from the routes themselves.

Every route module is included into one resolver and Powertools generates the document from the
routes' signatures (path and query parameters, request models, the answers their decorators declare,
`shared/api/docs.py`). Then one rule is applied to every operation, because it is one rule in the code
too (`ProductResolver`): every 4xx and 5xx is the error envelope. Built once per process, on the first
request for it, so no API function imports the other functions' routes at cold start.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from shared import caches
from shared.records.accounts import WEBHOOK_HEADER_NAME

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme

# Every module whose routes the API serves, in the order the README lists the API.
ROUTE_MODULES = (
    "shared.api.routes.operator",
    "shared.api.routes.connect",
    "shared.api.routes.account",
    "shared.api.routes.syncs",
    "shared.api.routes.referrals",
    "shared.api.routes.intercom_webhooks",
    "shared.api.routes.rf_webhooks",
)
TITLE = "Referral Factory ↔ Intercom integration"
VERSION = "2"


def _header(name: str, description: str) -> APIKey:
    return APIKey.model_validate({"in": APIKeyIn.header, "name": name, "description": description})


def security_schemes() -> dict[str, SecurityScheme]:
    return {
        "accountKey": HTTPBearer(
            description="The account's API key from POST /admin/accounts (or POST /v1/account/rotate)."
        ),
        "adminToken": HTTPBearer(description="The local stack's admin token (`python -m local up`)."),
        "awsSigV4": _header(
            "Authorization",
            "In AWS the admin route is IAM-authorised: a SigV4-signed request (e.g. awscurl).",
        ),
        "intercomHubSignature": _header(
            "X-Hub-Signature",
            "sha1=<hex HMAC-SHA1 of the raw body, keyed with the Intercom app's client secret>",
        ),
        "intercomBodySignature": _header(
            "X-Body-Signature",
            "<hex HMAC-SHA256 of the raw body, keyed with the Intercom app's client secret>",
        ),
        "referralFactorySecret": _header(
            WEBHOOK_HEADER_NAME, "The account's webhook secret (referral_factory_webhook.header_value)."
        ),
    }


ENVELOPE = "ErrorEnvelope"
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, stable"},
                "message": {"type": "string", "description": "a human sentence"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                    "description": "for a 422, one entry per bad field",
                },
            },
        }
    },
}
ERRORS = {
    "4XX": "The caller's fault: the error envelope says which (a 422 lists each bad field in `details`).",
    "5XX": "Ours, or an upstream service's (502): the error envelope, never a trace.",
}


def _envelope(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ENVELOPE}"}}},
    }


def build() -> dict[str, Any]:
    from shared.api.resolver import ProductResolver
    from shared.api.routes import console

    app = ProductResolver()
    for name in ROUTE_MODULES:
        app.include_router(import_module(name).router)
    app.include_router(console.router_for(None))  # the console's pages: their routes, not their files
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            summary="Connect Intercom, sync contacts into campaigns, push signups, qualify referrals.",
            security_schemes=security_schemes(),
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ENVELOPE] = ENVELOPE_SCHEMA
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            for bodiless in ("204", "301", "302", "304"):
                if bodiless in responses:  # Powertools gives every answer the return's schema
                    responses[bodiless].pop("content", None)
            if "422" in responses:
                responses["422"] = _envelope("A bad request field; `details` names each one.")
            for status, description in ERRORS.items():
                responses.setdefault(status, _envelope(description))
    _drop_unreferenced(schemas, document)
    return document


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"].rsplit("/", 1)[1]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def _drop_unreferenced(schemas: dict[str, Any], document: dict[str, Any]) -> None:
    """Only the schemas some answer or request reaches: Powertools' own validation error shapes are
    never answered (ProductResolver maps them to the envelope), so they go."""
    reachable: set[str] = set()
    frontier = _refs(document["paths"])
    while frontier:
        name = frontier.pop()
        if name not in reachable:
            reachable.add(name)
            frontier |= _refs(schemas.get(name, {}))
    for name in set(schemas) - reachable:
        del schemas[name]


@caches.resettable
@cache
def document_json() -> str:
    return json.dumps(build(), separators=(",", ":"))
