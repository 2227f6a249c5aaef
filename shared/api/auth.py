"""Who is calling: the operator (admin) or an account."""

from __future__ import annotations

from typing import Any

from shared.domain.errors import Unauthorized
from shared.domain.signatures import same_secret


def require_admin(
    *, mode: str, admin_token: str, authorization: str | None, request_context: dict[str, Any]
) -> None:
    """In AWS (`iam`) API Gateway has already checked the SigV4 signature, and says who signed;
    locally (`token`) the caller presents the stack's admin token."""
    if mode == "iam":
        identity = request_context.get("identity") or {}
        if not identity.get("userArn") and not identity.get("caller"):
            raise Unauthorized("Admin routes need an IAM-signed request.")
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not admin_token or not same_secret(token.strip(), admin_token):
        raise Unauthorized("Admin routes need `Authorization: Bearer <admin token>`.")
