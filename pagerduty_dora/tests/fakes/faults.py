# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Fault injection shared by every fake: faults planned per path prefix, plus seeded chaos.

A fault is an HTTP status (`'500'`, `429`...) or one of the named kinds a fake supports:

- `429_bare`: a 429 without rate limit headers;
- `timeout`: an answer held back for the fake's `timeout_delay`;
- `truncated`: a real answer whose body is cut in half;
- `bad_json`: a 200 whose body does not parse.

Each fake decides where in its pipeline faults are taken (before or after authentication) and how
its API words them (PagerDuty's `error` object, Datadog's `errors` list, their rate limit headers).

    fake.faults.fail_next(2, 503)                              # the next two requests
    fake.faults.fail_next(1, '429', reset=7, path_prefix='/log_entries')
    fake.faults.chaos(0.25, seed=3, kinds=['500', '429'])      # a seeded quarter of all requests
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

from .server import Request

NAMED_KINDS = ('429_bare', 'timeout', 'truncated', 'bad_json')
_STATUS = re.compile(r'[45]\d\d')


@dataclass(frozen=True)
class Fault:
    kind: str  # an HTTP status such as '503', or a named kind
    reset: int = 1  # seconds a `429` tells the client to wait

    @property
    def status(self) -> int | None:
        return int(self.kind) if _STATUS.fullmatch(self.kind) else None


class Faults:
    """The faults a fake will answer with: `fail_next` plans some, `chaos` draws them at random.

    `kinds` are the named kinds the fake supports (HTTP statuses always are). Every fault taken is
    appended to `served` as (kind, path).
    """

    def __init__(self, kinds: Iterable[str] = ()) -> None:
        self.kinds = tuple(kinds)
        self.served: list[tuple[str, str]] = []
        self._planned: list[tuple[Fault, str]] = []
        self._chaos: tuple[float, random.Random, tuple[str, ...], int] | None = None
        self._lock = threading.Lock()

    def _check(self, kinds: Iterable[str | int]) -> tuple[str, ...]:
        names = tuple(str(kind) for kind in kinds)
        unknown = sorted(kind for kind in names if kind not in self.kinds and not _STATUS.fullmatch(kind))
        if unknown:
            raise ValueError('unknown fault kinds {}; known: HTTP statuses and {}'.format(unknown, self.kinds))
        return names

    def fail_next(self, n: int = 1, kind: str | int = '500', *, reset: int = 1, path_prefix: str = '') -> None:
        """Answer the next `n` requests under `path_prefix` with fault `kind`."""
        (name,) = self._check([kind])
        with self._lock:
            self._planned += [(Fault(name, reset), path_prefix)] * n

    def chaos(self, rate: float, seed: int = 0, kinds: Sequence[str | int] = ('500',), *, reset: int = 1) -> None:
        """Fail a seeded-random `rate` share of requests with one of `kinds`; `chaos(0)` stops it."""
        names = self._check(kinds)
        with self._lock:
            self._chaos = (rate, random.Random(seed), names, reset) if rate > 0 else None

    def take(self, request: Request) -> Fault | None:
        """The fault this request gets, if any: the first planned one for its path, else chaos."""
        fault = None
        with self._lock:
            for position, (planned, prefix) in enumerate(self._planned):
                if request.path.startswith(prefix):
                    del self._planned[position]
                    fault = planned
                    break
            if fault is None and self._chaos is not None:
                rate, rng, kinds, reset = self._chaos
                if rng.random() < rate:
                    fault = Fault(rng.choice(kinds), reset)
            if fault is not None:
                self.served.append((fault.kind, request.path))
        return fault
