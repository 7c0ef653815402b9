# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One instance, one memory: clocks it cannot read, moves back and forth, a lagging event search, quiet accounts."""

from __future__ import annotations

import pytest

from .harness import World, event_keys

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
