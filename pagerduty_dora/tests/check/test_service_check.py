# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The service checks: `can_connect` per API and `can_submit`, CRITICAL with the reason, one alert per cause."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest

from datadog_checks.base import AgentCheck
from datadog_checks.pagerduty_dora.check import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.common.errors import AuthError

from ..fakes.server import Reply
from ..harness import DD_APP_KEY, World, assert_service_check

SERVICE_CHECK = 'pagerduty_dora.can_connect'
SUBMIT_CHECK = 'pagerduty_dora.can_submit'


def statuses(aggregator: Any, api: str) -> list[tuple[int, str]]:
    """(status, message) of every `can_connect` service check tagged `api:<api>`."""
    return [
        (sc.status, sc.message) for sc in aggregator.service_checks(SERVICE_CHECK) if 'api:{}'.format(api) in sc.tags
    ]


def submit_statuses(aggregator: Any) -> list[tuple[int, str]]:
    """(status, message) of every `can_submit` service check."""
    return [(sc.status, sc.message) for sc in aggregator.service_checks(SUBMIT_CHECK)]


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class TestServiceCheck:
    """Each run reports the service check for both APIs, with the instance tags."""

    def test_ok(self, aggregator, dd_run_check: Callable[..., Any], world: World, simulated_run) -> None:
        check = world.check(tags=['team:sre'])
        dd_run_check(check)

        for api in ('pagerduty', 'datadog'):
            assert_service_check(
                aggregator, SERVICE_CHECK, AgentCheck.OK, tags=['team:sre', 'api:{}'.format(api)], count=1
            )

    def test_rejected_pagerduty_key(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        # Nothing could be collected: the run ends with the service check's message, as the dry run exits 1 with it.
        with pytest.raises(Exception, match='PagerDuty rejected `api_token`') as raised:
            dd_run_check(world.check(api_token='u+pdRevokedKey_H3jVc9'))

        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.CRITICAL, tags=['api:pagerduty'], count=1)
        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.OK, tags=['api:datadog'], count=1)
        ((_, message),) = statuses(aggregator, 'pagerduty')
        assert message.startswith('PagerDuty rejected `api_token` (401 Unauthorized)')
        assert message in str(raised.value)
        assert 'u+pdRevokedKey_H3jVc9' not in message + str(raised.value)

    def test_connection_refused(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        url = 'http://127.0.0.1:{}'.format(closed_port())
        with pytest.raises(Exception, match='cannot connect'):
            dd_run_check(world.check(pagerduty_api_url=url))

        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.CRITICAL, tags=['api:pagerduty'], count=1)
        ((_, message),) = statuses(aggregator, 'pagerduty')
        assert 'cannot connect to {}/incidents'.format(url) in message
        assert 'was refused' in message
        assert '`pagerduty_api_url` (EU accounts use https://api.eu.pagerduty.com)' in message
        assert '`proxy` option' in message

    def test_wrong_datadog_app_key(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        with pytest.raises(Exception, match='is wrong or revoked'):
            dd_run_check(world.check(datadog_app_key='appWrongKey0123456789abcdef0123456789ab'))

        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.CRITICAL, tags=['api:datadog'], count=1)
        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.OK, tags=['api:pagerduty'], count=1)
        ((_, message),) = statuses(aggregator, 'datadog')
        assert 'is wrong or revoked' in message
        assert 'appWrongKey' not in message

    @pytest.mark.parametrize(
        'options, expected',
        [
            ({'timeout': -3}, '`timeout` must be greater than 0 seconds, got -3'),
            ({'attribute_change_failures': True}, '`attribute_change_failures` needs `datadog_app_key`'),
            ({'urgencies': 'high'}, "`urgencies` must be a list of high, low or both, got 'high'"),
        ],
        ids=['timeout', 'attribution-without-app-key', 'urgencies-not-a-list'],
    )
    def test_configuration_error(self, aggregator, dd_run_check, world: World, options, expected) -> None:
        """One alert that names the option: `can_submit` CRITICAL; no API was tried, so `can_connect` is UNKNOWN."""
        with pytest.raises(Exception, match='ConfigurationError'):
            dd_run_check(world.check(tags=['team:sre'], **options))

        assert_service_check(aggregator, SUBMIT_CHECK, AgentCheck.CRITICAL, tags=['team:sre'], count=1)
        ((_, message),) = submit_statuses(aggregator)
        assert message.startswith('Invalid configuration: ') and expected in message
        assert '\n' not in message
        for api in ('pagerduty', 'datadog'):
            assert_service_check(
                aggregator, SERVICE_CHECK, AgentCheck.UNKNOWN, tags=['team:sre', 'api:{}'.format(api)], count=1
            )
            ((_, unknown),) = statuses(aggregator, api)
            assert unknown == 'Not tried: the configuration is invalid (see pagerduty_dora.can_submit)'
        reported = aggregator.service_checks(SERVICE_CHECK) + aggregator.service_checks(SUBMIT_CHECK)
        assert [sc.name for sc in reported if sc.status == AgentCheck.CRITICAL] == [SUBMIT_CHECK]
        assert world.pd_requests() == 0

    def test_configuration_error_is_reported_every_run(self, aggregator, dd_run_check, world: World) -> None:
        """The failed initialization runs again at the next run, and so does its alert: it lasts until the fix."""
        check = world.check(timeout=-3)
        for _ in range(2):
            with pytest.raises(Exception, match='ConfigurationError'):
                dd_run_check(check)

        assert [status for status, _ in submit_statuses(aggregator)] == [AgentCheck.CRITICAL] * 2
        assert world.pd_requests() == 0

    def test_url_refused_by_the_clients(self, aggregator, dd_run_check, world: World, datadog_agent) -> None:
        """The last initialization builds the clients: a base URL they refuse is reported as a configuration error."""
        # Without `datadog_api_url` the URL is built from the Agent's `site`, which only the client checks.
        datadog_agent._config['site'] = 'evil.example\\@127.0.0.1'
        instance = world.instance(tags=['team:sre'])
        del instance['datadog_api_url']
        with pytest.raises(Exception, match='ConfigurationError'):
            dd_run_check(PagerdutyDoraCheck('pagerduty_dora', {}, [instance]))

        assert_service_check(aggregator, SUBMIT_CHECK, AgentCheck.CRITICAL, tags=['team:sre'], count=1)
        ((_, message),) = submit_statuses(aggregator)
        assert message.startswith('Invalid configuration: datadog API: refusing the base URL')
        assert world.pd_requests() == 0

    def test_recovers(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        check = world.check()
        token = world.account.token
        world.account.token = 'u+pdRotatedKey_Z1xCv2'
        with pytest.raises(Exception, match='401 Unauthorized'):
            dd_run_check(check)
        world.account.token = token
        aggregator.reset()
        dd_run_check(check)

        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.OK, tags=['api:pagerduty'], count=1)


class TestCanSubmit:
    """`can_submit` is CRITICAL with the reason when the check submits nothing, so that a monitor fires."""

    def test_ok(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        dd_run_check(world.check(tags=['team:sre']))

        assert_service_check(aggregator, SUBMIT_CHECK, AgentCheck.OK, tags=['team:sre'], count=1)

    def test_catalog_files_matching_nothing(self, aggregator, dd_run_check, world: World, tmp_path) -> None:
        pattern = str(tmp_path / 'definitions' / '*.yaml')
        check = world.check(catalog_files=[pattern], tags=['team:sre'])
        world.account.trigger(world.account.add_service('Checkout API'), 'Down')

        with pytest.raises(Exception, match='Nothing is submitted') as raised:
            dd_run_check(check)

        assert_service_check(aggregator, SUBMIT_CHECK, AgentCheck.CRITICAL, tags=['team:sre'], count=1)
        ((_, message),) = submit_statuses(aggregator)
        assert message.startswith('Nothing is submitted: `catalog_files` has never loaded (')
        assert message in str(raised.value)
        # The APIs are fine: the one alert is `can_submit`, not `can_connect`.
        for api in ('pagerduty', 'datadog'):
            assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.OK, tags=['team:sre', 'api:' + api], count=1)
        assert world.dora.posts == [] and aggregator.events == []

        (tmp_path / 'definitions').mkdir()
        (tmp_path / 'definitions' / 'checkout.yaml').write_text(
            'schema-version: v2.2\ndd-service: checkout\nteam: payments\n', encoding='utf-8'
        )
        aggregator.reset()
        world.account.advance(60)
        dd_run_check(check)
        assert_service_check(aggregator, SUBMIT_CHECK, AgentCheck.OK, count=1)
        assert len(world.dora.posts) == 1

    def test_catalog_api_answering_404(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        world.datadog.fault = lambda request: Reply(404, {'errors': ['Not found']}) if request.method == 'GET' else None

        with pytest.raises(Exception, match='Nothing is submitted'):
            dd_run_check(world.check(datadog_app_key=DD_APP_KEY))

        ((status, message),) = submit_statuses(aggregator)
        assert status == AgentCheck.CRITICAL
        assert message.startswith('Nothing is submitted: the Datadog Software Catalog (`datadog_app_key`) has never')
        assert '404' in message

    def test_api_failure_is_one_alert(self, aggregator, dd_run_check, world: World, simulated_run) -> None:
        url = 'http://127.0.0.1:{}'.format(closed_port())
        with pytest.raises(Exception, match='cannot connect'):
            dd_run_check(world.check(datadog_api_url=url, datadog_app_key=DD_APP_KEY))

        assert_service_check(aggregator, SERVICE_CHECK, AgentCheck.CRITICAL, tags=['api:datadog'], count=1)
        ((status, message),) = submit_statuses(aggregator)
        assert status == AgentCheck.UNKNOWN
        assert message == (
            'The Datadog API failed (see pagerduty_dora.can_connect): nothing is submitted until a catalog source loads'
        )


class TestDatadogKeyMessages:
    """A 401/403 from Datadog tells a wrong key apart from a key missing one permission."""

    @pytest.mark.parametrize(
        'endpoint, status, body, expected',
        [
            (
                '/api/v2/services/definitions',
                403,
                '{"errors":["Forbidden"]}',
                '`datadog_app_key` or `datadog_api_key` (or the Agent `api_key`) is wrong or revoked',
            ),
            (
                '/api/v2/team',
                401,
                '{"errors":["Unauthorized"]}',
                'is wrong or revoked',
            ),
            (
                'dora_deployments_list',
                403,
                '{"errors":["Failed permission authorization checks"]}',
                'the keys are valid, but the user or service account of `datadog_app_key` lacks the '
                '`dora_metrics_read` permission',
            ),
            (
                'dora_failure',
                403,
                '{"errors":["Forbidden"]}',
                'Datadog rejected the API key (403 Forbidden): check `datadog_api_key`',
            ),
        ],
        ids=['catalog-wrong-key', 'teams-unauthorized', 'deployments-missing-permission', 'dora-api-key'],
    )
    def test_message(self, world: World, endpoint: str, status: int, body: str, expected: str) -> None:
        check = world.check()
        check.load_configuration_models()
        error = AuthError('datadog', '{} answered {}'.format(endpoint, status), status, body)
        error.endpoint = endpoint

        assert expected in check._auth_message(error)
