# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Runs pace themselves by what the APIs advertise and by a share of the interval; history goes back two years.

Without `max_requests_per_run`, a run takes at most its share of each rate limit window PagerDuty
(`ratelimit-*`) and Datadog (`X-RateLimit-*`) advertise and makes requests during half of the
collection interval at most (`common/http.py`, `wiring.py`); with it, the option is a hard cap. The
fakes count their windows on the account's clock, and the check's waits move that clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.common.times import parse_time
from datadog_checks.pagerduty_dora.datadog.dora import failure_id
from datadog_checks.pagerduty_dora.pagerduty.client import auth_headers

from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, START, World, stored_state

pytestmark = pytest.mark.usefixtures('datadog_agent')

INTERVAL = 60
MAX_RUNS = 60
SIX_MONTHS = 184 * DAY


def on_account_time(world: World, check: Any) -> Any:
    """The check's waits for a rate limit window pass on the account's clock, as its runs do."""
    check.sleep = lambda seconds: world.account.advance(seconds)
    return check


def backfilled(world: World, check: Any) -> bool:
    """Whether the history is read and every DORA failure it made is delivered."""
    state = stored_state(check)
    return state.sweep_window is None and state.swept_until == state.live_since and check.collector.dora.pending == 0


def run_until_backfilled(world: World, check: Any, dd_run_check: Any, interval: float = INTERVAL) -> list[int]:
    """Run `check` every `interval` seconds of the account's time until the backfill is delivered.

    The PagerDuty requests each run made, in order."""
    per_run = []
    for _ in range(MAX_RUNS):
        before = world.pd_requests()
        dd_run_check(check)
        per_run.append(world.pd_requests() - before)
        if backfilled(world, check):
            return per_run
        world.account.advance(interval)
    raise AssertionError('the backfill did not complete in {} runs: {}'.format(MAX_RUNS, per_run))


@pytest.fixture
def busy_world():
    """600 incidents over the last 20 days, PagerDuty and Datadog advertising small limits on the account's clock."""
    account = PagerDutyAccount.generate(600, START - 20 * DAY, START - DAY, seed=5, open_fraction=0.05, now=START)
    world = World(account, rate_limit=5, clock=lambda: account.now)
    world.dora.rate_limit = 50
    world.dora.clock = lambda: account.now
    yield world
    world.close()


class TestAdvertisedLimits:
    """Unset, the check takes at most four fifths of each advertised window, and meets no 429."""

    def test_backfill_stays_within_both_advertised_limits(self, busy_world, dd_run_check):
        world = busy_world
        check = on_account_time(world, world.check(backfill_days=30))
        per_run = run_until_backfilled(world, check, dd_run_check)
        # A fifth of each window is left to the other users of the keys: 1 of PagerDuty's 5, 10 of Datadog's 50.
        assert world.pagerduty.least_remaining == 1
        assert world.dora.least_remaining == 10
        assert (world.pagerduty.limited, world.dora.limited) == (0, 0)
        assert len(world.dora.failures) == 600
        # Paced by the windows rather than a fixed number: the history took many runs, none idle.
        assert len(per_run) > 10 and min(per_run) > 0

    def test_a_window_spent_by_others_is_left_alone_until_it_turns(self, busy_world, dd_run_check):
        world = busy_world
        # Another user of the key takes all but two of the minute's five.
        others = RequestsWrapper({'timeout': 5}, {})
        for _ in range(3):
            others.get(world.pagerduty.url + '/incidents', extra_headers=auth_headers(world.account.token))
        check = on_account_time(world, world.check(backfill_days=30))
        before = world.pd_requests()
        dd_run_check(check)
        # Its first answer says the window is down to the reserve: nothing more until the window turns.
        assert world.pd_requests() - before == 1
        world.account.advance(INTERVAL)
        before = world.pd_requests()
        dd_run_check(check)
        assert world.pd_requests() - before == 4
        assert (world.pagerduty.limited, world.pagerduty.least_remaining) == (0, 1)

    def test_a_cap_is_a_hard_bound_on_each_api(self, busy_world, dd_run_check):
        world = busy_world
        check = on_account_time(world, world.check(backfill_days=30, max_requests_per_run=5))
        posts = world.datadog.count('POST', '/api/v2/dora/failure')
        for _ in range(3):
            before = world.pd_requests()
            dd_run_check(check)
            assert world.pd_requests() - before <= 5
            world.account.advance(INTERVAL)
        assert world.datadog.count('POST', '/api/v2/dora/failure') - posts <= 15


class TestRunTime:
    """Unset, a run makes requests during half of the interval at most, however much is left to read."""

    def test_a_short_interval_stops_the_requests_at_half_of_it(self, dd_run_check):
        account = PagerDutyAccount.generate(3000, START - 10 * DAY, START - DAY, seed=6, open_fraction=0.0, now=START)
        world = World(account)
        try:
            # PagerDuty answers each request in a second of the account's clock.
            world.pagerduty.server.fault = lambda request: account.advance(1) and None
            check = on_account_time(world, world.check(backfill_days=30, min_collection_interval=10))
            per_run = []
            for _ in range(4):
                before = world.pd_requests()
                dd_run_check(check)
                per_run.append(world.pd_requests() - before)
                account.advance(10)
        finally:
            world.close()
        # 5 seconds to start requests, a second each: 6 a run (the run's deadline, at 8 seconds, is not reached).
        assert per_run == [6, 6, 6, 6]
        assert 'time for requests' in check.last_report.stopped


class TestTwoYearsOfHistory:
    """`backfill_days: 730` loads two years of history in windows PagerDuty accepts."""

    def test_an_account_spread_over_two_years_is_loaded_whole(self, dd_run_check):
        account = PagerDutyAccount.generate(80, START - 729 * DAY, START - DAY, seed=7, open_fraction=0.1, now=START)
        world = World(account)
        try:
            check = on_account_time(world, world.check(backfill_days=730))
            run_until_backfilled(world, check, dd_run_check)
            sent = {failure_id(i): account.created_at(i) for i in account.incident_ids()}
            failures = dict(world.dora.failures)
            spans = [
                parse_time(r.arg('until')) - parse_time(r.arg('since'))
                for r in world.pagerduty.requests
                if r.path == '/incidents' and r.arg('since')
            ]
        finally:
            world.close()
        assert set(failures) == set(sent)
        assert all(failures[key]['started_at'] == int(created) * 10**9 for key, created in sent.items())
        oldest = min(sent.values())
        assert oldest < START - 700 * DAY
        assert spans and max(spans) <= SIX_MONTHS
