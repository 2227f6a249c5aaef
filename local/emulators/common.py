"""What both emulators share: config merging, request stats, faults, fixed-window rate limits and
webhook delivery with the real services' retry behaviour."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_emulator/"

DEFAULT_FAULTS: dict[str, float] = {
    "error_rate_429": 0.0,
    "error_rate_500": 0.0,
    "latency_ms": 0.0,
    "webhook_drop_rate": 0.0,
    "webhook_duplicate_rate": 0.0,
}


def merge_config(
    current: dict[str, Any], patch: Mapping[str, Any], default_faults: Mapping[str, float] = DEFAULT_FAULTS
) -> dict[str, Any]:
    """The contract's `PUT /_emulator/config`: top-level keys merge, `faults` is replaced whole (what
    it leaves out is back at the emulator's `default_faults`)."""
    merged = dict(current)
    for key, value in patch.items():
        if key == "faults":
            merged["faults"] = {**default_faults, **(value or {})}
        else:
            merged[key] = value
    return merged


class Stats:
    """Counts every request on a real path by `METHOD /route/{template}`, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.responses_429 = 0
        self.webhooks_sent = 0
        self.webhooks_failed = 0

    def count_request(self, key: str) -> None:
        with self._lock:
            self.requests[key] += 1

    def count_429(self) -> None:
        with self._lock:
            self.responses_429 += 1

    def count_webhook(self, *, ok: bool) -> None:
        with self._lock:
            if ok:
                self.webhooks_sent += 1
            else:
                self.webhooks_failed += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "responses_429": self.responses_429,
                "webhooks_sent": self.webhooks_sent,
                "webhooks_failed": self.webhooks_failed,
            }


class FixedWindowLimiter:
    """Per-key counters over fixed windows aligned to the epoch, like Intercom's 10-second windows."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = defaultdict(int)

    def window_reset_at(self) -> int:
        now = self._clock()
        return int((now // self.window_seconds + 1) * self.window_seconds)

    def hit(self, key: str, limit: int | None) -> tuple[bool, int, int]:
        """Spend one request; returns (allowed, remaining, reset_epoch_seconds)."""
        now = self._clock()
        window = int(now // self.window_seconds)
        reset = int((window + 1) * self.window_seconds)
        if limit is None:
            return True, 0, reset
        with self._lock:
            if len(self._counts) > 10_000:  # forget old windows
                for stale in [k for k in self._counts if k[1] < window]:
                    del self._counts[stale]
            used = self._counts[(key, window)]
            if used >= limit:
                return False, 0, reset
            self._counts[(key, window)] = used + 1
            return True, limit - used - 1, reset

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


ErrorBody = Callable[[int, str, str], Response]


class FaultsAndStatsMiddleware:
    """Counts each request on a real path by route template and injects the configured faults.

    `/_emulator/` calls are neither counted nor faulted, as the contract says.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        stats: Callable[[], Stats],
        faults: Callable[[], Mapping[str, float]],
        error_body: ErrorBody,
        routes_app: Callable[[], Any],
    ) -> None:
        self.app = app
        self._stats = stats
        self._faults = faults
        self._error_body = error_body
        self._routes_app = routes_app

    def _template(self, scope: Scope) -> str:
        for route in self._routes_app().routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} {scope['path']}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        self._stats().count_request(self._template(scope))
        faults = self._faults()
        latency = float(faults.get("latency_ms") or 0)
        if latency:
            # The request is read whole before the wait, as a real service has it once it arrived: a
            # caller that goes away meanwhile (a client timeout, a killed Lambda instance) does not undo
            # it, and its effect happens with nobody left to read the answer.
            whole = await _whole_request(receive)
            if whole is None:
                return  # the caller went away before the request was complete: nothing arrived
            receive = whole
            await asyncio.sleep(latency / 1000)
        roll = random.random()
        rate_429 = float(faults.get("error_rate_429") or 0)
        rate_500 = float(faults.get("error_rate_500") or 0)
        # Only an emulator whose faults name it (Intercom's) refuses requests as invalid.
        rate_400 = float(faults.get("error_rate_400") or 0)
        if roll < rate_429:
            self._stats().count_429()
            response = self._error_body(429, "rate_limit_exceeded", "Injected fault: rate limited")
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        if roll < rate_429 + rate_500:
            response = self._error_body(500, "server_error", "Injected fault: server error")
            await response(scope, receive, send)
            return
        if roll < rate_429 + rate_500 + rate_400:
            response = self._error_body(400, "parameter_invalid", "Injected fault: parameter invalid")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _whole_request(receive: Receive) -> Receive | None:
    """A `receive` that replays the request's body, read in full now; None if the client went away
    before sending all of it."""
    messages: list[Message] = []
    while not messages or messages[-1].get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


class WebhookSender:
    """Delivers webhooks from a thread pool so the API answering the request is never held up.

    A failed delivery (non-2xx or network error) is retried once after `retry_delay_s`, as Intercom
    does (one retry after a minute; shorter here so tests need not wait). The drop and duplicate
    faults apply per notification.
    """

    def __init__(
        self,
        stats: Callable[[], Stats],
        faults: Callable[[], Mapping[str, float]],
        retry_delay_s: float = 5.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._stats = stats
        self._faults = faults
        self.retry_delay_s = retry_delay_s
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
        self._client = httpx.Client(timeout=timeout_s)
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def send(self, url: str | None, body: bytes, headers: Mapping[str, str]) -> None:
        if not url:
            return
        faults = self._faults()
        if random.random() < float(faults.get("webhook_drop_rate") or 0):
            self._stats().count_webhook(ok=False)
            return
        copies = 2 if random.random() < float(faults.get("webhook_duplicate_rate") or 0) else 1
        for _ in range(copies):
            self._pool.submit(self._deliver, url, body, dict(headers), 0)

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], attempt: int) -> None:
        try:
            ok = self._client.post(url, content=body, headers=headers).is_success
        except httpx.HTTPError:
            ok = False
        if ok:
            self._stats().count_webhook(ok=True)
            return
        if attempt == 0:
            timer = threading.Timer(self.retry_delay_s, self._retry, args=(url, body, headers))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()
            return
        self._stats().count_webhook(ok=False)

    def _retry(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self._pool.submit(self._deliver, url, body, headers, 1)

    def close(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


async def json_body(request: Request) -> Any:
    """The request's JSON, or None when the body is empty or not JSON."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def json_response(data: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status_code, headers=dict(headers or {}))


AsyncEndpoint = Callable[[Request], Awaitable[Response]]
