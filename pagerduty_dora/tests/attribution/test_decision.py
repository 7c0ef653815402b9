# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Attribution's decisions as values: the step that judges an incident, the searches and PATCHes it asks for."""

from __future__ import annotations

import logging
from typing import cast

import pytest

from datadog_checks.pagerduty_dora.attribution import decision, eligibility, model, remediation
from datadog_checks.pagerduty_dora.attribution.blame import ROLLOUT_MARGIN
from datadog_checks.pagerduty_dora.attribution.decision import BlameSearch, Patch, RemedySearch, RollbackSearch, Step
from datadog_checks.pagerduty_dora.attribution.deployments import DeploymentsClient
from datadog_checks.pagerduty_dora.attribution.executor import Executor
from datadog_checks.pagerduty_dora.attribution.model import ChangeEvent, Deployment, Facts, Search
from datadog_checks.pagerduty_dora.attribution.ports import Priorities
from datadog_checks.pagerduty_dora.common.errors import RequestRejected
from datadog_checks.pagerduty_dora.common.http import ApiClient, Response

from .test_rules import facts

# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
KEY = ('checkout', 'prod')


def deployment(deployment_id: str, finished: float, version: str | None = 'v1') -> Deployment:
    return Deployment(deployment_id, 'checkout', 'prod', version, finished - 5 * MINUTE, finished)


def stored(deployment_id: str | None, final: bool = False) -> dict:
    return {'search': {'service': 'checkout', 'env': 'prod', 'deployment': deployment_id, 'final': final}}


def step(record: dict, found: Facts, now: float, reason: str | None = None, key=KEY) -> Step:
    return decision.next_step('Q1', reason, key, record, found, now=now, settle=300.0, window=DAY)


class TestNextStep:
    """Judging an incident is a sequence of steps, each a value: wait, search, blame, release, remediate."""

    def test_waits_for_the_settle_time(self):
        assert step({}, facts(), T0 + MINUTE) == Step(wait_until=T0 + 300.0)

    def test_searches_once_settled(self):
        expected = BlameSearch('Q1', 'checkout', 'prod', T0 - DAY - ROLLOUT_MARGIN, T0, final=False)
        assert step({}, facts(), T0 + HOUR) == Step(search=expected)

    def test_resolved_searches_once_more_as_the_last_search(self):
        found = step(dict(stored('dep-1'), blames='dep-1'), facts(resolved_at=T0 + HOUR), T0 + 2 * HOUR)
        assert found == Step(search=BlameSearch('Q1', 'checkout', 'prod', T0 - DAY - ROLLOUT_MARGIN, T0, final=True))

    def test_blames_what_the_stored_search_found(self):
        assert step(stored('dep-1'), facts(), T0 + HOUR) == Step(blame='dep-1')

    def test_resolved_and_blaming_sees_to_the_remediation(self):
        record = dict(stored('dep-1', final=True), blames='dep-1')
        assert step(record, facts(resolved_at=T0 + HOUR), T0 + HOUR) == Step(remediate=True)

    def test_disqualified_releases(self):
        assert step({'blames': 'dep-1'}, facts(), T0, model.MERGED, None) == Step(release=model.MERGED)

    def test_moved_releases_then_waits(self):
        record = {'blames': 'dep-1', 'search': {'service': 'cart', 'env': 'prod', 'deployment': 'dep-1'}}
        assert step(record, facts(), T0 + MINUTE) == Step(release=model.MOVED, wait_until=T0 + 300.0)


class TestSearchResult:
    """What a blame search stores, and when finding nothing is told."""

    search = BlameSearch('Q1', 'checkout', 'prod', T0 - DAY - ROLLOUT_MARGIN, T0, final=True)

    def test_latest_deployment(self):
        found = deployment('dep-2', T0 - MINUTE, 'v2')
        result = decision.searched(self.search, None, [deployment('dep-1', T0 - HOUR), found], facts(), DAY)
        assert result == {
            'service': 'checkout',
            'env': 'prod',
            'deployment': 'dep-2',
            'found': found.to_json(),
            'final': True,
            'signal': model.LATEST_DEPLOYMENT,
            'basis': None,
            'version': None,
            'event': None,
            'related': None,
        }

    def test_change_event_decides(self):
        older = deployment('dep-1', T0 - HOUR, 'v1')
        event = ChangeEvent('e1', T0 - 2 * HOUR, 'Deploy\nv1  done', ('PSVC001',), ('v1',), 'intelligent')
        result = decision.searched(self.search, [event], [older, deployment('dep-2', T0 - MINUTE, 'v2')], facts(), DAY)
        assert (result['deployment'], result['signal'], result['basis']) == ('dep-1', model.CHANGE_EVENT, 'version')
        assert (result['event'], result['related']) == ('Deploy v1 done', 1)

    def test_monitor_version_decides_before_change_events_and_the_latest(self):
        named = deployment('dep-1', T0 - 3 * HOUR, '1.4.2')
        event = ChangeEvent('e1', T0 - 2 * HOUR, 'Deploy v2', ('PSVC001',), ('v2',), 'intelligent')
        candidates = [named, deployment('dep-2', T0 - 2 * HOUR, 'v2'), deployment('dep-3', T0 - MINUTE, 'v3')]
        result = decision.searched(self.search, [event], candidates, facts(version='1.4.2'), DAY)
        assert (result['deployment'], result['signal'], result['basis']) == ('dep-1', model.MONITOR_VERSION, 'version')
        assert result['version'] == '1.4.2'

    def test_monitor_version_of_no_candidate_leaves_the_existing_rules(self):
        event = ChangeEvent('e1', T0 - 2 * HOUR, 'Deploy v2', ('PSVC001',), ('v2',), 'intelligent')
        candidates = [deployment('dep-2', T0 - 2 * HOUR, 'v2'), deployment('dep-3', T0 - MINUTE, 'v3')]
        with_version = decision.searched(self.search, [event], candidates, facts(version='9.9.9'), DAY)
        without = decision.searched(self.search, [event], candidates, facts(), DAY)
        assert with_version == without
        assert (without['deployment'], without['signal'], without['version']) == ('dep-2', model.CHANGE_EVENT, None)

    def test_nothing_found(self):
        result = decision.searched(self.search, [], [deployment('late', T0 + MINUTE)], facts(), DAY)
        assert (result['deployment'], result['found'], result['related']) == (None, None, 0)

    def test_refused(self):
        expected = {'service': 'checkout', 'env': 'prod', 'deployment': None, 'final': True}
        assert decision.refused_search(self.search) == expected

    @pytest.mark.parametrize(
        'previous, found, expected',
        [
            (None, None, True),
            (Search('checkout', 'prod', 'dep-1'), None, True),
            (Search('checkout', 'prod', None), None, False),
            (Search('cart', 'prod', None), None, True),
            (None, 'dep-1', False),
        ],
        ids=['first', 'found-before', 'found-nothing-before', 'other-service', 'found'],
    )
    def test_newly_unfound(self, previous, found, expected):
        assert decision.newly_unfound(previous, self.search, found) is expected


class TestRemedy:
    """Which remediation search a deployment needs, and when it is tried again."""

    failed = deployment('dep-1', T0 - HOUR, 'v2')

    @pytest.mark.parametrize(
        'record, queued, due',
        [
            ({}, None, True),
            ({'remediation': {'id': 'fix'}}, None, False),
            ({'remedy_until': T0 + HOUR}, None, False),
            ({'remedy_until': T0}, None, True),
            ({}, {'until': T0 + HOUR}, False),
            ({}, {'until': T0}, True),
        ],
        ids=['never-searched', 'recorded', 'searched-as-far', 'searched-less-far', 'queued-as-far', 'queued-less-far'],
    )
    def test_remedy_due(self, record, queued, due):
        assert decision.remedy_due(record, T0 + HOUR, queued) is due

    def test_remedy_search(self):
        record = {'deployment': self.failed.to_json(), 'blamed_by': ['Q1']}
        task = {'deployment': 'dep-1', 'incident': 'Q1', 'until': T0 + HOUR}
        assert decision.remedy_search(task, record) == RemedySearch('Q1', 'dep-1', self.failed, T0 + HOUR)

    @pytest.mark.parametrize(
        'record',
        [None, {'blamed_by': []}, {'blamed_by': ['Q1'], 'remediation': {'id': 'fix'}}],
        ids=['forgotten', 'blamed-by-none', 'recorded'],
    )
    def test_no_remedy_search(self, record):
        assert decision.remedy_search({'deployment': 'dep-1', 'until': T0}, record) is None

    @pytest.mark.parametrize(
        'attempt, now, expected',
        [(1, T0, T0 + HOUR + 300.0), (1, T0 + 2 * HOUR, None), (2, T0, None)],
        ids=['first-attempt', 'settle-time-passed', 'second-attempt'],
    )
    def test_remedy_retry(self, attempt, now, expected):
        task = {'kind': 'remedy', 'until': T0 + HOUR, 'attempt': attempt, 'due': T0}
        retry = decision.remedy_retry(task, 300.0, now)
        assert (retry and retry['due']) == expected
        assert retry is None or retry['attempt'] == 2

    def test_ranges(self):
        assert remediation.remedy_range(self.failed, T0) == (T0 - HOUR - 5 * MINUTE, T0)
        start = T0 - HOUR - 5 * MINUTE
        assert remediation.history_range(self.failed) == (start - remediation.ROLLBACK_HISTORY, start)

    def test_history_only_for_a_fix_with_a_version(self):
        assert remediation.wants_history([deployment('fix', T0 - MINUTE, 'v1')], self.failed, T0) is True
        assert remediation.wants_history([deployment('fix', T0 - MINUTE, None)], self.failed, T0) is False
        assert remediation.wants_history([], self.failed, T0) is False

    def test_choose_remediation(self):
        fix = deployment('fix', T0 - MINUTE, 'v1')
        history = [deployment('old', T0 - DAY, 'v1')]
        assert remediation.choose_remediation([fix], None, self.failed, T0) == (fix, model.ROLLFORWARD)
        assert remediation.choose_remediation([fix], history, self.failed, T0) == (fix, model.ROLLBACK)
        assert remediation.choose_remediation([fix], [], self.failed, T0 - HOUR) is None


class TestPatch:
    """The PATCH a deployment needs follows from who blames it and what Datadog was sent."""

    def test_patch_task(self):
        record = {'blamed_by': ['Q1'], 'remediation': {'id': 'fix', 'type': 'rollback'}}
        expected = Patch('dep-1', {'change_failure': True, 'remediation': {'id': 'fix', 'type': 'rollback'}})
        assert decision.patch_task('dep-1', record) == expected

    @pytest.mark.parametrize(
        'record',
        [
            None,
            {'blamed_by': ['Q1'], 'sent': {'change_failure': True, 'remediation': None}},
            {'blamed_by': ['Q1'], 'refused': {'change_failure': True}},
            {'blamed_by': []},
        ],
        ids=['forgotten', 'sent', 'refused-before', 'never-marked'],
    )
    def test_nothing_to_send(self, record):
        assert decision.patch_task('dep-1', record) is None


MARKED = {'change_failure': True, 'remediation': None}
FIX = {'id': 'fix', 'type': 'rollforward', 'deployment': deployment('fix', T0, 'v3').to_json()}


class TestSetBack:
    """A deployment no incident blames is set back only where no one but the check can have marked it."""

    @pytest.mark.parametrize(
        'record, expected',
        [
            ({'sent': MARKED, 'rollback_until': T0}, {'change_failure': False}),
            ({'sent': MARKED}, None),
            ({'sent': MARKED, 'rollback_until': T0, 'rolled_back': deployment('back', T0).to_json()}, None),
            ({'sent': dict(MARKED, remediation={'id': 'fix', 'type': 'rollforward'}), 'remediation': FIX}, None),
            (
                {'sent': MARKED, 'remediation': FIX},
                {'change_failure': True, 'remediation': {'id': 'fix', 'type': 'rollforward'}},
            ),
            ({'sent': MARKED, 'rollback_until': T0, 'rollback_refused': 400}, None),
            ({'rollback_until': T0}, None),
            ({'sent': {'change_failure': False}, 'rollback_until': T0}, None),
        ],
        ids=[
            'searched-and-not-rolled-back',
            'not-searched-yet',
            'rolled-back',
            'remediation-recorded-and-sent',
            'remediation-recorded-not-sent-yet',
            'rollback-search-refused',
            'never-marked',
            'already-set-back',
        ],
    )
    def test_wanted_patch_of_a_deployment_no_one_blames(self, record, expected):
        assert decision.wanted_patch(dict(record, blamed_by=[])) == expected

    @pytest.mark.parametrize(
        'record, outcome',
        [
            ({'blamed_by': ['Q2'], 'sent': MARKED}, model.RELEASED),
            ({'sent': MARKED, 'remediation': FIX}, model.KEPT),
            ({'sent': MARKED, 'rolled_back': deployment('back', T0).to_json()}, model.KEPT),
            ({'sent': MARKED, 'rollback_until': T0}, model.UNMARKED),
            ({'remediation': FIX}, model.UNMARKED),
        ],
        ids=['others-blame-it', 'remediation-known', 'rolled-back', 'check-alone', 'never-marked'],
    )
    def test_release_outcome(self, record, outcome):
        assert decision.release_outcome(record) == outcome

    def test_rollback_search_is_due_once_per_release(self):
        record = {'deployment': deployment('dep-1', T0 - HOUR).to_json(), 'blamed_by': [], 'sent': MARKED}
        expected = RollbackSearch('dep-1', deployment('dep-1', T0 - HOUR), T0)
        assert decision.rollback_search('dep-1', record, T0) == expected
        assert decision.rollback_search('dep-1', dict(record, rollback_until=T0), T0 + HOUR) is None

    @pytest.mark.parametrize(
        'change',
        [{'blamed_by': ['Q1']}, {'sent': {}}, {'remediation': FIX}, {'rolled_back': {'id': 'back'}}],
        ids=['blamed', 'never-marked', 'remediation-known', 'rolled-back'],
    )
    def test_no_rollback_search(self, change):
        record = {'deployment': deployment('dep-1', T0 - HOUR).to_json(), 'blamed_by': [], 'sent': MARKED}
        assert decision.rollback_search('dep-1', dict(record, **change), T0) is None


class TestRollbackOf:
    """A rollback of a failed deployment goes back to a version (or commit) the service ran before it."""

    failed = Deployment('dep-2', 'checkout', 'prod', 'v2', T0 - HOUR - 5 * MINUTE, T0 - HOUR, 'bbbbbbb2')
    history = [Deployment('dep-1', 'checkout', 'prod', 'v1', T0 - DAY, T0 - DAY + 60, 'aaaaaaa1')]

    @pytest.mark.parametrize(
        'later, found',
        [
            ([deployment('back', T0 - MINUTE, 'V1 ')], 'back'),
            ([Deployment('back', 'checkout', 'prod', None, T0 - 120, T0 - MINUTE, 'aaaaaaa1')], 'back'),
            ([deployment('fwd', T0 - 2 * MINUTE, 'v3'), deployment('back', T0 - MINUTE, 'v1')], 'back'),
            ([deployment('again', T0 - MINUTE, 'v2')], None),
            ([deployment('new', T0 - MINUTE, 'v3')], None),
            ([deployment('late', T0 + MINUTE, 'v1')], None),
        ],
        ids=['same-version', 'same-commit', 'after-a-rollforward', 'failed-one-again', 'new-version', 'after-until'],
    )
    def test_rollback_of(self, later, found):
        result = remediation.rollback_of(later, self.history, self.failed, T0)
        assert (result.id if result else None) == found

    def test_history_only_when_a_later_deployment_names_something(self):
        named = [deployment('new', T0 - MINUTE, 'v3')]
        unnamed = [Deployment('x', 'checkout', 'prod', None, T0 - 120, T0 - MINUTE)]
        assert remediation.wants_history_for_rollback(named, self.failed, T0) is True
        assert remediation.wants_history_for_rollback(unnamed, self.failed, T0) is False
        assert remediation.wants_history_for_rollback([], self.failed, T0) is False


class TestQueuedWork:
    """The tasks kept in the persistent queue, by key."""

    def test_tasks(self):
        assert decision.incident_task('Q1', T0) == ('incident:Q1', {'kind': 'incident', 'incident': 'Q1', 'due': T0})
        assert decision.remedy_task('dep-1', 'Q1', T0 + HOUR, T0) == (
            'remedy:dep-1',
            {'kind': 'remedy', 'deployment': 'dep-1', 'incident': 'Q1', 'until': T0 + HOUR, 'attempt': 1, 'due': T0},
        )
        assert decision.sync_task('dep-1') == ('sync:dep-1', {'kind': 'sync', 'deployment': 'dep-1', 'due': 0})


class TestPriorityOrder:
    """The account's priority order is read again once it is an hour old."""

    @pytest.mark.parametrize(
        'stored, now, expired',
        [
            ({}, T0, True),
            ({'names': ['P1'], 'at': T0}, T0 + eligibility.PRIORITIES_TTL - 1, False),
            ({'names': ['P1'], 'at': T0}, T0 + eligibility.PRIORITIES_TTL, True),
        ],
        ids=['never-read', 'fresh', 'an-hour-old'],
    )
    def test_order_expired(self, stored, now, expired):
        assert eligibility.order_expired(stored, now) is expired

    def test_stored_order_keeps_names_only(self):
        assert eligibility.stored_order({'names': ['P1', 3, None, 'P2'], 'at': T0}) == ['P1', 'P2']
        assert eligibility.stored_order({}) == []


class FakeApi:
    """An `ApiClient` stand-in that keeps its requests and answers the list endpoint as told."""

    def __init__(self, reject: bool = False) -> None:
        self.requests: list[tuple[str, str]] = []
        self.reject = reject

    def stalled(self, caller: str) -> bool:
        return False

    def post(self, path: str, body: dict, *, endpoint: str, expect_json: bool = True):
        self.requests.append(('post', path))
        if self.reject:
            raise RequestRejected('datadog', 'bad query', 400, 'no')
        return Response(200, {}, {'data': []})

    def patch(self, path: str, body: dict, *, endpoint: str, expect_json: bool = True):
        self.requests.append(('patch', path))


class TestRules:
    """The instance's rules travel as one value, read as the options mean them."""

    @pytest.mark.parametrize('given, kept', [(' P2 ', 'P2'), ('  ', None), ('', None), (None, None)])
    def test_a_blank_minimum_is_none(self, given, kept):
        assert decision.Rules(DAY, given).min_severity == kept

    def test_defaults(self):
        rules = decision.Rules(3600)
        assert (rules.attribution_window, rules.severity_mapping, rules.settle) == (3600.0, {}, decision.SETTLE)


class TestExecutor:
    """The executor makes the requests a task asks for, and answers a rejection as a value."""

    search = BlameSearch('Q1', 'checkout', 'prod', T0 - DAY, T0, final=False)

    def executor(self, api: FakeApi, dry_run: bool = False) -> Executor:
        deployments = DeploymentsClient(cast(ApiClient, api), caller='attribution', log=logging.getLogger('test'))
        return Executor(deployments, None, dry_run=dry_run)

    def test_rejected_search_is_a_value(self):
        api = FakeApi(reject=True)
        result = self.executor(api).blame_search(self.search)
        assert (result.events, result.candidates, result.rejected.status) == (None, [], 400)
        assert api.requests == [('post', '/api/v2/dora/deployments')]

    def test_dry_run_keeps_the_patch(self):
        api = FakeApi()
        executor = self.executor(api, dry_run=True)
        assert executor.patch(Patch('dep-1', {'change_failure': True})) is None
        body = {
            'data': {'id': 'dep-1', 'type': 'dora_deployment_patch_request', 'attributes': {'change_failure': True}}
        }
        assert executor.would_patch == [('dep-1', body)]
        assert api.requests == []

    def test_patch_is_sent(self):
        api = FakeApi()
        assert self.executor(api).patch(Patch('dep-1', {'change_failure': False})) is None
        assert api.requests == [('patch', '/api/v2/dora/deployments/dep-1')]

    def test_no_pagerduty_client(self):
        executor = self.executor(FakeApi())
        assert executor.priorities() == Priorities(None, 'no client')
