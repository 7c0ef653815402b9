# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Delivery truth, instances of their own, and the numbers a user reads: each case end to end.

The check runs over several runs against the simulated PagerDuty account and the DORA fake, with
Datadog failing or delivery switched off between some of them; every failure must end in its
incident's true state, and every count and gauge must say what happened once.
"""

from __future__ import annotations

import pytest

from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.server import Reply
from ..harness import DAY, DD_APP_KEY, event_keys

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')


def unavailable(request):
    return Reply(503, {'errors': ['unavailable']}) if '/api/v2/dora/' in request.path else None


def total(aggregator, name, tags=None):
    return sum(
        m.value for m in aggregator.metrics('pagerduty_dora.' + name) if tags is None or set(tags) <= set(m.tags)
    )


def collected(world, dd_run_check, titles, check_options=None, **trigger):
    """A check run once, then an incident per (service, title) of `titles`, triggered and collected by a second run.

    `trigger` goes to every `trigger()`; returns the check and the incident ids, in the order of `titles`.
    """
    check = world.check(**(check_options or {}))
    dd_run_check(check)
    world.account.advance(60)
    incidents = [world.account.trigger(service, title, **trigger) for service, title in titles]
    world.account.advance(60)
    dd_run_check(check)
    return check, incidents


class TestDeliveryTruth:
    """What the check records as sent is what Datadog accepted."""

    def test_a_resolve_dropped_after_a_week_of_outage_is_sent_again(self, world, services, dd_run_check):
        check, [incident] = collected(world, dd_run_check, [(services['checkout'], 'Down')])
        world.datadog.fault = unavailable
        resolved_at = world.account.now
        world.account.resolve(incident)
        for _ in range(9):
            world.account.advance(DAY)
            try:
                dd_run_check(check)
            except Exception:
                pass
        world.datadog.fault = None
        world.account.advance(60)
        dd_run_check(check)
        world.account.advance(60)
        dd_run_check(check)
        assert world.dora.failures[failure_id(incident)]['finished_at'] == int(resolved_at) * 10**9

    def test_delivery_switched_off_and_on(self, world, services, dd_run_check):
        _, [open_then] = collected(world, dd_run_check, [(services['checkout'], 'Open before')])
        assert 'finished_at' not in world.dora.failures[failure_id(open_then)]

        off = world.check(submit_dora_failures=False)
        world.account.resolve(open_then)
        meanwhile = world.account.trigger(services['billing'], 'Created and resolved meanwhile')
        world.account.advance(60)
        world.account.resolve(meanwhile)
        for _ in range(3):
            world.account.advance(4 * DAY)
            dd_run_check(off)

        on = world.check()
        for _ in range(3):
            world.account.advance(60)
            dd_run_check(on)
        assert 'finished_at' in world.dora.failures[failure_id(open_then)]
        assert 'finished_at' in world.dora.failures[failure_id(meanwhile)]

    def test_a_refused_removal_never_stops_collection(self, world, services, dd_run_check, aggregator):
        check, [leaving] = collected(
            world,
            dd_run_check,
            [(services['checkout'], 'Leaves the filters')],
            {'datadog_app_key': DD_APP_KEY, 'priorities': ['P1']},
            priority='P1',
        )
        refused = {'errors': ['Failed permission authorization checks']}
        world.datadog.fault = lambda r: Reply(403, refused) if r.method == 'DELETE' else None
        world.account.set_priority(leaving, 'P3')
        errors = []
        for _ in range(12):
            world.account.advance(60)
            try:
                dd_run_check(check)
            except Exception as e:
                # The run reports the missing permission (a CRITICAL service check) after collecting.
                errors.append(str(e))
        run_error = (
            'datadog_checks.base.errors.CheckException: Datadog refused dora_failure_delete (403 Forbidden): the keys '
            'are valid, but the user or service account of `datadog_app_key` lacks the `dora_metrics_write` permission'
        )
        assert [e.splitlines()[-1] for e in errors] == [run_error] * 12
        later = world.account.trigger(services['billing'], 'Later', priority='P1')
        world.account.advance(60)
        requests_before = world.pd_requests()
        with pytest.raises(Exception, match='dora_metrics_write'):
            dd_run_check(check)
        assert world.pd_requests() > requests_before
        assert event_keys(aggregator)[(later, 'triggered')] == 1
        assert failure_id(later) in world.dora.failures
        warned = [w for w in check.warnings if 'refused to delete' in w]
        refusal = (
            'Datadog refused to delete DORA failure {} (403): the application key of `datadog_app_key` needs the '
            '`dora_metrics_write` permission. Removals wait for the next run; collection and other deliveries go on'
        )
        # Warned at each of the run's five delivery flushes, over thirteen runs (four in the first), and at
        # the flush after the page of the feed's second look in the three runs that take it.
        assert warned == [refusal.format(failure_id(leaving))] * 67
        world.datadog.fault = None
        world.account.advance(60)
        dd_run_check(check)
        assert failure_id(leaving) not in world.dora.failures

    def test_submitted_counts_posts_and_removed_counts_removals(self, world, services, dd_run_check, aggregator):
        check, [kept, deleted] = collected(
            world,
            dd_run_check,
            [(services['checkout'], 'Kept'), (services['billing'], 'Deleted')],
            {'datadog_app_key': DD_APP_KEY},
        )
        assert total(aggregator, 'dora.submitted') == 2
        aggregator.reset()
        world.account.delete(deleted)
        world.account.resolve(kept)
        for _ in range(12):
            world.account.advance(60)
            dd_run_check(check)
        assert total(aggregator, 'dora.submitted') == 1
        assert total(aggregator, 'dora.removed') == 1
        assert failure_id(deleted) not in world.dora.failures


class TestInstancesOfTheirOwn:
    """Two instances with the same key and scope but other filters never share a state."""

    def test_restart_loses_nothing_of_either(self, world, services, dd_run_check, aggregator):
        first, second = {'urgencies': ['high']}, {'urgencies': ['low']}
        a, b = world.check(**first), world.check(**second)
        assert a.persistent_cache_id() != b.persistent_cache_id()
        dd_run_check(a)
        dd_run_check(b)
        world.account.advance(60)
        high = world.account.trigger(services['checkout'], 'High', urgency='high')
        low = world.account.trigger(services['billing'], 'Low', urgency='low')
        world.account.advance(60)
        dd_run_check(a)
        dd_run_check(b)
        # An Agent restart: both instances again, over the same persistent cache.
        a, b = world.check(**first), world.check(**second)
        world.account.resolve(high)
        world.account.resolve(low)
        world.account.advance(60)
        dd_run_check(a)
        dd_run_check(b)
        counted = event_keys(aggregator)
        # Each incident is in the filters of one instance, which reports it once.
        assert counted[(high, 'resolved')] == 1
        assert counted[(low, 'resolved')] == 1
        assert set(counted.values()) == {1}


class TestNumbers:
    """Counts and gauges say what happened, once."""

    def test_mapping_matches_counts_an_incident_once_across_filter_moves(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check(priorities=['P1'])
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Moves', priority='P1')
        world.account.advance(60)
        dd_run_check(check)
        for priority in ('P3', 'P1', 'P3', 'P1'):
            world.account.set_priority(incident, priority)
            world.account.advance(60)
            dd_run_check(check)
        assert total(aggregator, 'mapping.matches') == 1

    def test_an_emptied_open_gauge_is_sent_as_zero_after_a_restart(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Open')
        world.account.advance(60)
        dd_run_check(check)
        world.account.resolve(incident)
        world.account.advance(60)
        restarted = world.check()
        aggregator.reset()
        dd_run_check(restarted)
        values = [m.value for m in aggregator.metrics('pagerduty_dora.incidents.open')]
        assert values == [0]
