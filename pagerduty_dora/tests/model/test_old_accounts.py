# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""An account of the age people have: three years of incidents, some left open for years, and an Agent
restarted before every run.

Reconciliation reads the open incidents in creation-time windows of at most six months, so a pass over
an account like this one stops between two windows at many restarts. Whatever position a pass stored,
the next check must read it: the state is never thrown away, every live transition gets one event, and
no DORA failure of an unchanged incident is sent again.
"""

from __future__ import annotations

from collections import Counter

import pytest

from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, START, World, event_keys, stopped_between_windows, stored_state

pytestmark = [pytest.mark.usefixtures('datadog_agent', 'simulated_run'), pytest.mark.slow]

YEAR = 365 * DAY
AGE = 3 * YEAR
RESOLVED = 900
OPEN = 150
BACKFILL_DAYS = 365
RUNS = 50
INTERVAL = 60
# What a check warns when it cannot read the state it stored and takes the next run as a first one.
THROWN_AWAY = ('unreadable', 'starting over')


@pytest.fixture
def old_world():
    """A three-year-old account: 900 resolved incidents and 150 open ones created over those years."""
    account = PagerDutyAccount.generate(
        RESOLVED, START - AGE, START - DAY, seed=27, open_fraction=0.0, now=START, services=6
    )
    account.populate(OPEN, START - AGE, START - DAY, seed=28, open_fraction=1.0)
    world = World(account)
    yield world
    world.close()


def by_status(account):
    statuses = Counter(account.status(i) for i in account.incident_ids())
    return statuses['resolved'], statuses['triggered'] + statuses['acknowledged']


def created_before(account, ids, age):
    return [i for i in ids if account.created_at(i) < START - age]


class Live:
    """The live transitions made between runs, and the events and DORA failure posts they must cause.

    A failure is sent once for every interval between two runs in which its incident's failure changed
    (an acknowledgement changes none): the check sends the state it finds, not each step to it.
    """

    def __init__(self, account):
        self.account = account
        self.events: Counter = Counter()
        self.posts: Counter = Counter()
        self.changed: set[str] = set()
        ids = account.incident_ids()
        triggered = [i for i in ids if account.status(i) == 'triggered']
        acknowledged = [i for i in ids if account.status(i) == 'acknowledged']
        resolved = [i for i in ids if account.status(i) == 'resolved']
        # Open for two years and more, and resolved two years ago (outside the backfill: it has no failure).
        self.old_triggered = created_before(account, triggered, 2 * YEAR)
        self.old_acknowledged = created_before(account, acknowledged, 2 * YEAR)
        self.old_resolved = created_before(account, resolved, 2 * YEAR)
        # Open for a year and a half, at P3, and untouched since: only reconciliation sees its priority change.
        self.stale = [
            i
            for i in created_before(account, triggered + acknowledged, 1.5 * YEAR)
            if (account.incident(i).get('priority') or {}).get('name') == 'P3'
        ][-1]
        self.new: list[str] = []
        # Two or three runs apart, so that changes fall before restarts at every point of a pass.
        self.schedule = {
            2: [lambda: self.acknowledge(self.old_triggered[0])],
            4: [lambda: self.resolve(self.old_acknowledged[0])],
            7: [lambda: self.reopen(self.old_resolved[0])],
            9: [lambda: self.set_priority(self.stale, 'P1')],
            12: [self.trigger],
            14: [lambda: self.acknowledge(self.old_triggered[1]), lambda: self.acknowledge(self.new[0])],
            17: [lambda: self.resolve(self.old_triggered[0])],
            # Created and resolved between two runs: two events, one failure sent.
            19: [self.trigger, lambda: self.resolve(self.new[1])],
            22: [lambda: self.resolve(self.old_resolved[0])],
            24: [lambda: self.resolve(self.old_triggered[2])],
            27: [self.trigger],
            29: [lambda: self.resolve(self.new[0])],
            32: [lambda: self.acknowledge(self.old_triggered[3])],
            35: [lambda: self.resolve(self.old_acknowledged[1])],
        }

    def before_run(self, run):
        for change in self.schedule.get(run, []):
            change()
            self.account.advance(7)
        self.posts.update(self.changed)
        self.changed.clear()

    def trigger(self):
        service = self.account.services[len(self.new) % 3]['id']
        incident = self.account.trigger(service, 'New incident {}'.format(len(self.new) + 1), priority='P2')
        self.new.append(incident)
        self.events[(incident, 'triggered')] += 1
        self.changed.add(failure_id(incident))

    def acknowledge(self, incident):
        assert self.account.status(incident) == 'triggered'
        self.account.acknowledge(incident)
        self.events[(incident, 'acknowledged')] += 1

    def resolve(self, incident):
        self.account.resolve(incident)
        self.events[(incident, 'resolved')] += 1
        self.changed.add(failure_id(incident))

    def reopen(self, incident):
        self.account.reopen(incident)
        self.events[(incident, 'reopened')] += 1
        self.changed.add(failure_id(incident))

    def set_priority(self, incident, priority):
        self.account.set_priority(incident, priority)
        self.events[(incident, 'priority_changed')] += 1
        self.changed.add(failure_id(incident))


class TestThreeYearOldAccount:
    """Restarted before each of 50 runs, a three-year-old account loses nothing and repeats nothing."""

    def test_restarts_throw_nothing_away_and_repeat_nothing(self, old_world, dd_run_check, aggregator):
        world, account = old_world, old_world.account
        assert by_status(account) == (RESOLVED, OPEN)
        live = Live(account)
        history = {
            failure_id(i)
            for i in account.incident_ids()
            if account.status(i) != 'resolved' or account.created_at(i) >= START - BACKFILL_DAYS * DAY
        }
        thrown_away = []
        between_windows = 0
        backfilled_at = None
        for run in range(RUNS):
            live.before_run(run)
            requests_before = len(world.pagerduty.requests)
            check = world.check(env='prod', backfill_days=BACKFILL_DAYS, min_collection_interval=INTERVAL)
            dd_run_check(check)
            between_windows += stopped_between_windows(world.pagerduty.requests[requests_before:], account.now)
            thrown_away += ['run {}: {}'.format(run, w) for w in check.warnings if any(t in w for t in THROWN_AWAY)]
            try:
                live_since = stored_state(check).live_since
            except ValueError as e:
                thrown_away.append('run {}: stored state unreadable ({})'.format(run, e))
            else:
                if live_since != START:
                    thrown_away.append('run {}: live since {}'.format(run, live_since))
            if backfilled_at is None and history <= set(world.dora.failures):
                backfilled_at = len(world.dora.posts)
            account.advance(INTERVAL)
        # The test reaches what it is here for: 16 live transitions, 11 of them changing a failure, and
        # restarts between two windows of the open incidents.
        assert (sum(live.events.values()), sum(live.posts.values())) == (16, 11)
        assert between_windows >= RUNS // 4
        assert thrown_away == []
        assert event_keys(aggregator) == live.events
        assert backfilled_at is not None
        assert Counter(attributes['id'] for attributes in world.dora.posts[:backfilled_at]) == dict.fromkeys(history, 1)
        assert Counter(attributes['id'] for attributes in world.dora.posts[backfilled_at:]) == live.posts
