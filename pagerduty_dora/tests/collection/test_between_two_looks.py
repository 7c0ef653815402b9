# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collection engine between two looks: several changes, undone changes, scope moves, deletes, merges.

Each test runs the check over several runs against the simulated PagerDuty account and DORA API,
with the changes made between two runs, and checks every event (kind, time, count) and the final
state of every DORA failure.
"""

import random

import pytest

from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.server import Reply
from ..harness import DAY, DD_APP_KEY, START, event_keys, transition_of

pytestmark = [pytest.mark.usefixtures('datadog_agent', 'simulated_run'), pytest.mark.slow]


def timeline(aggregator, incident=None):
    """(transition, timestamp) of every event, oldest first, for one incident or all."""
    events = [e for e in aggregator.events if incident is None or e['aggregation_key'] == incident]
    return sorted(((transition_of(e), e['timestamp']) for e in events), key=lambda pair: pair[1])


def histogram_values(aggregator, name):
    return sorted(m.value for m in aggregator.metrics('pagerduty_dora.incidents.{}'.format(name)))


def live_check(dd_run_check, world, **options):
    """A check that has made its first run (which only records), ready to see changes."""
    check = world.check(**options)
    dd_run_check(check)
    world.account.advance(60)
    return check


class TestSeveralChangesBetweenTwoLooks:
    """Every transition between two runs is reported, in order, at its own time."""

    def test_created_acknowledged_and_resolved(self, world, services, dd_run_check, aggregator):
        check = live_check(dd_run_check, world)
        account = world.account
        created = account.now
        incident = account.trigger(services['checkout'], 'Checkout errors', priority='P1')
        account.advance(45)
        account.acknowledge(incident)
        account.advance(300)
        account.resolve(incident)
        account.advance(30)
        dd_run_check(check)
        assert timeline(aggregator) == [
            ('triggered', created),
            ('acknowledged', created + 45),
            ('resolved', created + 345),
        ]
        assert histogram_values(aggregator, 'time_to_acknowledge') == [45]
        assert histogram_values(aggregator, 'time_to_restore') == [345]
        failure = world.dora.failures[failure_id(incident)]
        assert failure['finished_at'] - failure['started_at'] == 345 * 10**9

    @pytest.mark.parametrize('acknowledged_first', [False, True], ids=['from-triggered', 'from-acknowledged'])
    def test_resolved_reopened_resolved(self, world, services, dd_run_check, aggregator, acknowledged_first):
        check = live_check(dd_run_check, world)
        account = world.account
        incident = account.trigger(services['checkout'], 'Queue backlog')
        if acknowledged_first:
            account.advance(10)
            account.acknowledge(incident)
        account.advance(60)
        dd_run_check(check)
        aggregator.reset()

        account.advance(100)
        first_resolve = account.now
        account.resolve(incident)
        account.advance(200)
        account.reopen(incident)
        account.advance(50)
        second_resolve = account.now
        account.resolve(incident)
        account.advance(60)
        dd_run_check(check)
        kinds = [kind for kind, _ in timeline(aggregator)]
        assert kinds == ['resolved', 'reopened', 'resolved']
        assert timeline(aggregator)[0][1] == first_resolve
        assert timeline(aggregator)[2][1] == second_resolve
        failure = world.dora.failures[failure_id(incident)]
        assert failure['finished_at'] == second_resolve * 10**9

    def test_acknowledged_then_unacknowledged(self, world, services, dd_run_check, aggregator):
        account = world.account
        incident = account.trigger(services['billing'], 'Invoices stuck')
        account.advance(60)
        check = live_check(dd_run_check, world)
        aggregator.reset()
        account.acknowledge(incident)
        acked = account.now
        account.advance(20)
        account.unacknowledge(incident)
        account.advance(60)
        dd_run_check(check)
        assert timeline(aggregator) == [('acknowledged', acked), ('unacknowledged', acked + 20)]

    def test_ack_unack_ack_measures_to_the_first_acknowledgement(self, world, services, dd_run_check, aggregator):
        check = live_check(dd_run_check, world)
        account = world.account
        created = account.now
        incident = account.trigger(services['billing'], 'Invoices stuck')
        account.advance(60)
        dd_run_check(check)
        aggregator.reset()
        account.acknowledge(incident)
        account.advance(20)
        account.unacknowledge(incident)
        account.advance(20)
        account.acknowledge(incident)
        account.advance(60)
        dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator)] == ['acknowledged', 'unacknowledged', 'acknowledged']
        assert histogram_values(aggregator, 'time_to_acknowledge') == [60]
        assert timeline(aggregator)[0][1] == created + 60

    @pytest.mark.parametrize('resolve', [False, True], ids=['open', 'resolved'])
    def test_created_in_the_second_the_first_run_starts(self, world, services, dd_run_check, aggregator, resolve):
        incident = world.account.trigger(services['checkout'], 'Born with the collector')
        check = world.check()
        dd_run_check(check)
        if resolve:
            world.account.advance(5)
            world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(check)
        expected = ['triggered', 'resolved'] if resolve else ['triggered']
        assert [kind for kind, _ in timeline(aggregator)] == expected

    def test_several_changes_survive_a_restart(self, world, services, dd_run_check, aggregator):
        live_check(dd_run_check, world)
        account = world.account
        incident = account.trigger(services['checkout'], 'Disk full')
        account.advance(10)
        account.acknowledge(incident)
        account.advance(10)
        account.unacknowledge(incident)
        account.advance(10)
        account.resolve(incident)
        account.advance(60)
        dd_run_check(world.check(timeout=7))
        dd_run_check(world.check())
        assert sorted(event_keys(aggregator).items()) == sorted(
            ((incident, kind), 1) for kind in ('triggered', 'acknowledged', 'unacknowledged', 'resolved')
        )


class TestScopeAndFilterMoves:
    """Coming into scope is not a reopen; leaving it never leaves an open failure behind."""

    def test_moved_into_the_scope_is_not_a_reopen(self, world, services, dd_run_check, aggregator):
        account = world.account
        incident = account.trigger(services['billing'], 'Elsewhere first')
        account.advance(60)
        check = live_check(dd_run_check, world, service_ids=[services['checkout']])
        for _ in range(2):
            dd_run_check(check)
            account.advance(60)
        account.move(incident, services['checkout'])
        account.advance(60)
        dd_run_check(check)
        account.advance(60)
        dd_run_check(check)
        assert 'reopened' not in [kind for kind, _ in timeline(aggregator)]
        failure = world.dora.failures[failure_id(incident)]
        assert failure['services'] == ['Checkout API']
        assert 'finished_at' not in failure

    def test_priority_into_the_filters_is_not_a_reopen(self, world, services, dd_run_check, aggregator):
        account = world.account
        incident = account.trigger(services['checkout'], 'Minor at first', priority='P4')
        account.advance(60)
        check = live_check(dd_run_check, world, priorities=['P1'])
        assert failure_id(incident) not in world.dora.failures
        account.set_priority(incident, 'P1')
        account.advance(60)
        dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator)] == ['priority_changed']
        assert world.dora.failures[failure_id(incident)]['severity'] == 'P1'

    @pytest.mark.parametrize('app_key', [True, False], ids=['removed', 'followed-to-resolve'])
    def test_leaving_the_scope(self, world, services, dd_run_check, aggregator, app_key):
        account = world.account
        options = {'service_ids': [services['checkout']]}
        if app_key:
            options['datadog_app_key'] = DD_APP_KEY
        check = live_check(dd_run_check, world, **options)
        incident = account.trigger(services['checkout'], 'Moves away')
        account.advance(60)
        dd_run_check(check)
        assert failure_id(incident) in world.dora.failures
        account.move(incident, services['billing'])
        account.advance(60)
        for _ in range(2):
            dd_run_check(check)
            account.advance(60)
        if app_key:
            assert failure_id(incident) not in world.dora.failures
            assert world.dora.removed == [failure_id(incident)]
            return
        assert 'finished_at' not in world.dora.failures[failure_id(incident)]
        account.resolve(incident)
        account.advance(60)
        for _ in range(2):
            dd_run_check(check)
            account.advance(60)
        assert world.dora.failures[failure_id(incident)]['finished_at'] is not None
        assert incident not in check.collector.state.incidents

    def test_leaving_the_filters_removes_the_failure(self, world, services, dd_run_check, aggregator):
        check = live_check(dd_run_check, world, priorities=['P1', 'P2'], datadog_app_key=DD_APP_KEY)
        incident = world.account.trigger(services['checkout'], 'Downgraded', priority='P1')
        world.account.advance(60)
        dd_run_check(check)
        assert failure_id(incident) in world.dora.failures
        world.account.set_priority(incident, 'P4')
        world.account.advance(60)
        dd_run_check(check)
        assert failure_id(incident) not in world.dora.failures

    def test_deleted_incident_removes_its_failure(self, world, services, dd_run_check, aggregator):
        check = live_check(dd_run_check, world, datadog_app_key=DD_APP_KEY)
        incident = world.account.trigger(services['checkout'], 'Created by mistake')
        world.account.advance(60)
        dd_run_check(check)
        world.account.delete(incident)
        world.account.advance(60)
        for _ in range(2):
            dd_run_check(check)
            world.account.advance(60)
        assert failure_id(incident) not in world.dora.failures
        assert incident not in check.collector.state.incidents

    @pytest.mark.parametrize('app_key', [True, False], ids=['removed', 'closed'])
    def test_merged_incident(self, world, services, dd_run_check, aggregator, app_key):
        options = {'datadog_app_key': DD_APP_KEY} if app_key else {}
        check = live_check(dd_run_check, world, **options)
        survivor = world.account.trigger(services['checkout'], 'Checkout down')
        duplicate = world.account.trigger(services['checkout'], 'Checkout down again')
        world.account.advance(60)
        dd_run_check(check)
        world.account.merge(duplicate, survivor)
        world.account.advance(60)
        dd_run_check(check)
        assert 'finished_at' not in world.dora.failures[failure_id(survivor)]
        if app_key:
            assert failure_id(duplicate) not in world.dora.failures
        else:
            assert world.dora.failures[failure_id(duplicate)]['finished_at'] is not None
        # The duplicate resolves once, and leaving by a merge is not leaving the filters.
        assert event_keys(aggregator)[(duplicate, 'resolved')] == 1
        assert sum(m.value for m in aggregator.metrics('pagerduty_dora.incidents.filtered')) == 0


class TestPasses:
    """Passes that span runs resume by position; the cursor only moves forward."""

    def test_open_pass_resumes_by_position_while_incidents_resolve(self, world, services, dd_run_check, aggregator):
        account = world.account
        incidents = []
        for number in range(300):
            account.now = START - DAY + number * 60
            incidents.append(account.trigger(services['checkout'], 'Open {}'.format(number)))
        account.now = START
        check = world.check(max_requests_per_run=2, backfill_days=0)
        rng = random.Random(5)
        resolved = []
        for _ in range(60):
            dd_run_check(check)
            account.advance(60)
            open_now = [i for i in incidents if account.status(i) != 'resolved']
            for incident in rng.sample(open_now, 3):
                account.resolve(incident)
                resolved.append(incident)
            account.advance(1)
        for _ in range(40):
            dd_run_check(check)
            account.advance(60)
        counted = event_keys(aggregator)
        assert {key for key, _ in counted} <= set(incidents)
        assert sorted(kind for _, kind in counted) == ['resolved'] * len(resolved)
        assert set(counted.values()) == {1}

    def test_burst_before_the_first_run_never_moves_the_cursor_back(self, world, services, dd_run_check, aggregator):
        account = world.account
        burst_start = START - 600
        for number in range(12000):
            account.now = burst_start + number * 100 / 12000
            account.trigger(services['checkout'], 'Burst')
        account.now = START
        check = world.check(max_requests_per_run=500)
        swept = []
        runs = 0
        while len(world.dora.failures) < 12000 and runs < 40:
            dd_run_check(check)
            if check.collector.state.swept_until is not None:
                swept.append(check.collector.state.swept_until)
            account.advance(60)
            runs += 1
        assert len(world.dora.failures) == 12000
        assert runs <= 12000 // 500 + 3
        assert swept == sorted(swept)

    def test_turning_delivery_on_sends_resolved_history(self, world, services, dd_run_check, aggregator):
        account = world.account
        ids = []
        for days in (20, 10, 5):
            account.now = START - days * DAY
            ids.append(account.trigger(services['billing'], 'History {}'.format(days)))
            account.advance(600)
            account.resolve(ids[-1])
        account.now = START
        dd_run_check(world.check(submit_dora_failures=False))
        assert world.dora.failures == {}
        account.advance(60)
        check = world.check()
        for _ in range(3):
            dd_run_check(check)
            account.advance(60)
        assert set(world.dora.failures) == {failure_id(i) for i in ids}
        assert all(f['finished_at'] is not None for f in world.dora.failures.values())


class TestCost:
    """What a run costs follows activity, not the number of open incidents."""

    @pytest.mark.parametrize('open_count', [50, 450], ids=['50-open', '450-open'])
    def test_idle_run(self, world, services, dd_run_check, open_count):
        account = world.account
        for number in range(open_count):
            account.now = START - DAY + number
            account.trigger(services['checkout'], 'Open')
        account.now = START
        check = world.check(backfill_days=2)
        for _ in range(3):
            dd_run_check(check)
            account.advance(60)
        for _ in range(10):
            before = world.pd_requests()
            dd_run_check(check)
            assert world.pd_requests() - before <= 3
            account.advance(60)

    def test_unlogged_priority_change_seen_within_one_interval(self, world, dd_run_check, aggregator):
        service = world.account.add_service('Edge')
        incidents = [world.account.trigger(service, 'Open {}'.format(n)) for n in range(90)]
        world.account.advance(60)
        check = live_check(dd_run_check, world)
        dd_run_check(check)
        world.account.set_priority(incidents[45], 'P2')
        world.account.advance(60)
        dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator)] == ['priority_changed']


class TestDeadline:
    """A response still arriving at the run deadline ends the run cleanly; the next run resumes."""

    def test_slow_body_at_the_deadline(self, world, services, dd_run_check, aggregator):
        live_check(dd_run_check, world)
        incident = world.account.trigger(services['checkout'], 'Slow day')
        world.account.advance(60)
        # A log page of about 5 MB, read in 64 KB chunks while the run's clock moves a second per look.
        body = {'log_entries': [{'id': 'R{}'.format(n), 'type': 'annotate_log_entry'} for n in range(100000)]}
        world.pagerduty.server.fault = lambda request: Reply(200, body) if request.path == '/log_entries' else None
        ticks = iter(range(10**6))
        stalled = world.check()
        stalled.monotonic = lambda: float(next(ticks))
        dd_run_check(stalled)
        assert 'deadline' in stalled.last_report.stopped
        assert aggregator.events == []

        world.pagerduty.server.fault = None
        world.account.advance(60)
        dd_run_check(world.check())
        assert [kind for kind, _ in timeline(aggregator, incident)] == ['triggered']
