# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Limits docs/limits.md states that random histories of the model-based test found: pinned, so a fix shows.

Each is a strict expected failure that asserts what a user would want; once the engine reports the
transition, the test passes, fails as strict, and the line in docs/limits.md is to be removed.
"""

from __future__ import annotations

import pytest

from ..paths import INTEGRATION
from .test_model import HOUR, MINUTE, timeline

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

LIMITS = (INTEGRATION / 'docs' / 'limits.md').read_text(encoding='utf-8')


class TestFoundByTheModel:
    """Transitions the engine does not report today, as the limits page says."""

    @pytest.mark.xfail(strict=True, reason='docs/limits.md: a change in the second collection goes live')
    def test_an_acknowledgement_in_the_second_collection_goes_live(self, world, services, dd_run_check, aggregator):
        account = world.account
        incident = account.trigger(services['checkout'], 'Older than the first run')
        account.advance(30 * MINUTE)
        account.acknowledge(incident)
        check = world.check()
        dd_run_check(check)
        for _ in range(3):
            account.advance(MINUTE)
            dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator, incident)] == ['acknowledged']

    @pytest.mark.xfail(strict=True, reason='docs/limits.md: an urgency change before the first look')
    def test_an_urgency_change_before_the_incidents_first_look(self, world, services, dd_run_check, aggregator):
        account = world.account
        check = world.check()
        dd_run_check(check)
        incident = account.trigger(services['checkout'], 'Born and changed between two runs', 'high')
        account.advance(MINUTE)
        changed = account.now
        account.set_urgency(incident, 'low')
        account.advance(HOUR)
        dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator, incident)] == ['triggered', 'urgency_changed']
        assert timeline(aggregator, incident)[1][1] == changed

    @pytest.mark.xfail(strict=True, reason='docs/limits.md: an urgency change read before its own entry')
    def test_an_urgency_change_read_before_its_entry_is_indexed(self, world, services, dd_run_check, aggregator):
        account = world.account
        incident = account.trigger(services['checkout'], 'Older than the first run', 'high')
        account.advance(30 * MINUTE)
        check = world.check()
        dd_run_check(check)
        account.advance(MINUTE)
        account.index_delay = 5
        changed = account.now
        account.set_urgency(incident, 'low')
        account.advance(2)
        account.acknowledge(incident)
        dd_run_check(check)
        account.advance(MINUTE)
        dd_run_check(check)
        changes = [at for kind, at in timeline(aggregator, incident) if kind == 'urgency_changed']
        assert changes == [changed]

    def test_the_limits_page_states_each(self):
        assert 'in the very second collection goes live' in LIMITS
        assert 'changed its urgency before the check first saw it' in LIMITS
        assert 'has not indexed yet when another entry of the incident is read' in LIMITS
        assert 'Entries up to 21 minutes - 5 minutes - one\n  interval late are guaranteed' in LIMITS


class TestBeyondTheStatedBounds:
    """What lies past a bound the limits page states, pinned the same way."""

    @pytest.mark.xfail(strict=True, reason='docs/limits.md: an entry indexed later than the second look reaches')
    def test_an_acknowledgement_indexed_later_than_the_bound_then_a_resolve_on_time(
        self, world, services, dd_run_check, aggregator
    ):
        account = world.account
        check = world.check()
        dd_run_check(check)
        incident = account.trigger(services['checkout'], 'Acknowledged, indexed 25 minutes late')
        account.advance(MINUTE)
        dd_run_check(check)
        account.index_delay = lambda kind: 25 * MINUTE if kind == 'acknowledge_log_entry' else 0
        account.acknowledge(incident)
        account.index_delay = 0
        account.advance(MINUTE)
        account.resolve(incident)
        for _ in range(40):
            account.advance(MINUTE)
            dd_run_check(check)
        assert [kind for kind, _ in timeline(aggregator, incident)] == ['triggered', 'acknowledged', 'resolved']
