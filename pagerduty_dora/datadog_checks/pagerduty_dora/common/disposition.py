# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a failed answer means to the caller: one `Disposition` per kind of error of `errors.py`.

Callers branch on `dispose(error)` rather than on exception classes, so that what a refused,
missing, rate-limited or failing answer means is said here once (`BY_ERROR`):

- `WAIT` (`BudgetExhausted`): nothing failed, the run spent what it may ask of the API; the rest
  waits for the next run, untold;
- `PAUSE` (`RateLimited`, `DeadlineReached`): the API cannot answer within this run's time; stop
  using it, resume next run;
- `RETRY` (`TransientError`, `ConnectionFailed`): the API failed for now (no answer, a 5xx); stop
  using it, say so, try again next run;
- `UNREADABLE` (`UnreadableResponse`): as `RETRY`, but a 2xx that does not read may never read: a
  caller that can pass over that one item does so, rather than stop on it every run;
- `FIX_KEY` (`AuthError`): the key is wrong or lacks a permission; warn about the key, since no retry
  helps until it changes;
- `GONE` (`RequestRejected` with a 404): what was asked about does not exist (any more); a caller that
  is not looking for its absence gives up as for `GIVE_UP`;
- `GIVE_UP` (any other `RequestRejected`, an `ApiError` of no known kind): refused for good, since
  sending it again would be refused the same way; give up on this item.

Retrying within the run is the client's (`http.py` retries a 429, a 5xx and a failed connection
while the run's time allows): an error that reaches a caller has already outlasted those retries.
"""

from __future__ import annotations

from enum import Enum

from .errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    ConnectionFailed,
    DeadlineReached,
    RateLimited,
    RequestRejected,
    TransientError,
    UnreadableResponse,
)


class Disposition(Enum):
    """What a failed answer means to the caller (see the module docstring for each)."""

    WAIT = 'wait'
    PAUSE = 'pause'
    RETRY = 'retry'
    UNREADABLE = 'unreadable'
    FIX_KEY = 'fix_key'
    GONE = 'gone'
    GIVE_UP = 'give_up'

    @property
    def resumes_next_run(self) -> bool:
        """Whether the work waits for the next run: this API is not asked again in this run."""
        return self in _RESUMES_NEXT_RUN

    @property
    def failed_for_now(self) -> bool:
        """Whether the API failed for now (a transient error, worth telling); a spent budget is not a failure."""
        return self in _FAILED_FOR_NOW


_FAILED_FOR_NOW = frozenset({Disposition.PAUSE, Disposition.RETRY, Disposition.UNREADABLE})
_RESUMES_NEXT_RUN = _FAILED_FOR_NOW | {Disposition.WAIT}

# Each error class of `errors.py` and its disposition; a subclass not named here takes its parent's.
BY_ERROR: dict[type[ApiError], Disposition] = {
    ApiError: Disposition.GIVE_UP,
    AuthError: Disposition.FIX_KEY,
    TransientError: Disposition.RETRY,
    ConnectionFailed: Disposition.RETRY,
    UnreadableResponse: Disposition.UNREADABLE,
    RateLimited: Disposition.PAUSE,
    DeadlineReached: Disposition.PAUSE,
    RequestRejected: Disposition.GIVE_UP,
    BudgetExhausted: Disposition.WAIT,
}
NOT_FOUND = 404


def dispose(error: ApiError) -> Disposition:
    """What `error` means to the caller: its class's disposition, `GONE` for a request refused with a 404."""
    if isinstance(error, RequestRejected) and error.status == NOT_FOUND:
        return Disposition.GONE
    return next(BY_ERROR[klass] for klass in type(error).__mro__ if klass in BY_ERROR)
