# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The one table of what a failed answer means (`common/disposition.py`), and the callers that act on it."""

from __future__ import annotations

import inspect

import pytest

from datadog_checks.pagerduty_dora.common import errors
from datadog_checks.pagerduty_dora.common.disposition import BY_ERROR, Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import (
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

ERROR_CLASSES = sorted(
    (klass for _, klass in inspect.getmembers(errors, inspect.isclass) if issubclass(klass, ApiError)),
    key=lambda klass: klass.__name__,
)

CASES = [
    (BudgetExhausted('datadog', 'used up'), Disposition.WAIT),
    (RateLimited('datadog', 'rate limited', 429), Disposition.PAUSE),
    (DeadlineReached('pagerduty', 'still arriving at the deadline'), Disposition.PAUSE),
    (TransientError('datadog', 'answered 503', 503), Disposition.RETRY),
    (ConnectionFailed('pagerduty', 'cannot connect', 'dns'), Disposition.RETRY),
    (UnreadableResponse('pagerduty', 'not JSON'), Disposition.UNREADABLE),
    (AuthError('datadog', 'answered 401', 401), Disposition.FIX_KEY),
    (AuthError('datadog', 'answered 403', 403, 'Failed permission authorization checks'), Disposition.FIX_KEY),
    (RequestRejected('pagerduty', 'answered 404', 404), Disposition.GONE),
    (RequestRejected('datadog', 'answered 400', 400), Disposition.GIVE_UP),
    (RequestRejected('datadog', 'answered a redirect (302), which is not followed', 302), Disposition.GIVE_UP),
    (RequestRejected('datadog', 'not a path on the configured host; not requested'), Disposition.GIVE_UP),
    (ApiError('datadog', 'of no known kind'), Disposition.GIVE_UP),
]
IDS = [
    'budget',
    '429',
    'deadline',
    '5xx',
    'connection',
    'unreadable',
    '401',
    '403',
    '404',
    '400',
    'redirect',
    'off-host',
    'unknown',
]


class TestTable:
    """Every error class has its disposition, and each disposition says whether the work waits for the next run."""

    def test_every_error_class_has_one(self) -> None:
        assert len(ERROR_CLASSES) == 9
        assert sorted(BY_ERROR, key=lambda klass: klass.__name__) == ERROR_CLASSES

    def test_every_error_class_is_among_the_cases(self) -> None:
        assert {type(error) for error, _ in CASES} == set(ERROR_CLASSES)

    @pytest.mark.parametrize('error, expected', CASES, ids=IDS)
    def test_disposition(self, error: ApiError, expected: Disposition) -> None:
        assert dispose(error) is expected

    def test_every_disposition_is_given(self) -> None:
        assert {expected for _, expected in CASES} == set(Disposition)

    def test_a_subclass_takes_its_parents(self) -> None:
        class SlowDown(RateLimited):
            pass

        assert dispose(SlowDown('datadog', 'rate limited', 429)) is Disposition.PAUSE

    def test_fix_key_is_a_refused_key_alone(self) -> None:
        # The check hands a FIX_KEY error on as an `AuthError`.
        assert [klass for klass, disposition in BY_ERROR.items() if disposition is Disposition.FIX_KEY] == [AuthError]

    @pytest.mark.parametrize(
        'disposition, resumes_next_run, failed_for_now',
        [
            (Disposition.WAIT, True, False),
            (Disposition.PAUSE, True, True),
            (Disposition.RETRY, True, True),
            (Disposition.UNREADABLE, True, True),
            (Disposition.FIX_KEY, False, False),
            (Disposition.GONE, False, False),
            (Disposition.GIVE_UP, False, False),
        ],
        ids=lambda value: value.value if isinstance(value, Disposition) else None,
    )
    def test_what_each_means_for_the_run(
        self, disposition: Disposition, resumes_next_run: bool, failed_for_now: bool
    ) -> None:
        assert (disposition.resumes_next_run, disposition.failed_for_now) == (resumes_next_run, failed_for_now)

    def test_transient_errors_are_the_failures_for_now(self) -> None:
        failed = {type(error) for error, _ in CASES if dispose(error).failed_for_now}
        assert failed == {klass for klass in ERROR_CLASSES if issubclass(klass, TransientError)}
