# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution against a loopback fake of the DORA deployments API, with a real ApiClient."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from datadog_api_client import ApiClient as DatadogApiClient
from datadog_api_client import Configuration
from datadog_api_client.v2.model.dora_deployment_patch_request import DORADeploymentPatchRequest
from datadog_api_client.v2.model.dora_list_deployments_request import DORAListDeploymentsRequest

from datadog_checks.base import ConfigurationError
from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.attribution import CACHE_KEY, ChangeFailureAttribution
from datadog_checks.pagerduty_dora.attribution_rules import meets_severity
from datadog_checks.pagerduty_dora.http_client import ApiClient
from datadog_checks.pagerduty_dora.incident import parse_incident
from datadog_checks.pagerduty_dora.mapping import MappingResult
from datadog_checks.pagerduty_dora.times import format_time, parse_api_time
from datadog_checks.pagerduty_dora.transitions import Transition

from .fakes.deployments_api import READ, WRITE, DeploymentsState
from .fakes.server import FakeServer, Reply

DD_API_KEY = 'dd0123456789abcdef0123456789abcd'
DD_APP_KEY = 'app0123456789abcdef0123456789abcdef0123'
# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


class Log:
    """A logger that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _keep(self, level: str, message: str, *args: Any) -> None:
        self.lines.append((level, message % args if args else message))

    def debug(self, message: str, *args: Any) -> None:
        self._keep('debug', message, *args)

    def info(self, message: str, *args: Any) -> None:
        self._keep('info', message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self._keep('warning', message, *args)

    def text(self, level: str) -> str:
        return '\n'.join(line for lvl, line in self.lines if lvl == level)


class Rig:
    """A fake deployments API, an ApiClient to it, a cache and the counters of one test."""

    def __init__(self, state: DeploymentsState, server: FakeServer, *, app_key: str | None = DD_APP_KEY) -> None:
        self.state = state
        self.server = server
        self.cache: dict[str, str] = {}
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.warnings: list[str] = []
        self.log = Log()
        self.now = T0 + HOUR
        headers = {'DD-API-KEY': DD_API_KEY}
        if app_key:
            headers['DD-APPLICATION-KEY'] = app_key
        self.api = ApiClient(
            name='datadog',
            http=RequestsWrapper({}, {}),
            base_url=server.url,
            auth_headers=headers,
            max_requests=100,
            log=self.log,
            sleep=lambda seconds: None,
        )
        self.new_run()

    def new_run(self) -> None:
        self.api.start_run(time.monotonic() + 60)

    def attribution(self, window: float = DAY, min_severity: str | None = None, **options) -> ChangeFailureAttribution:
        """A new instance over the same cache: calling it again is an Agent restart."""
        return ChangeFailureAttribution(
            self.api,
            window=window,
            min_severity=min_severity,
            read_cache=lambda key: self.cache.get(key, ''),
            write_cache=self.cache.__setitem__,
            log=self.log,
            count=self._count,
            warning=self._warning,
            clock=lambda: self.now,
            **options,
        )

    def _count(self, name: str, value: float, tags: list[str]) -> None:
        assert name == 'attribution.results'
        self.counts[tuple(tags)] += int(value)

    def _warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args if args else message)

    def outcomes(self) -> dict[str, float]:
        result: Counter = Counter()
        for tags, value in self.counts.items():
            result[tags[0].split(':', 1)[1]] += value
        return dict(result)

    def patches(self) -> list[tuple[str, dict]]:
        return list(self.state.patches)


@pytest.fixture
def state() -> DeploymentsState:
    return DeploymentsState(DD_API_KEY, DD_APP_KEY)


@pytest.fixture
def server(state):
    with FakeServer(state.routes()) as server:
        yield server


@pytest.fixture
def rig(state, server) -> Rig:
    return Rig(state, server)


def incident(
    status: str = 'triggered', *, created_at: float = T0, resolved_at: float | None = None, number: int = 1234
) -> Any:
    """An incident as PagerDuty's `GET /incidents` renders one."""
    raw = {
        'id': 'Q2N{}ABC'.format(number),
        'type': 'incident',
        'incident_number': number,
        'title': 'Checkout latency above SLO',
        'status': status,
        'urgency': 'high',
        'created_at': format_time(created_at),
        'html_url': 'https://acme.pagerduty.com/incidents/Q2N{}ABC'.format(number),
        'service': {
            'id': 'PSVC001',
            'type': 'service_reference',
            'summary': 'Checkout (PD)',
            'html_url': 'https://acme.pagerduty.com/service-directory/PSVC001',
        },
        'teams': [{'id': 'PTEAM01', 'type': 'team_reference', 'summary': 'Payments'}],
        'priority': {'id': 'PPRIO01', 'type': 'priority', 'summary': 'P1'},
        'acknowledgements': [],
        'last_status_change_at': format_time(resolved_at or created_at),
        'resolved_at': format_time(resolved_at) if resolved_at else None,
    }
    return parse_incident(raw)


def mapping(services=('checkout',), env: str | None = 'prod', severity: str | None = 'P1') -> MappingResult:
    return MappingResult(rule='service_url', services=tuple(services), team='payments', env=env, severity=severity)


def triggered(created_at: float = T0, number: int = 1234) -> Transition:
    return Transition('triggered', incident(created_at=created_at, number=number), created_at)


def resolved(created_at: float, resolved_at: float, number: int = 1234) -> Transition:
    return Transition(
        'resolved', incident('resolved', created_at=created_at, resolved_at=resolved_at, number=number), resolved_at
    )


def reopened(created_at: float, at: float, number: int = 1234) -> Transition:
    return Transition('reopened', incident(created_at=created_at, number=number), at)


def to_model(body: dict, kind: type) -> Any:
    """Deserialize a request body with the official client's model, which refuses what the API does not define."""
    return DatadogApiClient(Configuration()).deserialize(json.dumps(body), (kind,), True)


class TestAttribution:
    """A triggered incident blames the latest deployment of its service and env within the window, only that one."""

    @pytest.mark.parametrize(
        'service, env, finished_before, attributed',
        [
            ('checkout', 'prod', 10 * MINUTE, True),
            ('checkout', 'prod', 23 * HOUR, True),
            ('checkout', 'prod', 30 * HOUR, False),
            ('checkout', 'prod', -5 * MINUTE, False),
            ('search', 'prod', 10 * MINUTE, False),
            ('checkout', 'staging', 10 * MINUTE, False),
            ('checkout', None, 10 * MINUTE, False),
        ],
        ids=[
            '10-minutes-before',
            '23-hours-before',
            '30-hours-before-outside-24h-window',
            'finished-after-the-incident-started',
            'other-service',
            'other-env',
            'deployment-without-env',
        ],
    )
    def test_candidate(self, rig, state, service, env, finished_before, attributed):
        deployment = state.add(service, env, 'v42', T0 - finished_before, deployment_id='dep-candidate')

        line = rig.attribution().on_transition(triggered(), mapping())

        if attributed:
            assert state.failed().keys() == {deployment}
            assert rig.outcomes() == {'attributed': 1}
            assert '`dep-candidate`' in line and '`checkout`' in line and '`v42`' in line
            assert format_time(T0 - finished_before) in line
        else:
            assert state.failed() == {}
            assert rig.patches() == []
            assert rig.outcomes() == {'no_deployment': 1}
            assert 'not attributed: no deployment of `checkout` in env `prod` finished in the 1d before' in line

    def test_latest_of_two_candidates_wins(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-older')
        state.add('checkout', 'prod', 'v42', T0 - 20 * MINUTE, deployment_id='dep-latest')

        rig.attribution().on_transition(triggered(), mapping())

        assert [deployment_id for deployment_id, _ in rig.patches()] == ['dep-latest']
        assert state.failed().keys() == {'dep-latest'}

    def test_latest_finish_wins_across_pages(self, rig, state):
        """The list has no cursor: a long deployment that started early but finished last is on a later page."""
        for n in range(120):
            state.add('checkout', 'prod', 'v{}'.format(n), T0 - 10 * HOUR + n * 4 * MINUTE, duration=60)
        state.add('checkout', 'prod', 'v-long', T0 - 5 * MINUTE, duration=20 * HOUR, deployment_id='dep-long')

        rig.attribution().on_transition(triggered(), mapping())

        assert state.failed().keys() == {'dep-long'}
        assert len(state.searches) == 2
        assert state.searches[1]['to'] < state.searches[0]['to']

    def test_requests_match_the_published_models(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')

        rig.attribution().on_transition(triggered(), mapping())

        search = rig.server.requests[0]
        patch = rig.server.requests[1]
        assert (search.method, search.path) == ('POST', '/api/v2/dora/deployments')
        assert (patch.method, patch.path) == ('PATCH', '/api/v2/dora/deployments/dep-1')
        listed = to_model(search.json(), DORAListDeploymentsRequest)
        assert listed.data.attributes.query == 'service:checkout env:prod'
        marked = to_model(patch.json(), DORADeploymentPatchRequest)
        assert marked.data.id == 'dep-1' and marked.data.attributes.change_failure is True
        assert search.headers['dd-application-key'] == DD_APP_KEY

    @pytest.mark.parametrize(
        'result, outcome, says',
        [
            (mapping(services=()), 'no_service', 'maps to no Datadog service'),
            (mapping(env=None), 'no_env', 'has no env'),
            (mapping(services=('checkout', 'cart')), 'several_services', 'several services (`checkout`, `cart`)'),
        ],
        ids=['no-service', 'no-env', 'several-services'],
    )
    def test_no_attribution_without_one_service_and_an_env(self, rig, state, result, outcome, says):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = rig.attribution().on_transition(triggered(), result)

        assert rig.server.requests == []
        assert rig.outcomes() == {outcome: 1}
        assert says in line
        assert says.split(' (')[0] in rig.log.text('debug')

    @pytest.mark.parametrize(
        'severity, minimum, attributed',
        [('P1', 'P2', True), ('P2', 'P2', True), ('P3', 'P2', False), (None, 'P2', False), ('SEV-1', None, True)],
        ids=['P1-meets-P2', 'P2-meets-P2', 'P3-below-P2', 'no-severity', 'no-minimum'],
    )
    def test_min_severity(self, rig, state, severity, minimum, attributed):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = rig.attribution(min_severity=minimum).on_transition(triggered(), mapping(severity=severity))

        assert bool(state.failed()) is attributed
        assert rig.outcomes() == ({'attributed': 1} if attributed else {'below_severity': 1})
        if not attributed:
            assert 'below `attribution_min_severity` `P2`' in line

    def test_filtered_incident_is_counted_and_not_searched(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = rig.attribution().on_transition(triggered(), mapping(), wanted=False)

        assert line is None
        assert rig.server.requests == []
        assert rig.outcomes() == {'filtered': 1}

    @pytest.mark.parametrize('kind', ['acknowledged', 'priority_changed'], ids=['acknowledged', 'priority-changed'])
    def test_other_transitions_do_nothing(self, rig, state, kind):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = rig.attribution().on_transition(Transition(kind, incident(), T0 + MINUTE, 'P2'), mapping())

        assert line is None
        assert rig.server.requests == [] and rig.counts == Counter()


class TestIdempotence:
    """One incident never blames twice: reopens within the window and restarts keep the attribution."""

    def test_reopen_within_the_window_keeps_the_attribution(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', 'v43', T0 + 2 * HOUR, deployment_id='dep-2')

        line = attribution.on_transition(reopened(T0, T0 + 3 * HOUR), mapping())

        assert [deployment_id for deployment_id, _ in rig.patches()] == ['dep-1']
        assert rig.outcomes() == {'attributed': 1, 'kept': 1}
        assert 'still attributed to deployment `dep-1`' in line

    def test_reopen_after_the_window_blames_the_new_latest_deployment(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', 'v43', T0 + 30 * HOUR, deployment_id='dep-2')

        attribution.on_transition(reopened(T0, T0 + 31 * HOUR), mapping())

        assert [deployment_id for deployment_id, _ in rig.patches()] == ['dep-1', 'dep-2']
        assert attribution.attribution_of('Q2N1234ABC').id == 'dep-2'

    def test_restart_does_not_blame_again(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        first = rig.attribution()
        first.on_transition(triggered(), mapping())
        first.save()

        again = rig.attribution().on_transition(triggered(), mapping())

        assert len(rig.patches()) == 1
        assert rig.outcomes() == {'attributed': 1, 'kept': 1}
        assert 'still attributed to deployment `dep-1`' in again
        assert json.loads(rig.cache[CACHE_KEY])['incidents']['Q2N1234ABC']['blamed'] == ['dep-1']

    def test_unreadable_cache_starts_empty_with_a_warning(self, rig, state):
        rig.cache[CACHE_KEY] = '{"version": 1, "incidents": ['
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        rig.attribution().on_transition(triggered(), mapping())

        assert rig.outcomes() == {'attributed': 1}
        assert any('could not be read' in w for w in rig.warnings)


class TestRemediation:
    """On resolve, a later deployment of the same service and env is its remediation: rollback or rollforward."""

    @pytest.mark.parametrize(
        'fix_version, expected',
        [('v41', 'rollback'), ('v43', 'rollforward'), (None, 'rollforward')],
        ids=['earlier-version-is-a-rollback', 'new-version-is-a-rollforward', 'no-version-is-a-rollforward'],
    )
    def test_remediation_recorded(self, rig, state, fix_version, expected):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', fix_version, T0 + 20 * MINUTE, deployment_id='dep-fix')
        state.add('checkout', 'staging', 'v41', T0 + 25 * MINUTE, deployment_id='dep-staging')

        line = attribution.on_transition(resolved(T0, T0 + 30 * MINUTE), mapping())

        bad = state.deployments['dep-bad']
        assert bad.change_failure is True
        assert bad.remediation == {'id': 'dep-fix', 'type': expected}
        assert state.deployments['dep-good'].change_failure is False
        assert line.startswith('- **Remediation:** {} by deployment `dep-fix`'.format(expected))
        assert rig.counts[('outcome:remediated', 'remediation:{}'.format(expected))] == 1
        marked = to_model(rig.server.requests[-1].json(), DORADeploymentPatchRequest)
        assert marked.data.attributes.remediation.type.value == expected

    @pytest.mark.parametrize(
        'fix_finished, fix_version',
        [(T0 + 40 * MINUTE, 'v43'), (T0 + 20 * MINUTE, 'v42')],
        ids=['after-the-resolve', 'same-version-redeployed'],
    )
    def test_no_remediation(self, rig, state, fix_finished, fix_version):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', fix_version, fix_finished, deployment_id='dep-later')

        line = attribution.on_transition(resolved(T0, T0 + 30 * MINUTE), mapping())

        assert state.deployments['dep-bad'].remediation is None
        assert rig.outcomes() == {'attributed': 1, 'no_remediation': 1}
        assert 'none recorded' in line

    def test_resolve_without_attribution_says_nothing(self, rig, state):
        line = rig.attribution().on_transition(resolved(T0, T0 + 30 * MINUTE), mapping())

        assert line is None
        assert rig.server.requests == []


class TestFaults:
    """Transient failures wait in the persistent queue for the next run; a 403 names the permission."""

    def test_transient_search_failure_is_retried_next_run(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution()

        line = attribution.on_transition(triggered(), mapping())
        attribution.save()

        assert 'attribution pending' in line
        assert state.failed() == {}
        assert attribution.pending == 1

        rig.new_run()
        restarted = rig.attribution()
        restarted.flush()

        assert state.failed().keys() == {'dep-1'}
        assert restarted.pending == 0
        assert rig.outcomes() == {'deferred': 1, 'attributed': 1}
        assert json.loads(rig.cache[CACHE_KEY])['pending'] == []

    def test_transient_patch_failure_is_retried_and_keeps_order_with_the_remediation(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        patches = []

        def fail_patches(request):
            # The first PATCH and its three retries fail; everything else goes through.
            if request.method == 'PATCH':
                patches.append(request)
                if len(patches) <= 4:
                    return Reply(503, {'errors': ['Service Unavailable']})
            return None

        rig.server.fault = fail_patches
        line = attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-fix')
        attribution.on_transition(resolved(T0, T0 + 30 * MINUTE), mapping())

        assert 'attributed to deployment `dep-bad`' in line
        assert state.failed() == {}

        rig.new_run()
        attribution.flush()

        # The blame goes first, then the remediation found once the blame went through.
        assert [(deployment_id, 'remediation' in body) for deployment_id, body in rig.patches()] == [
            ('dep-bad', False),
            ('dep-bad', True),
        ]
        assert state.deployments['dep-bad'].remediation == {'id': 'dep-fix', 'type': 'rollback'}
        assert attribution.pending == 0
        assert rig.outcomes() == {'attributed': 1, 'remediated': 1}

    @pytest.mark.parametrize(
        'permissions, app_key, searched',
        [((READ, WRITE), None, False), ((WRITE,), DD_APP_KEY, False), ((READ,), DD_APP_KEY, True)],
        ids=['no-app-key', 'no-read-permission', 'no-write-permission'],
    )
    def test_forbidden_names_the_permissions(self, state, server, permissions, app_key, searched):
        state.permissions = set(permissions)
        rig = Rig(state, server, app_key=app_key)
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()

        line = attribution.on_transition(triggered(), mapping())
        attribution.on_transition(triggered(T0 + MINUTE, number=1235), mapping())

        assert len(rig.warnings) == 1
        assert 'dora_metrics_read' in rig.warnings[0] and 'dora_metrics_write' in rig.warnings[0]
        assert '`datadog_app_key`' in rig.warnings[0]
        assert DD_APP_KEY not in rig.warnings[0] and DD_API_KEY not in rig.warnings[0]
        assert attribution.pending == 2
        assert rig.outcomes()['forbidden'] == 1
        if searched:
            assert 'attributed to deployment `dep-1`' in line
        else:
            assert 'Datadog refused access to DORA deployments (403)' in line

        state.permissions = {READ, WRITE}
        if app_key is None:
            return
        rig.new_run()
        attribution.flush()
        assert state.failed().keys() == {'dep-1'}
        assert attribution.pending == 0


class TestQueueBounds:
    """The attribution queue is bounded: an incident whose queued search was dropped is searched afresh."""

    def test_dropped_search_no_longer_holds_its_incident(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution(max_pending=1)

        attribution.on_transition(triggered(), mapping())
        attribution.on_transition(triggered(T0 + MINUTE, number=1235), mapping())
        attribution.save()

        assert attribution.pending == 1
        assert rig.warnings == ['Dropped the 1 oldest change-failure attribution tasks: more than 1 were waiting']
        assert 'waiting' not in json.loads(rig.cache[CACHE_KEY])['incidents']['Q2N1234ABC']

        rig.new_run()
        line = attribution.on_transition(triggered(), mapping())

        assert 'attributed to deployment `dep-1`' in line


class TestRejectedSearch:
    """A 4xx from the deployments search is logged and counted, and skips only that incident's attribution."""

    @pytest.mark.parametrize('status', [400, 404, 422], ids=['400', '404', '422'])
    def test_attribution_is_skipped_and_the_run_goes_on(self, rig, state, status):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(1, status)
        attribution = rig.attribution()

        line = attribution.on_transition(triggered(), mapping())
        # The next incident of the same run is attributed: the rejection did not stop the run.
        second = attribution.on_transition(triggered(T0 + MINUTE, number=1235), mapping())
        attribution.save()

        assert 'not attributed: the DORA deployments search was rejected ({})'.format(status) in line
        assert 'attributed to deployment `dep-1`' in second
        assert rig.outcomes() == {'rejected': 1, 'attributed': 1}
        assert 'was rejected ({}) and is not retried'.format(status) in rig.log.text('warning')
        assert attribution.pending == 0
        state_written = json.loads(rig.cache[CACHE_KEY])
        assert state_written['pending'] == []
        assert 'waiting' not in state_written['incidents']['Q2N1234ABC']

    def test_rejected_remediation_search_is_skipped(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        state.add('checkout', 'prod', 'v43', T0 + 20 * MINUTE, deployment_id='dep-fix')
        state.faults.fail_next(1, 400)

        line = attribution.on_transition(resolved(T0, T0 + 30 * MINUTE), mapping())

        assert 'Remediation:** not recorded: the DORA deployments search was rejected (400)' in line
        assert rig.outcomes() == {'attributed': 1, 'rejected': 1}
        assert state.deployments['dep-bad'].remediation is None
        assert attribution.pending == 0

    def test_rejected_search_in_a_retried_task_is_dropped(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution()
        attribution.on_transition(triggered(), mapping())
        assert attribution.pending == 1

        rig.new_run()
        state.faults.fail_next(1, 400)
        attribution.flush()

        assert attribution.pending == 0
        assert state.failed() == {}
        assert rig.outcomes() == {'deferred': 1, 'rejected': 1}


class TestPreview:
    """`preview()` says which deployment would be marked and the remediation, reading only."""

    def test_resolved_incident(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-fix')

        found = rig.attribution().preview(incident('resolved', resolved_at=T0 + 30 * MINUTE), mapping())

        assert found['outcome'] == 'attributed'
        assert found['deployment']['id'] == 'dep-bad'
        assert found['remediation']['type'] == 'rollback'
        assert found['remediation']['deployment']['id'] == 'dep-fix'
        assert rig.patches() == []
        assert rig.cache == {}

    @pytest.mark.parametrize(
        'result, outcome',
        [(mapping(env=None), 'no_env'), (mapping(services=()), 'no_service'), (mapping(), 'no_deployment')],
        ids=['no-env', 'no-service', 'no-deployment'],
    )
    def test_nothing_to_mark(self, rig, state, result, outcome):
        state.add('checkout', 'prod', 'v42', T0 - 30 * HOUR, deployment_id='dep-old')

        found = rig.attribution().preview(incident(), result)

        assert (found['outcome'], found['deployment'], found['remediation']) == (outcome, None, None)
        assert found['note']
        assert rig.patches() == []


class TestFake:
    """The fake refuses what the real API refuses."""

    @pytest.mark.parametrize(
        'attributes, error',
        [
            ({'change_failure': 'yes'}, 'change_failure: must be a boolean'),
            ({'change_failure': True, 'remediation': {'type': 'rollback'}}, 'either id or version'),
            (
                {'change_failure': True, 'remediation': {'id': 'dep-2', 'version': 'v1', 'type': 'rollback'}},
                'either id or version',
            ),
            ({'change_failure': True, 'remediation': {'id': 'dep-2', 'type': 'revert'}}, 'remediation.type'),
            ({'change_failure': True, 'remediation': {'id': 'dep-other', 'type': 'rollback'}}, 'same service and env'),
            ({'failed': True}, 'failed: unknown attribute'),
        ],
        ids=['not-boolean', 'no-id-nor-version', 'both-id-and-version', 'bad-type', 'other-service', 'unknown'],
    )
    def test_patch_validation(self, rig, state, attributes, error):
        state.add('checkout', 'prod', 'v1', T0, deployment_id='dep-1')
        state.add('checkout', 'prod', 'v2', T0 + HOUR, deployment_id='dep-2')
        state.add('search', 'prod', 'v2', T0 + HOUR, deployment_id='dep-other')
        body = {'data': {'id': 'dep-1', 'type': 'dora_deployment_patch_request', 'attributes': attributes}}

        with pytest.raises(Exception) as raised:
            rig.api.patch('/api/v2/dora/deployments/dep-1', body)

        assert getattr(raised.value, 'status', None) == 400
        assert error in raised.value.body
        assert state.failed() == {}

    def test_list_filters_and_limits(self, rig, state):
        for n in range(5):
            state.add('checkout', 'prod', 'v{}'.format(n), T0 - n * HOUR)
        state.add('checkout', 'staging', 'v9', T0)
        body = {
            'data': {
                'type': 'dora_deployments_list_request',
                'attributes': {
                    'from': format_time(T0 - 3.5 * HOUR),
                    'to': format_time(T0),
                    'query': 'service:checkout env:prod',
                    'limit': 2,
                },
            }
        }

        data = rig.api.post('/api/v2/dora/deployments', body).data['data']

        assert [d['attributes']['version'] for d in data] == ['v0', 'v1']
        assert parse_api_time(data[0]['attributes']['finished_at']) == T0


class TestHelpers:
    """Pure helpers: API times and severity ranks."""

    @pytest.mark.parametrize(
        'value, expected',
        [
            ('2026-11-26T12:00:00.000Z', T0),
            ('2026-11-26T12:00:00.123456789Z', T0 + 0.123456),
            ('2026-11-26T13:00:00+01:00', T0),
            (int(T0 * 1e9), T0),
            (int(T0 * 1e3), T0),
            ('yesterday', None),
            (True, None),
        ],
        ids=['rfc3339-ms', 'nanoseconds', 'offset', 'unix-ns', 'unix-ms', 'garbage', 'bool'],
    )
    def test_parse_api_time(self, value, expected):
        result = parse_api_time(value)
        assert result == (pytest.approx(expected) if expected is not None else None)

    @pytest.mark.parametrize(
        'severity, minimum, expected',
        [
            ('SEV-1', 'SEV-2', True),
            ('SEV-3', 'SEV-2', False),
            ('critical', 'Critical', True),
            ('high', 'critical', False),
        ],
        ids=['sev1-meets-sev2', 'sev3-below-sev2', 'named-equal', 'named-different'],
    )
    def test_meets_severity(self, severity, minimum, expected):
        assert meets_severity(severity, minimum) is expected


class TestConfig:
    """The options load with their defaults, and bad combinations fail with a message naming the options."""

    def _load(self, **options):
        instance = {'api_token': 'u+pdTestToken_x9Lk2QwErTy'}
        instance.update(options)
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
        check.load_configuration_models()
        return check.config

    def test_defaults(self):
        config = self._load()
        assert config.attribute_change_failures is False
        assert config.attribution_window == 86400
        assert config.attribution_min_severity is None

    @pytest.mark.parametrize(
        'options, expected',
        [
            ({'attribute_change_failures': True}, '`attribute_change_failures` needs `datadog_app_key`'),
            ({'attribution_window': 0}, '`attribution_window` must be greater than 0 seconds, got 0'),
        ],
        ids=['no-app-key', 'zero-window'],
    )
    def test_bad(self, options, expected):
        with pytest.raises(ConfigurationError) as raised:
            self._load(**options)
        assert expected in str(raised.value)

    def test_on_with_app_key(self):
        config = self._load(attribute_change_failures=True, datadog_app_key=DD_APP_KEY, attribution_min_severity='P2')
        assert config.attribute_change_failures is True
        assert config.attribution_min_severity == 'P2'
