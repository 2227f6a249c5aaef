"""Domain errors that carry the contract's error envelope: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict


class FieldError(TypedDict):
    """One entry of an error's `details`: which field, and what is wrong with it."""

    field: str
    message: str


class ErrorBody(TypedDict):
    code: str
    message: str
    details: list[FieldError]


class Envelope(TypedDict):
    error: ErrorBody


class ApiError(Exception):
    """An error the caller sees. `status` is 4xx for the caller's fault, 5xx only for ours."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Sequence[FieldError] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = list(details or [])

    def with_status(self, status: int, details: Sequence[FieldError] | None = None) -> ApiError:
        """This error with another status (for errors built from a library's status code)."""
        self.status = status
        if details is not None:
            self.details = list(details)
        return self

    def envelope(self) -> Envelope:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class ValidationFailed(ApiError):
    """422 with one `{"field", "message"}` per bad field, all reported at once."""

    status = 422
    code = "validation_failed"


def field_error(field: str, message: str) -> FieldError:
    return {"field": field, "message": message}
