"""The failures Intercom answers with its `error.list` envelope (reference §8)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field_name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field_name = field_name
        self.headers = headers or {}


def conflict(existing_id: str) -> ApiError:
    # The wording real integrations parse the id out of (reference §3.3, §9.2).
    return ApiError(409, "conflict", f"A contact matching those details already exists with id={existing_id}")


def contact_merged(canonical_id: str) -> ApiError:
    """2.16: a contact merged away answers 410 with a `Link` to the contact it now is (reference §3.8)."""
    return ApiError(
        410,
        "contact_merged",
        "This contact has been merged. See the 'Link' header for the canonical contact.",
        headers={"Link": f'</contacts/{canonical_id}>; rel="canonical"'},
    )


def invalid(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(400, "parameter_invalid", message, field_name)
