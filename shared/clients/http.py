"""HTTP to Intercom and Referral Factory: one `httpx.Client` per process and the one retry policy.

Retried: 429, 5xx, network errors and an empty 200, nothing else (a 401/403 fails at once). The wait
comes from the response's headers (`Retry-After`, else `X-RateLimit-Reset`), else from jittered
exponential backoff; the total is bounded. A wait longer than `max_wait_s`, whether the service or
our own rate budget asks for it, raises `RateLimited(retry_after=...)` instead of sleeping: a queue
worker then hands its message back with that delay rather than be billed for the wait.

httpx is imported when the process first calls out (`shared_http`), not at import: the functions
that import the clients but answer most requests from the table alone (the OAuth and sync APIs, the
schedule) do not load it at init (docs/cold-starts.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from shared import caches, observability
from shared.clients.errors import (
    AlreadyExists,
    CredentialsRejected,
    Invalid,
    RateLimited,
    Transient,
    UpstreamError,
    UpstreamNotFound,
)
from shared.observability import logger

if TYPE_CHECKING:
    import httpx


# `X-RateLimit-Reset` is a timestamp on the service's clock, so a wait derived from it is only as good
# as the two clocks agree; capped, a skewed clock costs one short extra wait instead of a stuck worker.
RESET_WAIT_CAP_S = 60.0


@cache
def shared_http() -> httpx.Client:
    """The process's one connection pool: built on first use, kept across warm invocations."""
    import httpx

    observability.trace_calls_through("httpx")  # before the client: X-Ray patches its class
    return httpx.Client(
        timeout=httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=10.0),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30.0),
        follow_redirects=False,
    )


def _close_shared_http() -> None:
    if shared_http.cache_info().currsize:
        shared_http().close()
    shared_http.cache_clear()


caches.register(f"{__name__}.shared_http", _close_shared_http)


class Budget(Protocol):
    """A rate budget spent before each request (see `shared.clients.rate_budget`)."""

    def acquire(self) -> float:
        """Spend one request and return 0, or return the seconds to wait before asking again."""
        ...

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """Learn from a response's rate-limit headers."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    # One wait longer than this is handed back to the caller (`RateLimited`) rather than slept.
    max_wait_s: float = 12.0
    # The same for a wait on our own rate budget, when it should differ (None: `max_wait_s`). A queue
    # worker that can hand its message back sets it low: a spent window is not slept through.
    max_budget_wait_s: float | None = None
    # All the sleeping one call may do, budget waits included.
    max_total_wait_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0


DEFAULT_POLICY = RetryPolicy()
# For a call a person waits on behind API Gateway (the API functions time out after 10 s): one retry,
# short waits, then the route answers (a 429's wait longer than this is the caller's to retry).
INTERACTIVE_POLICY = RetryPolicy(
    max_attempts=2, max_wait_s=2.0, max_total_wait_s=3.0, backoff_base_s=0.2, backoff_cap_s=1.0
)


def header_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the service asked us to wait, from `Retry-After` (seconds or HTTP date) or
    `X-RateLimit-Reset` (UNIX seconds), or None when it said nothing usable."""
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            value = float(reset)
        except ValueError:
            return None
        # Some services send seconds-until-reset rather than a timestamp.
        wait = value if value < 1_000_000_000 else value - now
        return min(max(0.0, wait), RESET_WAIT_CAP_S)
    return None


def _loggable(path: str) -> str:
    """The path without its query and with email addresses (Referral Factory looks users up by
    email) masked: logs carry no personal data."""
    return "/".join("{email}" if "@" in part else part for part in path.split("?", 1)[0].split("/"))


def _is_empty(response: httpx.Response) -> bool:
    return response.status_code == 200 and not response.content.strip()


def error_for(
    response: httpx.Response, *, service: str, message: str, code: str | None = None, now: float
) -> UpstreamError:
    """The typed error for a non-success answer the retries did not absorb."""
    status = response.status_code
    kwargs: dict[str, Any] = {"service": service, "status": status, "code": code}
    if status == 429:
        return RateLimited(message, retry_after=header_wait(response.headers, now) or 1.0, **kwargs)
    if status in (401, 403):
        return CredentialsRejected(message, **kwargs)
    if status in (404, 410):
        return UpstreamNotFound(message, **kwargs)
    if status == 409:
        return AlreadyExists(message, **kwargs)
    if status >= 500 or _is_empty(response):
        return Transient(message, **kwargs)
    return Invalid(message, **kwargs)


class HttpClient:
    """Requests to one service's base URL through the retry policy and, optionally, a rate budget."""

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        headers: Mapping[str, str] | None = None,
        budget: Budget | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.headers = dict(headers or {})
        self.budget = budget
        self.policy = policy
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    @property
    def client(self) -> httpx.Client:
        return self._client if self._client is not None else shared_http()

    def backoff(self, attempt: int) -> float:
        """Half fixed, half random ("equal jitter"): never a zero wait, never a synchronised herd."""
        ceiling = min(self.policy.backoff_cap_s, self.policy.backoff_base_s * 2.0**attempt)
        return ceiling / 2 + self._rng() * ceiling / 2

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow_empty: bool = False,
        use_budget: bool = True,
    ) -> httpx.Response:
        """The service's answer once it is not retryable: any 2xx, or a 4xx other than 429.

        Raises `RateLimited` when the wait is too long or the retries ran out on 429s, `Transient`
        when they ran out on 5xx, network errors or empty answers.
        """
        import httpx  # loaded by the time a client exists: a lookup, not an import

        url = path if path.startswith("http") else f"{self.base_url}{path}"
        merged = {**self.headers, **(headers or {})}
        budget = self.budget if use_budget else None
        waited = 0.0
        attempt = 0
        while True:
            if budget is not None:
                waited = self._spend(budget, waited, method, path)
            status: int | None = None
            try:
                response = self.client.request(
                    method, url, json=json, params=params, data=data, headers=merged
                )
            except httpx.TransportError as exc:
                failure: UpstreamError = Transient(
                    f"{method} {path}: {type(exc).__name__}", service=self.service
                )
                wait = self.backoff(attempt)
            else:
                status = response.status_code
                if budget is not None:
                    budget.observe(response.headers, status)
                retryable = status == 429 or status >= 500 or (_is_empty(response) and not allow_empty)
                if not retryable:
                    return response
                now = self._clock()
                failure = error_for(
                    response, service=self.service, message=f"{method} {path} answered {status}", now=now
                )
                asked = header_wait(response.headers, now)
                wait = self.backoff(attempt) if asked is None else asked + self._rng() * 0.25
            attempt += 1
            self._give_up_unless_can_wait(failure, wait, waited, attempt)
            logger.debug(
                "retrying upstream call",
                extra={
                    "service": self.service,
                    "method": method,
                    "path": _loggable(path),
                    "status": status,
                    "wait_s": round(wait, 3),
                    "attempt": attempt,
                },
            )
            self._sleep(wait)
            waited += wait

    def _give_up_unless_can_wait(
        self, failure: UpstreamError, wait: float, waited: float, attempt: int
    ) -> None:
        policy = self.policy
        too_long = wait > policy.max_wait_s or waited + wait > policy.max_total_wait_s
        if attempt < policy.max_attempts and not too_long:
            return
        if isinstance(failure, RateLimited):
            raise RateLimited(
                failure.message, retry_after=wait, service=failure.service, status=failure.status
            ) from failure
        raise failure

    def _spend(self, budget: Budget, waited: float, method: str, path: str) -> float:
        """Take one request from the budget, sleeping for short waits; returns the total waited."""
        while True:
            wait = budget.acquire()
            if wait <= 0:
                return waited
            policy = self.policy
            longest = policy.max_wait_s if policy.max_budget_wait_s is None else policy.max_budget_wait_s
            if wait > longest or waited + wait > policy.max_total_wait_s:
                raise RateLimited(
                    f"{method} {path}: {self.service} rate budget spent",
                    retry_after=wait,
                    service=self.service,
                )
            self._sleep(wait)
            waited += wait
