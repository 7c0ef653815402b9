# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Mapping, filters and outputs end to end: the check against fakes of PagerDuty, the catalog and DORA."""

import json

import pytest
from datadog_api_client import ApiClient as DatadogApiClient
from datadog_api_client import Configuration
from datadog_api_client.v2.model.dora_failure_request import DORAFailureRequest

from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora.collection.collector import STATE_KEY
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.catalog_api import v3_entity, v22_definition
from ..harness import DD_APP_KEY, transition_of

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')


@pytest.fixture
def estate(world, tmp_path):
    """A PagerDuty account and a catalog (API and files) in which each mapping rule has one service."""
    account = world.account
    payments = account.add_team('Payments Team')
    billing = account.add_team('billing')
    ops = account.add_team('Ops')
    services = {
        'service_url': account.add_service('Checkout (PD)', team_ids=[payments]),
        'service_name': account.add_service(' SEARCH ', team_ids=[ops]),
        'team_name': account.add_service('Ledger jobs', team_ids=[billing]),
        'service_name_as_team': account.add_service('Payments', team_ids=[ops]),
        'fallback': account.add_service('Legacy cron', team_ids=[ops]),
        'override': account.add_service('Edge proxy', team_ids=[ops]),
    }
    checkout_url = account.service_url(services['service_url']).replace('https://acme', 'HTTP://ACME') + '/'
    world.catalog.definitions.append(v22_definition('checkout-api', 'payments', checkout_url))
    world.catalog.teams.extend([('payments', 'Payments Team'), ('billing', 'Billing')])
    catalog_file = tmp_path / 'search.yaml'
    catalog_file.write_text('---\n' + json.dumps(v3_entity('search', 'discovery')) + '\n', encoding='utf-8')
    options = {
        'datadog_app_key': DD_APP_KEY,
        'catalog_files': [str(tmp_path / '*.yaml')],
        'env': 'prod',
        'service_overrides': [{'pagerduty_service': services['override'], 'service': 'edge', 'env': 'edge-prod'}],
    }
    return services, options


def to_model(attributes):
    client = DatadogApiClient(Configuration())
    return client.deserialize(json.dumps({'data': {'attributes': attributes}}), (DORAFailureRequest,), True)


class TestMapping:
    """Each rule of the README's mapping table, from both catalog sources, shows in failures, events and metrics."""

    EXPECTED = {
        'service_url': (['checkout-api'], 'payments', 'prod'),
        'service_name': (['search'], 'discovery', 'prod'),
        'team_name': (None, 'billing', 'prod'),
        'service_name_as_team': (None, 'payments', 'prod'),
        'fallback': (['Legacy cron'], 'Ops', 'prod'),
        'override': (['edge'], None, 'edge-prod'),
    }

    @pytest.mark.parametrize('rule', list(EXPECTED), ids=list(EXPECTED))
    def test_rule(self, world, estate, dd_run_check, aggregator, rule):
        services, options = estate
        check = world.check(**options)
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services[rule], 'Broken', priority='P2')
        world.account.advance(60)
        dd_run_check(check)

        failure = world.dora.failures[failure_id(incident)]
        expected_services, expected_team, expected_env = self.EXPECTED[rule]
        assert failure.get('services') == expected_services
        if expected_team is not None:
            assert failure.get('team') == expected_team
        assert failure['env'] == expected_env

        events = [e for e in aggregator.events if e['aggregation_key'] == incident]
        assert [transition_of(e) for e in events] == ['triggered']
        assert rule in events[0]['msg_text']
        aggregator.assert_metric('pagerduty_dora.mapping.matches', count=1, tags=None)
        matched = [
            m for m in aggregator.metrics('pagerduty_dora.mapping.matches') if 'mapping_rule:{}'.format(rule) in m.tags
        ]
        assert len(matched) == 1
        aggregator.assert_metric_has_tag('pagerduty_dora.catalog.entries', 'source:files')
        aggregator.assert_metric_has_tag('pagerduty_dora.catalog.entries', 'source:datadog_api')
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)


class TestCatalogGate:
    """A configured catalog that never loaded holds everything back: no mis-tagged data, no cursor move."""

    def test_nothing_before_the_catalog_loads(self, world, estate, dd_run_check, aggregator, datadog_agent):
        services, options = estate
        world.account.trigger(services['fallback'], 'Early')
        check = world.check(**dict(options, datadog_app_key='not-the-app-key'))
        # The refused key is the run's error (`can_connect` CRITICAL); nothing is submitted meanwhile.
        with pytest.raises(Exception, match='wrong or revoked'):
            dd_run_check(check)
        assert world.dora.posts == []
        assert check.warnings == [
            'Catalog source datadog_api has never loaded (the Datadog API answered 403 to GET /api/v2/catalog/entity: '
            'the application key (datadog_app_key) or the API key (datadog_api_key) is wrong or revoked, or '
            'datadog_api_url is not your Datadog site; if both keys are right, the application key lacks the '
            'apm_service_catalog_read permission); nothing is submitted until it does',
            'No catalog source has loaded yet; nothing is submitted and the collection cursor stays where it is '
            'until one does',
        ]
        assert check.read_persistent_cache(STATE_KEY) == ''

        check = world.check(**options)
        dd_run_check(check)
        world.account.advance(60)
        dd_run_check(check)
        assert len(world.dora.posts) == 1


class TestFilters:
    """`urgencies` and `priorities` decide which incidents are failures."""

    def test_filtered_incidents_produce_no_output(self, world, estate, dd_run_check, aggregator):
        services, options = estate
        check = world.check(urgencies=['high'], priorities=['P1', 'none'])
        dd_run_check(check)
        world.account.advance(60)
        kept = [
            world.account.trigger(services['fallback'], 'P1', priority='P1'),
            world.account.trigger(services['fallback'], 'No priority'),
        ]
        dropped = [
            world.account.trigger(services['fallback'], 'Low', urgency='low', priority='P1'),
            world.account.trigger(services['fallback'], 'P3', priority='P3'),
        ]
        world.account.advance(60)
        dd_run_check(check)
        assert set(world.dora.failures) == {failure_id(i) for i in kept}
        assert {e['aggregation_key'] for e in aggregator.events} == set(kept)
        aggregator.assert_metric('pagerduty_dora.incidents.filtered', count=len(dropped))


class TestSwitches:
    """`submit_dora_failures` and `collect_events` turn their output off and nothing else."""

    @pytest.mark.parametrize(
        'options, posts, events',
        [({'submit_dora_failures': False}, 0, 1), ({'collect_events': False}, 1, 0)],
        ids=['no-dora', 'no-events'],
    )
    def test_switches(self, world, estate, dd_run_check, aggregator, options, posts, events):
        services, _ = estate
        check = world.check(**options)
        dd_run_check(check)
        world.account.advance(60)
        world.account.trigger(services['fallback'], 'Down')
        world.account.advance(60)
        dd_run_check(check)
        assert len(world.dora.posts) == posts
        assert len(aggregator.events) == events
        aggregator.assert_metric('pagerduty_dora.incidents.triggered', count=1)

    def test_delivery_turned_on_later_sends_what_was_seen(self, world, estate, dd_run_check, aggregator):
        services, _ = estate
        incident = world.account.trigger(services['fallback'], 'Down')
        world.account.advance(1)
        dd_run_check(world.check(submit_dora_failures=False))
        aggregator.assert_metric_has_tag('pagerduty_dora.mapping.matches', 'mapping_rule:fallback', count=1)
        assert world.dora.posts == []

        aggregator.reset()
        world.account.advance(60)
        dd_run_check(world.check())
        assert set(world.dora.failures) == {failure_id(incident)}
        aggregator.assert_metric('pagerduty_dora.mapping.matches', count=0)


class TestPublishedSchema:
    """Every failure the check posts over a whole lifecycle matches Datadog's published request model."""

    def test_every_post_deserializes(self, world, estate, dd_run_check):
        services, options = estate
        check = world.check(**options)
        dd_run_check(check)
        incidents = [world.account.trigger(s, 'Down', priority='P1') for s in services.values()]
        for step in (world.account.acknowledge, world.account.resolve, world.account.reopen, world.account.resolve):
            world.account.advance(60)
            for incident in incidents:
                step(incident)
            world.account.advance(60)
            dd_run_check(check)
        assert len(world.dora.posts) == len(incidents) * 4
        for attributes in world.dora.posts:
            model = to_model(attributes)
            assert model.to_dict() == {'data': {'attributes': attributes}}
        assert world.dora.rejected == []


class TestChangeFailureAttribution:
    """Opt-in attribution, wired through the check: the triggering event names the blamed deployment."""

    def test_incident_blames_the_latest_deployment_of_its_service_and_env(
        self, world, estate, dd_run_check, aggregator
    ):
        services, options = estate
        check = world.check(**dict(options, attribute_change_failures=True, attribution_window=86400))
        dd_run_check(check)
        start = world.account.now
        world.deployments.add('checkout-api', 'prod', 'v41', start - 3 * 3600)
        blamed = world.deployments.add('checkout-api', 'prod', 'v42', start - 600)
        world.deployments.add('checkout-api', 'staging', 'v43', start - 300)
        world.deployments.add('search', 'prod', 'v7', start - 120)
        incident = world.account.trigger(services['service_url'], 'Checkout errors', priority='P1')
        world.account.advance(60)
        dd_run_check(check)
        # The deployment is searched once the settle time has passed (docs/change-failure-attribution.md).
        world.account.advance(300)
        dd_run_check(check)

        assert set(world.deployments.failed()) == {blamed}
        marked = [e for e in aggregator.events if e['aggregation_key'] == incident and 'v42' in e['msg_text']]
        assert len(marked) == 1
        aggregator.assert_metric_has_tag('pagerduty_dora.attribution.results', 'outcome:attributed', count=1)

        aggregator.reset()
        dd_run_check(world.check(**dict(options, attribute_change_failures=True)))
        assert len([p for p in world.deployments.patches if p[0] == blamed]) == 1

    def test_off_by_default(self, world, estate, dd_run_check):
        services, options = estate
        dd_run_check(world.check(**options))
        world.deployments.add('checkout-api', 'prod', 'v42', world.account.now - 600)
        world.account.trigger(services['service_url'], 'Checkout errors')
        world.account.advance(60)
        dd_run_check(world.check(**options))
        assert world.deployments.patches == []
        assert world.deployments.searches == []
