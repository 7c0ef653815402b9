# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A cluster check moved to another node: the new node starts over an empty cache and rebuilds from Datadog.

Node A runs and reports; then the persistent cache is lost (node B has its own) while PagerDuty
changes; node B's first run must send only the failures whose incident changed and report every
transition of the move once, as Datadog's record (its events, its failures) shows what A sent.
"""

from __future__ import annotations

import pytest

from datadog_checks.pagerduty_dora.collection.recovery import SEARCH_LAG
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..fakes.server import Reply
from ..harness import DAY, DD_APP_KEY, START, World, event_keys, incident_events

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

HISTORY = 300
# The warnings of a rebuild that failed: {0} is the failed request, {1} what the run does about it.
NO_REBUILD = 'Could not rebuild the collection state from Datadog (datadog API: {0}); {1}'
WAIT = 'nothing is collected until it is tried again next run'
FIRST_RUN = (
    'starting as on a first run: history is sent again as DORA failures, and nothing that happened before this run '
    'is reported as an event'
)


@pytest.fixture
def moved_world():
    """An account with 300 incidents of history over 20 days, 5 of them still open."""
    account = PagerDutyAccount.generate(
        HISTORY, START - 20 * DAY, START - 3600, seed=3, open_fraction=5 / HISTORY, now=START, services=3
    )
    world = World(account)
    yield world
    world.close()


def posts_by_incident(world):
    return {attributes['id'] for attributes in world.dora.posts}


class TestClusterMove:
    """Node B rebuilds from Datadog: no history re-sent, every transition of the move reported once."""

    def _node_a(self, world, dd_run_check, aggregator, **options):
        world.forward_events(aggregator)
        check = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30, **options)
        for _ in range(4):
            dd_run_check(check)
            world.account.advance(60)
        account = world.account
        service = account.services[0]['id']
        opened = [i for i in account.incident_ids() if account.status(i) != 'resolved']
        live = [account.trigger(service, 'Live {}'.format(n)) for n in range(3)]
        account.advance(30)
        account.acknowledge(live[0])
        account.advance(60)
        dd_run_check(check)
        account.advance(60)
        dd_run_check(check)
        return check, opened, live

    def _move(self, world, datadog_agent, opened, live):
        """What happens between A's last run and B's first, and the cache B starts without."""
        account = world.account
        datadog_agent._cache.clear()
        account.advance(20)
        account.resolve(live[0])
        account.advance(5)
        account.acknowledge(live[1])
        account.advance(5)
        account.resolve(live[2])
        account.advance(5)
        account.reopen(live[2])
        account.advance(5)
        created = account.trigger(account.services[1]['id'], 'During the move')
        brief = account.trigger(account.services[1]['id'], 'Created and resolved during the move')
        account.advance(10)
        account.resolve(brief)
        account.advance(30)
        return created, brief

    def test_node_b_sends_only_what_changed_and_reports_the_move_once(
        self, moved_world, dd_run_check, aggregator, datadog_agent
    ):
        world = moved_world
        _, opened, live = self._node_a(world, dd_run_check, aggregator)
        failures_before = dict(world.dora.failures)
        assert len(failures_before) >= HISTORY
        reported_by_a = event_keys(aggregator)
        assert reported_by_a[(live[0], 'acknowledged')] == 1

        created, brief = self._move(world, datadog_agent, opened, live)
        posts_before = len(world.dora.posts)
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_b)
        # Node B waits for Datadog's event search to catch up with what A sent last, then rebuilds.
        assert event_keys(aggregator) == reported_by_a and len(world.dora.posts) == posts_before
        world.account.advance(SEARCH_LAG)
        dd_run_check(node_b)
        world.account.advance(60)
        dd_run_check(node_b)

        new = event_keys(aggregator) - reported_by_a
        assert new == {
            (live[0], 'resolved'): 1,
            (live[1], 'acknowledged'): 1,
            (live[2], 'resolved'): 1,
            (live[2], 'reopened'): 1,
            (created, 'triggered'): 1,
            (brief, 'triggered'): 1,
            (brief, 'resolved'): 1,
        }
        assert set(event_keys(aggregator).values()) == {1}
        sent = {attributes['id'] for attributes in world.dora.posts[posts_before:]}
        # Only the failures that changed during the move: an acknowledgement, or a resolve undone by a
        # reopen, leaves a failure as it was; none of the history is sent again.
        assert sent == {failure_id(i) for i in (live[0], created, brief)}
        for incident in world.account.incident_ids():
            failure = world.dora.failures[failure_id(incident)]
            resolved = world.account.status(incident) == 'resolved'
            assert ('finished_at' in failure) == resolved, incident

    @pytest.mark.parametrize(
        'fault, expected',
        [
            (
                lambda request: Reply(403, {'errors': ['Forbidden']}) if '/events' in request.path else None,
                [NO_REBUILD.format('events_list answered 403', FIRST_RUN)],
            ),
            (
                lambda request: Reply(503, {'errors': ['unavailable']}) if '/dora/failures' in request.path else None,
                [NO_REBUILD.format('dora_failures_list answered 503', WAIT)] * 2
                + [NO_REBUILD.format('dora_failures_list answered 503', FIRST_RUN)],
            ),
        ],
        ids=['events-403', 'failures-503'],
    )
    def test_without_the_record_it_starts_as_a_first_run_and_sends_no_event_twice(
        self, moved_world, dd_run_check, aggregator, datadog_agent, fault, expected
    ):
        world = moved_world
        _, opened, live = self._node_a(world, dd_run_check, aggregator)
        reported_by_a = event_keys(aggregator)
        self._move(world, datadog_agent, opened, live)
        world.datadog.fault = fault
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        for _ in range(4):
            try:
                dd_run_check(node_b)
            except Exception:
                pass
            world.account.advance(60)
        world.datadog.fault = None
        dd_run_check(node_b)
        assert [w for w in node_b.warnings if w.startswith('Could not rebuild')] == expected
        # A first run: nothing before it is reported, so nothing is reported twice.
        assert event_keys(aggregator) == reported_by_a
        for incident in world.account.incident_ids():
            failure = world.dora.failures[failure_id(incident)]
            assert ('finished_at' in failure) == (world.account.status(incident) == 'resolved'), incident

    def test_a_transient_failure_is_retried_before_falling_back(
        self, moved_world, dd_run_check, aggregator, datadog_agent
    ):
        world = moved_world
        _, opened, live = self._node_a(world, dd_run_check, aggregator)
        reported_by_a = event_keys(aggregator)
        self._move(world, datadog_agent, opened, live)
        # Every attempt of the first run (the client retries a 5xx within a run) fails.
        failing = {'left': 4}

        def once(request):
            if '/events' in request.path and failing['left']:
                failing['left'] -= 1
                return Reply(503, {'errors': ['unavailable']})
            return None

        world.datadog.fault = once
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_b)
        assert event_keys(aggregator) == reported_by_a
        world.account.advance(60)
        dd_run_check(node_b)
        world.account.advance(SEARCH_LAG)
        dd_run_check(node_b)
        new = event_keys(aggregator) - reported_by_a
        assert (live[0], 'resolved') in new and set(new.values()) == {1}

    def test_a_move_during_the_backfill_sends_the_rest_of_history_only(
        self, moved_world, dd_run_check, aggregator, datadog_agent
    ):
        world = moved_world
        world.forward_events(aggregator)
        node_a = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30, max_requests_per_run=3)
        dd_run_check(node_a)
        world.account.advance(60)
        dd_run_check(node_a)
        delivered_by_a = set(world.dora.failures)
        assert 0 < len(delivered_by_a) < HISTORY

        datadog_agent._cache.clear()
        world.account.advance(60)
        posts_before = len(world.dora.posts)
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_b)
        world.account.advance(SEARCH_LAG)
        for _ in range(5):
            dd_run_check(node_b)
            world.account.advance(60)
        sent = [attributes['id'] for attributes in world.dora.posts[posts_before:]]
        assert len(sent) == len(set(sent))
        assert not set(sent) & delivered_by_a
        assert set(world.dora.failures) == {failure_id(i) for i in world.account.incident_ids()}
        assert incident_events(aggregator) == []


class TestDrift:
    """Once a day, Datadog's open failures are compared with PagerDuty and repaired."""

    def test_a_failure_left_open_is_closed(self, dd_run_check, aggregator, datadog_agent):
        world = World()
        try:
            service = world.account.add_service('Checkout')
            check = world.check(datadog_app_key=DD_APP_KEY)
            dd_run_check(check)
            world.account.advance(60)
            incident = world.account.trigger(service, 'Down')
            world.account.advance(60)
            dd_run_check(check)
            # The resolve's update is lost on Datadog's side: its failure stays open there.
            world.datadog.fault = lambda r: (
                Reply(202, {'data': {'id': 'x', 'type': 'dora_failure'}})
                if r.method == 'POST' and r.path.endswith('/failure')
                else None
            )
            world.account.resolve(incident)
            world.account.advance(60)
            dd_run_check(check)
            world.datadog.fault = None
            assert 'finished_at' not in world.dora.failures[failure_id(incident)]
            world.account.advance(DAY)
            dd_run_check(check)
            assert 'finished_at' in world.dora.failures[failure_id(incident)]
            aggregator.assert_metric('pagerduty_dora.dora.drift', value=1, tags=['result:queued'])
        finally:
            world.close()

    def test_a_failure_merged_away_while_delivery_was_off_is_removed(self, dd_run_check, aggregator, datadog_agent):
        world = World()
        try:
            service = world.account.add_service('Checkout')
            account = world.account
            account.now -= 1800
            merged = account.trigger(service, 'Merged away')
            account.advance(60)
            account.resolve(merged)
            account.advance(1740)
            account.reopen(merged)
            account.advance(1)
            dd_run_check(world.check(datadog_app_key=DD_APP_KEY, backfill_days=3))
            assert 'finished_at' not in world.dora.failures[failure_id(merged)]
            # Nearly a day on, DORA delivery is off while the incident is merged into another one.
            account.advance(DAY - 1800)
            off = world.check(datadog_app_key=DD_APP_KEY, backfill_days=3, submit_dora_failures=False)
            survivor = account.trigger(service, 'Survivor')
            account.merge(merged, survivor)
            account.advance(3600)
            dd_run_check(off)
            # Delivery is on again, and the daily comparison finds the merged incident's failure open.
            on = world.check(datadog_app_key=DD_APP_KEY, backfill_days=3)
            for _ in range(3):
                account.advance(60)
                dd_run_check(on)
            assert failure_id(merged) in world.dora.removed
            assert failure_id(merged) not in world.dora.failures
            assert 'finished_at' not in world.dora.failures[failure_id(survivor)]
        finally:
            world.close()
