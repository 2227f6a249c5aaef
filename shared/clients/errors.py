"""One exception type per kind of failure an upstream API (Intercom, Referral Factory) can answer with.

Callers branch on these types, never on message text. They are distinct from `shared.domain.errors`, which
are the product's own HTTP answers: an upstream 404 is not necessarily the caller's 404, so no class
name is shared by the two families.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """A call to Intercom or Referral Factory failed; `status` is None for a network failure."""

    def __init__(
        self, message: str, *, service: str = "", status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.status = status
        self.code = code
        # Per-field messages when the service gave them (Referral Factory's 422 `errors`).
        self.fields: dict[str, list[str]] = {}

    def __str__(self) -> str:
        where = f"{self.service} " if self.service else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{where}{status}{self.message}".strip()


class RateLimited(UpstreamError):
    """The rate budget (ours or the service's) is spent: try again in `retry_after` seconds.

    Raised instead of sleeping when the wait is long, so a queue worker can hand its message back
    with that delay rather than be billed for waiting.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        service: str = "",
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status, code=code)
        self.retry_after = max(0.0, retry_after)


class CredentialsRejected(UpstreamError):
    """401/403: the credentials do not (or no longer) grant this call. Never retried."""


class ConnectionRevoked(CredentialsRejected):
    """A 401 on an Intercom token that worked before: the workspace uninstalled or revoked the app."""


class UpstreamNotFound(UpstreamError):
    """404 (or 410 with nowhere to follow): the service has no such resource."""


class ContactMerged(UpstreamNotFound):
    """Intercom 2.16's 410 `contact_merged` that could not be followed: the contact was merged into
    `survivor_id` (None when the `Link` header named none). A kind of `UpstreamNotFound`, so whoever
    treats a vanished contact as gone does the same here; whoever can use the survivor reads it."""

    def __init__(
        self,
        message: str,
        *,
        survivor_id: str | None = None,
        service: str = "",
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status, code=code)
        self.survivor_id = survivor_id


class AlreadyExists(UpstreamError):
    """The resource exists already; `existing_id` names it when the service said which."""

    def __init__(
        self,
        message: str,
        *,
        existing_id: str | None = None,
        service: str = "",
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status, code=code)
        self.existing_id = existing_id


class Transient(UpstreamError):
    """5xx, a network failure or an empty answer that retries did not get past: worth retrying later."""


class Invalid(UpstreamError):
    """The service rejected the request as malformed (400, 422, ...): retrying the same call won't help."""


# 4xx answers that are not a final "no": 401 (the credentials; a revoked connection), 409 (a duplicate,
# which the caller turns into the existing resource) and 429 (rate limited: wait and ask again).
NOT_FINAL_4XX = (401, 409, 429)


def refused_for_good(error: BaseException) -> bool:
    """Whether the service refused the request for good: a 4xx other than 401, 409 and 429. The same
    request gets the same answer however often it is sent; only a change (settings, data) helps."""
    return (
        isinstance(error, UpstreamError)
        and error.status is not None
        and 400 <= error.status < 500
        and error.status not in NOT_FINAL_4XX
    )
