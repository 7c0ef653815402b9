# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Mistakes a first configuration makes, each told where the user looks, with a fix that works as written."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from datadog_checks.base import AgentCheck
from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.check import NO_ENV_WARNING
from datadog_checks.pagerduty_dora.common.permissions import EU_PAGERDUTY_URL
from datadog_checks.pagerduty_dora.wiring import pagerduty_url_hint

from ..harness import World, assert_service_check

SUBMIT_CHECK = 'pagerduty_dora.can_submit'


def first_run_warnings(world: World, dd_run_check: Any, **options: Any) -> list[str]:
    check = world.check(**options)
    dd_run_check(check)
    return check.get_warnings()


def submit_message(aggregator: Any) -> str:
    ((service_check,),) = [aggregator.service_checks(SUBMIT_CHECK)]
    assert service_check.status == AgentCheck.CRITICAL
    return service_check.message


class TestWarnings:
    """Options accepted in silence before: each is now a warning on the first run."""

    def test_missing_env(self, world, dd_run_check, simulated_run):
        warnings = first_run_warnings(world, dd_run_check)

        assert [w for w in warnings if w.startswith(NO_ENV_WARNING)] == [
            'No `env` is set: every DORA failure, event and metric of this instance is sent without an env; set '
            '`env` (for example `env: prod`) to see the failures under their environment in DORA Metrics'
        ]

    def test_env_set(self, world, dd_run_check, simulated_run):
        assert first_run_warnings(world, dd_run_check, env='prod') == []

    def test_site_points_to_datadog_api_url(self, world, dd_run_check, simulated_run):
        warnings = first_run_warnings(world, dd_run_check, env='prod', site='datadoghq.eu')

        assert warnings == [
            "Unknown option `site` in the instance is ignored: the check sends DORA failures to the Agent's `site`; "
            'for another Datadog site, set `datadog_api_url` (for example https://api.datadoghq.eu)'
        ]


class TestConfigurationMessages:
    """A configuration error is one line that names the option, and its suggestion is valid as written."""

    def test_api_key_for_api_token(self, world, dd_run_check, aggregator):
        instance = world.instance(env='prod')
        instance['api_key'] = instance.pop('api_token')
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])

        with pytest.raises(Exception, match='ConfigurationError'):
            dd_run_check(check)

        assert submit_message(aggregator) == (
            'Invalid configuration: api_token: Field required (the instance has `api_key`: did you mean `api_token`?)'
        )
        warnings = check.get_warnings()
        assert len(warnings) == 1 and warnings[0].startswith(
            'Unknown option `api_key` in the instance is ignored: did you mean `api_token` (the PagerDuty REST API '
            'key)?'
        )

    def test_service_overrides_as_a_mapping(self, world, dd_run_check, aggregator, simulated_run):
        checkout = world.account.add_service('Checkout API')
        with pytest.raises(Exception, match='ConfigurationError'):
            dd_run_check(world.check(env='prod', service_overrides={checkout: 'checkout'}))

        message = submit_message(aggregator)
        assert message.startswith('Invalid configuration: `service_overrides` must be a list of entries, got a mapping')
        suggested = message.split('like `service_overrides: ', 1)[1].rstrip('`')
        assert suggested == '[{pagerduty_service: %s, service: checkout}]' % checkout
        # The suggestion, pasted as YAML, is a valid configuration that maps the service.
        check = world.check(env='prod', service_overrides=yaml.safe_load(suggested))
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(checkout, 'Down')
        world.account.advance(60)
        dd_run_check(check)
        assert world.dora.failures['pagerduty-incident-' + incident]['services'] == ['checkout']
        assert check.get_warnings() == []


class TestEuUrlHint:
    """The EU URL is suggested only to an account that is not on it already."""

    @pytest.mark.parametrize(
        'url, expected',
        [
            ('https://api.pagerduty.com', 'check `pagerduty_api_url` (EU accounts use https://api.eu.pagerduty.com)'),
            (
                EU_PAGERDUTY_URL + '/',
                "check `pagerduty_api_url` (this is the EU service region's URL; US accounts use the default)",
            ),
        ],
        ids=['us', 'eu'],
    )
    def test_connection_hint(self, url, expected):
        assert pagerduty_url_hint(url) == expected

    def test_unauthorized_at_the_eu_url(self, world):
        from datadog_checks.pagerduty_dora.common.errors import AuthError

        check = world.check(pagerduty_api_url=EU_PAGERDUTY_URL)
        check.load_configuration_models()
        message = check._auth_message(AuthError('pagerduty', '/incidents answered 401', 401))

        assert 'EU accounts use' not in message
        assert message.endswith(
            'or belongs to the US service region (its URL is the default, https://api.pagerduty.com)'
        )


class TestScope:
    """Overrides, `service_ids` and `team_ids` that name nothing in PagerDuty are warned about, every run."""

    @pytest.fixture
    def account(self, world):
        team = world.account.add_team('Payments')
        return {'team': team, 'service': world.account.add_service('Checkout API', team_ids=[team])}

    def test_known_names_are_quiet(self, world, dd_run_check, account, simulated_run):
        overrides = [
            {'pagerduty_service': account['service'], 'service': 'checkout'},
            {'pagerduty_service': 'checkout api', 'team': 'payments'},
            {'pagerduty_service': world.account.service_url(account['service']), 'env': 'staging'},
        ]
        warnings = first_run_warnings(
            world, dd_run_check, env='prod', service_overrides=overrides, team_ids=[account['team']]
        )

        assert warnings == []

    def test_unknown_names(self, world, dd_run_check, account, simulated_run):
        check = world.check(
            env='prod',
            service_overrides=[
                {'pagerduty_service': 'Checkout', 'service': 'checkout'},
                {'pagerduty_service': 'https://acme.pagerduty.com/service-directory/PNOSUCH', 'team': 'payments'},
            ],
            service_ids=[account['service'], 'PNOSUCH'],
            team_ids=['PT0GONE'],
        )
        dd_run_check(check)
        expected = [
            '`service_ids` entry PNOSUCH is not a PagerDuty service this key can read: no incident of it is collected',
            '`team_ids` entry PT0GONE is not a PagerDuty team this key can read: no incident of it is collected',
            "`service_overrides` entry #1 names 'Checkout', which is no PagerDuty service (by ID, name or URL): it "
            'applies to no incident',
            "`service_overrides` entry #2 names 'https://acme.pagerduty.com/service-directory/PNOSUCH', which is no "
            'PagerDuty service (by ID, name or URL): it applies to no incident',
        ]
        assert check.get_warnings() == expected
        asked = world.pd_requests()

        # Repeated on every run, without asking PagerDuty again until the catalog refresh interval has passed.
        world.account.advance(60)
        dd_run_check(check)
        assert check.get_warnings() == expected
        lookups = [r.path for r in world.pagerduty.requests[asked:] if r.path.startswith(('/services', '/teams'))]
        assert lookups == []

        world.account.add_service('Checkout')
        world.account.advance(600)
        dd_run_check(check)
        assert check.get_warnings() == expected[:2] + expected[3:]

    def test_lookup_failure_changes_nothing(self, aggregator, dd_run_check, world, account, simulated_run):
        from ..fakes.server import Reply

        world.pagerduty.server.fault = lambda request: (
            Reply(403, {'error': {'message': 'Access Denied'}}) if request.path.startswith('/services') else None
        )
        check = world.check(env='prod', service_overrides=[{'pagerduty_service': 'Nowhere', 'service': 'x'}])
        dd_run_check(check)

        assert check.get_warnings() == []
        assert_service_check(aggregator, 'pagerduty_dora.can_connect', AgentCheck.OK, tags=['api:pagerduty'], count=1)
