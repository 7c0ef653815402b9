# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The rules of change-failure attribution, as plain functions: no HTTP, no cache."""

from __future__ import annotations

import pytest

from datadog_checks.pagerduty_dora import attribution_rules as rules
from datadog_checks.pagerduty_dora.attribution_rules import Deployment
from datadog_checks.pagerduty_dora.incident import parse_incident
from datadog_checks.pagerduty_dora.mapping import MappingResult
from datadog_checks.pagerduty_dora.transitions import Transition

# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def deployment(deployment_id: str, finished_before: float, version: str | None = 'v1') -> Deployment:
    finished = T0 - finished_before
    return Deployment(deployment_id, 'checkout', 'prod', version, finished - 5 * MINUTE, finished)


def mapping(services=('checkout',), env: str | None = 'prod', severity: str | None = 'P1') -> MappingResult:
    return MappingResult(rule='service_url', services=tuple(services), team=None, env=env, severity=severity)


def transition(kind: str, at: float) -> Transition:
    raw = {
        'id': 'Q1',
        'incident_number': 1,
        'title': 'Checkout down',
        'status': 'triggered',
        'urgency': 'high',
        'created_at': '2026-11-26T12:00:00Z',
        'html_url': 'https://acme.pagerduty.com/incidents/Q1',
        'service': {'id': 'PSVC001', 'summary': 'Checkout'},
    }
    return Transition(kind, parse_incident(raw), at)


class TestRefusal:
    """Only an incident at or above the minimum severity, with one service and an env, is attributable."""

    @pytest.mark.parametrize(
        'result, minimum, expected',
        [
            (mapping(), None, None),
            (mapping(severity='P3'), 'P2', rules.BELOW_SEVERITY),
            (mapping(services=(), severity='P3'), 'P2', rules.BELOW_SEVERITY),
            (mapping(services=('', '  ')), None, rules.NO_SERVICE),
            (mapping(services=('checkout', 'cart')), None, rules.SEVERAL_SERVICES),
            (mapping(services=('checkout', ' ')), None, None),
            (mapping(env=None), None, rules.NO_ENV),
        ],
        ids=[
            'attributable',
            'below-severity',
            'severity-first',
            'blank-services',
            'several',
            'one-not-blank',
            'no-env',
        ],
    )
    def test_refusal(self, result, minimum, expected):
        assert rules.refusal(result, minimum) == expected

    @pytest.mark.parametrize(
        'severity, minimum, expected',
        [('P1', 'P2', True), ('P2', 'P2', True), ('P3', 'P2', False), (None, 'P2', False), (None, None, True)],
        ids=['more-severe', 'equal', 'less-severe', 'no-severity', 'no-minimum'],
    )
    def test_meets_severity(self, severity, minimum, expected):
        assert rules.meets_severity(severity, minimum) is expected

    def test_severity_rank(self):
        assert [rules.severity_rank(s) for s in ('P1', 'SEV-2', 'critical', None)] == [1, 2, None, None]


class TestFailureStart:
    """A triggered incident fails from its creation, a reopened one from its reopen; a reopen in the window keeps."""

    def test_start(self):
        assert rules.failure_start(transition('triggered', T0 + HOUR)) == T0
        assert rules.failure_start(transition('reopened', T0 + HOUR)) == T0 + HOUR

    @pytest.mark.parametrize(
        'kind, start, kept',
        [('triggered', T0 + 30 * HOUR, True), ('reopened', T0 + 23 * HOUR, True), ('reopened', T0 + 25 * HOUR, False)],
        ids=['trigger-always-keeps', 'reopen-within-the-window', 'reopen-after-the-window'],
    )
    def test_keeps_attribution(self, kind, start, kept):
        assert rules.keeps_attribution(kind, start, T0, DAY) is kept

    def test_blame_range_reaches_back_one_window_and_the_start_margin(self):
        assert rules.blame_range(T0, DAY) == (T0 - DAY - rules.START_MARGIN, T0)


class TestPickBlamed:
    """The deployment that finished last within the window before the failure started."""

    def test_latest_in_the_window(self):
        candidates = [deployment('old', 3 * HOUR), deployment('late', -MINUTE), deployment('latest', 10 * MINUTE)]
        assert rules.pick_blamed(candidates, T0, DAY).id == 'latest'

    def test_none_in_the_window(self):
        assert rules.pick_blamed([deployment('old', 25 * HOUR), deployment('after', -MINUTE)], T0, DAY) is None

    def test_window_bounds_are_inclusive(self):
        assert rules.pick_blamed([deployment('edge', DAY)], T0, DAY).id == 'edge'
        assert rules.pick_blamed([deployment('now', 0)], T0, DAY).id == 'now'

    def test_id_breaks_a_tie(self):
        assert rules.pick_blamed([deployment('a', HOUR), deployment('b', HOUR)], T0, DAY).id == 'b'


class TestRemediation:
    """A later deployment before the resolve remediates: a rollback to an earlier version, else a rollforward."""

    blamed = deployment('bad', 10 * MINUTE, 'v2')

    def test_previous_versions(self):
        candidates = [
            deployment('a', 3 * HOUR, 'v1'),
            deployment('b', 2 * HOUR, 'v2'),
            self.blamed,
            deployment('c', 0, 'v3'),
        ]
        assert rules.previous_versions(candidates, self.blamed) == ['v1']

    @pytest.mark.parametrize(
        'version, kind',
        [('v1', rules.ROLLBACK), ('v3', rules.ROLLFORWARD), (None, rules.ROLLFORWARD)],
        ids=['earlier-version', 'new-version', 'no-version'],
    )
    def test_kind(self, version, kind):
        fix = deployment('fix', -20 * MINUTE, version)
        assert rules.pick_fix([self.blamed, fix], self.blamed, T0 + 30 * MINUTE, ['v1']) == (fix, kind)

    @pytest.mark.parametrize(
        'finished_before, version',
        [(-40 * MINUTE, 'v3'), (-20 * MINUTE, 'v2'), (20 * MINUTE, 'v1')],
        ids=['after-the-resolve', 'same-version-again', 'before-the-blamed-one'],
    )
    def test_no_fix(self, finished_before, version):
        later = deployment('later', finished_before, version)
        assert rules.pick_fix([self.blamed, later], self.blamed, T0 + 30 * MINUTE, ['v1']) is None

    def test_latest_fix_wins(self):
        first, second = deployment('first', -10 * MINUTE, 'v3'), deployment('second', -20 * MINUTE, 'v1')
        assert rules.pick_fix([first, second], self.blamed, T0 + HOUR, ['v1']) == (second, rules.ROLLBACK)


class TestRecords:
    """Deployments round-trip through the cache form; incident records are bounded in age and number."""

    def test_deployment_json_round_trip(self):
        original = deployment('dep-1', HOUR, None)
        assert Deployment.from_json(original.to_json()) == original

    @pytest.mark.parametrize(
        'raw', [None, {'id': 1, 'service': 's'}, {'id': 'x'}], ids=['none', 'int-id', 'no-service']
    )
    def test_deployment_from_damaged_json(self, raw):
        with pytest.raises(ValueError):
            Deployment.from_json(raw)

    def test_prune_by_age_keeps_waiting_ones(self):
        now = T0 + 40 * DAY
        records = {'old': {'touched': T0}, 'waiting': {'touched': T0, 'waiting': True}, 'new': {'touched': now}}
        rules.prune_records(records, now, DAY)
        assert sorted(records) == ['new', 'waiting']

    def test_prune_age_follows_a_long_window(self):
        records = {'a': {'touched': T0}}
        rules.prune_records(records, T0 + 40 * DAY, 30 * DAY)
        assert records == {'a': {'touched': T0}}

    def test_prune_by_number_drops_the_oldest(self, monkeypatch):
        monkeypatch.setattr(rules, 'MAX_RECORDS', 2)
        records = {'a': {'touched': T0}, 'b': {'touched': T0 + 2}, 'c': {'touched': T0 + 1}}
        rules.prune_records(records, T0 + 3, DAY)
        assert sorted(records) == ['b', 'c']
