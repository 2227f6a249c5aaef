"""The retry policy, with httpx.MockTransport and a fake clock: no sockets, no sleeping."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from shared.clients.errors import (
    AlreadyExists,
    CredentialsRejected,
    Invalid,
    RateLimited,
    Transient,
    UpstreamError,
    UpstreamNotFound,
    refused_for_good,
)
from shared.clients.http import HttpClient, RetryPolicy, _loggable, error_for, header_wait, shared_http

NOW = 1_700_000_000.0


class FakeTime:
    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Responder = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception) -> tuple[Responder, list[httpx.Request]]:
    """A handler answering with `answers` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen) - 1, len(answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def make(
    handler: Responder,
    t: FakeTime,
    *,
    policy: RetryPolicy | None = None,
    budget: object = None,
    rng: float = 0.0,
) -> HttpClient:
    return HttpClient(
        "https://api.example.test/",
        service="test",
        headers={"Authorization": "Bearer secret", "X-Fixed": "1"},
        budget=budget,  # type: ignore[arg-type]
        policy=policy or RetryPolicy(),
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=t.sleep,
        clock=t.clock,
        rng=lambda: rng,
    )


def ok(body: str = '{"ok": true}', **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body.encode(), headers=headers)


def test_a_success_is_returned_at_once_with_the_client_headers() -> None:
    t = FakeTime()
    handler, seen = scripted(ok())
    response = make(handler, t).request("GET", "/me", headers={"X-Extra": "2"}, params={"a": 1})
    assert response.json() == {"ok": True}
    assert len(seen) == 1
    assert str(seen[0].url) == "https://api.example.test/me?a=1"
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert seen[0].headers["x-fixed"] == "1" and seen[0].headers["x-extra"] == "2"
    assert t.sleeps == []


def test_an_absolute_url_is_used_as_given() -> None:
    t = FakeTime()
    handler, seen = scripted(ok())
    make(handler, t).request("GET", "https://other.example.test/x")
    assert str(seen[0].url) == "https://other.example.test/x"


def test_a_429_waits_as_retry_after_says_then_succeeds() -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), ok())
    assert make(handler, t).request("GET", "/x").status_code == 200
    assert len(seen) == 2
    assert t.sleeps == [3.0]


def test_a_429_waits_until_the_rate_limit_reset() -> None:
    t = FakeTime()
    reset = str(int(NOW) + 7)
    handler, _ = scripted(httpx.Response(429, headers={"X-RateLimit-Reset": reset}), ok())
    make(handler, t, rng=1.0).request("GET", "/x")
    # The header's wait plus at most a quarter second of jitter.
    assert t.sleeps == [pytest.approx(7.25)]


def test_5xx_and_network_errors_back_off_exponentially() -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(502), httpx.ConnectError("refused"), httpx.Response(503), ok())
    make(handler, t).request("POST", "/x", json={"a": 1})
    assert len(seen) == 4
    # rng 0 → half of base * 2**attempt: 0.25, 0.5, 1.0
    assert t.sleeps == [0.25, 0.5, 1.0]


def test_backoff_is_jittered_and_capped() -> None:
    t = FakeTime()
    client = make(scripted(ok())[0], t, policy=RetryPolicy(backoff_base_s=1, backoff_cap_s=4), rng=1.0)
    assert client.backoff(0) == 1.0
    assert client.backoff(10) == 4.0


def test_an_empty_200_is_retried_unless_allowed() -> None:
    t = FakeTime()
    handler, seen = scripted(ok(""), ok())
    assert make(handler, t).request("GET", "/x").json() == {"ok": True}
    assert len(seen) == 2
    handler, seen = scripted(ok("  "))
    assert make(handler, t).request("POST", "/auth/uninstall", allow_empty=True).status_code == 200
    assert len(seen) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_client_errors_other_than_429_are_never_retried(status: int) -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(status, json={"message": "no"}))
    assert make(handler, t).request("GET", "/x").status_code == status
    assert len(seen) == 1
    assert t.sleeps == []


def test_a_long_wait_is_handed_back_instead_of_slept() -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "45"}))
    with pytest.raises(RateLimited) as info:
        make(handler, t, policy=RetryPolicy(max_wait_s=10)).request("GET", "/x")
    assert info.value.retry_after == 45.0
    assert info.value.status == 429
    assert t.sleeps == []
    assert len(seen) == 1


def test_the_total_wait_is_bounded() -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "4"}))
    policy = RetryPolicy(max_attempts=100, max_wait_s=10, max_total_wait_s=10)
    with pytest.raises(RateLimited) as info:
        make(handler, t, policy=policy).request("GET", "/x")
    assert t.sleeps == [4.0, 4.0]
    assert len(seen) == 3
    assert info.value.retry_after == 4.0


def test_retries_run_out_on_5xx_as_transient() -> None:
    t = FakeTime()
    handler, seen = scripted(httpx.Response(500))
    with pytest.raises(Transient) as info:
        make(handler, t, policy=RetryPolicy(max_attempts=3)).request("GET", "/x")
    assert len(seen) == 3
    assert info.value.status == 500
    assert len(t.sleeps) == 2


def test_retries_run_out_on_network_errors_as_transient() -> None:
    t = FakeTime()
    handler, _ = scripted(httpx.ReadTimeout("slow"))
    with pytest.raises(Transient, match="ReadTimeout") as info:
        make(handler, t, policy=RetryPolicy(max_attempts=2)).request("GET", "/x")
    assert info.value.status is None


class FakeBudget:
    def __init__(self, waits: list[float]) -> None:
        self.waits = waits
        self.observed: list[tuple[dict[str, str], int]] = []

    def acquire(self) -> float:
        return self.waits.pop(0) if self.waits else 0.0

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        self.observed.append((dict(headers), status))


def test_the_budget_is_spent_before_each_request_and_told_each_answer() -> None:
    t = FakeTime()
    budget = FakeBudget([0.5, 0.25])
    handler, seen = scripted(httpx.Response(500), ok(**{"X-RateLimit-Remaining": "9"}))
    make(handler, t, budget=budget).request("GET", "/x")
    assert len(seen) == 2
    assert t.sleeps == [0.5, 0.25, 0.25]  # budget, budget, then the 5xx backoff
    assert [status for _, status in budget.observed] == [500, 200]
    assert budget.observed[1][0]["x-ratelimit-remaining"] == "9"


def test_a_budget_that_needs_a_long_wait_raises_before_sending() -> None:
    t = FakeTime()
    handler, seen = scripted(ok())
    with pytest.raises(RateLimited) as info:
        make(handler, t, budget=FakeBudget([40.0]), policy=RetryPolicy(max_wait_s=10)).request("GET", "/x")
    assert info.value.retry_after == 40.0
    assert info.value.status is None
    assert seen == []


def test_a_budget_wait_has_its_own_limit_while_service_waits_keep_theirs() -> None:
    """A queue worker hands a spent window back rather than sleep through it, yet still sleeps a
    service's short Retry-After."""
    t = FakeTime()
    policy = RetryPolicy(max_wait_s=12, max_budget_wait_s=1)
    handler, seen = scripted(ok())
    with pytest.raises(RateLimited) as info:
        make(handler, t, budget=FakeBudget([5.0]), policy=policy).request("GET", "/x")
    assert (info.value.retry_after, t.sleeps, seen) == (5.0, [], [])
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "5"}), ok())
    make(handler, t, budget=FakeBudget([0.5]), policy=policy).request("GET", "/x")
    assert t.sleeps == [0.5, 5.0] and len(seen) == 2


def test_the_budget_can_be_bypassed() -> None:
    t = FakeTime()
    budget = FakeBudget([40.0])
    handler, seen = scripted(ok())
    make(handler, t, budget=budget).request("GET", "/x", use_budget=False)
    assert len(seen) == 1 and budget.waits == [40.0] and budget.observed == []


def test_header_wait_reads_every_form() -> None:
    assert header_wait({"retry-after": "2.5"}, NOW) == 2.5
    date = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert header_wait({"retry-after": date}, NOW) == pytest.approx(30)
    assert header_wait({"retry-after": "soon"}, NOW) is None
    assert header_wait({"retry-after": "soon", "x-ratelimit-reset": str(int(NOW) + 5)}, NOW) == 5
    assert header_wait({"x-ratelimit-reset": "8"}, NOW) == 8  # seconds until, not a timestamp
    assert header_wait({"x-ratelimit-reset": str(int(NOW) - 5)}, NOW) == 0
    # A reset far ahead means our clocks disagree: capped.
    assert header_wait({"x-ratelimit-reset": str(int(NOW) + 3600)}, NOW) == 60
    assert header_wait({"x-ratelimit-reset": "never"}, NOW) is None
    assert header_wait({}, NOW) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Invalid),
        (422, Invalid),
        (401, CredentialsRejected),
        (403, CredentialsRejected),
        (404, UpstreamNotFound),
        (410, UpstreamNotFound),
        (409, AlreadyExists),
        (429, RateLimited),
        (500, Transient),
        (418, Invalid),
    ],
)
def test_error_for_maps_status_to_type(status: int, kind: type[Exception]) -> None:
    error = error_for(httpx.Response(status), service="svc", message="m", code="c", now=NOW)
    assert type(error) is kind
    assert str(error) == f"svc {status} m"


def test_an_exhausted_empty_200_is_transient() -> None:
    assert isinstance(error_for(httpx.Response(200), service="s", message="m", now=NOW), Transient)


def test_a_429_error_carries_its_wait() -> None:
    error = error_for(httpx.Response(429, headers={"Retry-After": "12"}), service="s", message="m", now=NOW)
    assert isinstance(error, RateLimited) and error.retry_after == 12


def test_one_http_client_per_process() -> None:
    assert shared_http() is shared_http()
    assert shared_http().timeout.connect == 5.0
    assert HttpClient("https://x.test", service="s").client is shared_http()


def test_calls_out_are_traced_from_the_first_client_and_httpx_is_patched_once(monkeypatch) -> None:
    from shared import caches, observability

    patched: list[list[str]] = []

    class Tracer:
        def patch(self, modules: list[str]) -> None:
            patched.append(modules)

    monkeypatch.setattr(observability, "_traced", ["botocore"])
    monkeypatch.setattr(observability, "_tracer", Tracer())
    caches.reset_caches()
    shared_http()
    observability.trace_calls_through("httpx")
    assert observability._traced == ["botocore", "httpx"]
    assert patched == [["httpx"]], "patched before the first client was made, and only then"


def test_a_tracer_built_after_the_first_call_out_patches_httpx_too(monkeypatch) -> None:
    import aws_lambda_powertools

    from shared import observability

    built: list[dict[str, object]] = []
    monkeypatch.setattr(observability, "_traced", ["botocore", "httpx"])
    monkeypatch.setattr(observability, "_tracer", None)
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", lambda **kwargs: built.append(kwargs) or "tracer")
    assert observability.tracer == "tracer"
    assert built == [{"patch_modules": ["botocore", "httpx"]}]


def test_logged_paths_carry_no_email_or_query() -> None:
    assert _loggable("/users/jane@example.com?campaign_id=1") == "/users/{email}"
    assert _loggable("/contacts/abc123") == "/contacts/abc123"


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (400, True),
        (402, True),
        (403, True),
        (404, True),
        (410, True),
        (422, True),
        (401, False),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
        (None, False),
    ],
)
def test_a_refusal_for_good_is_a_4xx_other_than_401_409_and_429(status: int | None, final: bool) -> None:
    """What makes a referral `failed` and a sync contact's error final (contract §1)."""
    error = error_for(httpx.Response(status), service="s", message="m", now=NOW) if status else None
    assert refused_for_good(error or Transient("network", service="s")) is final
    assert refused_for_good(UpstreamError("m", service="s", status=status)) is final
    assert refused_for_good(ValueError("not an upstream answer")) is False
