# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The DORA deployments client: its requests, and the stall that ends its run at the first failure."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from datadog_checks.pagerduty_dora.deployments import (
    DeploymentsClient,
    Unavailable,
    patch_body,
    search_query,
)
from datadog_checks.pagerduty_dora.http_client import (
    ApiClient,
    AuthError,
    BudgetExhausted,
    RequestRejected,
    Response,
    TransientError,
)


class Api(ApiClient):
    """An `ApiClient` whose requests answer from a script instead of the network."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(
            name='datadog', http=None, base_url='https://api.example', auth_headers={}, max_requests=10, log=None
        )
        self.answers = list(answers)
        self.calls: list[tuple[str, str]] = []

    def post(self, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True) -> Response:
        return self._answer('post', path)

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


@pytest.fixture
def forbidden() -> list:
    return []


def client(api: Api, forbidden: list) -> DeploymentsClient:
    return DeploymentsClient(api, caller='attribution', log=logging.getLogger('test'), on_forbidden=forbidden.append)


class TestRequests:
    def test_search_keeps_only_the_service_and_env_asked_for(self, forbidden):
        data = [deployment('a'), deployment('b', service='cart'), deployment('c', env='staging'), {'id': 'broken'}]
        api = Api({'data': data})
        found = client(api, forbidden).search('Checkout', 'PROD', 0, 1e10)
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
        assert patch_body('d1', {'id': 'd2', 'type': 'rollback'}) == {
            'data': {
                'id': 'd1',
                'type': 'dora_deployment_patch_request',
                'attributes': {'change_failure': True, 'remediation': {'id': 'd2', 'type': 'rollback'}},
            }
        }

    def test_rejected_request_is_raised_as_is_and_does_not_stall(self, forbidden):
        api = Api(RequestRejected('datadog', 'bad', 400), {'data': []})
        deployments = client(api, forbidden)
        with pytest.raises(RequestRejected):
            deployments.patch('d1', patch_body('d1'))
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
    def test_stalls_for_the_rest_of_the_run(self, forbidden, error, refused):
        api = Api(error, {'data': []})
        deployments = client(api, forbidden)
        with pytest.raises(Unavailable) as raised:
            deployments.search('checkout', 'prod', 0, 1)
        assert raised.value.forbidden is refused
        assert forbidden == ([403] if refused else [])
        assert deployments.stalled and api.stalled('attribution')

        with pytest.raises(Unavailable) as again:
            deployments.patch('d1', patch_body('d1'))
        assert again.value.forbidden is False
        assert len(api.calls) == 1
        assert forbidden == ([403] if refused else [])

        api.start_run(deadline=1e12)
        assert not deployments.stalled
        assert deployments.search('checkout', 'prod', 0, 1) == []

    def test_callers_stall_apart(self, forbidden):
        api = Api(TransientError('datadog', 'answered 503', 503))
        with pytest.raises(Unavailable):
            client(api, forbidden).search('checkout', 'prod', 0, 1)
        assert api.stalled('attribution') and not api.stalled('dora_pending')
