# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A stored state damaged between two runs: a part costs only itself, a lost document is rebuilt from Datadog.

The Agent stops after a few runs; while it is stopped its stored state is damaged (a part out of
range, a record cut short, the document lost) and PagerDuty changes. The restarted check must run
without error, report every transition of the stop once and post no unchanged failure again.
"""

from __future__ import annotations

import json

import pytest

from datadog_checks.pagerduty_dora.collection.recovery import SEARCH_LAG
from datadog_checks.pagerduty_dora.collection.state import LAYOUT
from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, DD_APP_KEY, START, World, event_keys

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

HISTORY = 200


@pytest.fixture
def world():
    """An account with 200 incidents of history over 20 days, 6 of them still open."""
    account = PagerDutyAccount.generate(
        HISTORY, START - 20 * DAY, START - 3600, seed=11, open_fraction=6 / HISTORY, now=START, services=3
    )
    world = World(account)
    yield world
    world.close()


def _collector_key(datadog_agent) -> str:
    keys = [key for key in datadog_agent._cache if key.endswith('_collector')]
    assert len(keys) == 1, keys
    return keys[0]


def _run_then_stop(world, dd_run_check, aggregator, **options):
    """Four runs, three live incidents (one acknowledged), then the changes of a stop."""
    world.forward_events(aggregator)
    check = world.check(backfill_days=30, **options)
    for _ in range(3):
        dd_run_check(check)
        world.account.advance(60)
    account = world.account
    service = account.services[0]['id']
    live = [account.trigger(service, 'Live {}'.format(n)) for n in range(3)]
    account.advance(30)
    account.acknowledge(live[0])
    account.advance(60)
    dd_run_check(check)
    account.advance(60)
    return live


def _stop(world, live):
    account = world.account
    account.resolve(live[0])
    account.advance(5)
    account.acknowledge(live[1])
    account.advance(5)
    created = account.trigger(account.services[1]['id'], 'During the stop')
    account.advance(30)
    return created


def _expected(live, created):
    return {
        (live[0], 'resolved'): 1,
        (live[1], 'acknowledged'): 1,
        (created, 'triggered'): 1,
    }


def _damaged_restart(world, dd_run_check, aggregator, datadog_agent, damage):
    """Runs, then `damage(stored, live)` on the stored state during a stop, then a restarted check's two runs.

    Returns the live incidents, the one created during the stop, what was reported before, the DORA
    posts since the stop, and the restarted check.
    """
    live = _run_then_stop(world, dd_run_check, aggregator)
    reported = event_keys(aggregator)
    key = _collector_key(datadog_agent)
    stored = json.loads(datadog_agent._cache[key])
    damage(stored, live)
    datadog_agent._cache[key] = json.dumps(stored)
    created = _stop(world, live)
    posts = len(world.dora.posts)
    restarted = world.check(backfill_days=30)
    dd_run_check(restarted)
    world.account.advance(60)
    dd_run_check(restarted)
    return live, created, reported, world.dora.posts[posts:], restarted


class TestDamagedPart:
    """A part out of its range resets alone, with a warning naming it; nothing else is lost or repeated."""

    @pytest.mark.parametrize(
        'part, value',
        [
            ('reconciliation', [5, [-3, -1], 'x', None]),
            ('feed', [-1, None, 0, 0]),
            ('baseline', 7),
            ('gauged', 'not a list'),
            ('drift_at', -1),
        ],
        ids=['reconciliation', 'feed', 'baseline', 'gauged', 'drift_at'],
    )
    def test_only_that_part_is_reset(self, world, dd_run_check, aggregator, datadog_agent, part, value):
        live, created, reported, posts, restarted = _damaged_restart(
            world, dd_run_check, aggregator, datadog_agent, lambda stored, live: stored.update({part: value})
        )

        assert event_keys(aggregator) - reported == _expected(live, created)
        assert set(event_keys(aggregator).values()) == {1}
        assert {a['id'] for a in posts} == {failure_id(live[0]), failure_id(created)}
        warnings = [w for w in restarted.warnings if 'of the stored collection state could not be read' in w]
        assert len(warnings) == 1 and '`{}`'.format(part) in warnings[0], restarted.warnings

    def test_a_damaged_record_is_read_again_by_id(self, world, dd_run_check, aggregator, datadog_agent):
        def cut_short(stored, live):
            stored['incidents'][live[1]][5] = -1

        live, created, reported, posts, restarted = _damaged_restart(
            world, dd_run_check, aggregator, datadog_agent, cut_short
        )

        assert event_keys(aggregator) - reported == _expected(live, created)
        assert set(event_keys(aggregator).values()) == {1}
        # What Datadog accepted for the lost record is not known: its failure is posted once more (the
        # same id, so Datadog keeps one); every other record's is not.
        assert sorted(a['id'] for a in posts) == sorted(failure_id(i) for i in (live[0], live[1], created))
        assert any('1 entries of `incidents`' in w for w in restarted.warnings), restarted.warnings


class TestLostDocument:
    """A state that is no document at all is rebuilt from Datadog as after a move, never taken as a first run."""

    @pytest.mark.parametrize('damage', ['{"version": 3, "incid', '{"version": 99}', '[]'], ids=['cut', 'newer', 'list'])
    def test_rebuilt_from_datadog(self, world, dd_run_check, aggregator, datadog_agent, damage):
        live = _run_then_stop(world, dd_run_check, aggregator, datadog_app_key=DD_APP_KEY)
        reported = event_keys(aggregator)
        datadog_agent._cache[_collector_key(datadog_agent)] = damage
        created = _stop(world, live)
        posts = len(world.dora.posts)

        restarted = world.check(backfill_days=30, datadog_app_key=DD_APP_KEY)
        dd_run_check(restarted)
        # As after a move, the rebuild waits for Datadog's event search to catch up.
        world.account.advance(SEARCH_LAG)
        dd_run_check(restarted)
        world.account.advance(60)
        dd_run_check(restarted)

        assert event_keys(aggregator) - reported == _expected(live, created)
        assert set(event_keys(aggregator).values()) == {1}
        # No history sent again: only the failures of the incidents that changed.
        assert {a['id'] for a in world.dora.posts[posts:]} == {failure_id(live[0]), failure_id(created)}
        assert any('it is rebuilt from what Datadog holds' in w for w in restarted.warnings), restarted.warnings

    def test_without_the_app_key_the_warning_says_what_is_lost(self, world, dd_run_check, aggregator, datadog_agent):
        live = _run_then_stop(world, dd_run_check, aggregator)
        datadog_agent._cache[_collector_key(datadog_agent)] = '{'
        _stop(world, live)

        restarted = world.check(backfill_days=30)
        dd_run_check(restarted)

        warning = [w for w in restarted.warnings if 'Stored collection state is unreadable' in w]
        assert len(warning) == 1
        assert 'changes since the last run get no event' in warning[0]
        assert 'Set `datadog_app_key`' in warning[0]


def _first_bad_value(part: str) -> object:
    """A stored value out of the part's domain."""
    domain = LAYOUT.parts[part].domain
    candidates: tuple[object, ...] = (-1, 'x', 2, {}, [None] * 30)
    for value in candidates:
        try:
            domain.decode(value)
        except (codec.Invalid, TypeError, ValueError):
            return value
    raise AssertionError('every value fits {}'.format(part))


class TestEveryPart:
    """Every part of the stored state, out of range, costs at most itself: no run error, nothing missed."""

    @pytest.mark.parametrize('part', sorted(LAYOUT.parts))
    def test_no_run_error_and_every_transition_reported(self, world, dd_run_check, aggregator, datadog_agent, part):
        live, created, reported, _, restarted = _damaged_restart(
            world,
            dd_run_check,
            aggregator,
            datadog_agent,
            lambda stored, live: stored.update({part: _first_bad_value(part)}),
        )

        # Nothing of the stop is missed and nothing is reported twice, whatever part was lost.
        assert event_keys(aggregator) - reported == _expected(live, created)
        assert set(event_keys(aggregator).values()) == {1}
        warned = [w for w in restarted.warnings if 'of the stored collection state could not be read' in w]
        assert len(warned) == 1 and '`{}`'.format(part) in warned[0], restarted.warnings
