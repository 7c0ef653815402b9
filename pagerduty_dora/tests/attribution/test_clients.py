# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The clients of attribution: DORA deployments and PagerDuty's signals, and the stall that ends their run."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from datadog_checks.pagerduty_dora.attribution.deployments import (
    DeploymentsClient,
    PagerDutySignals,
    Unavailable,
    parse_change_event,
    parse_deployment,
    patch_body,
    search_query,
)
from datadog_checks.pagerduty_dora.common.errors import AuthError, BudgetExhausted, RequestRejected, TransientError
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget, BodyReader, Response
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits


class Api(ApiClient):
    """An `ApiClient` whose requests answer from a script instead of the network."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(ApiTarget('datadog', 'https://api.example', {}), None, RequestLimits(10), None)
        self.answers = list(answers)
        self.calls: list[tuple[str, str]] = []

    def post(self, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True) -> Response:
        return self._answer('post', path)

    def get(
        self, path: str, params: Any = None, endpoint: str | None = None, read: BodyReader | None = None
    ) -> Response:
        return self._answer('get', path)

    def patch(self, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True) -> Response:
        return self._answer('patch', path)

    def _answer(self, method: str, path: str) -> Response:
        self.calls.append((method, path))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Response(200, {}, answer)


def deployment(deployment_id: str, service: str = 'checkout', env: str = 'prod') -> dict:
    attributes = {
        'service': service,
        'env': env,
        'version': 'v1',
        'started_at': '2026-11-26T11:00:00Z',
        'finished_at': '2026-11-26T11:05:00Z',
    }
    return {'id': deployment_id, 'type': 'dora_deployment', 'attributes': attributes}


def client(api: Api) -> DeploymentsClient:
    return DeploymentsClient(api, caller='attribution', log=logging.getLogger('test'))


class TestRequests:
    def test_search_keeps_only_the_service_and_env_asked_for(self):
        data = [deployment('a'), deployment('b', service='cart'), deployment('c', env='staging'), {'id': 'broken'}]
        api = Api({'data': data})
        found = client(api).search('Checkout', 'PROD', 0, 1e10)
        assert [d.id for d in found] == ['a']
        assert api.calls == [('post', '/api/v2/dora/deployments')]

    @pytest.mark.parametrize(
        'service, env, query',
        [('checkout', 'prod', 'service:checkout env:prod'), ('my app', 'pr"od', 'service:"my app" env:"pr\\"od"')],
        ids=['plain', 'quoted'],
    )
    def test_search_query(self, service, env, query):
        assert search_query(service, env) == query

    def test_patch_body(self):
        attributes = {'change_failure': True, 'remediation': {'id': 'd2', 'type': 'rollback'}}
        assert patch_body('d1', attributes) == {
            'data': {'id': 'd1', 'type': 'dora_deployment_patch_request', 'attributes': attributes}
        }

    def test_commit_is_read_from_git(self):
        raw = deployment('a')
        raw['attributes']['git'] = {'commit_sha': '9f2c4e1', 'repository_id': 'github.com/acme/app'}
        assert parse_deployment(raw).commit == '9f2c4e1'
        assert parse_deployment(deployment('b')).commit is None

    def test_rejected_request_is_raised_as_is_and_does_not_stall(self):
        api = Api(RequestRejected('datadog', 'bad', 400), {'data': []})
        deployments = client(api)
        with pytest.raises(RequestRejected):
            deployments.patch('d1', patch_body('d1', {'change_failure': True}))
        assert not deployments.stalled
        assert deployments.search('checkout', 'prod', 0, 1) == []


class TestStall:
    """The first transient error, budget exhaustion or refusal stalls the client until the API client's next run."""

    @pytest.mark.parametrize(
        'error, refused',
        [
            (TransientError('datadog', 'answered 503', 503), False),
            (BudgetExhausted('datadog', 'budget'), False),
            (AuthError('datadog', 'answered 403', 403), True),
        ],
        ids=['transient', 'budget', 'forbidden'],
    )
    def test_stalls_for_the_rest_of_the_run(self, error, refused):
        api = Api(error, {'data': []})
        deployments = client(api)
        with pytest.raises(Unavailable) as raised:
            deployments.search('checkout', 'prod', 0, 1)
        assert (raised.value.forbidden, raised.value.status) == ((True, 403) if refused else (False, None))
        assert deployments.stalled and api.stalled('attribution')

        with pytest.raises(Unavailable) as again:
            deployments.patch('d1', patch_body('d1', {'change_failure': True}))
        assert again.value.forbidden is False
        assert len(api.calls) == 1

        api.start_run(deadline=1e12)
        assert not deployments.stalled
        assert deployments.search('checkout', 'prod', 0, 1) == []

    def test_callers_stall_apart(self):
        api = Api(TransientError('datadog', 'answered 503', 503))
        with pytest.raises(Unavailable):
            client(api).search('checkout', 'prod', 0, 1)
        assert api.stalled('attribution') and not api.stalled('dora_pending')


# A related change event as PagerDuty's OpenAPI shows one.
CHANGE_EVENT = {
    'summary': 'Build Success - Increase snapshot create timeout to 30 seconds',
    'id': '01BBYA6PEVW6A852BUO6QYUE7O',
    'timestamp': '2020-07-17T08:42:58Z',
    'type': 'change_event',
    'source': 'acme-build-pipeline-tool-default-i-9999',
    'integration': {'id': 'PEYSGVF', 'type': 'inbound_integration_reference'},
    'services': [{'id': 'PEYSGRV', 'type': 'service_reference'}],
    'custom_details': {'build_state': 'passed', 'build_number': '2', 'run_time': '1236s'},
    'links': [{'href': 'https://acme.pagerduty.dev/build/2', 'text': 'View more details in Acme!'}],
    'correlation_reason': {'reason': 'most_recent'},
}


class TestPagerDutySignals:
    """Related change events and priorities; a refusal answers None, a transient error stalls."""

    def test_change_event(self):
        event = parse_change_event(CHANGE_EVENT)
        assert (event.id, event.services, event.reason) == ('01BBYA6PEVW6A852BUO6QYUE7O', ('PEYSGRV',), 'most_recent')
        assert {'passed', '2', '1236s', 'Increase', 'seconds'} <= set(event.identifiers)

    @pytest.mark.parametrize(
        'raw', [{}, {'id': 'x'}, {'id': 'x', 'timestamp': 'soon'}], ids=['no-id', 'no-time', 'bad-time']
    )
    def test_unusable_change_event(self, raw):
        assert parse_change_event(raw) is None

    def test_priorities_in_order_over_pages(self):
        api = Api(
            {'priorities': [{'name': 'SEV-1'}, {'summary': 'SEV-2'}], 'more': True},
            {'priorities': [{'name': 'SEV-3'}], 'more': False},
        )
        assert PagerDutySignals(api, caller='attribution', log=logging.getLogger('test')).priorities() == [
            'SEV-1',
            'SEV-2',
            'SEV-3',
        ]

    @pytest.mark.parametrize(
        'error', [RequestRejected('pagerduty', 'gone', 404), AuthError('pagerduty', 'no', 403)], ids=['404', '403']
    )
    def test_refused_is_none_without_stalling(self, error):
        api = Api(error, {'change_events': [CHANGE_EVENT]})
        signals = PagerDutySignals(api, caller='attribution', log=logging.getLogger('test'))
        assert signals.related_change_events('Q1') is None
        assert signals.refused == {'incident_related_change_events': error.status}
        assert [e.id for e in signals.related_change_events('Q1')] == ['01BBYA6PEVW6A852BUO6QYUE7O']

    def test_transient_stalls(self):
        api = Api(TransientError('pagerduty', 'answered 503', 503))
        signals = PagerDutySignals(api, caller='attribution', log=logging.getLogger('test'))
        with pytest.raises(Unavailable):
            signals.priorities()
        assert signals.stalled
        with pytest.raises(Unavailable):
            signals.related_change_events('Q1')
        assert len(api.calls) == 1
