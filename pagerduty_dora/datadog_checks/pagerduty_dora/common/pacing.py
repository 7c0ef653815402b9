# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""How many requests a run may still make to one API: its budget, and its share of the advertised rate limit.

A run's budget (`RunLimits`) is `max_requests_per_run` requests when that is set; otherwise the run
makes requests only until `requests_until`, a share of the collection interval from its start (see
`wiring.REQUEST_TIME_SHARE`), and never past its deadline.

Every answer says what is left of the API's rate limit window: PagerDuty in `ratelimit-limit`,
`ratelimit-remaining` and `ratelimit-reset`, Datadog in `X-RateLimit-Limit`, `-Remaining`, `-Reset`
and `-Period`. `Quota` keeps the latest of it, across runs. The check takes at most `QUOTA_SHARE`
of each window: once an answer says only the rest is left, the window is `spent` for the check
until it resets, so that the other users of the same key (other instances, scripts, other tools)
always find that much.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

# The share of each advertised rate limit window the check takes: it stops at a fifth of the window
# left. A limit of 960 a minute gives the check 768.
QUOTA_SHARE = 0.8
# Longest single wait for a rate limit window; PagerDuty's windows are one minute.
MAX_RATE_LIMIT_WAIT = 65.0
# The window assumed when an answer says its quota is spent but not when it resets (nor its period).
DEFAULT_WINDOW = 60.0
# The names each API gives its rate limit headers (remaining, limit, reset, period): PagerDuty's, Datadog's.
RATE_LIMIT_HEADERS = (
    ('ratelimit-remaining', 'ratelimit-limit', 'ratelimit-reset', 'ratelimit-period'),
    ('x-ratelimit-remaining', 'x-ratelimit-limit', 'x-ratelimit-reset', 'x-ratelimit-period'),
)


@dataclass
class RunLimits:
    """Per-run bounds: the requests allowed (None: paced, not counted against a cap), the monotonic
    time the run must end by, and the time after which it starts no request (`requests_until`).

    `stalled` names the callers that make no more requests in this run (see `ApiClient.stall`).
    """

    max_requests: int | None
    deadline: float
    requests_until: float = float('inf')
    used: int = 0
    stalled: set[str] = field(default_factory=set)

    def spent(self, now: float) -> str:
        """Why the run may make no more requests at `now` ('' while it may)."""
        if self.max_requests is not None and self.used >= self.max_requests:
            return 'reached max_requests_per_run ({}); resuming next run'.format(self.max_requests)
        if now > self.requests_until:
            return "the run's time for requests is spent; resuming next run"
        return ''


@dataclass(frozen=True)
class RequestLimits:
    """How many requests each run may make to one API: `max_requests` when set (`max_requests_per_run`);
    None paces them instead, starting requests only within `request_seconds` of the run's start (and
    before its deadline), and within the advertised quota."""

    max_requests: int | None
    request_seconds: float = float('inf')

    def run(self, deadline: float, now: float) -> RunLimits:
        """The limits of a run that starts at `now` and must end by `deadline` (monotonic seconds)."""
        requests_until = deadline
        if self.max_requests is None:
            requests_until = min(deadline, now + self.request_seconds)
        return RunLimits(max_requests=self.max_requests, deadline=deadline, requests_until=requests_until)


@dataclass(frozen=True)
class Timing:
    """The monotonic `clock` that bounds a run, the `sleep` that waits on it (None: `time.sleep`, looked
    up at call time so that a simulated clock can stand in for it) and the `jitter` of retry waits."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None
    jitter: Callable[[], float] = random.random


REAL_TIME = Timing()


@dataclass
class Quota:
    """What the API last advertised of its rate limit window: requests left, the window's size, its end."""

    remaining: float | None = None
    limit: float | None = None
    resets_at: float = 0.0
    # Requests of the window left to the other users of the key (none when the limit is not advertised).
    reserve: float = 0
    # The `limit` header as last read, so that an unchanged one is not parsed again.
    limit_text: str | None = None
    # The names of the headers this API answers with: PagerDuty's until Datadog's are met.
    names: tuple[str, str, str, str] = RATE_LIMIT_HEADERS[0]

    def note(self, headers: Mapping[str, str], now: float) -> None:
        """Keep what an answer says of the window: requests left, the limit, and when it resets once spent."""
        names = self.names
        text = headers.get(names[0])
        if text is None:
            names = RATE_LIMIT_HEADERS[1] if names is RATE_LIMIT_HEADERS[0] else RATE_LIMIT_HEADERS[0]
            text = headers.get(names[0])
            if text is None:
                return
            self.names = names
        self.remaining = remaining = _number(text)
        limit_text = headers.get(names[1])
        if limit_text != self.limit_text:
            self.limit_text, self.limit = limit_text, _number(limit_text)
            self.reserve = round(self.limit * (1 - QUOTA_SHARE)) if self.limit is not None else 0
        if remaining is None or remaining > self.reserve:
            return
        reset = _number(headers.get(names[2]))
        if reset is None:
            reset = _number(headers.get(names[3])) or DEFAULT_WINDOW
        self.resets_at = now + min(max(reset, 0.0), MAX_RATE_LIMIT_WAIT)

    def refused(self, reset: float, now: float) -> None:
        """A 429 that says when the window resets: no request of it is left, whatever else the answer says."""
        self.remaining = 0
        self.resets_at = now + min(max(reset, 0.0), MAX_RATE_LIMIT_WAIT)

    def spent(self, now: float) -> bool:
        """Whether the check has taken its share of the current window."""
        remaining = self.remaining
        return remaining is not None and remaining <= self.reserve and now < self.resets_at

    def turned(self) -> None:
        """The window reset: what the new one holds is read from the next answer."""
        self.remaining = None

    def describe(self, now: float) -> str:
        """What is left of a spent window and when it resets, for the message that stops a run."""
        return '{} left of the advertised rate limit of {} until the window resets in {:.0f}s'.format(
            _count(self.remaining), _count(self.limit), self.resets_at - now
        )


def reset_of(headers: Mapping[str, str]) -> float | None:
    """The seconds until the rate limit window resets, under either API's header name."""
    for names in RATE_LIMIT_HEADERS:
        reset = _number(headers.get(names[2]))
        if reset is not None:
            return reset
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _count(value: float | None) -> str:
    return '{:.0f}'.format(value) if value is not None else 'none'
