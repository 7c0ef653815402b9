# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The rules of change-failure attribution, as plain functions: no HTTP, no cache."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datadog_checks.pagerduty_dora.attribution import blame, decision, eligibility, model, remediation, state
from datadog_checks.pagerduty_dora.attribution.model import ChangeEvent, Deployment, Facts, Search
from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.pagerduty.monitor import MonitorMapping

# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
ORDER = ['P1', 'P2', 'P3', 'P4', 'P5']


def deployment(deployment_id: str, finished_before: float, version: str | None = 'v1', commit=None) -> Deployment:
    finished = T0 - finished_before
    return Deployment(deployment_id, 'checkout', 'prod', version, finished - 5 * MINUTE, finished, commit)


def facts(**changes) -> Facts:
    base = Facts(
        start=T0,
        services=('checkout',),
        env='prod',
        severity='P1',
        priority='P1',
        rule='service_url',
        wanted=True,
        merged=False,
        pagerduty_service='PSVC001',
        resolved_at=None,
    )
    return replace(base, **changes)


def event(at: float, summary: str = 'deploy', details=None, services=('PSVC001',), reason=None, event_id='e1'):
    return ChangeEvent(event_id, at, summary, tuple(services), blame.identifiers_of(summary, details or {}), reason)


class TestQualification:
    """An incident qualifies while wanted, not merged or gone, mapped by a catalog rule to one service and an env."""

    @pytest.mark.parametrize(
        'changes, minimum, expected',
        [
            ({}, None, None),
            ({'gone': 'deleted'}, None, model.DELETED),
            ({'merged': True, 'wanted': False}, None, model.MERGED),
            ({'wanted': False}, None, model.FILTERED),
            ({'rule': 'fallback'}, None, model.UNMAPPED),
            ({'priority': 'P3'}, 'P2', model.BELOW_SEVERITY),
            ({'services': ('', '  ')}, None, model.NO_SERVICE),
            ({'services': ('checkout', 'cart')}, None, model.SEVERAL_SERVICES),
            ({'services': ('checkout', ' ')}, None, None),
            ({'env': None}, None, model.NO_ENV),
        ],
        ids=[
            'qualifies',
            'deleted',
            'merged-first',
            'filtered',
            'fallback-rule',
            'below-severity',
            'blank-services',
            'several',
            'one-not-blank',
            'no-env',
        ],
    )
    def test_disqualification(self, changes, minimum, expected):
        assert eligibility.disqualification(facts(**changes), minimum, ORDER) == expected

    @pytest.mark.parametrize(
        'priority, minimum, order, mapping, expected',
        [
            ('P1', 'P2', ORDER, None, True),
            ('P2', 'P2', ORDER, None, True),
            ('P3', 'P2', ORDER, None, False),
            (None, 'P2', ORDER, None, False),
            ('P1', None, [], None, True),
            ('High', 'high', ['Critical', 'High', 'Low'], None, True),
            ('Critical', 'High', ['Critical', 'High', 'Low'], None, True),
            ('Low', 'High', ['Critical', 'High', 'Low'], None, False),
            ('P0', 'P5', ['P0', 'P5', 'P3'], None, True),
            ('P3', 'P5', ['P0', 'P5', 'P3'], None, False),
            ('P1', 'P2', [], None, False),
            ('P9', 'P2', ORDER, None, False),
            ('P3', 'SEV-2', ORDER, {'P1': 'SEV-1', 'P2': 'SEV-2', 'P3': 'SEV-2', 'P4': 'SEV-3'}, True),
            ('P4', 'SEV-2', ORDER, {'P1': 'SEV-1', 'P2': 'SEV-2', 'P3': 'SEV-2', 'P4': 'SEV-3'}, False),
            ('P1', 'SEV-9', ORDER, {'P1': 'SEV-1'}, False),
        ],
        ids=[
            'more-severe',
            'equal',
            'less-severe',
            'no-priority',
            'no-minimum',
            'names-case-insensitive',
            'names-in-account-order',
            'names-below',
            'numbers-out-of-order-above',
            'numbers-out-of-order-below',
            'order-unknown',
            'priority-not-listed',
            'mapped-severity-least-severe-mapped-priority',
            'mapped-severity-below',
            'minimum-names-nothing',
        ],
    )
    def test_meets_severity(self, priority, minimum, order, mapping, expected):
        assert eligibility.meets_severity(priority, minimum, order, mapping) is expected


class TestMonitorVersionFact:
    """The version the monitor names reaches the facts when it speaks of the incident's mapped service."""

    @pytest.mark.parametrize(
        'services, monitor, expected',
        [
            (('checkout',), MonitorMapping(1, 'monitor_group', ('checkout',), None, 'prod', '1.4.2'), '1.4.2'),
            (('Checkout',), MonitorMapping(1, 'monitor_tags', ('checkout', 'cart'), None, None, '1.4.2'), '1.4.2'),
            (('checkout',), MonitorMapping(1, '', (), None, None, '1.4.2'), '1.4.2'),
            (('billing',), MonitorMapping(1, 'monitor_group', ('checkout',), None, 'prod', '1.4.2'), None),
            (('checkout',), MonitorMapping(1, 'monitor_group', ('checkout',), None, 'prod'), None),
            (('checkout',), None, None),
        ],
        ids=['named', 'one-of-its-services', 'monitor-names-no-service', 'overridden-elsewhere', 'no-version', 'none'],
    )
    def test_monitor_version(self, services, monitor, expected):
        mapping = MappingResult('override', services, None, 'prod', 'P1', monitor)
        assert eligibility.monitor_version(mapping) == expected


class TestPlan:
    """What to do next follows from the qualification and the stored search alone."""

    key = ('checkout', 'prod')

    def test_first_search_waits_for_the_settle_time(self):
        assert decision.plan(None, self.key, None, None, facts(), T0 + MINUTE) == decision.Plan(
            search_at=T0 + decision.SETTLE
        )

    def test_blame_from_the_stored_search(self):
        search = Search('checkout', 'prod', 'dep-1')
        assert decision.plan(None, self.key, None, search, facts(), T0 + HOUR) == decision.Plan(blame='dep-1')
        assert decision.plan(None, self.key, 'dep-1', search, facts(), T0 + HOUR) == decision.Plan()

    def test_disqualified_releases(self):
        assert decision.plan(model.FILTERED, None, 'dep-1', None, facts(), T0) == decision.Plan(release=model.FILTERED)
        assert decision.plan(model.FILTERED, None, None, None, facts(), T0) == decision.Plan()

    def test_moved_releases_and_searches_the_new_service(self):
        search = Search('checkout', 'prod', 'dep-1')
        found = decision.plan(None, ('billing', 'prod'), 'dep-1', search, facts(), T0 + HOUR)
        assert found == decision.Plan(release=model.MOVED, search_at=T0 + decision.SETTLE)

    def test_resolve_searches_again_once(self):
        resolved = facts(resolved_at=T0 + HOUR)
        first = Search('checkout', 'prod', 'dep-1')
        assert decision.plan(None, self.key, 'dep-1', first, resolved, T0 + HOUR) == decision.Plan(search_at=T0 + HOUR)
        final = Search('checkout', 'prod', 'dep-2', final=True)
        assert decision.plan(None, self.key, 'dep-1', final, resolved, T0 + HOUR) == decision.Plan(
            release=model.REATTRIBUTED, blame='dep-2', remediate=True
        )


class TestBlame:
    """A related change event that matches a deployment decides; else the latest deployment in the window."""

    def test_latest_in_the_window(self):
        candidates = [deployment('old', 3 * HOUR), deployment('late', -MINUTE), deployment('latest', 10 * MINUTE)]
        assert blame.pick_blamed(candidates, T0, DAY).id == 'latest'
        found = blame.decide_blame(candidates, [], T0, DAY, 'PSVC001')
        assert (found.deployment.id, found.signal) == ('latest', model.LATEST_DEPLOYMENT)

    def test_window_bounds_are_inclusive_and_never_after_the_start(self):
        assert blame.pick_blamed([deployment('edge', DAY)], T0, DAY).id == 'edge'
        assert blame.pick_blamed([deployment('now', 0)], T0, DAY).id == 'now'
        assert blame.pick_blamed([deployment('after', -1)], T0, DAY) is None

    def test_blame_range_reaches_back_for_long_rollouts(self):
        assert blame.blame_range(T0, 1800) == (T0 - 1800 - blame.ROLLOUT_MARGIN, T0)

    @pytest.mark.parametrize(
        'change, basis',
        [
            (event(T0 - 5 * HOUR, 'Deploy', {'release': {'version': 'V41'}}), model.BY_VERSION),
            (event(T0 - 5 * HOUR, 'Build 9f2c4e1 passed'), model.BY_COMMIT),
            (event(T0 - 2 * HOUR - 60, 'rollout done', services=('PSVC001',)), model.BY_TIME),
        ],
        ids=['version-in-nested-details', 'short-commit-in-summary', 'time-on-the-same-service'],
    )
    def test_change_event_decides(self, change, basis):
        cause = deployment('cause', 2 * HOUR, 'v41', commit='9f2c4e1d0b7a9c3e')
        candidates = [cause, deployment('latest', 10 * MINUTE, 'v42')]
        found = blame.decide_blame(candidates, [change], T0, DAY, 'PSVC001')
        assert (found.deployment.id, found.signal, found.basis) == ('cause', model.CHANGE_EVENT, basis)

    def test_time_match_needs_the_incident_service(self):
        cause = deployment('cause', 2 * HOUR)
        change = event(T0 - 2 * HOUR, services=('POTHER1',))
        assert blame.match_event(change, [cause], 'PSVC001') is None

    def test_intelligent_relation_is_tried_first(self):
        a, b = deployment('a', 2 * HOUR, 'v1'), deployment('b', HOUR, 'v2')
        recent = event(T0 - HOUR, 'x', {'version': 'v2'}, reason='most_recent', event_id='recent')
        smart = event(T0 - 2 * HOUR, 'y', {'version': 'v1'}, reason='intelligent', event_id='smart')
        assert blame.decide_blame([a, b], [recent, smart], T0, DAY, 'PSVC001').deployment.id == 'a'

    def test_most_recent_relation_does_not_override_the_latest_deployment(self):
        """PagerDuty's `most_recent` relation only knows the changes sent to it; Datadog's list knows them all."""
        older, latest = deployment('older', 2 * HOUR, 'v1'), deployment('latest', HOUR, 'v2')
        recent = event(T0 - 2 * HOUR, 'x', {'version': 'v1'}, reason='most_recent')
        found = blame.decide_blame([older, latest], [recent], T0, DAY, 'PSVC001')
        assert (found.deployment.id, found.signal) == ('latest', model.LATEST_DEPLOYMENT)

    def test_change_event_of_a_deployment_after_the_start_is_no_cause(self):
        fix = deployment('fix', -10 * MINUTE, 'v9')
        found = blame.decide_blame([fix], [event(T0 + 10 * MINUTE, 'x', {'version': 'v9'})], T0, DAY, 'PSVC001')
        assert found.deployment is None

    @pytest.mark.parametrize(
        'version, expected',
        [
            ('1.4.2-RC', 'named'),
            # Datadog lowercases tags.
            ('1.4.2-rc', 'named'),
            ('1.4.9', 'latest'),
            (None, 'latest'),
            ('9.0', 'latest'),
        ],
        ids=['named', 'case-differs', 'no-such-version', 'no-version', 'named-one-is-after-the-start'],
    )
    def test_monitor_version_decides_first(self, version, expected):
        named = deployment('named', 3 * HOUR, '1.4.2-RC')
        candidates = [named, deployment('latest', 10 * MINUTE, '1.4.3'), deployment('after', -MINUTE, '9.0')]
        related = [event(T0 - 10 * MINUTE, 'x', {'version': '1.4.3'}, reason='intelligent')]
        found = blame.decide_blame(candidates, related, T0, DAY, 'PSVC001', version)
        signal = model.MONITOR_VERSION if expected == 'named' else model.CHANGE_EVENT
        assert (found.deployment.id, found.signal) == (expected, signal)

    def test_monitor_version_deployed_twice_blames_the_latest_of_them(self):
        first, again = deployment('first', 5 * HOUR, '1.4.2'), deployment('again', 2 * HOUR, '1.4.2')
        found = blame.decide_blame([first, again, deployment('latest', HOUR, '1.4.3')], [], T0, DAY, 'PSVC001', '1.4.2')
        assert (found.deployment.id, found.signal) == ('again', model.MONITOR_VERSION)

    def test_identifiers_are_bounded(self):
        found = blame.identifiers_of('word ' * 500, {'k{}'.format(i): 'v' for i in range(500)})
        assert len(found) == blame.MAX_IDENTIFIERS


class TestRemediation:
    """The first later deployment that does not redeploy the failed version, before the resolve."""

    failed = deployment('bad', 10 * MINUTE, 'v2')

    def test_history_versions(self):
        history = [deployment('a', 3 * DAY, 'v1'), deployment('b', 2 * HOUR, 'v2'), self.failed]
        history.append(deployment('c', 0, 'v3'))
        assert remediation.history_versions(history, self.failed) == ['v1']

    @pytest.mark.parametrize(
        'version, kind',
        [('v1', model.ROLLBACK), ('v3', model.ROLLFORWARD), (None, model.ROLLFORWARD)],
        ids=['earlier-version', 'new-version', 'no-version'],
    )
    def test_kind(self, version, kind):
        fix = deployment('fix', -20 * MINUTE, version)
        assert remediation.pick_remediation([self.failed, fix], self.failed, T0 + 30 * MINUTE, ['v1']) == (fix, kind)

    @pytest.mark.parametrize(
        'finished_before, version',
        [(-40 * MINUTE, 'v3'), (-20 * MINUTE, 'v2'), (20 * MINUTE, 'v1')],
        ids=['after-the-resolve', 'same-version-again', 'before-the-failed-one'],
    )
    def test_no_fix(self, finished_before, version):
        later = deployment('later', finished_before, version)
        assert remediation.pick_remediation([self.failed, later], self.failed, T0 + 30 * MINUTE, ['v1']) is None

    def test_first_fix_wins(self):
        first, second = deployment('first', -10 * MINUTE, 'v1'), deployment('second', -20 * MINUTE, 'v3')
        assert remediation.pick_remediation([second, first], self.failed, T0 + HOUR, ['v1']) == (first, model.ROLLBACK)

    @pytest.mark.parametrize(
        'record, resolved_at, due',
        [
            ({}, T0, True),
            ({'remediation': {'id': 'x', 'type': 'rollback'}}, T0, False),
            ({'remedy_until': T0}, T0, False),
            ({'remedy_until': T0}, T0 + HOUR, True),
        ],
        ids=['never-searched', 'recorded-once', 'searched-to-this-resolve', 'a-later-resolve'],
    )
    def test_needs_remediation(self, record, resolved_at, due):
        assert decision.needs_remediation(record, resolved_at) is due


class TestWantedPatch:
    """A deployment is a change failure while blamed, with its remediation; set back only if the check marked it."""

    @pytest.mark.parametrize(
        'record, expected',
        [
            ({'blamed_by': ['i1']}, {'change_failure': True}),
            ({'blamed_by': ['i1'], 'sent': {'change_failure': True, 'remediation': None}}, None),
            (
                {'blamed_by': ['i1'], 'remediation': {'id': 'f', 'type': 'rollback'}, 'sent': {'change_failure': True}},
                {'change_failure': True, 'remediation': {'id': 'f', 'type': 'rollback'}},
            ),
            ({'blamed_by': [], 'sent': {'change_failure': True}, 'rollback_until': 0.0}, {'change_failure': False}),
            ({'blamed_by': []}, None),
            ({'blamed_by': [], 'sent': {'change_failure': False}}, None),
        ],
        ids=['mark', 'already-marked', 'remediation-recorded', 'set-back', 'never-marked', 'already-set-back'],
    )
    def test_wanted_patch(self, record, expected):
        assert decision.wanted_patch(record) == expected


class TestRecords:
    """Records round-trip through the cache form, and are bounded in age and number without unmarking."""

    def test_round_trips(self):
        original = deployment('dep-1', HOUR, None, commit='abc')
        assert Deployment.from_json(original.to_json()) == original
        assert Facts.from_json(facts(resolved_at=T0 + 1, gone='deleted').to_json()) == facts(
            resolved_at=T0 + 1, gone='deleted'
        )
        assert Facts.from_json(facts(version='1.4.2').to_json()) == facts(version='1.4.2')

    def test_facts_stored_before_versions_load_without_one(self):
        stored = facts().to_json()
        assert 'version' not in stored
        assert Facts.from_json(stored).version is None
        assert Facts.from_json(dict(stored, version='')).version is None

    @pytest.mark.parametrize(
        'raw', [None, {'id': 1, 'service': 's'}, {'id': 'x'}], ids=['none', 'int-id', 'no-service']
    )
    def test_deployment_from_damaged_json(self, raw):
        with pytest.raises(ValueError):
            Deployment.from_json(raw)

    def test_prune_by_age_keeps_busy_ones_and_blamed_deployments(self):
        now = T0 + 40 * DAY
        records = {'old': {'touched': T0}, 'busy': {'touched': T0}, 'new': {'touched': now}}
        deployments = {
            'd-old': {'touched': T0, 'blamed_by': ['old']},
            'd-new': {'touched': T0, 'blamed_by': ['new']},
        }
        state.prune(records, deployments, now, DAY, {'busy'})
        assert sorted(records) == ['busy', 'new']
        assert sorted(deployments) == ['d-new']

    def test_prune_by_number_drops_the_oldest(self, monkeypatch):
        monkeypatch.setattr(state, 'MAX_RECORDS', 2)
        records = {'a': {'touched': T0}, 'b': {'touched': T0 + 2}, 'c': {'touched': T0 + 1}}
        state.prune(records, {}, T0 + 3, DAY, set())
        assert sorted(records) == ['b', 'c']
