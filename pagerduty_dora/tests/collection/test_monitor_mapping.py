# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Incidents a Datadog monitor triggered: what PagerDuty holds of the monitor, and the mapping it gives, end to end."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora.collection.monitors import MonitorLookup, monitor_tags
from datadog_checks.pagerduty_dora.collection.record import RECORD, IncidentRecord
from datadog_checks.pagerduty_dora.common.errors import (
    AuthError,
    BudgetExhausted,
    ConnectionFailed,
    DeadlineReached,
    RateLimited,
    RequestRejected,
    TransientError,
    UnreadableResponse,
)
from datadog_checks.pagerduty_dora.datadog.dora import failure_id
from datadog_checks.pagerduty_dora.demo.rendering import datadog_event
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident
from datadog_checks.pagerduty_dora.pagerduty.monitor import (
    KEPT_MAPPING,
    MAX_SERVICES,
    NO_MONITOR,
    MonitorAlert,
    MonitorMapping,
    datadog_alert,
    decide,
    first_alert,
    parse_monitor_url,
)

from ..fakes.catalog_api import monitor, v22_definition
from ..fakes.pagerduty import raw_incident
from ..harness import DAY, DD_APP_KEY, event_keys, incident_events, stored_state, transition_of

MONITOR = 4207311
QUERY = 'avg(last_5m):sum:trace.http.request.errors{*} by {service,env,team} > 5'


def alert_body(client: str, client_url: str, tags: Any = 'env:prod') -> dict[str, Any]:
    """An alert's `body` as `GET /incidents/{id}/alerts` returns it for an Events API v2 event."""
    details = {'event_type': 'query_alert_monitor', 'monitor_state': 'Triggered', 'tags': tags}
    cef = {'client': client, 'client_url': client_url, 'details': details, 'severity': 'error', 'version': '1.0'}
    return {'type': 'alert_body', 'contexts': [], 'details': details, 'cef_details': cef}


class TestMonitorUrl:
    """A monitor URL in its current and older forms; anything else is no monitor."""

    @pytest.mark.parametrize(
        'url, expected',
        [
            (
                'https://app.datadoghq.com/monitors/123?group=env%3Aprod%2Cservice%3Acheckout%2Cteam%3Apayments',
                (123, (('env', 'prod'), ('service', 'checkout'), ('team', 'payments'))),
            ),
            ('https://app.datadoghq.eu/monitors/77', (77, ())),
            ('https://acme.us5.datadoghq.com/monitors/77/?group=service:web', (77, (('service', 'web'),))),
            (
                'https://app.datadoghq.com/monitors#72563?to_ts=1452282540000&group=host%3Aweb-09%2Cenv%3Aprod&from_ts=1',
                (72563, (('env', 'prod'),)),
            ),
            (
                'https://app.datadoghq.com/monitors/9?group=service%3Aa%2Cb%2Cenv%3Aprod',
                (9, (('service', 'a'), ('env', 'prod'))),
            ),
            ('https://app.datadoghq.com/monitors/9?group=service%3Aa%3Db%2Cenv%3Aprod', (9, (('env', 'prod'),))),
        ],
        ids=['current', 'eu-no-group', 'custom-subdomain', 'older-fragment', 'comma-in-value', 'equals-in-value'],
    )
    def test_read(self, url, expected):
        assert parse_monitor_url(url) == expected

    @pytest.mark.parametrize(
        'url',
        [
            'https://evil.example.com/monitors/123?group=service:x',
            'https://app.datadoghq.com.evil.example/monitors/123',
            'http://app.datadoghq.com/monitors/123',
            'https://user:pw@app.datadoghq.com/monitors/123',
            'https://app.datadoghq.com/dashboard/123',
            'https://app.datadoghq.com/monitors/0',
            'https://app.datadoghq.com/monitors/' + '9' * 40,
            'https://app.datadoghq.com/monitors/1?group=' + 'a' * 20000,
            None,
            12,
        ],
        ids=[
            'other-host',
            'lookalike-host',
            'plain-http',
            'credentials',
            'not-a-monitor',
            'zero',
            'huge-id',
            'huge',
            'none',
            'number',
        ],
    )
    def test_not_a_monitor(self, url):
        assert parse_monitor_url(url) is None


class TestAlert:
    """Only Datadog's integration names a monitor; its tags are read bounded."""

    def test_alert_body(self):
        body = alert_body('Datadog', 'https://app.datadoghq.com/monitors/5?group=service%3Aweb', 'env:prod, team:web')
        assert datadog_alert(body) == MonitorAlert(5, (('service', 'web'),), ('env:prod', 'team:web'))

    def test_trigger_channel_with_client_at_the_top(self):
        channel = {'type': 'api', 'client': 'Datadog', 'client_url': 'https://app.datadoghq.com/monitors/5'}
        channel['details'] = {'tags': 'service:web'}
        assert datadog_alert(channel) == MonitorAlert(5, (), ('service:web',))

    @pytest.mark.parametrize(
        'client', ['Prometheus', 'Grafana', 'New Relic', 'Alertmanager', 'Datadog Agent', '', None], ids=str
    )
    def test_other_clients_are_no_monitor(self, client):
        assert datadog_alert(alert_body(client, 'https://app.datadoghq.com/monitors/5')) is None

    def test_datadog_client_to_another_host_is_no_monitor(self):
        assert datadog_alert(alert_body('Datadog', 'https://grafana.example.com/monitors/5')) is None

    def test_first_alert_is_the_oldest(self):
        alerts = [
            {
                'created_at': '2026-11-02T12:05:00Z',
                'body': alert_body('Datadog', 'https://app.datadoghq.com/monitors/2'),
            },
            {
                'created_at': '2026-11-02T12:00:00Z',
                'body': alert_body('Datadog', 'https://app.datadoghq.com/monitors/1'),
            },
        ]
        assert first_alert(alerts).monitor_id == 1
        assert first_alert([]) is None
        assert first_alert({'alerts': []}) is None


class TestDecide:
    """Datadog's first step: the alerted group, then the monitor's tags."""

    @pytest.mark.parametrize(
        'alert, expected',
        [
            (
                MonitorAlert(1, (('env', 'staging'), ('service', 'search'), ('team', 'search-team')), ('team:ops',)),
                MonitorMapping(1, 'monitor_group', ('search',), 'search-team', 'staging'),
            ),
            (
                MonitorAlert(1, (('service', 'search'),), ('env:prod', 'team:ops')),
                MonitorMapping(1, 'monitor_group', ('search',), 'ops', 'prod'),
            ),
            (
                MonitorAlert(1, (), ('service:a', 'service:b', 'service:a', 'env:prod', 'team:x', 'team:y')),
                MonitorMapping(1, 'monitor_tags', ('a', 'b'), None, 'prod'),
            ),
            (MonitorAlert(1, (), ('env:prod', 'env:staging')), MonitorMapping(1, '', (), None, None)),
            (MonitorAlert(1, (), ('host:web-1', 'region:eu')), MonitorMapping(1, '', (), None, None)),
            (None, NO_MONITOR),
            (
                MonitorAlert(1, (('service', 'web'), ('version', '1.4.2')), ('version:1.4.1',)),
                MonitorMapping(1, 'monitor_group', ('web',), None, None, '1.4.2'),
            ),
            (
                MonitorAlert(1, (), ('service:web', 'version:1.4.2')),
                MonitorMapping(1, 'monitor_tags', ('web',), version='1.4.2'),
            ),
            (
                MonitorAlert(1, (), ('service:web', 'version:1', 'version:2')),
                MonitorMapping(1, 'monitor_tags', ('web',)),
            ),
            (MonitorAlert(1, (), ('version:1.4.2',)), MonitorMapping(1, '', (), version='1.4.2')),
        ],
        ids=[
            'multi-alert',
            'group-then-tags',
            'tags',
            'two-envs',
            'nothing-to-map-by',
            'no-monitor',
            'version-of-the-group',
            'version-tag',
            'two-version-tags',
            'version-maps-nothing',
        ],
    )
    def test_decide(self, alert, expected):
        assert decide(alert) == expected

    def test_monitor_tags_from_datadog_win_over_the_alert(self):
        alert = MonitorAlert(1, (), ('service:from-alert',))
        assert decide(alert, ('service:from-monitor',)).services == ('from-monitor',)

    def test_many_long_and_odd_tags_are_bounded(self):
        tags = ','.join(['service:s{}'.format(i) for i in range(40)] + ['env:' + 'x' * 250, 'team:a=b', 'team:ok'])
        body = alert_body('Datadog', 'https://app.datadoghq.com/monitors/3', tags)
        mapping = decide(datadog_alert(body))
        assert len(mapping.services) == MAX_SERVICES
        assert (mapping.env, mapping.team) == (None, 'ok')

    def test_multi_alert_monitor_keeps_the_tags_it_does_not_group_by(self):
        answer = monitor(1, 'Errors', QUERY.replace(',team', ''), ['service:all', 'team:payments', 'env:prod'])
        assert monitor_tags(answer) == ('team:payments',)
        assert monitor_tags({'errors': ['Monitor not found']}) is None


class TestKeptValue:
    """The mapping kept per incident reads back as written, refuses what it never writes, and old records load."""

    def test_round_trip(self):
        kept = MonitorMapping(7, 'monitor_tags', ('a', 'b'), 'payments', 'prod')
        assert MonitorMapping.from_json(kept.to_json()) == kept
        assert MonitorMapping.from_json(NO_MONITOR.to_json()) == NO_MONITOR
        versioned = MonitorMapping(7, 'monitor_group', ('a',), None, 'prod', '1.4.2')
        assert MonitorMapping.from_json(versioned.to_json()) == versioned
        assert KEPT_MAPPING.decode(KEPT_MAPPING.encode(versioned)) == versioned

    def test_a_mapping_stored_without_a_version_loads(self):
        stored = {'id': 7, 'rule': 'monitor_tags', 'services': ['a'], 'team': None, 'env': 'prod'}
        assert KEPT_MAPPING.decode(stored) == MonitorMapping(7, 'monitor_tags', ('a',), None, 'prod')
        assert KEPT_MAPPING.decode(stored).version is None

    @pytest.mark.parametrize(
        'raw',
        [
            [],
            {'id': True},
            {'id': -1},
            {'id': 1, 'rule': 'anything'},
            {'id': 1, 'services': ['s'] * (MAX_SERVICES + 1)},
            {'id': 1, 'services': ['a b']},
            {'id': 1, 'env': 'x' * 201},
            {'id': 1, 'version': '1.4 2'},
            {'id': 1, 'version': 7},
        ],
        ids=[
            'not-object',
            'bool-id',
            'negative-id',
            'unknown-rule',
            'too-many',
            'space',
            'too-long',
            'version-with-a-space',
            'version-not-text',
        ],
    )
    def test_refused(self, raw):
        with pytest.raises(ValueError):
            MonitorMapping.from_json(raw)

    def test_a_record_stored_before_it_loads(self):
        record = IncidentRecord('triggered', 'P1', 'high', 'PSVC001', 'Checkout', 1.0, None)
        values = RECORD.encode(record)
        assert values[-1] is None
        # A record of an earlier layout has no monitor: it is decided again.
        assert RECORD.decode(values[:-1]) == record
        record.monitor = MonitorMapping(7, 'monitor_group', ('a',), None, 'staging')
        assert RECORD.decode(RECORD.encode(record)) == record

    def test_a_kept_mapping_that_cannot_be_read_is_decided_again(self):
        record = IncidentRecord('triggered', 'P1', 'high', 'PSVC001', 'Checkout', 1.0, None)
        values = RECORD.encode(record)
        values[-1] = {'id': -1}
        assert RECORD.decode(values).monitor is None


# End to end: the check against fakes of PagerDuty (alerts, trigger entries), the catalog, monitors and DORA.


@pytest.fixture
def estate(world):
    """One PagerDuty service that takes pages for several Datadog services, and a catalog that knows `checkout`."""
    account = world.account
    ops = account.add_team('Ops')
    shared = account.add_service('Shared on-call', team_ids=[ops])
    world.catalog.definitions.append(v22_definition('checkout', 'payments'))
    world.catalog.teams.extend([('payments', 'Payments Team'), ('search-team', 'Search')])
    return shared, {'datadog_app_key': DD_APP_KEY, 'env': 'prod'}


def live(world, options, dd_run_check):
    """A check that has gone live on the account (its first run), ready to see new incidents."""
    check = world.check(**options)
    dd_run_check(check)
    world.account.advance(60)
    return check


def page(world, dd_run_check, check, service, event, title='Errors above 5%'):
    """An incident triggered on `service` by `event`, and the run that sees it; returns its id."""
    incident = world.account.trigger(service, title, priority='P2', event=event)
    world.account.advance(60)
    dd_run_check(check)
    return incident


def alert_requests(world, incident):
    return world.pagerduty.count('/incidents/{}/alerts'.format(incident))


pytestmark_e2e = pytest.mark.usefixtures('datadog_agent', 'simulated_run')


@pytestmark_e2e
class TestMonitorMapping:
    """The monitor step between the overrides and the catalog rules, as Datadog's own matching has it."""

    def test_multi_alert_group_maps_service_env_and_team(self, world, estate, dd_run_check, aggregator):
        shared, options = estate
        check = live(world, options, dd_run_check)
        event = datadog_event(MONITOR, ['env:staging', 'service:search', 'team:search-team'], ['team:ops'])
        incident = page(world, dd_run_check, check, shared, event)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['team'], failure['env']) == (['search'], 'search-team', 'staging')
        events = [e for e in aggregator.events if e['aggregation_key'] == incident]
        assert [transition_of(e) for e in events] == ['triggered']
        assert 'monitor_group' in events[0]['msg_text'] and str(MONITOR) in events[0]['msg_text']
        matched = [
            m for m in aggregator.metrics('pagerduty_dora.mapping.matches') if 'mapping_rule:monitor_group' in m.tags
        ]
        assert len(matched) == 1
        assert {'service:search', 'env:staging', 'team:search-team'} <= set(matched[0].tags)
        # The group said all there is: Datadog's monitor API is not asked.
        assert world.datadog.count('GET', '/api/v1/monitor') == 0
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)

    def test_monitor_tags_map(self, world, estate, dd_run_check):
        shared, options = estate
        world.catalog.monitors[MONITOR] = monitor(
            MONITOR, 'Checkout errors', 'avg:errors{*} > 5', ['service:checkout', 'env:prod-eu']
        )
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, tags=['service:old', 'env:old']))

        failure = world.dora.failures[failure_id(incident)]
        # The monitor's own tags (read from Datadog) give service and env; the catalog gives the service's team.
        assert (failure['services'], failure['team'], failure['env']) == (['checkout'], 'payments', 'prod-eu')
        assert stored_state(check).incidents[incident].monitor == MonitorMapping(
            MONITOR, 'monitor_tags', ('checkout',), None, 'prod-eu'
        )
        assert world.datadog.count('GET', '/api/v1/monitor/{}'.format(MONITOR)) == 1

    def test_two_services(self, world, estate, dd_run_check, aggregator):
        shared, options = estate
        check = live(world, options, dd_run_check)
        event = datadog_event(MONITOR, tags=['service:checkout', 'service:cart', 'env:prod'])
        incident = page(world, dd_run_check, check, shared, event)

        assert world.dora.failures[failure_id(incident)]['services'] == ['checkout', 'cart']
        # Events and metrics take the first.
        event_tags = [e['tags'] for e in aggregator.events if e['aggregation_key'] == incident][0]
        assert [t for t in event_tags if t.startswith('service:')] == ['service:checkout']
        for metric in aggregator.metrics('pagerduty_dora.incidents.triggered'):
            assert [t for t in metric.tags if t.startswith('service:')] == ['service:checkout']

    def test_an_override_beats_the_monitor(self, world, estate, dd_run_check):
        shared, options = estate
        options = dict(options, service_overrides=[{'pagerduty_service': shared, 'service': 'edge'}])
        check = live(world, options, dd_run_check)
        event = datadog_event(MONITOR, ['env:staging', 'service:search'])
        incident = page(world, dd_run_check, check, shared, event)

        failure = world.dora.failures[failure_id(incident)]
        # The override's service wins; the env it leaves empty is the monitor's.
        assert (failure['services'], failure['env']) == (['edge'], 'staging')
        assert stored_state(check).incidents[incident].monitor.rule == 'monitor_group'

    @pytest.mark.parametrize(
        'event',
        [
            None,
            {'client': 'Prometheus', 'client_url': 'https://prometheus.example.com/graph', 'details': {}},
            {'client': 'Grafana', 'client_url': 'https://app.datadoghq.com/monitors/1', 'details': {}},
            {'client': 'New Relic', 'client_url': 'https://one.newrelic.com/alerts', 'details': {'tags': 'service:x'}},
        ],
        ids=['by-hand', 'prometheus', 'grafana-with-a-datadog-url', 'new-relic'],
    )
    def test_no_monitor_falls_through_to_the_catalog_rules(self, world, estate, dd_run_check, event):
        shared, options = estate
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, event)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['team'], failure['env']) == (['Shared on-call'], 'Ops', 'prod')
        assert stored_state(check).incidents[incident].monitor == NO_MONITOR
        assert alert_requests(world, incident) == 0

    def test_a_resolve_by_hand_keeps_the_mapping(self, world, estate, dd_run_check, aggregator):
        shared, options = estate
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, ['env:staging', 'service:search']))
        # What PagerDuty shows later carries no monitor (Datadog's webhook loses it here): the kept mapping decides.
        world.account._events.clear()
        for change in (world.account.acknowledge, world.account.resolve, world.account.reopen, world.account.resolve):
            change(incident)
            world.account.advance(60)
            dd_run_check(check)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['env'], 'finished_at' in failure) == (['search'], 'staging', True)
        events = [e for e in aggregator.events if e['aggregation_key'] == incident]
        assert [transition_of(e) for e in events] == ['triggered', 'acknowledged', 'resolved', 'reopened', 'resolved']
        assert all('service:search' in e['tags'] and 'env:staging' in e['tags'] for e in events)
        assert alert_requests(world, incident) == 0

    def test_a_staging_monitor_paging_a_prod_service_gives_env_staging(self, world, estate, dd_run_check):
        shared, options = estate
        check = live(world, options, dd_run_check)
        staging = page(
            world, dd_run_check, check, shared, datadog_event(MONITOR, tags=['env:staging', 'service:checkout'])
        )
        by_hand = page(world, dd_run_check, check, shared, None)

        assert world.dora.failures[failure_id(staging)]['env'] == 'staging'
        assert world.dora.failures[failure_id(by_hand)]['env'] == 'prod'

    def test_turned_off(self, world, estate, dd_run_check):
        shared, options = estate
        check = live(world, dict(options, monitor_mapping=False), dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, ['env:staging', 'service:search']))

        assert world.dora.failures[failure_id(incident)]['services'] == ['Shared on-call']
        assert stored_state(check).incidents[incident].monitor is None
        assert alert_requests(world, incident) == 0
        # A known option: no warning about its name.
        assert check.warnings == []


@pytestmark_e2e
class TestOddInput:
    """What PagerDuty or Datadog hold that the monitor step cannot use: it falls back, never mis-maps."""

    @pytest.mark.parametrize(
        'event, services, env, monitor_id',
        [
            (
                {'client': 'Datadog', 'client_url': 'https://evil.example.com/monitors/1?group=service%3Ax'},
                ['Shared on-call'],
                'prod',
                None,
            ),
            (datadog_event(MONITOR, ['service:a,b', 'env:qa']), ['a'], 'qa', MONITOR),
            (datadog_event(MONITOR, ['service:a=b', 'env:qa']), ['Shared on-call'], 'qa', MONITOR),
            (
                datadog_event(MONITOR, tags=['service:s{}'.format(i) for i in range(30)]),
                ['s{}'.format(i) for i in range(20)],
                'prod',
                MONITOR,
            ),
            (datadog_event(MONITOR, tags=['service:' + 'x' * 220, 'env:qa']), ['Shared on-call'], 'qa', MONITOR),
            (datadog_event(MONITOR, ['env:qa', 'service:web'], legacy=True), ['web'], 'qa', MONITOR),
        ],
        ids=[
            'not-datadogs-url',
            'comma-in-group-value',
            'equals-in-group-value',
            'over-20-tags',
            'tag-over-200',
            'older-url',
        ],
    )
    def test_hostile_alert(self, world, estate, dd_run_check, event, services, env, monitor_id):
        shared, options = estate
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, event)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['env']) == (services, env)
        assert stored_state(check).incidents[incident].monitor.monitor_id == monitor_id

    def test_a_monitor_that_answers_404_falls_back_to_its_alert(self, world, estate, dd_run_check):
        shared, options = estate
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, tags=['service:checkout', 'env:qa']))

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['env']) == (['checkout'], 'qa')
        assert world.datadog.count('GET', '/api/v1/monitor/{}'.format(MONITOR)) == 1
        assert check.warnings == []

    def test_a_key_without_monitors_read(self, world, estate, dd_run_check):
        shared, options = estate
        world.catalog.monitors_read = False
        world.catalog.monitors[MONITOR] = monitor(MONITOR, 'Errors', 'avg:errors{*} > 5', ['service:checkout'])
        check = live(world, options, dd_run_check)
        world.account.trigger(shared, 'Tagged', event=datadog_event(MONITOR, tags=['service:checkout', 'env:qa']))
        untagged = world.account.trigger(shared, 'Untagged', event=datadog_event(MONITOR + 1))
        world.account.advance(60)
        dd_run_check(check)

        warnings = [w for w in check.warnings if 'monitors_read' in w]
        assert len(warnings) == 1, check.warnings
        # One request found the permission missing; the other incident did not ask again.
        assert world.datadog.count('GET', '/api/v1/monitor') == 1
        tagged = [key for key, r in stored_state(check).incidents.items() if r.monitor and r.monitor.services]
        assert [world.dora.failures[failure_id(key)]['env'] for key in tagged] == ['qa']
        assert world.dora.failures[failure_id(untagged)]['services'] == ['Shared on-call']


@pytestmark_e2e
class TestBackfill:
    """History loaded on the first run maps by its monitor too, from the incident lists alone."""

    def test_a_backfilled_incident_from_a_monitor(self, world, estate, dd_run_check):
        shared, options = estate
        account = world.account
        created = account.now - 5 * DAY
        incident = account.trigger(
            shared, 'Old errors', created_at=created, event=datadog_event(MONITOR, ['service:search', 'env:staging'])
        )
        account.resolve(incident)
        account.advance(60)
        dd_run_check(world.check(**dict(options, backfill_days=30)))

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['env'], 'finished_at' in failure) == (['search'], 'staging', True)
        # The incident list embeds the trigger entry: no request of its own.
        assert alert_requests(world, incident) == 0


@pytestmark_e2e
class TestCost:
    """At most one PagerDuty request more per new incident; none where the feed or a list carries its trigger."""

    def run_with(self, world, options, dd_run_check, events):
        shared = world.account.add_service('On-call {}'.format(len(world.account.services)))
        check = live(world, options, dd_run_check)
        before = world.pd_requests()
        ids = [world.account.trigger(shared, 'Errors {}'.format(n), event=event) for n, event in enumerate(events)]
        world.account.advance(60)
        dd_run_check(check)
        return world.pd_requests() - before, ids

    def test_no_request_for_an_incident_whose_trigger_the_feed_reads(self, world, estate, dd_run_check):
        _, options = estate
        events = [datadog_event(MONITOR + i, ['service:s{}'.format(i), 'env:qa', 'team:t']) for i in range(5)]
        without, _ = self.run_with(world, dict(options, monitor_mapping=False), dd_run_check, events)
        world.account.advance(DAY)
        with_step, ids = self.run_with(world, options, dd_run_check, events)
        assert with_step == without
        assert world.datadog.count('GET', '/api/v1/monitor') == 0
        assert [world.dora.failures[failure_id(key)]['services'] for key in ids] == [
            ['s{}'.format(i)] for i in range(5)
        ]

    def burst(self, world, estate, dd_run_check, count):
        """`count` incidents from a monitor triggered and resolved over a day, read by one run; returns the check."""
        shared, options = estate
        check = live(world, dict(options, submit_dora_failures=False), dd_run_check)
        base = world.account.now
        rng = random.Random(7)
        for created in sorted(base + rng.uniform(0, DAY) for _ in range(count)):
            world.account.now = created
            world.account.resolve(world.account.trigger(shared, 'Burst', event=datadog_event(MONITOR, ['env:qa'])))
        world.account.now = base + DAY + 60
        return check

    def test_a_burst_read_in_one_go(self, world, estate, dd_run_check, aggregator):
        """The feed reads a window from its newest entry down: an incident whose later entries end one page and
        whose trigger entry starts the next waits for the page with its trigger, which names its monitor."""
        check = self.burst(world, estate, dd_run_check, 3000)
        before = world.pd_requests()
        dd_run_check(check)
        pages = world.pagerduty.count('/log_entries')
        alerts = sum(1 for r in world.pagerduty.requests if r.path.endswith('/alerts'))
        # No alert read: every trigger entry is read with the account's log, and names the monitor.
        assert alerts == 0
        assert world.pd_requests() - before <= 2 * pages + 10
        counted = event_keys(aggregator)
        assert len(counted) == 6000 and set(counted.values()) == {1}
        assert {tuple(t for t in e['tags'] if t.startswith('env:')) for e in incident_events(aggregator)} == {
            ('env:qa',)
        }

    def test_unreadable_alerts_cost_the_incident_its_monitor_only(self, world, estate, dd_run_check, aggregator):
        check = self.burst(world, estate, dd_run_check, 300)
        world.pagerduty.faults.fail_next(10_000, 'bad_json', path_prefix='/incidents/P')
        dd_run_check(check)

        # The trigger entries name the monitor: a burst needs no alert read, so none fails.
        alerts = sum(1 for r in world.pagerduty.requests if r.path.endswith('/alerts'))
        kept = [record.monitor for record in stored_state(check).incidents.values()]
        assert alerts == 0
        assert kept.count(MonitorMapping(MONITOR, 'monitor_group', (), None, 'qa')) == 300
        counted = event_keys(aggregator)
        assert len(counted) == 600 and set(counted.values()) == {1}

    def test_an_incident_recorded_before_the_step_gets_its_monitor_from_the_lists(self, world, estate, dd_run_check):
        shared, options = estate
        check = live(world, dict(options, monitor_mapping=False), dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, ['service:search', 'env:qa']))
        assert stored_state(check).incidents[incident].monitor is None
        check = world.check(**options)
        world.account.advance(3600)
        dd_run_check(check)
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(check)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure['services'], failure['env'], 'finished_at' in failure) == (['search'], 'qa', True)
        assert alert_requests(world, incident) == 0

    def test_turning_it_off_drops_a_kept_mapping(self, world, estate, dd_run_check):
        shared, options = estate
        check = live(world, options, dd_run_check)
        incident = page(world, dd_run_check, check, shared, datadog_event(MONITOR, ['service:search']))
        check = world.check(**dict(options, monitor_mapping=False))
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(check)

        assert world.dora.failures[failure_id(incident)]['services'] == ['Shared on-call']
        assert check.warnings == []


class TestAlertsThatCannotBeRead:
    """An incident whose trigger entry is not at hand has its alerts read; alerts that never read leave it unmapped."""

    def test_the_incident_keeps_no_monitor_and_the_run_goes_on(self):
        class Unreadable:
            triggers: dict = {}
            asked: list = []

            def incident_alerts(self, incident_id):
                self.asked.append(incident_id)
                raise UnreadableResponse('PagerDuty', 'the answer is not JSON')

        # As a log entry embeds it: a reference to its first trigger entry, not the entry.
        incident = parse_incident(dict(raw_incident(7, 1_790_000_000.0), id='PALERTS'))
        assert not incident.trigger_known
        client = Unreadable()
        lookup = MonitorLookup(None, logging.getLogger(__name__), lambda *args: None)
        assert lookup.decide(client, incident) == NO_MONITOR
        assert client.asked == ['PALERTS']


class FailingMonitorApi:
    """Datadog's monitor endpoint answering every read with `error`; stalls as the `ApiClient` does."""

    def __init__(self, error):
        self.error = error
        self.reads = 0
        self.stalls = set()

    def stalled(self, caller):
        return caller in self.stalls

    def stall(self, caller):
        self.stalls.add(caller)

    def get(self, path, endpoint):
        self.reads += 1
        raise self.error


class TestMonitorReadFailures:
    """What a failed monitor read means, by its disposition: the run ends, the key is told, or the alert decides."""

    @pytest.mark.parametrize(
        'error',
        [
            BudgetExhausted('datadog', 'budget spent'),
            RateLimited('datadog', 'rate limited', status=429),
            DeadlineReached('datadog', 'the run reached its deadline'),
        ],
        ids=['budget', 'rate-limited', 'deadline'],
    )
    def test_the_run_ends(self, error):
        api = FailingMonitorApi(error)
        lookup = MonitorLookup(api, logging.getLogger(__name__), lambda *args: None)
        with pytest.raises(type(error)):
            lookup._monitor_tags(MonitorAlert(MONITOR))

    def test_a_refused_key_is_told_once_and_asked_again_next_run(self):
        api = FailingMonitorApi(AuthError('datadog', 'forbidden', status=403))
        warnings = []
        lookup = MonitorLookup(api, logging.getLogger(__name__), lambda *args: warnings.append(args))

        assert lookup._monitor_tags(MonitorAlert(MONITOR)) is None
        assert lookup._monitor_tags(MonitorAlert(MONITOR + 1)) is None
        assert (api.reads, len(warnings), api.stalls) == (1, 1, {'monitor'})

    @pytest.mark.parametrize(
        'error, reads',
        [
            (TransientError('datadog', 'server error', status=503), 2),
            (ConnectionFailed('datadog', 'no answer', 'timeout'), 2),
            (UnreadableResponse('datadog', 'not JSON', status=200), 2),
            (RequestRejected('datadog', 'not found', status=404), 1),
            (RequestRejected('datadog', 'bad request', status=400), 1),
        ],
        ids=['5xx', 'no-connection', 'unreadable', 'gone', 'rejected'],
    )
    def test_the_alert_decides(self, error, reads):
        """A failure for now is asked again at the monitor's next incident; a refusal for good is remembered."""
        api = FailingMonitorApi(error)
        warnings = []
        lookup = MonitorLookup(api, logging.getLogger(__name__), lambda *args: warnings.append(args))

        assert lookup._monitor_tags(MonitorAlert(MONITOR)) is None
        assert lookup._monitor_tags(MonitorAlert(MONITOR)) is None
        assert (api.reads, warnings, api.stalls) == (reads, [], set())
