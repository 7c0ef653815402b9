# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The recheck of resolved incidents: a change made after the resolve reaches the incident's DORA failure."""

from __future__ import annotations

import pytest

from datadog_checks.pagerduty_dora.collection.pages import NEXT_REQUEST, Page
from datadog_checks.pagerduty_dora.collection.recheck import RECHECK_PAGES_PER_RUN, RECHECK_PERIOD, Recheck, RecheckPass
from datadog_checks.pagerduty_dora.collection.record import IncidentRecord
from datadog_checks.pagerduty_dora.collection.state import CollectorState
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.dora import failure_id
from datadog_checks.pagerduty_dora.pagerduty.client import PAGE_SIZE
from datadog_checks.pagerduty_dora.pagerduty.listing import IncidentPage, parse_page

from ..fakes.pagerduty import NOW, InProcessPagerDuty, raw_incident
from ..harness import DAY, event_keys, transition_of

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

HOUR = 3600.0


def resolved_lists(world) -> int:
    """Requests for the list of resolved incidents."""
    return sum(1 for r in world.pagerduty.requests if r.path == '/incidents' and r.args('statuses') == ['resolved'])


def resolved_in_review(world, services, dd_run_check, **options):
    """A check that saw a P3 incident triggered and resolved; the incident's id and the check."""
    check = world.check(**options)
    dd_run_check(check)
    world.account.advance(60)
    incident = world.account.trigger(services['checkout'], 'Re-rated in the review', priority='P3')
    world.account.advance(60)
    dd_run_check(check)
    world.account.resolve(incident)
    world.account.advance(60)
    dd_run_check(check)
    assert world.dora.failures[failure_id(incident)]['severity'] == 'P3'
    # An hour of runs: the feed reads on past the entries of the incident (each shows it as it is now).
    run_for(world, dd_run_check, check, HOUR, 600)
    return check, incident


def run_for(world, dd_run_check, check, seconds: float, step: float) -> None:
    """Runs `step` seconds apart for `seconds` of PagerDuty's time."""
    for _ in range(int(seconds // step)):
        world.account.advance(step)
        dd_run_check(check)


class TestChangesAfterTheResolve:
    """Resolved incidents are read again twice a day for `recheck_resolved_days` after their resolve."""

    def test_a_priority_re_rated_an_hour_after_the_resolve_reaches_the_failure_with_its_event(
        self, world, services, dd_run_check, aggregator
    ):
        check, incident = resolved_in_review(world, services, dd_run_check)
        world.account.set_priority(incident, 'P1')
        rated = int(world.account.now)
        run_for(world, dd_run_check, check, 13 * HOUR, HOUR)
        failure = world.dora.failures[failure_id(incident)]
        assert (failure['severity'], 'finished_at' in failure) == ('P1', True)
        # Still held by the check (a record is kept 3 days after the resolve): the change gets its event,
        # dated when it was made.
        changes = [e for e in aggregator.events if transition_of(e) == 'priority_changed']
        assert [(e['timestamp'], e['aggregation_key']) for e in changes] == [(rated, incident)]
        assert event_keys(aggregator)[(incident, 'resolved')] == 1

    def test_a_priority_re_rated_after_the_check_forgot_the_incident_reaches_the_failure_only(
        self, world, services, dd_run_check, aggregator
    ):
        check, incident = resolved_in_review(world, services, dd_run_check)
        run_for(world, dd_run_check, check, 5 * DAY, 6 * HOUR)
        assert incident not in check.collector.state.incidents
        posts = len(world.dora.posts)
        world.account.set_priority(incident, 'P1')
        run_for(world, dd_run_check, check, 2 * DAY, 6 * HOUR)
        assert world.dora.failures[failure_id(incident)]['severity'] == 'P1'
        # Sent once more, and only that incident: the others were not updated since the last pass.
        assert len(world.dora.posts) == posts + 1
        assert [transition_of(e) for e in aggregator.events if transition_of(e) == 'priority_changed'] == []

    def test_an_incident_resolved_longer_ago_than_the_days_is_not_read_again(
        self, world, services, dd_run_check, aggregator
    ):
        check, incident = resolved_in_review(world, services, dd_run_check, recheck_resolved_days=2)
        run_for(world, dd_run_check, check, 3 * DAY, 6 * HOUR)
        world.account.set_priority(incident, 'P1')
        run_for(world, dd_run_check, check, 2 * DAY, 6 * HOUR)
        assert world.dora.failures[failure_id(incident)]['severity'] == 'P3'

    def test_zero_days_reads_no_resolved_incident_again(self, world, services, dd_run_check, aggregator):
        check, incident = resolved_in_review(world, services, dd_run_check, recheck_resolved_days=0)
        world.account.set_priority(incident, 'P1')
        run_for(world, dd_run_check, check, 2 * DAY, 6 * HOUR)
        assert world.dora.failures[failure_id(incident)]['severity'] == 'P3'
        assert resolved_lists(world) == 0

    def test_about_two_requests_a_day_per_hundred_incidents_resolved_within_the_days(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check()
        dd_run_check(check)
        for _ in range(250):
            world.account.advance(60)
            world.account.resolve(world.account.trigger(services['checkout'], 'Resolved'))
        dd_run_check(check)
        before = resolved_lists(world)
        run_for(world, dd_run_check, check, DAY + 6 * HOUR, 6 * HOUR)
        # A pass every 12 hours, each over the 250 incidents resolved within 14 days: 3 pages each.
        assert resolved_lists(world) - before == 2 * 3


class TestRecheckPass:
    """The pass over resolved incidents on its own: when it runs, how far it reads, what it hands over."""

    def test_the_first_pass_comes_a_period_after_going_live(self) -> None:
        pagerduty = ResolvedPagerDuty([])
        state = CollectorState()
        assert list(RecheckPass(pagerduty).read(state, NOW, 14)) == []
        assert state.recheck == Recheck(last=NOW)
        assert list(RecheckPass(pagerduty).read(state, NOW + RECHECK_PERIOD - 1, 14)) == []
        assert pagerduty.requests == []

    def test_a_pass_reads_a_few_pages_a_run_down_to_the_oldest_resolve_then_waits_a_day(self) -> None:
        # Resolved an hour apart, the latest first: 6 pages' worth, 14 days reach 336 of them.
        pagerduty = ResolvedPagerDuty([resolved(n, NOW - n * HOUR, updated=NOW - 2 * DAY) for n in range(600)])
        state = CollectorState(recheck=Recheck(last=NOW - DAY))
        runs = 0
        while runs == 0 or (state.recheck is not None and state.recheck.started is not None):
            steps = list(RecheckPass(pagerduty).read(state, NOW + runs * 60, 14))
            assert steps.count(NEXT_REQUEST) <= RECHECK_PAGES_PER_RUN
            runs += 1
        # Consecutive pages share RECHECK_OVERLAP incidents.
        assert [request[1] for request in pagerduty.requests] == [0, 90, 180, 270]
        assert runs == 2
        assert state.recheck == Recheck(last=NOW)

    def test_a_pass_resumes_at_the_resolve_it_reached_when_the_list_moved_between_runs(self) -> None:
        incidents = [resolved(n, NOW - n * HOUR, updated=NOW) for n in range(1, 301)]
        pagerduty = ResolvedPagerDuty(incidents)
        state = CollectorState(recheck=Recheck(last=NOW - DAY))
        first = [s for s in RecheckPass(pagerduty).read(state, NOW, 14) if isinstance(s, Page)]
        assert state.recheck is not None
        assert state.recheck.reached == NOW - 190 * HOUR and state.recheck.offset == 180
        # Between two runs, 30 incidents are resolved (at the top of the list) and 5 reopened (gone from it).
        pagerduty.resolved = [resolved(400 + n, NOW + n, updated=NOW + n) for n in range(30, 0, -1)] + [
            raw for raw in pagerduty.resolved if raw['id'] not in {'P00010', 'P00050', 'P00100', 'P00150', 'P00170'}
        ]
        rest = [s for s in RecheckPass(pagerduty).read(state, NOW + 60, 14) if isinstance(s, Page)]
        seen = [look.incident.id for page in first + rest for look in page.looks]
        # Each incident resolved before the pass began is read, and those around the position twice at most.
        assert set(seen) == {raw['id'] for raw in incidents}
        assert max(seen.count(i) for i in seen) <= 2

    def test_a_forgotten_incident_is_handed_over_only_when_updated_after_its_resolve_and_since_the_last_pass(
        self,
    ) -> None:
        pagerduty = ResolvedPagerDuty(
            [
                resolved(1, NOW - HOUR, updated=NOW - 10),
                resolved(2, NOW - 2 * HOUR, updated=NOW - 2 * HOUR),
                resolved(3, NOW - 3 * HOUR, updated=NOW - 2 * DAY),
                resolved(4, NOW - 4 * DAY, updated=NOW - 2 * DAY),
                resolved(5, NOW - 5 * HOUR, updated=None),
            ]
        )
        state = CollectorState(recheck=Recheck(last=NOW - DAY))
        # Held by the check: looked at whatever its update.
        state.incidents['P00002'] = IncidentRecord('resolved', None, 'high', 'PSERVICE', 'Checkout', NOW - DAY, NOW)
        pages = [step for step in RecheckPass(pagerduty).read(state, NOW, 14) if isinstance(step, Page)]
        assert [look.incident.id for page in pages for look in page.looks] == ['P00001', 'P00002', 'P00005']


class ResolvedPagerDuty(InProcessPagerDuty):
    """Lists the given resolved incidents, latest resolve first, as `sort_by=resolved_at:desc` does."""

    def __init__(self, incidents: list[dict]) -> None:
        super().__init__()
        self.resolved = sorted(incidents, key=lambda raw: raw['resolved_at'], reverse=True)

    def list_resolved(self, offset: int = 0) -> IncidentPage:
        self._answer(('list_resolved', offset))
        page = self.resolved[offset : offset + PAGE_SIZE]
        return parse_page({'incidents': page, 'more': offset + PAGE_SIZE < len(self.resolved)}, None)


def resolved(number: int, resolved_at: float, *, updated: float | None) -> dict:
    raw = raw_incident(number, resolved_at - 600, 'resolved')
    raw.update(resolved_at=format_time(resolved_at), updated_at=format_time(updated) if updated else None)
    return raw
