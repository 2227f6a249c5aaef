"""The failures Intercom answers with its `error.list` envelope (reference §8)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field_name = field_name


def conflict(existing_id: str) -> ApiError:
    # The wording real integrations parse the id out of (reference §3.3, §9.2).
    return ApiError(409, "conflict", f"A contact matching those details already exists with id={existing_id}")


def invalid(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(400, "parameter_invalid", message, field_name)
