# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution against a loopback fake of the DORA deployments API, with a real ApiClient.

`ChangeFailureAttribution` is driven here the way the collector drives it (`observe()` per look,
`flush()` and `save()` per run), without PagerDuty: the whole check runs in attribution/test_incident_life.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from datadog_api_client import ApiClient as DatadogApiClient
from datadog_api_client import Configuration
from datadog_api_client.v2.model.dora_deployment_patch_request import DORADeploymentPatchRequest
from datadog_api_client.v2.model.dora_list_deployments_request import DORAListDeploymentsRequest

from datadog_checks.base import ConfigurationError
from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.attribution.attributor import ChangeFailureAttribution
from datadog_checks.pagerduty_dora.attribution.decision import Rules
from datadog_checks.pagerduty_dora.attribution.state import CACHE_KEY, DEFAULT_BOUNDS, AttributionState
from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.times import format_time, parse_api_time
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

from ..fakes.deployments_api import READ, WRITE, DeploymentsState
from ..fakes.server import FakeServer, Reply

DD_API_KEY = 'dd0123456789abcdef0123456789abcd'
DD_APP_KEY = 'app0123456789abcdef0123456789abcdef0123'
# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
INCIDENT = 'Q2N1234ABC'


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
    """A fake deployments API, an ApiClient to it, a cache, the counters and the events of one test."""

    def __init__(self, state: DeploymentsState, server: FakeServer, *, app_key: str | None = DD_APP_KEY) -> None:
        self.state = state
        self.server = server
        self.cache: dict[str, str] = {}
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.warnings: list[str] = []
        self.events: list[dict] = []
        self.log = Log()
        # Past the settle time of an incident started at T0: its deployment is searched at once.
        self.now = T0 + HOUR
        headers = {'DD-API-KEY': DD_API_KEY}
        if app_key:
            headers['DD-APPLICATION-KEY'] = app_key
        self.api = ApiClient(
            ApiTarget('datadog', server.url, headers),
            RequestsWrapper({}, {}),
            RequestLimits(100),
            self.log,
            timing=Timing(sleep=lambda seconds: None),
        )
        self.new_run()

    def new_run(self) -> None:
        self.api.start_run(time.monotonic() + 60)

    def stored(self) -> AttributionState:
        """Attribution's records and queue as this rig's cache holds them, read by attribution's own loader."""
        assert self.cache.get(CACHE_KEY), 'no attribution state stored'

        def refuse(key_or_message: str, *args: object) -> None:
            raise AssertionError('reading the stored state wrote or warned: {}'.format(key_or_message))

        services = AgentServices(
            read_cache=lambda key: self.cache.get(key, ''), write_cache=refuse, log=self.log, warning=refuse
        )
        state = AttributionState(replace(services, clock=lambda: self.now), DEFAULT_BOUNDS)
        state.fields()
        return state

    def attribution(
        self, window: float = DAY, min_severity: str | None = None, max_pending: int = 10_000, dry_run: bool = False
    ) -> ChangeFailureAttribution:
        """A new instance over the same cache: calling it again is an Agent restart."""
        services = AgentServices(
            read_cache=lambda key: self.cache.get(key, ''),
            write_cache=self.cache.__setitem__,
            log=self.log,
            warning=self._warning,
            count=self._count,
            clock=lambda: self.now,
        )
        return ChangeFailureAttribution(
            self.api,
            rules=Rules(window, min_severity),
            services=services,
            event=self.events.append,
            bounds=replace(DEFAULT_BOUNDS, max_items=max_pending),
            dry_run=dry_run,
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


def mapping(services=('checkout',), env: str | None = 'prod', severity: str | None = 'P1', rule='service_url'):
    return MappingResult(rule=rule, services=tuple(services), team='payments', env=env, severity=severity)


def look(
    attribution: ChangeFailureAttribution,
    kind: str = 'triggered',
    *,
    created_at: float = T0,
    resolved_at: float | None = None,
    number: int = 1234,
    result: MappingResult | None = None,
    wanted: bool = True,
) -> str | None:
    """One look of the collector at an incident with one transition; the event line attribution returns."""
    status = 'resolved' if resolved_at else 'triggered'
    seen = incident(status, created_at=created_at, resolved_at=resolved_at, number=number)
    at = resolved_at if kind == 'resolved' and resolved_at else created_at
    notes = attribution.observe(seen, result or mapping(), wanted, [Transition(kind, seen, at)])
    return notes.get(0)


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

        line = look(rig.attribution())

        if attributed:
            assert state.failed().keys() == {deployment}
            assert rig.outcomes() == {'attributed': 1}
            assert '`dep-candidate`' in line and '`checkout`' in line and '`v42`' in line
            assert format_time(T0 - finished_before) in line
            assert 'decided by the latest deployment of `checkout` in env `prod` finished in the 1d' in line
        else:
            assert state.failed() == {}
            assert rig.patches() == []
            assert rig.outcomes() == {'no_deployment': 1}
            assert 'not attributed: no deployment of `checkout` in env `prod` finished in the 1d before' in line

    def test_latest_of_two_candidates_wins(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-older')
        state.add('checkout', 'prod', 'v42', T0 - 20 * MINUTE, deployment_id='dep-latest')

        look(rig.attribution())

        assert [deployment_id for deployment_id, _ in rig.patches()] == ['dep-latest']
        assert state.failed().keys() == {'dep-latest'}

    def test_latest_finish_wins_across_pages(self, rig, state):
        """The list has no cursor: a long deployment that started early but finished last is on a later page."""
        for n in range(120):
            state.add('checkout', 'prod', 'v{}'.format(n), T0 - 10 * HOUR + n * 4 * MINUTE, duration=60)
        state.add('checkout', 'prod', 'v-long', T0 - 5 * MINUTE, duration=20 * HOUR, deployment_id='dep-long')

        look(rig.attribution())

        assert state.failed().keys() == {'dep-long'}
        assert len(state.searches) == 2
        assert state.searches[1]['to'] < state.searches[0]['to']

    def test_requests_match_the_published_models(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()

        look(attribution)
        look(attribution, result=mapping(services=('billing',)))

        search = rig.server.requests[0]
        patch, unmark = [r for r in rig.server.requests if r.method == 'PATCH']
        assert (search.method, search.path) == ('POST', '/api/v2/dora/deployments')
        assert (patch.method, patch.path) == ('PATCH', '/api/v2/dora/deployments/dep-1')
        listed = to_model(search.json(), DORAListDeploymentsRequest)
        assert listed.data.attributes.query == 'service:checkout env:prod'
        marked = to_model(patch.json(), DORADeploymentPatchRequest)
        assert marked.data.id == 'dep-1' and marked.data.attributes.change_failure is True
        set_back = to_model(unmark.json(), DORADeploymentPatchRequest)
        assert set_back.data.id == 'dep-1' and set_back.data.attributes.change_failure is False
        assert search.headers['dd-application-key'] == DD_APP_KEY

    @pytest.mark.parametrize(
        'result, outcome, says',
        [
            (mapping(services=()), 'no_service', 'maps to no Datadog service'),
            (mapping(env=None), 'no_env', 'has no env'),
            (mapping(services=('checkout', 'cart')), 'several_services', 'several services (`checkout`, `cart`)'),
            (mapping(rule='fallback'), 'unmapped', 'no catalog rule mapped the incident'),
        ],
        ids=['no-service', 'no-env', 'several-services', 'fallback-rule'],
    )
    def test_no_attribution_without_one_mapped_service_and_an_env(self, rig, state, result, outcome, says):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = look(rig.attribution(), result=result)

        assert rig.server.requests == []
        assert rig.outcomes() == {outcome: 1}
        assert says in line
        assert says.split(' (')[0] in rig.log.text('debug')

    def test_min_severity_without_the_account_order_attributes_nothing(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = look(rig.attribution(min_severity='P2'))

        assert state.failed() == {}
        assert rig.outcomes() == {'below_severity': 1}
        assert 'below `attribution_min_severity` `P2`' in line
        assert rig.warnings == [
            '`attribution_min_severity` is set, but PagerDuty did not list the account\'s priorities '
            '(GET /priorities: no client); no incident is attributed until they can be'
        ]

    def test_filtered_incident_is_counted_and_not_searched(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = look(rig.attribution(), wanted=False)

        assert line is None
        assert rig.server.requests == []
        assert rig.outcomes() == {'filtered': 1}

    def test_a_look_that_changes_nothing_does_nothing(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)
        attribution = rig.attribution()
        look(attribution)
        requests = len(rig.server.requests)

        line = look(attribution, 'acknowledged')

        assert line is None
        assert len(rig.server.requests) == requests
        assert rig.outcomes() == {'attributed': 1}

    def test_history_is_never_attributed(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        line = look(rig.attribution(), 'resolved', resolved_at=T0 + 30 * MINUTE)

        assert line is None
        assert rig.server.requests == []
        assert rig.counts == Counter()


class TestSettle:
    """The first search waits for the settle time; what it decides later gets an event of its own."""

    def test_search_after_the_settle_time(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        rig.now = T0 + MINUTE
        attribution = rig.attribution()

        line = look(attribution)
        attribution.save()

        assert 'judged at 2026-11-26T12:05:00Z (5m after the incident started)' in line
        assert rig.server.requests == []
        assert attribution.pending == 1

        rig.now = T0 + 6 * MINUTE
        rig.new_run()
        later = rig.attribution()
        later.flush()
        later.save()

        assert state.failed().keys() == {'dep-1'}
        assert len(rig.events) == 1
        event = rig.events[0]
        assert event['aggregation_key'] == INCIDENT
        assert event['msg_title'] == '#1234 change failure: deployment marked as a change failure'
        assert '`dep-1`' in event['msg_text'] and 'attribution:attributed' in event['tags']
        assert 'service:checkout' in event['tags']

    def test_decision_in_a_look_goes_in_its_event_not_in_one_of_its_own(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()

        look(attribution)
        attribution.save()

        assert rig.events == []


class TestIdempotence:
    """One incident blames once: reopens and restarts keep what was decided."""

    def test_reopen_keeps_the_attribution(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()
        look(attribution)
        look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)
        state.add('checkout', 'prod', 'v43', T0 + 2 * HOUR, deployment_id='dep-2')

        line = look(attribution, 'reopened')

        assert [deployment_id for deployment_id, _ in rig.patches()] == ['dep-1']
        assert 'still attributed' in line
        assert attribution.attribution_of(INCIDENT).id == 'dep-1'

    def test_restart_does_not_blame_again(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        first = rig.attribution()
        look(first)
        first.save()

        again = look(rig.attribution())

        assert again is None
        assert len(rig.patches()) == 1
        assert rig.outcomes() == {'attributed': 1}
        stored = rig.stored().deployments()
        assert stored['dep-1']['blamed_by'] == [INCIDENT]
        assert stored['dep-1']['sent'] == {'change_failure': True, 'remediation': None}

    def test_unreadable_cache_starts_empty_with_a_warning(self, rig, state):
        rig.cache[CACHE_KEY] = '{"version": 2, "incidents": ['
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE)

        look(rig.attribution())

        assert rig.outcomes() == {'attributed': 1}
        assert any('could not be read' in w for w in rig.warnings)


class TestSetBack:
    """A deployment no qualifying incident blames any more is set back, once; one still blamed stays."""

    def test_last_blame_gone_sets_back(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()
        look(attribution)
        look(attribution, number=1235)

        attribution.gone(INCIDENT)
        assert state.failed().keys() == {'dep-1'}
        attribution.gone('Q2N1235ABC', 'out_of_scope')
        attribution.gone('Q2N1235ABC', 'out_of_scope')

        assert state.failed() == {}
        assert [body for _, body in rig.patches()] == [{'change_failure': True}, {'change_failure': False}]
        assert rig.counts[('outcome:released', 'reason:deleted')] == 1
        assert rig.counts[('outcome:unmarked', 'reason:out_of_scope')] == 1
        attribution.save()
        assert [e['msg_title'] for e in rig.events] == [
            '#1234 change failure: deployment no longer blamed by this incident',
            '#1235 change failure: deployment set back',
        ]

    def test_never_marked_is_not_set_back(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        rig.server.fault = lambda request: Reply(400, {'errors': ['no']}) if request.method == 'PATCH' else None
        attribution = rig.attribution()
        look(attribution)

        attribution.gone(INCIDENT)

        assert [r.method for r in rig.server.requests] == ['POST', 'PATCH']
        # Counted per decision: the incident no longer qualifies, and its deployment is no longer blamed.
        assert rig.outcomes() == {'attributed': 1, 'rejected': 1, 'deleted': 1, 'unmarked': 1}


class TestSetBackOnlyWhereNoOneElseMarks:
    """A deployment Datadog may have marked itself (rolled back, or with a known remediation) is never set back."""

    def test_recorded_remediation_keeps_the_mark_when_the_incident_is_deleted(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-fix')
        look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)
        searches = len(state.searches)

        attribution.gone(INCIDENT)
        attribution.save()

        assert state.failed().keys() == {'dep-bad'}
        assert [body for _, body in rig.patches()] == [
            {'change_failure': True},
            {'change_failure': True, 'remediation': {'id': 'dep-fix', 'type': 'rollback'}},
        ]
        # Known already: no search for a rollback is needed.
        assert len(state.searches) == searches
        assert rig.counts[('outcome:kept', 'reason:deleted')] == 1
        assert [e['msg_title'] for e in rig.events] == ['#1234 change failure: deployment kept as a change failure']
        assert 'its rollback by deployment `dep-fix`' in rig.events[0]['msg_text']

    @pytest.mark.parametrize(
        'earlier, failed, later, kept',
        [
            (('v41', 'aaaaaaa1'), ('v42', 'bbbbbbb2'), (None, 'aaaaaaa1'), True),
            (('v41', None), ('v42', None), ('v41', None), True),
            (('v41', 'aaaaaaa1'), ('v42', 'bbbbbbb2'), ('v42', 'bbbbbbb2'), False),
            (('v41', 'aaaaaaa1'), ('v42', 'bbbbbbb2'), ('v43', 'ccccccc3'), False),
        ],
        ids=['same-commit-as-before', 'same-version-as-before', 'failed-one-redeployed', 'new-version'],
    )
    def test_rollback_is_searched_before_a_set_back(self, rig, state, earlier, failed, later, kept):
        state.add('checkout', 'prod', earlier[0], T0 - 3 * HOUR, commit=earlier[1], deployment_id='dep-good')
        state.add('checkout', 'prod', failed[0], T0 - 10 * MINUTE, commit=failed[1], deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        state.add('checkout', 'prod', later[0], T0 + 20 * MINUTE, commit=later[1], deployment_id='dep-later')

        look(attribution, result=mapping(env='staging'))
        attribution.save()

        assert ('dep-bad' in state.failed()) is kept
        expected = [{'change_failure': True}] + ([] if kept else [{'change_failure': False}])
        assert [body for deployment, body in rig.patches() if deployment == 'dep-bad'] == expected
        assert rig.outcomes()['kept' if kept else 'unmarked'] == 1
        stored = rig.stored().deployments()['dep-bad']
        assert (stored.get('rolled_back') or {}).get('id') == ('dep-later' if kept else None)

    def test_rejected_rollback_search_keeps_the_mark(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        attribution = rig.attribution()
        look(attribution)
        state.faults.fail_next(1, 400)

        attribution.gone(INCIDENT)

        assert state.failed().keys() == {'dep-1'}
        assert [body for _, body in rig.patches()] == [{'change_failure': True}]
        assert rig.outcomes() == {'attributed': 1, 'deleted': 1, 'rejected': 1, 'kept': 1}
        assert 'was rejected (400) and is not retried' in rig.log.text('warning')
        assert attribution.pending == 0

    def test_blamed_again_then_released_searches_again(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        look(attribution, result=mapping(env='staging'))
        assert state.failed() == {}
        look(attribution)
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-rollback')

        look(attribution, result=mapping(env='staging'))

        assert state.failed().keys() == {'dep-bad'}
        assert [body for _, body in rig.patches()] == [
            {'change_failure': True},
            {'change_failure': False},
            {'change_failure': True},
        ]
        assert rig.outcomes()['kept'] == 1 and rig.outcomes()['unmarked'] == 1


class TestRemediation:
    """On resolve, the first later deployment of the service and env is its remediation: rollback or rollforward."""

    @pytest.mark.parametrize(
        'fix_version, expected',
        [('v41', 'rollback'), ('v43', 'rollforward'), (None, 'rollforward')],
        ids=['earlier-version-is-a-rollback', 'new-version-is-a-rollforward', 'no-version-is-a-rollforward'],
    )
    def test_remediation_recorded(self, rig, state, fix_version, expected):
        state.add('checkout', 'prod', 'v41', T0 - 3 * HOUR, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        state.add('checkout', 'prod', fix_version, T0 + 20 * MINUTE, deployment_id='dep-fix')
        state.add('checkout', 'prod', 'v44', T0 + 25 * MINUTE, deployment_id='dep-next')
        state.add('checkout', 'staging', 'v41', T0 + 15 * MINUTE, deployment_id='dep-staging')

        line = look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)

        bad = state.deployments['dep-bad']
        assert bad.change_failure is True
        assert bad.remediation == {'id': 'dep-fix', 'type': expected}
        assert state.deployments['dep-good'].change_failure is False
        assert '- **Remediation:** {} by deployment `dep-fix`'.format(expected) in line
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
        look(attribution)
        state.add('checkout', 'prod', fix_version, fix_finished, deployment_id='dep-later')

        line = look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)

        assert state.deployments['dep-bad'].remediation is None
        assert rig.outcomes() == {'attributed': 1, 'no_remediation': 1}
        assert 'none recorded' in line

    def test_fix_reported_late_is_found_after_the_settle_time(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        rig.now = T0 + 30 * MINUTE + 10

        line = look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)
        state.add('checkout', 'prod', 'v43', T0 + 29 * MINUTE, deployment_id='dep-fix')
        rig.now += 300
        attribution.flush()
        attribution.save()

        assert line is None
        assert state.deployments['dep-bad'].remediation == {'id': 'dep-fix', 'type': 'rollforward'}
        assert [e['msg_title'] for e in rig.events] == ['#1234 change failure: remediation recorded']

    def test_resolve_without_attribution_says_nothing(self, rig, state):
        line = look(rig.attribution(), 'resolved', resolved_at=T0 + 30 * MINUTE)

        assert line is None
        assert rig.server.requests == []


class TestFaults:
    """Transient failures wait in the persistent queue for the next run; a 403 names the permission."""

    def test_transient_search_failure_is_retried_next_run(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution()

        line = look(attribution)
        attribution.save()

        assert 'pending: an API could not be used now' in line
        assert state.failed() == {}
        assert attribution.pending == 1

        rig.new_run()
        restarted = rig.attribution()
        restarted.flush()

        assert state.failed().keys() == {'dep-1'}
        assert restarted.pending == 0
        assert rig.outcomes() == {'deferred': 1, 'attributed': 1}
        assert rig.stored().queue.keys() == []

    def test_transient_patch_failure_is_retried_with_the_remediation(self, rig, state):
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
        line = look(attribution)
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-fix')
        rig.new_run()
        look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)

        assert 'marked as a change failure' in line
        # One PATCH brings the deployment to what was decided: a change failure with its rollback.
        assert rig.patches() == [
            ('dep-bad', {'change_failure': True, 'remediation': {'id': 'dep-fix', 'type': 'rollback'}})
        ]
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

        line = look(attribution)
        look(attribution, created_at=T0 + MINUTE, number=1235)

        assert len(rig.warnings) == 1
        assert 'dora_metrics_read' in rig.warnings[0] and 'dora_metrics_write' in rig.warnings[0]
        assert '`datadog_app_key`' in rig.warnings[0]
        assert DD_APP_KEY not in rig.warnings[0] and DD_API_KEY not in rig.warnings[0]
        # Both incidents wait to be judged, or (searched) the deployment waits to be marked and the
        # second incident, searched once the API stalled, to be judged.
        assert attribution.pending == 2
        assert rig.outcomes()['forbidden'] == 1
        if searched:
            assert 'marked as a change failure' in line
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
    """The queue is bounded: an incident whose queued work was dropped is judged afresh at its next look."""

    def test_dropped_work_is_done_at_the_next_look(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution(max_pending=1)

        look(attribution)
        look(attribution, created_at=T0 + MINUTE, number=1235)
        attribution.save()

        assert attribution.pending == 1
        assert rig.warnings == ['Dropped the 1 oldest change-failure attribution tasks: more than 1 were waiting']

        rig.new_run()
        line = look(attribution, 'acknowledged')

        assert 'marked as a change failure' in line


class TestRejectedSearch:
    """A 4xx from the deployments search is logged and counted, and skips only that incident's attribution."""

    @pytest.mark.parametrize('status', [400, 404, 422], ids=['400', '404', '422'])
    def test_attribution_is_skipped_and_the_run_goes_on(self, rig, state, status):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(1, status)
        attribution = rig.attribution()

        line = look(attribution)
        # The next incident of the same run is attributed: the rejection did not stop the run.
        second = look(attribution, created_at=T0 + MINUTE, number=1235)
        attribution.save()

        assert 'not attributed: the DORA deployments search was rejected ({})'.format(status) in line
        assert 'marked as a change failure' in second
        assert rig.outcomes() == {'rejected': 1, 'attributed': 1}
        assert 'was rejected ({}) and is not retried'.format(status) in rig.log.text('warning')
        assert attribution.pending == 0
        assert rig.stored().queue.keys() == []

    def test_rejected_remediation_search_is_skipped(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        attribution = rig.attribution()
        look(attribution)
        state.add('checkout', 'prod', 'v43', T0 + 20 * MINUTE, deployment_id='dep-fix')
        # The resolve searches the blame again first (one request), then the remediation.
        calls = []

        def reject_second_search(request):
            if request.method == 'POST':
                calls.append(request)
                if len(calls) == 2:
                    return Reply(400, {'errors': ['bad']})
            return None

        rig.server.fault = reject_second_search
        line = look(attribution, 'resolved', resolved_at=T0 + 30 * MINUTE)

        assert 'Remediation:** not recorded: the DORA deployments search was rejected (400)' in line
        assert rig.outcomes() == {'attributed': 1, 'rejected': 1}
        assert state.deployments['dep-bad'].remediation is None
        assert attribution.pending == 0

    def test_rejected_search_in_a_retried_task_is_dropped(self, rig, state):
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-1')
        state.faults.fail_next(4, 503)
        attribution = rig.attribution()
        look(attribution)
        assert attribution.pending == 1

        rig.new_run()
        state.faults.fail_next(1, 400)
        attribution.flush()

        assert attribution.pending == 0
        assert state.failed() == {}
        assert rig.outcomes() == {'deferred': 1, 'rejected': 1}


class TestPreview:
    """`preview()` decides as a run would, reading only: what would be marked, why, and the remediation."""

    def test_resolved_incident(self, rig, state):
        state.add('checkout', 'prod', 'v41', T0 - 3 * DAY, deployment_id='dep-good')
        state.add('checkout', 'prod', 'v42', T0 - 10 * MINUTE, deployment_id='dep-bad')
        state.add('checkout', 'prod', 'v41', T0 + 20 * MINUTE, deployment_id='dep-fix')
        attribution = rig.attribution(dry_run=True)

        found = attribution.preview(incident('resolved', resolved_at=T0 + 30 * MINUTE), mapping())

        assert (found['outcome'], found['signal']) == ('attributed', 'latest_deployment')
        assert found['deployment']['id'] == 'dep-bad'
        assert found['remediation']['type'] == 'rollback'
        assert found['remediation']['deployment']['id'] == 'dep-fix'
        assert [d for d, _ in attribution.would_patch] == ['dep-bad', 'dep-bad']
        assert rig.patches() == []
        assert rig.cache == {}

    @pytest.mark.parametrize(
        'result, outcome',
        [(mapping(env=None), 'no_env'), (mapping(services=()), 'no_service'), (mapping(), 'no_deployment')],
        ids=['no-env', 'no-service', 'no-deployment'],
    )
    def test_nothing_to_mark(self, rig, state, result, outcome):
        state.add('checkout', 'prod', 'v42', T0 - 30 * HOUR, deployment_id='dep-old')

        found = rig.attribution(dry_run=True).preview(incident(), result)

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
    """Pure helpers: API times."""

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
