# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A PagerDuty that lies about its paging, or answers a page that never reads: the feed goes on.

Most tests make 150 incidents trigger between two runs (one page of log entries holds 100), let a
hostile server answer the change feed, and check that every trigger is reported once, or that what
cannot be read is skipped with a warning and a count while the rest is collected as usual. A log
that says `more` for ever costs a few requests a run, not the run's budget.
"""

from __future__ import annotations

from collections import Counter

import pytest

from datadog_checks.pagerduty_dora.demo.server import LoopbackServer

from ..fakes.server import Reply
from ..harness import event_keys

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

BURST = 150


def rewrite_log_pages(world, rewrite):
    """Answer `GET /log_entries` with the real page, rewritten by `rewrite(body, request)`."""
    server = world.pagerduty.server

    def fault(request):
        if request.path != '/log_entries':
            return None
        reply = LoopbackServer.dispatch(server, request)
        if reply.status == 200 and isinstance(reply.body, dict):
            reply.body = rewrite(dict(reply.body), request)
        return reply

    server.fault = fault


def burst(world, services, count=BURST):
    account = world.account
    incidents = []
    for n in range(count):
        incidents.append(account.trigger(services['checkout'], 'Burst {}'.format(n)))
        if n % 10 == 9:
            account.advance(1)
    account.advance(60)
    return incidents


def triggers(aggregator):
    return Counter(kind for (_, kind) in event_keys(aggregator).elements())


def skipped(aggregator):
    """(value, tags) of each `log_entries.skipped` submitted, in order."""
    return [(m.value, m.tags) for m in aggregator.metrics('pagerduty_dora.log_entries.skipped')]


class TestLyingPagingMetadata:
    """`total`, `more` and `offset` are checked, never trusted alone."""

    @pytest.mark.parametrize(
        'rewrite',
        [
            lambda body, request: dict(body, total=len(body.get('log_entries') or [])),
            lambda body, request: dict(body, total=None),
        ],
        ids=['total-equal-to-the-page', 'total-null'],
    )
    def test_every_trigger_is_reported_once(self, world, services, dd_run_check, aggregator, rewrite):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incidents = burst(world, services)
        rewrite_log_pages(world, rewrite)
        for _ in range(3):
            dd_run_check(check)
            world.account.advance(60)
        counted = event_keys(aggregator)
        assert {i for (i, kind) in counted if kind == 'triggered'} == set(incidents)
        assert set(counted.values()) == {1}

    def test_a_server_that_ignores_offset_is_warned_about_and_recovered_by_reconciliation(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incidents = burst(world, services)

        def first_page(request):
            # Page one, whatever offset is asked for (and it says so).
            if request.path != '/log_entries':
                return None
            first = request.query.copy()
            first['offset'] = ['0']
            request.query = first
            return LoopbackServer.dispatch(world.pagerduty.server, request)

        world.pagerduty.server.fault = first_page
        for _ in range(8):
            dd_run_check(check)
            world.account.advance(60)
        unpaged = (
            'PagerDuty answered log entries from offset 0 when asked for offset 97; the rest of {0} to {1} is '
            'skipped, and reconciliation recovers the state of the incidents it concerns'
        )
        windows = [('2026-11-02T11:57:00Z', '2027-05-01T11:57:00Z'), ('2026-11-02T11:59:15Z', '2027-05-01T11:59:15Z')]
        windows.append(('2026-11-02T12:00:15Z', '2027-05-01T12:00:15Z'))
        assert [w for w in check.warnings if 'when asked for offset' in w] == [unpaged.format(*w) for w in windows]
        assert skipped(aggregator) == [(1.0, ['reason:unpaged'])] * 3
        counted = event_keys(aggregator)
        # Nothing twice; what the unpaged window held is found again as open incidents, created since
        # going live, read from their own logs.
        assert set(counted.values()) == {1}
        assert {i for (i, kind) in counted if kind == 'triggered'} == set(incidents)


class TestUnreadablePage:
    """A feed page that never reads is retried, narrowed, then passed over; the rest goes on."""

    def test_a_deeply_nested_entry_stops_the_feed_for_a_few_runs_only(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        bad_second = world.account.now
        poisoned = world.account.trigger(services['checkout'], 'Poisoned')
        world.account.advance(30)
        later = world.account.trigger(services['billing'], 'Later')
        world.account.advance(60)
        nested = b'[' * 12000 + b']' * 12000

        def unreadable(request):
            if request.path != '/log_entries':
                return None
            since, until = request.arg('since') or '', request.arg('until') or ''
            from datadog_checks.pagerduty_dora.common.times import parse_time

            if parse_time(since) <= bad_second < parse_time(until):
                return Reply(200, raw=b'{"log_entries": [' + nested + b']}')
            return None

        world.pagerduty.server.fault = unreadable
        raised = 0
        for _ in range(12):
            try:
                dd_run_check(check)
            except Exception:
                raised += 1
            world.account.advance(60)
        # The retries of the page, then it is cornered and passed over within one run.
        assert raised == 2
        assert [w for w in check.warnings if 'could not be read after' in w] == [
            'PagerDuty log entries of 2026-11-02T12:01:00Z to 2026-11-02T12:01:01Z could not be read after 3 tries '
            'and were skipped; reconciliation recovers the state of the incidents they concern'
        ]
        assert skipped(aggregator) == [(1.0, ['reason:unreadable'])]
        counted = event_keys(aggregator)
        assert counted[(later, 'triggered')] == 1
        # The passed-over second's incident is recovered by reconciliation from its own log.
        assert counted[(poisoned, 'triggered')] == 1


class TestUnusableEntries:
    """Entries that cannot be used are skipped, counted and warned about once; the valid ones go on."""

    def test_unusable_entries(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incidents = burst(world, services, 20)

        def spoil(body, request):
            entries = list(body.get('log_entries') or [])
            return dict(
                body,
                log_entries=entries
                + [
                    'not an object',
                    {'id': 'RNOTIME', 'type': 'trigger_log_entry', 'incident': {'id': incidents[0]}},
                    {'id': 7, 'type': 'trigger_log_entry', 'created_at': entries[0]['created_at'] if entries else ''},
                    {'id': 'RNOINC', 'type': 'trigger_log_entry', 'created_at': '2026-11-02T12:00:00Z', 'incident': {}},
                    {
                        'id': 'RFAR',
                        'type': 'trigger_log_entry',
                        'created_at': '9999-12-31T23:59:59Z',
                        'incident': {'id': 'X'},
                    },
                ],
            )

        rewrite_log_pages(world, spoil)
        dd_run_check(check)
        dd_run_check(check)
        counted = event_keys(aggregator)
        assert {i for (i, kind) in counted if kind == 'triggered'} == set(incidents)
        warned = [w for w in check.warnings if 'log entries that could not be used' in w]
        assert len(warned) == 2
        assert skipped(aggregator) == [(5.0, ['reason:malformed'])] * 2


class TestLogThatNeverEnds:
    """A log that always says `more` ends each window a page later, warned about once a run; the feed goes on."""

    def test_each_run_reads_its_window_and_stops(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        rewrite_log_pages(world, lambda body, request: dict(body, more=True))
        incidents, offsets = [], []
        for n in range(3):
            incidents.append(world.account.trigger(services['checkout'], 'Run {}'.format(n)))
            world.account.advance(30)
            world.account.acknowledge(incidents[-1])
            world.account.advance(30)
            before = len(world.pagerduty.requests)
            dd_run_check(check)
            offsets.append([r.arg('offset') for r in world.pagerduty.requests[before:] if r.path == '/log_entries'])
        # The first page, the empty one after it, the first again (entries may have vanished), the
        # empty one again: the window ends there.
        assert offsets == [['0', '97', '0', '97']] * 3
        endless = (
            'PagerDuty log entries of {} to {} did not continue at offset 97 where the page before said there were '
            'more; the window ends there, and reconciliation recovers the state of the incidents it concerns'
        )
        # Once a run: each run's window reaches back three minutes before where the last one ended.
        windows = [
            ('2026-11-02T11:57:00Z', '2027-05-01T11:57:00Z'),
            ('2026-11-02T11:59:00Z', '2027-05-01T11:59:00Z'),
            ('2026-11-02T12:00:00Z', '2027-05-01T12:00:00Z'),
        ]
        assert [w for w in check.warnings if 'did not continue' in w] == [endless.format(*w) for w in windows]
        assert skipped(aggregator) == [(1.0, ['reason:endless'])] * 3
        counted = event_keys(aggregator)
        assert counted == Counter({(i, kind): 1 for i in incidents for kind in ('triggered', 'acknowledged')})

    def test_an_incidents_own_log_that_never_ends_is_read_until_a_page_adds_nothing(
        self, world, services, dd_run_check, aggregator
    ):
        old = world.account.trigger(services['billing'], 'Old', created_at=world.account.now - 20 * 86400)
        world.account.now -= 20 * 86400 - 3600
        world.account.resolve(old)
        world.account.now += 20 * 86400 - 3600
        check = world.check(backfill_days=7)
        dd_run_check(check)
        world.account.advance(60)
        world.account.reopen(old)
        world.account.advance(60)
        server = world.pagerduty.server
        own_log = '/incidents/{}/log_entries'.format(old)

        def page_one_for_ever(request):
            # Page one whatever the offset, saying there is more.
            if request.path != own_log:
                return None
            request.query = dict(request.query, offset=['0'])
            reply = LoopbackServer.dispatch(server, request)
            reply.body = dict(reply.body, more=True)
            return reply

        server.fault = page_one_for_ever
        before = world.pagerduty.count(own_log)
        dd_run_check(check)
        assert world.pagerduty.count(own_log) - before == 2
        assert event_keys(aggregator) == Counter({(old, 'reopened'): 1})


class TestReconciliationThatNeverEnds:
    """A list of open incidents that always says `more` ends the pass at the offset cap, and the next starts over."""

    def test_never_past_the_offset_cap(self, world, services, dd_run_check, aggregator):
        for n in range(3):
            world.account.trigger(services['checkout'], 'Open {}'.format(n))
        world.account.advance(60)
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        server = world.pagerduty.server

        def always_more(request):
            if request.path != '/incidents' or 'statuses[]' not in request.query:
                return None
            reply = LoopbackServer.dispatch(server, request)
            if isinstance(reply.body, dict):
                reply.body = dict(reply.body, more=True)
            return reply

        server.fault = always_more
        for _ in range(30):
            dd_run_check(check)
            world.account.advance(60)
        offsets = [int(r.arg('offset') or 0) for r in world.pagerduty.requests if r.path == '/incidents']
        assert max(offsets) + 100 <= 10000
        endless = (
            'The list of open PagerDuty incidents did not end within 10000 incidents of one position; this '
            'reconciliation pass ends there and the next one starts over'
        )
        assert [w for w in check.warnings if 'did not end within' in w] == [endless] * 15
        server.fault = None
        world.account.acknowledge(world.account.incident_ids()[0])
        world.account.advance(60)
        dd_run_check(check)
        assert event_keys(aggregator)[(world.account.incident_ids()[0], 'acknowledged')] == 1
