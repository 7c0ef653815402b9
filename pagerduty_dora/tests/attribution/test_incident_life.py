# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution through an incident's whole life, end to end.

Each test runs the real check over several runs on simulated time against the PagerDuty fake (with
its change events and priorities) and the DORA deployments fake, makes changes between runs, and
checks the state of every deployment in Datadog: which are change failures, their remediation, and
every PATCH that reached the API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from datadog_checks.pagerduty_dora.cli.dry_run import run_dry
from datadog_checks.pagerduty_dora.demo.rendering import ENTITY_BASE, datadog_event, encode_id

from ..fakes.catalog_api import monitor
from ..fakes.change_events import ChangeEvents
from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, DD_APP_KEY, World

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

MINUTE, HOUR = 60.0, 3600.0
# How long the check waits after an incident starts before it searches its deployment
# (docs/change-failure-attribution.md).
SETTLE = 300.0
PATCH_PATH = '/api/v2/dora/deployments/'


class Life:
    """One account with attribution on: the check, run on the account's clock, and what Datadog holds."""

    def __init__(self, world: Any, services: dict, dd_run_check: Any, aggregator: Any, **options: Any) -> None:
        self.world = world
        self.account = world.account
        self.deployments = world.deployments
        self.changes = ChangeEvents.install(world.pagerduty)
        self.services = services
        self.legacy = self.account.add_service('Legacy cron')
        self._run_check = dd_run_check
        self.aggregator = aggregator
        self.options = {
            'datadog_app_key': DD_APP_KEY,
            'attribute_change_failures': True,
            'env': 'prod',
            'service_overrides': [
                {'pagerduty_service': services['checkout'], 'service': 'checkout'},
                {'pagerduty_service': services['billing'], 'service': 'billing'},
            ],
        }
        self.options.update(options)
        self.check = world.check(**self.options)
        # Under chaos a run may end in an error, as it does in the Agent; the next run goes on.
        self.tolerant = False
        self.failed_runs = 0
        self.run()

    def run(self, after: float = 0.0, times: int = 1) -> None:
        """Move the clock by `after`, then run the check `times` times, a minute apart."""
        self.account.advance(after)
        for number in range(times):
            if number:
                self.account.advance(MINUTE)
            try:
                self._run_check(self.check)
            except Exception:
                if not self.tolerant:
                    raise
                self.failed_runs += 1

    def restart(self) -> None:
        """A new check instance over the same persistent cache: an Agent restart."""
        self.check = self.world.check(**self.options)

    def deploy(self, service: str, version: str, finished: float, **options: Any) -> str:
        """A DORA deployment of `service` in prod that finished `finished` seconds from now."""
        return self.deployments.add(service, 'prod', version, self.account.now + finished, **options)

    def failed(self) -> set[str]:
        return set(self.deployments.failed())

    def patches(self, deployment: str) -> list[dict]:
        return [attributes for deployment_id, attributes in self.deployments.patches if deployment_id == deployment]

    def remediation(self, deployment: str) -> dict | None:
        return self.deployments.deployments[deployment].remediation

    def text(self, incident: str) -> str:
        """Every event text of the incident, oldest first."""
        return '\n'.join(e['msg_text'] for e in self.aggregator.events if e['aggregation_key'] == incident)

    def told(self, incident: str, outcome: str) -> list[dict]:
        """Attribution's own events of the incident whose last decision is `outcome`."""
        return [
            e
            for e in self.aggregator.events
            if e['aggregation_key'] == incident and 'attribution:' + outcome in (e.get('tags') or [])
        ]

    def run_cut_short(self, after: float = 0.0) -> None:
        """A run whose process stops after attribution's work and before the run's end, then an Agent restart."""
        attribution = self.check.collector.attribution
        attribution.save = lambda: None
        self.run(after)
        self.restart()

    def results(self, outcome: str, *tags: str) -> float:
        """The `attribution.results` count of `outcome` (with these tags) over every run."""
        return sum(
            m.value
            for m in self.aggregator.metrics('pagerduty_dora.attribution.results')
            if 'outcome:' + outcome in m.tags and all(t in m.tags for t in tags)
        )


@pytest.fixture
def life(world, services, dd_run_check, aggregator):
    return lambda **options: Life(world, services, dd_run_check, aggregator, **options)


class TestQualifyingLater:
    """An incident that qualifies after its trigger is judged then, with the search dated by its start."""

    @pytest.mark.parametrize(
        'options, before, after',
        [
            ({'attribution_min_severity': 'P2'}, 'P3', 'P1'),
            ({'attribution_min_severity': 'P2'}, None, 'P1'),
            ({'priorities': ['P1']}, 'P3', 'P1'),
        ],
        ids=['raised-above-the-minimum', 'first-priority-after-the-trigger', 'enters-the-priorities-filter'],
    )
    def test_priority_change_marks_the_deployment(self, life, options, before, after):
        life = life(**options)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority=before)
        life.run(MINUTE)
        # A release after the start is a fix attempt, never the cause, however late the priority comes.
        life.deploy('checkout', 'v43', 15 * MINUTE)
        life.run(SETTLE)
        assert life.failed() == set()

        life.account.advance(20 * MINUTE)
        life.account.set_priority(incident, after)
        life.run(MINUTE)

        assert life.failed() == {culprit}
        assert life.patches(culprit) == [{'change_failure': True}]
        assert 'marked as a change failure' in life.text(incident)
        assert life.results('attributed', 'signal:latest_deployment') == 1


class TestMovingToAnotherService:
    """The blame follows the incident to its new service; the old deployment is set back if nothing else blames it."""

    @pytest.mark.parametrize('also_blamed', [False, True], ids=['set-back', 'still-blamed-by-another'])
    def test_move(self, life, also_blamed):
        life = life()
        checkout = life.deploy('checkout', 'c7', -10 * MINUTE)
        billing = life.deploy('billing', 'b3', -5 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Payments failing', priority='P1')
        other = life.account.trigger(life.services['checkout'], 'Checkout slow', priority='P1') if also_blamed else None
        life.run(SETTLE + MINUTE)
        assert life.failed() == {checkout}

        life.account.move(incident, life.services['billing'])
        life.run(MINUTE, times=2)

        assert life.failed() == ({checkout, billing} if also_blamed else {billing})
        expected = [{'change_failure': True}] if also_blamed else [{'change_failure': True}, {'change_failure': False}]
        assert life.patches(checkout) == expected
        assert life.results('unmarked' if not also_blamed else 'released', 'reason:moved') == 1

        # The remediation is searched among billing's deployments, not checkout's.
        life.deploy('billing', 'b4', 10 * MINUTE)
        life.deploy('checkout', 'c8', 5 * MINUTE)
        life.account.advance(20 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE)
        assert life.remediation(billing)['type'] == 'rollforward'
        assert life.remediation(checkout) is None
        assert other is None or life.failed() == {checkout, billing}


class TestLeaving:
    """When the incident's failure is removed, the deployment it blamed is set back."""

    @pytest.mark.parametrize('how', ['filters', 'merged', 'deleted'], ids=['left-the-filters', 'merged', 'deleted'])
    def test_set_back(self, life, how):
        life = life(priorities=['P1', 'P2'])
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        survivor = life.account.trigger(life.services['billing'], 'Billing errors', priority='P1')
        life.run(SETTLE + MINUTE)
        assert life.failed() == {culprit}

        if how == 'filters':
            life.account.set_priority(incident, 'P4')
        elif how == 'merged':
            life.account.merge(incident, survivor)
        else:
            life.account.delete(incident)
        life.run(MINUTE, times=3)

        assert life.failed() == set()
        assert life.patches(culprit) == [{'change_failure': True}, {'change_failure': False}]
        reason = {'filters': 'filtered', 'merged': 'merged', 'deleted': 'deleted'}[how]
        assert life.results('unmarked', 'reason:' + reason) == 1
        set_back = [e for e in life.aggregator.events if 'change_failure: false' in e['msg_text']]
        assert len(set_back) == 1


class TestSetBackOnlyWhereNoOneElseMarks:
    """Datadog marks a rolled-back deployment itself, and its API does not say so: the check never sets it back."""

    @pytest.mark.parametrize(
        'how', ['moved', 'merged', 'filters', 'deleted'], ids=['moved', 'merged', 'left-the-filters', 'deleted']
    )
    def test_rollback_seen_keeps_the_mark(self, life, how):
        life = life(priorities=['P1', 'P2'])
        life.deploy('checkout', 'v41', -2 * DAY)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        survivor = life.account.trigger(life.services['billing'], 'Billing errors', priority='P1')
        life.run(SETTLE + MINUTE)
        assert life.failed() == {culprit}
        # Rolled back while the incident is still open: the check has recorded no remediation.
        rollback = life.deploy('checkout', 'v41', 2 * MINUTE)
        life.account.advance(5 * MINUTE)

        if how == 'moved':
            life.account.move(incident, life.services['billing'])
        elif how == 'merged':
            life.account.merge(incident, survivor)
        elif how == 'filters':
            life.account.set_priority(incident, 'P4')
        else:
            life.account.delete(incident)
        life.run(MINUTE, times=3)

        assert culprit in life.failed()
        assert life.patches(culprit) == [{'change_failure': True}]
        reason = {'moved': 'moved', 'merged': 'merged', 'filters': 'filtered', 'deleted': 'deleted'}[how]
        assert life.results('kept', 'reason:' + reason) == 1
        assert life.results('unmarked') == 0
        assert '`{}` of `checkout` in env `prod`, version `v41`'.format(rollback) in life.text(incident)
        assert 'Datadog marks a rolled-back deployment itself' in life.text(incident)
        life.restart()
        life.run(MINUTE, times=2)
        assert life.patches(culprit) == [{'change_failure': True}]

    @pytest.mark.parametrize('version', ['v41', 'v43'], ids=['rollback-recorded', 'rollforward-recorded'])
    def test_known_remediation_keeps_the_mark(self, life, version):
        life = life(priorities=['P1', 'P2'])
        life.deploy('checkout', 'v41', -2 * DAY)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        fix = life.deploy('checkout', version, 2 * MINUTE)
        life.account.advance(5 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE)
        kind = 'rollback' if version == 'v41' else 'rollforward'
        assert life.remediation(culprit) == {'id': fix, 'type': kind}

        # Re-rated in the review, after the resolve: it leaves the filters.
        life.account.set_priority(incident, 'P4')
        life.run(MINUTE, times=3)

        assert life.failed() == {culprit}
        assert life.patches(culprit) == [
            {'change_failure': True},
            {'change_failure': True, 'remediation': {'id': fix, 'type': kind}},
        ]
        assert life.results('kept', 'reason:filtered') == 1
        assert 'its {} by deployment `{}`'.format(kind, fix) in life.text(incident)

    @pytest.mark.parametrize('how', ['moved', 'deleted'], ids=['moved', 'deleted'])
    def test_marked_by_the_check_alone_is_set_back_and_told_once(self, life, how):
        """Later releases that go back to no earlier version (a new one, the failed one again) keep nothing."""
        life = life()
        life.deploy('checkout', 'v41', -2 * DAY)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        life.deploy('checkout', 'v42', 2 * MINUTE)
        life.deploy('checkout', 'v43', 4 * MINUTE)
        life.account.advance(5 * MINUTE)

        if how == 'moved':
            life.account.move(incident, life.services['billing'])
        else:
            life.account.delete(incident)
        life.run_cut_short(MINUTE)
        life.run(MINUTE, times=2)

        assert culprit not in life.failed()
        assert life.patches(culprit) == [{'change_failure': True}, {'change_failure': False}]
        assert life.results('unmarked', 'reason:' + how) == 1
        assert life.results('kept') == 0
        assert life.text(incident).count('set back (`change_failure: false`)') == 1


class TestDecisionsToldOnce:
    """A decision taken with no event of its own gets one, once, whatever restarts in between."""

    def test_no_deployment_found_after_the_settle_time(self, life):
        life = life()
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(MINUTE)
        assert life.told(incident, 'no_deployment') == []

        life.run_cut_short(SETTLE)
        life.run(MINUTE, times=2)
        life.account.advance(10 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE, times=2)
        life.restart()
        life.run(SETTLE, times=2)

        (event,) = life.told(incident, 'no_deployment')
        assert event['msg_title'].endswith('change failure: no deployment found')
        assert (
            'not attributed: no deployment of `checkout` in env `prod` finished in the 1d before' in event['msg_text']
        )
        assert life.results('no_deployment') == 1

    def test_no_remediation_found_after_the_resolve(self, life):
        life = life()
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        assert life.failed() == {culprit}
        life.account.advance(20 * MINUTE)
        life.account.resolve(incident)
        # The resolve's search finds no fix; it is looked for once more after the settle time.
        life.run(MINUTE)
        assert life.told(incident, 'no_remediation') == []

        life.run_cut_short(SETTLE)
        life.run(MINUTE, times=2)
        life.restart()
        life.run(HOUR, times=2)

        (event,) = life.told(incident, 'no_remediation')
        assert event['msg_title'].endswith('change failure: no remediation recorded')
        assert 'none recorded for deployment `{}`'.format(culprit) in event['msg_text']
        assert life.results('no_remediation') == 1
        assert life.remediation(culprit) is None


class TestLateDeployment:
    """A deployment that reaches Datadog after the trigger is found: after a settle time, and again at the resolve."""

    @pytest.mark.parametrize(
        'reported_after', [2 * MINUTE, 10 * MINUTE], ids=['within-the-settle-time', 'before-the-resolve']
    )
    def test_late_deployment_is_the_culprit(self, life, reported_after):
        life = life()
        old = life.deploy('checkout', 'v41', -3 * HOUR)
        start = life.account.now
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(MINUTE)
        assert life.failed() == set()
        if reported_after > SETTLE:
            # Searched once the settle time passed: the only deployment seen then is blamed, for now.
            life.run(SETTLE)
            assert life.failed() == {old}
        life.account.now = start + reported_after
        culprit = life.deployments.add('checkout', 'prod', 'v42', start - MINUTE)
        life.run(MINUTE)
        life.run(SETTLE)
        fix = life.deploy('checkout', 'v41', 5 * MINUTE)
        life.account.advance(10 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE)

        assert life.failed() == {culprit}
        assert life.remediation(culprit) == {'id': fix, 'type': 'rollback'}
        assert life.remediation(old) is None
        expected_old = [] if reported_after < SETTLE else [{'change_failure': True}, {'change_failure': False}]
        assert life.patches(old) == expected_old


class TestFixAttempts:
    """A deployment made after the incident started is never its cause, even after a reopen."""

    def test_hotfix_is_not_blamed_after_a_reopen(self, life):
        life = life()
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        hotfix = life.deploy('checkout', 'v43', 14 * MINUTE)
        life.account.advance(20 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE)
        life.account.advance(10 * MINUTE)
        life.account.reopen(incident)
        life.run(MINUTE, times=3)

        assert life.failed() == set()
        assert life.patches(hotfix) == []
        assert life.results('no_deployment') == 1
        assert life.results('attributed') == 0


class TestRemediationBelongsToTheDeployment:
    """The first later deployment that does not redeploy the failed version remediates it, recorded once."""

    def test_second_resolve_keeps_the_rollback(self, life):
        life = life()
        life.deploy('checkout', 'v41', -3 * DAY)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        first = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        second = life.account.trigger(life.services['checkout'], 'Cart empty', priority='P2')
        life.run(SETTLE + MINUTE)
        assert life.failed() == {culprit}
        life.deploy('checkout', 'v42', 10 * MINUTE)
        rollback = life.deploy('checkout', 'v41', 30 * MINUTE)
        life.account.advance(35 * MINUTE)
        life.account.resolve(first)
        life.run(MINUTE)
        life.deploy('checkout', 'v44', DAY - 2 * HOUR)
        life.account.advance(DAY)
        life.account.resolve(second)
        life.run(MINUTE)

        assert life.remediation(culprit) == {'id': rollback, 'type': 'rollback'}
        assert life.patches(culprit) == [
            {'change_failure': True},
            {'change_failure': True, 'remediation': {'id': rollback, 'type': 'rollback'}},
        ]
        assert life.results('remediated', 'remediation:rollback') == 1
        assert 'already recorded' in life.text(second)


class TestRollbacks:
    """A rollback is a redeploy of any version the service ran before the failed deployment."""

    @pytest.mark.parametrize('history', ['three-days-old', 'sixty-recent'], ids=['three-days-old', 'sixty-recent'])
    def test_rollback_to_an_earlier_version(self, life, history):
        life = life()
        if history == 'three-days-old':
            life.deploy('checkout', 'v1', -3 * DAY)
            life.deploy('checkout', 'v2', -2 * DAY)
            target = 'v1'
        else:
            for number in range(60):
                life.deploy('checkout', 'v{}'.format(100 + number), -20 * HOUR + number * 20 * MINUTE, duration=60)
            target = 'v158'
        culprit = life.deploy('checkout', 'v900', -5 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        fix = life.deploy('checkout', target, 5 * MINUTE)
        life.account.advance(10 * MINUTE)
        life.account.resolve(incident)
        life.run(MINUTE)

        assert life.failed() == {culprit}
        assert life.remediation(culprit) == {'id': fix, 'type': 'rollback'}


class TestRulesThatMatchThePromise:
    """Unmapped incidents are never attributed, long rollouts are found, and severities follow PagerDuty's order."""

    def test_fallback_mapping_is_not_attributed(self, life):
        life = life()
        life.deploy('Legacy cron', 'v9', -10 * MINUTE)
        incident = life.account.trigger(life.legacy, 'Cron stuck', priority='P1')
        life.run(SETTLE + MINUTE, times=2)
        assert life.failed() == set()
        assert life.results('unmapped') == 1
        assert 'no catalog rule mapped the incident' in life.text(incident)

    def test_long_rollout_within_a_short_window(self, life):
        life = life(attribution_window=1800)
        rollout = life.deploy('checkout', 'v42', -10 * MINUTE, duration=2 * HOUR)
        life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.run(SETTLE + MINUTE)
        assert life.failed() == {rollout}

    @pytest.mark.parametrize(
        'names, options, priority, attributed',
        [
            (['Critical', 'High', 'Medium', 'Low'], {'attribution_min_severity': 'High'}, 'Critical', True),
            (['Critical', 'High', 'Medium', 'Low'], {'attribution_min_severity': 'High'}, 'Medium', False),
            (['P0', 'P5', 'P3'], {'attribution_min_severity': 'P5'}, 'P0', True),
            (['P0', 'P5', 'P3'], {'attribution_min_severity': 'P5'}, 'P3', False),
            (
                ['P1', 'P2', 'P3'],
                {'attribution_min_severity': 'high', 'severity_mapping': {'P1': 'critical', 'P2': 'high', 'P3': 'low'}},
                'P1',
                True,
            ),
            (
                ['P1', 'P2', 'P3'],
                {'attribution_min_severity': 'high', 'severity_mapping': {'P1': 'critical', 'P2': 'high', 'P3': 'low'}},
                'P3',
                False,
            ),
        ],
        ids=[
            'names-without-numbers-above',
            'names-without-numbers-below',
            'numbers-out-of-order-above',
            'numbers-out-of-order-below',
            'mapped-severity-above',
            'mapped-severity-below',
        ],
    )
    def test_severity_follows_the_account_order(self, life, names, options, priority, attributed):
        life = life(**options)
        life.account.priorities = [(encode_id(ENTITY_BASE['priority'] + i), name) for i, name in enumerate(names)]
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        life.account.trigger(life.services['checkout'], 'Checkout errors', priority=priority)
        life.run(SETTLE + MINUTE)
        assert life.failed() == ({culprit} if attributed else set())
        assert life.results('below_severity') == (0 if attributed else 1)


class TestChangeEvents:
    """A change event PagerDuty relates to the incident decides when it matches a Datadog deployment."""

    @pytest.mark.parametrize(
        'basis, event',
        [
            ('version', {'summary': 'Deploy checkout', 'custom_details': {'version': 'v41', 'build': 17}}),
            ('commit', {'summary': 'Merged PR 812 (9f2c4e1)', 'custom_details': {}}),
            ('time', {'summary': 'checkout rollout done', 'custom_details': {'pipeline': 'ci'}}),
        ],
        ids=['by-version', 'by-commit', 'by-time'],
    )
    def test_related_change_event_decides(self, life, basis, event):
        life = life()
        cause = life.deploy('checkout', 'v41', -2 * HOUR, commit='9f2c4e1d0b7a9c3e5f60718293a4b5c6d7e8f901')
        latest = life.deploy('checkout', 'v42', -10 * MINUTE)
        change = life.changes.send(life.services['checkout'], at=life.account.now - 2 * HOUR + 30, **event)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.changes.relate(incident, change, 'intelligent')
        life.run(SETTLE + MINUTE)

        assert life.failed() == {cause}
        assert life.patches(latest) == []
        text = life.text(incident)
        assert "decided by PagerDuty's related change event" in text
        assert '(matched by {})'.format(basis) in text
        assert life.results('attributed', 'signal:change_event') == 1

    def test_change_event_of_nothing_in_datadog_leaves_the_latest_deployment(self, life):
        life = life()
        latest = life.deploy('checkout', 'v42', -10 * MINUTE)
        change = life.changes.send(
            life.services['checkout'], 'Feature flag flipped', at=life.account.now - HOUR, custom_details={'flag': 'x'}
        )
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1')
        life.changes.relate(incident, change, 'intelligent')
        life.run(SETTLE + MINUTE)

        assert life.failed() == {latest}
        text = life.text(incident)
        assert 'decided by the latest deployment of `checkout` in env `prod`' in text
        assert '2 related change event(s) matched none of them' not in text
        assert '1 related change event(s) matched none of them' in text


class TestMonitorVersion:
    """The version the Datadog monitor that triggered the incident names decides, before change events and time."""

    MONITOR = 4207311

    @pytest.mark.parametrize(
        'group, tags, monitor_tags',
        [
            (['env:prod', 'service:checkout', 'version:v41'], ['team:payments'], None),
            ([], ['service:checkout', 'env:prod', 'version:v41'], None),
            ([], ['service:checkout'], ['service:checkout', 'env:prod', 'version:v41']),
        ],
        ids=['alerted-group', 'alert-tags', 'monitor-tags-from-datadog'],
    )
    def test_version_blames_its_deployment_over_a_later_one(self, life, group, tags, monitor_tags):
        life = life(service_overrides=[])
        if monitor_tags is not None:
            life.world.catalog.monitors[self.MONITOR] = monitor(
                self.MONITOR, 'Errors', 'avg:errors{*} > 5', monitor_tags
            )
        cause = life.deploy('checkout', 'v41', -2 * HOUR)
        latest = life.deploy('checkout', 'v42', -10 * MINUTE)
        event = datadog_event(self.MONITOR, group, tags)
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1', event=event)
        life.run(SETTLE + MINUTE)

        assert life.failed() == {cause}
        assert life.patches(latest) == []
        assert 'decided by version `v41` named by the Datadog monitor that triggered the incident' in life.text(
            incident
        )
        assert life.results('attributed', 'signal:monitor_version') == 1

    def test_version_beats_a_related_change_event_and_without_one_nothing_changes(self, life):
        life = life()
        cause = life.deploy('checkout', 'v41', -3 * HOUR)
        related = life.deploy('checkout', 'v42', -2 * HOUR)
        latest = life.deploy('checkout', 'v43', -10 * MINUTE)
        change = life.changes.send(
            life.services['checkout'],
            'Deploy checkout',
            at=life.account.now - 2 * HOUR,
            custom_details={'version': 'v42'},
        )
        plain = life.account.trigger(life.services['checkout'], 'Latency', priority='P1')
        versionless = datadog_event(self.MONITOR, ['env:prod', 'service:checkout'])
        untagged = life.account.trigger(life.services['checkout'], 'Errors', priority='P1', event=versionless)
        tagged = datadog_event(self.MONITOR + 1, ['env:prod', 'service:checkout', 'version:v41'])
        named = life.account.trigger(life.services['checkout'], 'Timeouts', priority='P1', event=tagged)
        for incident in (plain, untagged, named):
            life.changes.relate(incident, change, 'intelligent')
        life.run(SETTLE + MINUTE)

        assert life.failed() == {cause, related}
        assert life.patches(latest) == []
        assert "decided by PagerDuty's related change event" in life.text(plain)
        assert "decided by PagerDuty's related change event" in life.text(untagged)
        assert 'decided by version `v41`' in life.text(named)
        assert life.results('attributed', 'signal:change_event') == 2
        assert life.results('attributed', 'signal:monitor_version') == 1

    def test_version_of_no_deployment_in_the_window_leaves_the_latest(self, life):
        life = life(service_overrides=[])
        life.deploy('checkout', 'v41', -2 * HOUR)
        latest = life.deploy('checkout', 'v42', -10 * MINUTE)
        # A version deployed after the incident started is a fix attempt, never its cause.
        life.deploy('checkout', 'v40', 2 * MINUTE)
        event = datadog_event(self.MONITOR, ['env:prod', 'service:checkout', 'version:v40'])
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1', event=event)
        life.run(SETTLE + MINUTE)

        assert life.failed() == {latest}
        assert 'decided by the latest deployment of `checkout` in env `prod`' in life.text(incident)
        assert life.results('attributed', 'signal:latest_deployment') == 1

    def test_version_of_a_service_an_override_replaces_is_not_used(self, life):
        life = life()
        life.deploy('checkout', 'v41', -2 * HOUR)
        latest = life.deploy('checkout', 'v42', -10 * MINUTE)
        # The monitor speaks of `search`; the override maps the incident to `checkout`.
        event = datadog_event(self.MONITOR, ['env:prod', 'service:search', 'version:v41'])
        life.account.trigger(life.services['checkout'], 'Search errors', priority='P1', event=event)
        life.run(SETTLE + MINUTE)

        assert life.failed() == {latest}
        assert life.results('attributed', 'signal:latest_deployment') == 1

    def test_a_resolve_by_hand_keeps_the_version(self, life):
        life = life(service_overrides=[])
        cause = life.deploy('checkout', 'v41', -2 * HOUR)
        life.deploy('checkout', 'v42', -10 * MINUTE)
        event = datadog_event(self.MONITOR, ['env:prod', 'service:checkout', 'version:v41'])
        incident = life.account.trigger(life.services['checkout'], 'Checkout errors', priority='P1', event=event)
        life.run(SETTLE + MINUTE)
        # A later deployment, reported before the resolve: the search made at the resolve keeps the version's.
        later = life.deploy('checkout', 'v43', -(SETTLE + 3 * MINUTE))
        life.account.resolve(incident)
        life.restart()
        life.run(MINUTE, times=2)

        assert life.failed() == {cause}
        assert life.patches(later) == []
        assert life.results('attributed', 'signal:monitor_version') == 1


class TestExactlyOnce:
    """Every change of an incident reaches Datadog once, across restarts and faults."""

    def test_life_story_through_restarts_and_faults(self, life):
        life = life()
        life.deploy('checkout', 'v41', -2 * DAY)
        checkout = life.deploy('checkout', 'v42', -10 * MINUTE)
        billing = life.deploy('billing', 'b3', -5 * MINUTE)
        incident = life.account.trigger(life.services['checkout'], 'Payments failing', priority='P1')
        life.run(MINUTE)
        # The search fails (every retry), then the check restarts, then the PATCH fails.
        life.deployments.faults.fail_next(4, 503)
        life.run(SETTLE)
        assert life.failed() == set()
        life.restart()
        life.deployments.faults.fail_next(4, 503, path_prefix=PATCH_PATH)
        life.run(MINUTE)
        assert life.failed() == set()
        life.run(MINUTE)
        assert life.failed() == {checkout}

        life.account.move(incident, life.services['billing'])
        life.deployments.faults.fail_next(4, '429', reset=1)
        life.run(MINUTE)
        life.restart()
        life.run(MINUTE, times=2)
        assert life.failed() == {billing}

        life.account.move(incident, life.services['checkout'])
        life.run(MINUTE, times=2)
        rollback = life.deploy('checkout', 'v41', 5 * MINUTE)
        life.account.advance(10 * MINUTE)
        life.account.resolve(incident)
        life.deployments.faults.fail_next(4, 503)
        life.run(MINUTE)
        life.restart()
        life.run(MINUTE, times=3)

        assert life.failed() == {checkout}
        assert life.patches(checkout) == [
            {'change_failure': True},
            {'change_failure': False},
            {'change_failure': True},
            {'change_failure': True, 'remediation': {'id': rollback, 'type': 'rollback'}},
        ]
        assert life.patches(billing) == [{'change_failure': True}, {'change_failure': False}]
        assert life.check.collector.attribution.pending == 0

    def test_chaos(self, life):
        """A seeded third of all requests to both APIs fail; the end state is the one without faults."""
        life = life()
        life.tolerant = True
        life.deploy('checkout', 'v41', -2 * DAY)
        culprit = life.deploy('checkout', 'v42', -10 * MINUTE)
        incidents = [
            life.account.trigger(life.services['checkout'], 'Errors {}'.format(n), priority='P1') for n in range(3)
        ]
        life.world.pagerduty.faults.chaos(0.3, seed=7, kinds=['500', '429'])
        life.deployments.faults.chaos(0.3, seed=8, kinds=['503', '429'])
        life.run(MINUTE, times=8)
        rollback = life.deploy('checkout', 'v41', 2 * MINUTE)
        life.account.advance(5 * MINUTE)
        for incident in incidents:
            life.account.resolve(incident)
        life.run(MINUTE, times=10)
        life.world.pagerduty.faults.chaos(0)
        life.deployments.faults.chaos(0)
        served = len(life.deployments.faults.served)
        life.run(MINUTE, times=3)

        assert served > 0 and life.failed_runs > 0

        assert life.failed() == {culprit}
        assert life.patches(culprit) == [
            {'change_failure': True},
            {'change_failure': True, 'remediation': {'id': rollback, 'type': 'rollback'}},
        ]


class TestDryRun:
    """The dry run previews every decision (signal, remediation, refusals) with the same rules, writing nothing."""

    def test_preview_writes_nothing(self):
        from datadog_checks.base.stubs import datadog_agent

        world = World(account=PagerDutyAccount(now=time.time()))
        try:
            account = world.account
            changes = ChangeEvents.install(world.pagerduty)
            team = account.add_team('Payments')
            checkout = account.add_service('Checkout API', team_ids=[team])
            billing = account.add_service('Billing', team_ids=[team])
            legacy = account.add_service('Legacy cron', team_ids=[team])
            now = account.now
            world.deployments.add('checkout', 'prod', 'v40', now - 3 * DAY, deployment_id='dep-v40')
            world.deployments.add('checkout', 'prod', 'v41', now - 3 * HOUR, deployment_id='dep-v41')
            world.deployments.add('checkout', 'prod', 'v42', now - 70 * MINUTE, deployment_id='dep-v42')
            world.deployments.add('checkout', 'prod', 'v40', now - 20 * MINUTE, deployment_id='dep-rollback')
            world.deployments.add('Legacy cron', 'prod', 'v9', now - 2 * HOUR)
            world.deployments.add('billing', 'prod', 'b1', now - 2 * HOUR)
            change = changes.send(checkout, 'Deploy', at=now - 3 * HOUR, custom_details={'version': 'v41'})
            account.now = now - HOUR
            incident = account.trigger(checkout, 'Checkout errors', priority='P1')
            account.trigger(legacy, 'Cron stuck', priority='P1')
            account.trigger(billing, 'Invoices late', priority='P4')
            changes.relate(incident, change)
            account.now = now - 10 * MINUTE
            account.resolve(incident)
            account.now = now
            instance = world.instance(
                datadog_app_key=DD_APP_KEY,
                attribute_change_failures=True,
                attribution_min_severity='P2',
                env='prod',
                service_overrides=[
                    {'pagerduty_service': checkout, 'service': 'checkout'},
                    {'pagerduty_service': billing, 'service': 'billing'},
                ],
            )

            result = run_dry({}, instance, 'conf.yaml', 0)
        finally:
            world.close()

        previews = {p['title']: p for p in result['attribution']['incidents']}
        assert (previews['Checkout errors']['deployment']['id'], previews['Checkout errors']['signal']) == (
            'dep-v41',
            'change_event',
        )
        # The first deployment after the failed one that does not redeploy v41: v42, a new version.
        assert previews['Checkout errors']['remediation']['type'] == 'rollforward'
        assert previews['Checkout errors']['remediation']['deployment']['id'] == 'dep-v42'
        assert previews['Cron stuck']['outcome'] == 'unmapped'
        assert previews['Invoices late']['outcome'] == 'below_severity'
        assert result['attribution']['would_patch'] == [
            {'deployment': 'dep-v41', 'attributes': {'change_failure': True}},
            {
                'deployment': 'dep-v41',
                'attributes': {'change_failure': True, 'remediation': {'id': 'dep-v42', 'type': 'rollforward'}},
            },
        ]
        assert [r for r in world.datadog.requests if r.method == 'PATCH'] == []
        assert world.deployments.failed() == {}
        assert datadog_agent._cache == {}

    def test_preview_shows_the_monitor_version(self):
        world = World(account=PagerDutyAccount(now=time.time()))
        try:
            account = world.account
            team = account.add_team('Payments')
            shared = account.add_service('Shared on-call', team_ids=[team])
            now = account.now
            world.deployments.add('checkout', 'prod', 'v41', now - 3 * HOUR, deployment_id='dep-v41')
            world.deployments.add('checkout', 'prod', 'v42', now - 70 * MINUTE, deployment_id='dep-v42')
            account.now = now - HOUR
            event = datadog_event(4207311, ['env:prod', 'service:checkout', 'version:v41'])
            account.trigger(shared, 'Checkout errors', priority='P1', event=event)
            account.now = now
            instance = world.instance(datadog_app_key=DD_APP_KEY, attribute_change_failures=True, env='prod')

            result = run_dry({}, instance, 'conf.yaml', 0)
        finally:
            world.close()

        preview = result['attribution']['incidents'][0]
        assert (preview['deployment']['id'], preview['signal'], preview['basis']) == (
            'dep-v41',
            'monitor_version',
            'version',
        )
        assert 'decided by version `v41` named by the Datadog monitor' in preview['note']
        assert result['attribution']['would_patch'] == [
            {'deployment': 'dep-v41', 'attributes': {'change_failure': True}}
        ]
