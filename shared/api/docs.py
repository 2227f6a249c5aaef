"""What the routes say about themselves in the OpenAPI document (`shared/api/openapi.py`): the
success answer each route gives, and who may call it. Kept beside the routes, in their decorators,
so the published document is generated from the code that serves them and cannot drift from it.

Light on purpose: every API function imports this at cold start."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"

# Security requirements (the schemes themselves are declared once, in shared/api/openapi.py).
ACCOUNT_KEY: list[dict[str, list[str]]] = [{"accountKey": []}]
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}, {"awsSigV4": []}]
INTERCOM_SIGNED: list[dict[str, list[str]]] = [{"intercomHubSignature": []}]
INTERCOM_UNINSTALL_SIGNED: list[dict[str, list[str]]] = [
    {"intercomBodySignature": []},
    {"intercomHubSignature": []},
]
RF_SECRET: list[dict[str, list[str]]] = [{"referralFactorySecret": []}]


def answers(
    status: int = 200,
    model: Any = None,
    description: str = "OK",
    *,
    media: str = JSON,
    extra: dict[int, Any] | None = None,
) -> dict[int, Any]:
    """A route's success answer: `status` with `model`'s schema (a pydantic model, TypedDict or type),
    an object when no model is named, nothing for 204; `extra` adds other answers as they are."""
    response: dict[str, Any] = {"description": description}
    if model is not None:
        response["content"] = {media: {"model": model}}
    elif status != 204:
        response["content"] = {media: {"schema": {"type": "object"}}}
    found: dict[int, Any] = {status: response}
    found.update(extra or {})
    return found


def raw_body_doc(description: str, *media: str) -> dict[str, Any]:
    """`openapi_extensions` for a route that reads its body itself (a webhook verifies a signature over
    the raw bytes before parsing): the request body it accepts, as an object."""
    return {
        "requestBody": {
            "description": description,
            "required": True,
            "content": {
                m: {"schema": {"type": "object", "additionalProperties": True}} for m in media or (JSON,)
            },
        }
    }
