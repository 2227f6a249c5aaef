"""Referral Factory's per-key rate limit, counted in one of three ways (`rate_limit_window`).

Referral Factory documents 600 calls a minute per key but not how the minute is counted, so the
emulator offers the three ways a server commonly counts it:

- `clock`: windows aligned to the minute (`[k*W, (k+1)*W)`); the count starts again at each boundary,
  so up to twice the limit may arrive within one minute that straddles it.
- `first_hit`: the first call after the previous window closed opens a window of `W` seconds (the
  default of a common server framework's throttle, which keys a counter with a TTL on its first hit).
- `sliding`: at most the limit in any `W` seconds: a call at `t` is refused while `limit` calls were
  allowed in `(t - W, t]`; a call leaves the window exactly `W` after it was made.

A refused call is answered 429 and not counted. `reset` is when a refused caller may call again: the
window's end for `clock` and `first_hit`, the moment the oldest call in the window leaves it for
`sliding`.

Whatever the mode, `peak` is the most calls (allowed or refused) any key made within one closed
interval of `W` seconds, `[t - W, t]`: what a service that blocks abusive callers would look at.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_MODES = ("clock", "first_hit", "sliding")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    # When a refused caller may call again (epoch seconds, exact; the headers round it up).
    reset_at: float


class RateLimiter:
    """Per-key counters for one mode and window length; thread-safe. The clock is injectable."""

    def __init__(
        self, mode: str = "clock", window_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.mode = mode
        self.window_s = window_s
        self._clock_counts: dict[tuple[str, int], int] = {}
        self._opened: dict[str, tuple[float, int]] = {}  # first_hit: key -> (opened at, count)
        self._allowed: dict[str, deque[float]] = {}  # sliding: the allowed calls still in the window
        self._recent: dict[str, deque[float]] = {}  # every call in the last window, for `peak`
        self.peak = 0
        self.configure(mode, window_s)

    def configure(self, mode: str, window_s: float) -> None:
        """Switch the mode or window length; counting starts afresh when either changes."""
        if mode not in WINDOW_MODES:
            raise ValueError(f"unknown rate-limit window {mode!r}")
        if window_s <= 0:
            raise ValueError("the window must be positive")
        with self._lock:
            if (mode, window_s) != (self.mode, self.window_s):
                self._clear()
            self.mode, self.window_s = mode, float(window_s)

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._clock_counts.clear()
        self._opened.clear()
        self._allowed.clear()
        self._recent.clear()
        self.peak = 0

    def hit(self, key: str, limit: int | None) -> Verdict:
        """One call by `key`: allowed (and counted) or refused."""
        now = self._clock()
        with self._lock:
            self._note(key, now)
            if limit is None:
                return Verdict(True, 0, self._clock_reset(now))
            if self.mode == "clock":
                return self._hit_clock(key, limit, now)
            if self.mode == "first_hit":
                return self._hit_first(key, limit, now)
            return self._hit_sliding(key, limit, now)

    def _note(self, key: str, now: float) -> None:
        recent = self._recent.setdefault(key, deque())
        recent.append(now)
        while recent[0] < now - self.window_s:
            recent.popleft()
        self.peak = max(self.peak, len(recent))

    def _clock_reset(self, now: float) -> float:
        return (math.floor(now / self.window_s) + 1) * self.window_s

    def _hit_clock(self, key: str, limit: int, now: float) -> Verdict:
        window = math.floor(now / self.window_s)
        if len(self._clock_counts) > 10_000:  # forget old windows
            for stale in [k for k in self._clock_counts if k[1] < window]:
                del self._clock_counts[stale]
        used = self._clock_counts.get((key, window), 0)
        reset = self._clock_reset(now)
        if used >= limit:
            return Verdict(False, 0, reset)
        self._clock_counts[(key, window)] = used + 1
        return Verdict(True, limit - used - 1, reset)

    def _hit_first(self, key: str, limit: int, now: float) -> Verdict:
        opened, used = self._opened.get(key, (-math.inf, 0))
        if now >= opened + self.window_s:
            opened, used = now, 0
        reset = opened + self.window_s
        if used >= limit:
            return Verdict(False, 0, reset)
        self._opened[key] = (opened, used + 1)
        return Verdict(True, limit - used - 1, reset)

    def _hit_sliding(self, key: str, limit: int, now: float) -> Verdict:
        allowed = self._allowed.setdefault(key, deque())
        while allowed and allowed[0] <= now - self.window_s:
            allowed.popleft()
        if limit == 0:
            return Verdict(False, 0, now + self.window_s)
        if len(allowed) >= limit:
            # Room comes back when the oldest of the last `limit` calls leaves the window.
            return Verdict(False, 0, allowed[len(allowed) - limit] + self.window_s)
        allowed.append(now)
        reset = allowed[0] + self.window_s
        return Verdict(True, limit - len(allowed), reset)
