# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One instance, one memory: clocks it cannot read, moves back and forth, a lagging event search, quiet accounts."""

from __future__ import annotations

import pytest

from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora.collection.recovery import SEARCH_LAG
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, DD_APP_KEY, START, World, event_keys, incident_events, live_events

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')


class TestUndatedAnswers:
    """PagerDuty answers without a `Date` (a proxy removed it) are dated by the Agent's clock, with one warning."""

    def test_every_transition_is_reported_once(self, world: World, services, dd_run_check, aggregator) -> None:
        world.pagerduty.server.dated = False
        check = world.check()
        service = services['checkout']
        dd_run_check(check)
        incidents = []
        for run in range(30):
            world.account.advance(30)
            incident = world.account.trigger(service, 'Run {}'.format(run))
            incidents.append(incident)
            world.account.advance(10)
            world.account.acknowledge(incident)
            world.account.advance(10)
            world.account.resolve(incident)
            world.account.advance(10)
            dd_run_check(check)

        keys = event_keys(aggregator)
        assert sum(keys.values()) == 90
        assert set(keys.values()) == {1}
        assert {kind for _, kind in keys} == {'triggered', 'acknowledged', 'resolved'}
        warnings = [w for w in check.warnings if 'without a `Date` header' in w]
        assert len(warnings) == 1
        undated = sum(m.value for m in aggregator.metrics('pagerduty_dora.api.undated'))
        assert undated == world.pd_requests()


@pytest.fixture
def account_world():
    """An account with 120 incidents of history over 10 days, 4 of them still open."""
    account = PagerDutyAccount.generate(120, START - 10 * DAY, START - 3600, seed=7, open_fraction=4 / 120, now=START)
    world = World(account)
    yield world
    world.close()


def _node_a(world, dd_run_check, aggregator):
    """Node A: four runs, then two live incidents, the last one triggered and acknowledged just before the move."""
    world.forward_events(aggregator)
    check = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
    for _ in range(4):
        dd_run_check(check)
        world.account.advance(60)
    service = world.account.services[0]['id']
    first = world.account.trigger(service, 'First')
    world.account.advance(60)
    dd_run_check(check)
    last = world.account.trigger(service, 'Last')
    world.account.advance(10)
    world.account.acknowledge(last)
    world.account.advance(20)
    dd_run_check(check)
    return first, last


class TestSearchLag:
    """A move while Datadog's event search lags its intake sends no event twice and misses none."""

    @pytest.mark.parametrize('lag', [90, 300, SEARCH_LAG], ids=['90s', '5min', '10min'])
    def test_a_move_right_after_the_last_events(self, account_world, dd_run_check, aggregator, datadog_agent, lag):
        world = account_world
        world.events.index_delay = lag
        first, last = _node_a(world, dd_run_check, aggregator)
        reported_by_a = event_keys(aggregator)
        assert reported_by_a[(last, 'acknowledged')] == 1

        datadog_agent._cache.clear()
        world.account.advance(5)
        world.account.resolve(first)
        world.account.advance(5)
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_b)
        world.account.advance(SEARCH_LAG)
        dd_run_check(node_b)
        world.account.advance(60)
        dd_run_check(node_b)

        assert event_keys(aggregator) - reported_by_a == {(first, 'resolved'): 1}
        assert set(event_keys(aggregator).values()) == {1}


class TestBackAndForth:
    """A check that comes back to a node whose old cache is still there is brought forward from Datadog first."""

    def test_what_the_other_node_reported_is_not_sent_again(
        self, account_world, dd_run_check, aggregator, datadog_agent
    ):
        world = account_world
        first, last = _node_a(world, dd_run_check, aggregator)
        left_behind = dict(datadog_agent._cache)

        # To node B, which rebuilds and reports three transitions over an hour.
        datadog_agent._cache.clear()
        node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_b)
        world.account.advance(SEARCH_LAG)
        dd_run_check(node_b)
        world.account.resolve(first)
        world.account.advance(600)
        dd_run_check(node_b)
        world.account.resolve(last)
        third = world.account.trigger(world.account.services[1]['id'], 'On node B')
        world.account.advance(3000)
        dd_run_check(node_b)
        reported = event_keys(aggregator)
        assert reported[(first, 'resolved')] == reported[(last, 'resolved')] == reported[(third, 'triggered')] == 1

        # Back to node A, whose cache of an hour ago is still on disk; a transition during the move.
        datadog_agent._cache.clear()
        datadog_agent._cache.update(left_behind)
        world.account.acknowledge(third)
        world.account.advance(30)
        posts = len(world.dora.posts)
        back = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(back)
        world.account.advance(SEARCH_LAG)
        dd_run_check(back)
        world.account.advance(60)
        dd_run_check(back)

        assert event_keys(aggregator) - reported == {(third, 'acknowledged'): 1}
        assert set(event_keys(aggregator).values()) == {1}
        # Node A's old cache held failures B updated since: none is sent back to its old state.
        assert {a['id'] for a in world.dora.posts[posts:]} <= {failure_id(third)}


def _move_during(world, datadog_agent):
    """The cache is lost (the check moves) while an incident is triggered and acknowledged; returns it."""
    datadog_agent._cache.clear()
    world.account.advance(30)
    incident = world.account.trigger(world.account.services[0]['id'], 'During the move')
    world.account.advance(20)
    world.account.acknowledge(incident)
    world.account.advance(10)
    return incident


def _node_b(world, dd_run_check, runs=1):
    """Node B: its first run, the wait for Datadog's event search, then `runs` runs a minute apart."""
    node_b = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
    dd_run_check(node_b)
    world.account.advance(SEARCH_LAG)
    for _ in range(runs):
        dd_run_check(node_b)
        world.account.advance(60)
    return node_b


class TestLiveEvents:
    """The live event is sent where a rebuild can read it back, and only where events are collected."""

    @pytest.mark.parametrize(
        'options, sent',
        [
            ({'datadog_app_key': DD_APP_KEY}, 1),
            ({}, 0),
            ({'datadog_app_key': DD_APP_KEY, 'collect_events': False}, 0),
        ],
        ids=['app-key', 'no-app-key', 'no-events'],
    )
    def test_sent_at_go_live(self, account_world, dd_run_check, aggregator, options, sent) -> None:
        check = account_world.check(env='prod', tags=['team:sre'], **options)
        dd_run_check(check)
        account_world.account.advance(60)
        dd_run_check(check)
        live = live_events(aggregator)
        assert len(live) == sent
        for event in live:
            instance = 'pagerduty_dora_instance:' + check.persistent_cache_id()[:16]
            assert {'env:prod', 'team:sre', instance, 'pagerduty_dora_live_since:{}'.format(int(START))} <= set(
                event['tags']
            )
            assert event['source_type_name'] == 'pagerduty_dora' and event['msg_title'].startswith(
                'PagerDuty DORA collection live since'
            )


class TestQuietAccount:
    """A move on an account quiet for days resumes where the lookback begins, never before the old node went live."""

    def test_a_move_after_three_quiet_days_reports_the_move(
        self, account_world, dd_run_check, aggregator, datadog_agent
    ):
        world = account_world
        world.events.index_delay = 300
        world.forward_events(aggregator)
        node_a = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30)
        dd_run_check(node_a)
        went_live = world.account.now
        # Three days without a change in PagerDuty, node A running every 6 hours.
        for _ in range(12):
            world.account.advance(6 * 3600)
            dd_run_check(node_a)
        assert incident_events(aggregator) == []
        # One at go-live, then one after each day without another event.
        live = live_events(aggregator)
        assert [e['timestamp'] - went_live for e in live] == [0, DAY, 2 * DAY, 3 * DAY]
        assert {e['alert_type'] for e in live} == {'info'} and {e['priority'] for e in live} == {'low'}

        incident = _move_during(world, datadog_agent)
        _node_b(world, dd_run_check, runs=2)

        assert event_keys(aggregator) == {(incident, 'triggered'): 1, (incident, 'acknowledged'): 1}
        aggregator.assert_metric('pagerduty_dora.rebuild', count=1, tags=['result:rebuilt'])
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)

    def test_a_move_during_the_backfill_reports_no_history(
        self, account_world, dd_run_check, aggregator, datadog_agent
    ):
        world = account_world
        world.events.index_delay = 300
        world.forward_events(aggregator)
        history = set(world.account.incident_ids())
        recent = [i for i in history if world.account.created_at(i) > world.account.now - 2 * DAY]
        assert len(recent) > 10
        node_a = world.check(datadog_app_key=DD_APP_KEY, backfill_days=30, max_requests_per_run=3)
        dd_run_check(node_a)
        world.account.advance(60)
        dd_run_check(node_a)
        delivered_by_a = set(world.dora.failures)
        assert 0 < len(delivered_by_a) < len(history)
        assert len(live_events(aggregator)) == 1

        posts = len(world.dora.posts)
        incident = _move_during(world, datadog_agent)
        _node_b(world, dd_run_check, runs=6)

        # Node A went live within the lookback: nothing before then is reported, the move is.
        assert event_keys(aggregator) == {(incident, 'triggered'): 1, (incident, 'acknowledged'): 1}
        sent = [attributes['id'] for attributes in world.dora.posts[posts:]]
        assert len(sent) == len(set(sent)) and not set(sent) & delivered_by_a
        assert set(world.dora.failures) == {failure_id(i) for i in world.account.incident_ids()}
