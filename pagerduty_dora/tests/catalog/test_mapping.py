# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
from typing import Any

import pytest

from datadog_checks.pagerduty_dora.catalog import model
from datadog_checks.pagerduty_dora.catalog.mapping import (
    RULES,
    MappingResult,
    Override,
    map_incident,
    parse_overrides,
    passes_filters,
)
from datadog_checks.pagerduty_dora.catalog.model import Catalog, CatalogService, CatalogTeam, pagerduty_url_key
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, parse_incident
from datadog_checks.pagerduty_dora.pagerduty.monitor import NO_MONITOR, MonitorMapping

PD = 'https://acme.pagerduty.com'

CATALOG = Catalog(
    services=(
        CatalogService('checkout', 'web', PD + '/service-directory/PCHK003', 'files'),
        # Two services behind one PagerDuty service, one team written as its display name.
        CatalogService('cart', 'web', PD + '/service-directory/PWEB010', 'datadog_api'),
        CatalogService('cart-worker', 'Web Frontend', PD + '/services/PWEB010', 'datadog_api'),
        # Two services of two teams behind one PagerDuty service.
        CatalogService('ledger', 'Payments Platform', PD + '/service-directory/PSHR020', 'datadog_api'),
        CatalogService('search', 'search-team', PD + '/service-directory/PSHR020', 'datadog_api'),
        CatalogService('payments-api', 'payments', 'https://acme.eu.pagerduty.com/service-directory/PPAY001', 'files'),
        CatalogService('Billing-Service', 'payments', None, 'files'),
    ),
    teams=(
        CatalogTeam('payments', 'Payments Platform'),
        CatalogTeam('web', 'Web Frontend'),
        CatalogTeam('search-team', 'Search'),
        CatalogTeam('sre', 'Site Reliability'),
    ),
)


def pd_incident(
    *,
    service_id: str = 'PZZZ999',
    service_name: str = 'Unknown Service',
    service_url: str | None = None,
    teams: tuple[tuple[str, str], ...] = (),
    priority: str | None = None,
    urgency: str = 'high',
) -> Incident:
    """An incident parsed from a body shaped like one element of PagerDuty's `GET /incidents`."""
    raw: dict[str, Any] = {
        'id': 'Q1ABCDEF2GHIJ',
        'type': 'incident',
        'summary': '[#1234] Checkout latency above SLO',
        'self': 'https://api.pagerduty.com/incidents/Q1ABCDEF2GHIJ',
        'html_url': PD + '/incidents/Q1ABCDEF2GHIJ',
        'incident_number': 1234,
        'title': 'Checkout latency above SLO',
        'created_at': '2026-11-25T10:00:00Z',
        'updated_at': '2026-11-25T10:05:00Z',
        'status': 'triggered',
        'incident_key': 'b6e3c7f0a1d94c5e8f2a',
        'urgency': urgency,
        'last_status_change_at': '2026-11-25T10:00:00Z',
        'service': {
            'id': service_id,
            'type': 'service_reference',
            'summary': service_name,
            'self': 'https://api.pagerduty.com/services/' + service_id,
            'html_url': service_url if service_url is not None else PD + '/service-directory/' + service_id,
        },
        'assignments': [],
        'acknowledgements': [],
        'teams': [
            {
                'id': team_id,
                'type': 'team_reference',
                'summary': name,
                'self': 'https://api.pagerduty.com/teams/' + team_id,
                'html_url': PD + '/teams/' + team_id,
            }
            for team_id, name in teams
        ],
        'priority': (
            {
                'id': 'PPRI' + priority.upper(),
                'type': 'priority',
                'summary': priority,
                'self': 'https://api.pagerduty.com/priorities/PPRI' + priority.upper(),
                'name': priority,
            }
            if priority is not None
            else None
        ),
    }
    return parse_incident(raw)


RULE_CASES = [
    # (id, incident, expected rule, services, team)
    ('url-exact', {'service_url': PD + '/service-directory/PCHK003'}, 'service_url', ('checkout',), 'web'),
    (
        'url-http-scheme',
        {'service_url': 'http://acme.pagerduty.com/service-directory/PCHK003'},
        'service_url',
        ('checkout',),
        'web',
    ),
    (
        'url-host-case',
        {'service_url': 'https://ACME.PagerDuty.com/service-directory/PCHK003'},
        'service_url',
        ('checkout',),
        'web',
    ),
    ('url-trailing-slash', {'service_url': PD + '/service-directory/PCHK003/'}, 'service_url', ('checkout',), 'web'),
    ('url-services-path', {'service_url': PD + '/services/PCHK003'}, 'service_url', ('checkout',), 'web'),
    (
        'url-eu-host',
        {'service_url': 'https://acme.eu.pagerduty.com/service-directory/PPAY001'},
        'service_url',
        ('payments-api',),
        'payments',
    ),
    (
        'url-beats-name',
        {'service_url': PD + '/service-directory/PCHK003', 'service_name': 'ledger'},
        'service_url',
        ('checkout',),
        'web',
    ),
    (
        'no-url-uses-service-id',
        {'service_id': 'PCHK003', 'service_url': '', 'service_name': 'Checkout (prod)'},
        'service_url',
        ('checkout',),
        'web',
    ),
    ('url-two-services-one-team', {'service_url': PD + '/service-directory/PWEB010'}, 'service_url_team', (), 'web'),
    (
        'url-two-teams-falls-to-name',
        {'service_url': PD + '/service-directory/PSHR020', 'service_name': 'ledger'},
        'service_name',
        ('ledger',),
        'payments',
    ),
    (
        'url-two-teams-falls-to-fallback',
        {'service_url': PD + '/service-directory/PSHR020', 'service_name': 'Shared Core', 'teams': (('PT1', 'Core'),)},
        'fallback',
        ('Shared Core',),
        'Core',
    ),
    ('name-case-and-spaces', {'service_name': '  CHECKOUT '}, 'service_name', ('checkout',), 'web'),
    (
        'name-keeps-catalog-spelling',
        {'service_name': 'billing-service'},
        'service_name',
        ('Billing-Service',),
        'payments',
    ),
    (
        'pd-team-is-display-name',
        {'teams': (('PT1', 'Other'), ('PT2', '  site reliability '))},
        'team_name',
        (),
        'sre',
    ),
    ('pd-team-is-handle', {'teams': (('PT2', 'SRE'),)}, 'team_name', (), 'sre'),
    ('service-named-like-team-handle', {'service_name': 'search-team'}, 'service_name_as_team', (), 'search-team'),
    ('service-named-like-team-display', {'service_name': 'Web Frontend'}, 'service_name_as_team', (), 'web'),
    (
        'pd-team-beats-service-as-team',
        {'service_name': 'Web Frontend', 'teams': (('PT2', 'Site Reliability'),)},
        'team_name',
        (),
        'sre',
    ),
    (
        'fallback-first-team',
        {'service_name': 'Legacy Cron', 'teams': (('PT7', 'Batch'), ('PT8', 'Ops'))},
        'fallback',
        ('Legacy Cron',),
        'Batch',
    ),
    ('fallback-no-team', {'service_name': 'Legacy Cron'}, 'fallback', ('Legacy Cron',), None),
]


class TestRules:
    """The catalog rules of the README's mapping table, in order, first match wins."""

    @pytest.mark.parametrize(
        'incident, rule, services, team', [case[1:] for case in RULE_CASES], ids=[case[0] for case in RULE_CASES]
    )
    def test_rule(self, incident, rule, services, team):
        result = map_incident(pd_incident(**incident), CATALOG)
        assert (result.rule, result.services, result.team) == (rule, services, team)

    def test_every_rule_is_exercised(self):
        seen = {case[2] for case in RULE_CASES} | {'override'} | {case[3] for case in MONITOR_CASES}
        assert seen == set(RULES)

    def test_empty_catalog_falls_back(self):
        result = map_incident(pd_incident(service_name='checkout', teams=(('PT1', 'Web'),)), Catalog())
        assert result == MappingResult('fallback', ('checkout',), 'Web', None, None)

    def test_service_without_team_behind_shared_url_falls_through(self):
        catalog = Catalog(
            services=(
                CatalogService('a', 'web', PD + '/services/PX1', 'files'),
                CatalogService('b', None, PD + '/services/PX1', 'files'),
            ),
        )
        result = map_incident(pd_incident(service_url=PD + '/services/PX1', service_name='b'), catalog)
        assert (result.rule, result.services, result.team) == ('service_name', ('b',), None)

    def test_same_service_from_two_sources_is_one_service(self):
        catalog = Catalog(
            services=(
                CatalogService('checkout', 'web', PD + '/services/PCHK003', 'files'),
                CatalogService('Checkout', 'web', PD + '/service-directory/PCHK003', 'datadog_api'),
            ),
        )
        result = map_incident(pd_incident(service_url=PD + '/services/PCHK003'), catalog)
        assert (result.rule, result.services, result.team) == ('service_url', ('checkout',), 'web')


KIND_CATALOG = Catalog(
    services=(
        CatalogService('orders-db', 'dba', PD + '/services/PDB0001', 'files', kind='datastore', owners=('payments',)),
        CatalogService('order-events', None, PD + '/services/PQU0001', 'files', kind='queue'),
        CatalogService('checkout', 'payments', PD + '/services/PCHK001', 'files'),
        CatalogService('checkout-db', 'payments', PD + '/services/PCHK001', 'files', kind='datastore'),
        CatalogService('orders', 'dba', PD + '/services/PORD001', 'files', kind='datastore'),
        CatalogService('orders', 'payments', PD + '/services/PORD001', 'files'),
    ),
)

KIND_CASES = [
    # (id, incident, expected rule, services, team)
    ('one-datastore-gives-its-owner', {'service_url': PD + '/services/PDB0001'}, 'service_url_team', (), 'dba'),
    (
        'ownerless-queue-falls-through',
        {'service_url': PD + '/services/PQU0001'},
        'fallback',
        ('Unknown Service',),
        None,
    ),
    (
        'service-and-datastore-of-one-team',
        {'service_url': PD + '/services/PCHK001'},
        'service_url_team',
        (),
        'payments',
    ),
    # A datastore and a service of one name are two entities, of two teams here.
    ('same-name-two-kinds', {'service_url': PD + '/services/PORD001'}, 'fallback', ('Unknown Service',), None),
    ('datastore-name-is-not-a-service', {'service_name': 'orders-db'}, 'fallback', ('orders-db',), None),
]


MONITOR_CASES = [
    # (id, incident, monitor mapping, rule, services, team, env); the instance env is `prod`.
    (
        'group',
        {'service_name': 'checkout'},
        MonitorMapping(1, 'monitor_group', ('search',), 'Search', 'staging'),
        'monitor_group',
        ('search',),
        'search-team',
        'staging',
    ),
    (
        'tags-service-takes-its-catalog-team',
        {'service_name': 'Shared'},
        MonitorMapping(1, 'monitor_tags', ('checkout', 'cart'), None, None),
        'monitor_tags',
        ('checkout', 'cart'),
        'web',
        'prod',
    ),
    (
        'env-only-keeps-the-catalog-service',
        {'service_name': 'checkout'},
        MonitorMapping(1, 'monitor_tags', (), None, 'staging'),
        'monitor_tags',
        ('checkout',),
        'web',
        'staging',
    ),
    (
        'monitor-with-nothing-to-map-by',
        {'service_name': 'checkout'},
        MonitorMapping(1, '', (), None, None),
        'service_name',
        ('checkout',),
        'web',
        'prod',
    ),
    ('no-monitor', {'service_name': 'checkout'}, NO_MONITOR, 'service_name', ('checkout',), 'web', 'prod'),
]


class TestMonitorStep:
    """The monitor that triggered an incident maps it after the overrides and before the catalog rules."""

    @pytest.mark.parametrize(
        'incident, monitor, rule, services, team, env',
        [case[1:] for case in MONITOR_CASES],
        ids=[case[0] for case in MONITOR_CASES],
    )
    def test_monitor(self, incident, monitor, rule, services, team, env):
        result = map_incident(pd_incident(**incident), CATALOG, env='prod', monitor=monitor)
        assert (result.rule, result.services, result.team, result.env) == (rule, services, team, env)
        assert result.monitor_id == monitor.monitor_id

    def test_an_override_wins_and_the_monitor_fills_what_it_leaves(self):
        overrides = parse_overrides([{'pagerduty_service': 'Shared', 'service': 'edge'}])
        monitor = MonitorMapping(1, 'monitor_group', ('search',), None, 'staging')
        result = map_incident(pd_incident(service_name='Shared'), CATALOG, overrides=overrides, monitor=monitor)
        assert (result.rule, result.services, result.env) == ('override', ('edge',), 'staging')


class TestEntityKinds:
    """Entities other than services match by PagerDuty URL and give their owner team, never their name."""

    @pytest.mark.parametrize(
        'incident, rule, services, team', [case[1:] for case in KIND_CASES], ids=[case[0] for case in KIND_CASES]
    )
    def test_kind(self, incident, rule, services, team):
        result = map_incident(pd_incident(**incident), KIND_CATALOG)
        assert (result.rule, result.services, result.team) == (rule, services, team)

    def test_override_naming_a_datastore_takes_no_team_from_it(self):
        overrides = parse_overrides([{'pagerduty_service': 'PZZZ999', 'service': 'orders-db'}])
        result = map_incident(pd_incident(service_name='Legacy'), KIND_CATALOG, overrides=overrides)
        assert (result.rule, result.services, result.team) == ('override', ('orders-db',), None)


OVERRIDE_CASES = [
    # (id, overrides, incident, expected rule, services, team, env)
    (
        'by-id',
        [Override('PLEG999', 'legacy', 'sre', None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron'},
        ('override', ('legacy',), 'sre', 'prod'),
    ),
    (
        'by-name-case-and-spaces',
        [Override('  legacy CRON ', 'legacy', 'sre', None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron'},
        ('override', ('legacy',), 'sre', 'prod'),
    ),
    (
        'by-url-normalised',
        [Override('http://ACME.pagerduty.com/services/PLEG999/', 'legacy', 'sre', None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron'},
        ('override', ('legacy',), 'sre', 'prod'),
    ),
    (
        'beats-url-rule',
        [Override('PCHK003', 'checkout-v2', 'payments', None)],
        {'service_id': 'PCHK003', 'service_name': 'Checkout'},
        ('override', ('checkout-v2',), 'payments', 'prod'),
    ),
    (
        'env-only-keeps-catalog-mapping',
        [Override('PCHK003', None, None, 'staging')],
        {'service_id': 'PCHK003', 'service_name': 'Checkout'},
        ('override', ('checkout',), 'web', 'staging'),
    ),
    (
        'team-display-name-becomes-handle',
        [Override('PLEG999', None, 'Site Reliability', None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron', 'teams': (('PT7', 'Batch'),)},
        ('override', ('Legacy Cron',), 'sre', 'prod'),
    ),
    (
        'service-only-takes-catalog-team',
        [Override('PLEG999', 'ledger', None, None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron', 'teams': (('PT7', 'Batch'),)},
        ('override', ('ledger',), 'payments', 'prod'),
    ),
    (
        'service-only-unknown-keeps-rule-team',
        [Override('PLEG999', 'legacy', None, None)],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron', 'teams': (('PT7', 'Batch'),)},
        ('override', ('legacy',), 'Batch', 'prod'),
    ),
    (
        'first-matching-wins',
        [
            Override('POTHER1', 'x', None, None),
            Override('Legacy Cron', 'first', None, None),
            Override('PLEG999', 'second', None, None),
        ],
        {'service_id': 'PLEG999', 'service_name': 'Legacy Cron'},
        ('override', ('first',), None, 'prod'),
    ),
    (
        'no-match-uses-rules',
        [Override('POTHER1', 'x', 'sre', 'dev')],
        {'service_id': 'PCHK003', 'service_name': 'Checkout'},
        ('service_url', ('checkout',), 'web', 'prod'),
    ),
    (
        'partial-id-does-not-match',
        [Override('PCHK', 'x', None, None)],
        {'service_id': 'PCHK003', 'service_name': 'Checkout'},
        ('service_url', ('checkout',), 'web', 'prod'),
    ),
]


class TestOverrides:
    """`service_overrides` match by PagerDuty service id, name or URL and win over every catalog rule."""

    @pytest.mark.parametrize(
        'overrides, incident, expected', [case[1:] for case in OVERRIDE_CASES], ids=[case[0] for case in OVERRIDE_CASES]
    )
    def test_override(self, overrides, incident, expected):
        result = map_incident(pd_incident(**incident), CATALOG, overrides=overrides, env='prod')
        assert (result.rule, result.services, result.team, result.env) == expected

    def test_parse_valid(self):
        raw = [
            {'pagerduty_service': ' PLEG999 ', 'service': 'legacy', 'team': 'sre'},
            {'pagerduty_service': 'https://acme.pagerduty.com/services/PX', 'env': 'staging', 'service': ''},
        ]
        assert parse_overrides(raw) == [
            Override('PLEG999', 'legacy', 'sre', None),
            Override('https://acme.pagerduty.com/services/PX', None, None, 'staging'),
        ]

    def test_parse_none_is_empty(self):
        assert parse_overrides(None) == []

    @pytest.mark.parametrize(
        'raw, message',
        [
            ([{'service': 'x'}], r'service_overrides\[0\] needs pagerduty_service'),
            ([{'pagerduty_service': 'P1', 'service': 'x'}, {'pagerduty_service': '  ', 'team': 'y'}], r'\[1\] needs'),
            ([{'pagerduty_service': 'P1', 'teams': 'x'}], r'\[0\] has unknown key\(s\) teams'),
            ([{'pagerduty_service': 'P1', 'team': ['x']}], r'\[0\]\.team must be a string'),
            ([{'pagerduty_service': 'P1'}], r'\[0\] sets none of service, team, env'),
            (['P1'], r'\[0\] must be a mapping'),
        ],
        ids=[
            'missing-pagerduty-service',
            'blank-pagerduty-service',
            'unknown-key',
            'not-a-string',
            'sets-nothing',
            'not-a-mapping',
        ],
    )
    def test_parse_invalid(self, raw, message):
        with pytest.raises(ValueError, match=message):
            parse_overrides(raw)


class TestEnvAndSeverity:
    """env comes from an override, else the instance; severity from `severity_mapping`, else the priority name."""

    @pytest.mark.parametrize(
        'overrides, instance_env, expected',
        [
            ([], 'prod', 'prod'),
            ([], None, None),
            ([Override('PCHK003', None, None, 'staging')], 'prod', 'staging'),
            ([Override('PCHK003', 'checkout', None, None)], 'prod', 'prod'),
            ([Override('PCHK003', None, None, 'staging')], None, 'staging'),
        ],
        ids=['instance-env', 'no-env', 'override-over-instance', 'override-without-env', 'override-without-instance'],
    )
    def test_env(self, overrides, instance_env, expected):
        result = map_incident(pd_incident(service_id='PCHK003'), CATALOG, overrides=overrides, env=instance_env)
        assert result.env == expected

    @pytest.mark.parametrize(
        'priority, mapping, expected',
        [
            ('P1', {'p1': 'SEV-1', 'P2': 'SEV-2'}, 'SEV-1'),
            ('p2', {'p1': 'SEV-1', 'P2': 'SEV-2'}, 'SEV-2'),
            ('P3', {'p1': 'SEV-1'}, 'P3'),
            ('P1', None, 'P1'),
            (None, {'none': 'SEV-5'}, None),
            (None, None, None),
        ],
        ids=[
            'mapped',
            'mapped-case-insensitive',
            'unmapped-keeps-name',
            'default-priority-name',
            'no-priority-mapped',
            'no-priority',
        ],
    )
    def test_severity(self, priority, mapping, expected):
        result = map_incident(pd_incident(priority=priority), CATALOG, severity_mapping=mapping)
        assert result.severity == expected


class TestFilters:
    """`urgencies` and `priorities` decide which incidents count; `none` selects unprioritized ones."""

    @pytest.mark.parametrize(
        'urgency, priority, urgencies, priorities, expected',
        [
            ('low', None, None, None, True),
            ('low', 'P1', ['high'], None, False),
            ('high', 'P1', ['HIGH'], None, True),
            ('high', 'p2', None, ['P1', 'P2'], True),
            ('high', 'P3', None, ['P1', 'P2'], False),
            ('high', None, None, ['none'], True),
            ('high', None, None, ['P1'], False),
            ('high', None, None, ['P1', 'None'], True),
            ('high', 'P1', None, ['none'], False),
            ('low', 'P1', ['high'], ['P1'], False),
            ('high', 'P1', ['high', 'low'], ['p1'], True),
            ('low', None, [], [], True),
        ],
        ids=[
            'no-filters',
            'urgency-filtered-out',
            'urgency-case-insensitive',
            'priority-case-insensitive',
            'priority-filtered-out',
            'none-matches-unprioritized',
            'unprioritized-filtered-out',
            'none-among-others',
            'none-excludes-prioritized',
            'both-filters-urgency-fails',
            'both-filters-pass',
            'empty-lists-mean-all',
        ],
    )
    def test_filters(self, urgency, priority, urgencies, priorities, expected):
        incident = pd_incident(urgency=urgency, priority=priority)
        assert passes_filters(incident, urgencies=urgencies, priorities=priorities) is expected


class TestUrlKey:
    """PagerDuty service URLs compare by service id, ignoring scheme, host case, trailing slash and region."""

    @pytest.mark.parametrize(
        'a, b, same',
        [
            (
                'https://acme.pagerduty.com/service-directory/PABC123',
                'http://ACME.PAGERDUTY.COM/services/PABC123/',
                True,
            ),
            (
                'https://acme.pagerduty.com/service-directory/PABC123',
                'https://acme.eu.pagerduty.com/service-directory/PABC123',
                True,
            ),
            (
                'acme.pagerduty.com/service-directory/PABC123',
                'https://acme.pagerduty.com/service-directory/PABC123?tab=x',
                True,
            ),
            (
                'https://acme.pagerduty.com/service-directory/PABC123',
                'https://acme.pagerduty.com/service-directory/PABC124',
                False,
            ),
            ('https://status.example.com/Checkout/', 'https://STATUS.example.com/Checkout', True),
            ('https://status.example.com/checkout', 'https://status.example.com/Checkout', False),
        ],
        ids=[
            'path-scheme-case-slash',
            'eu-host',
            'no-scheme-and-query',
            'other-id',
            'other-url-normalised',
            'other-url-path-case',
        ],
    )
    def test_equal_keys(self, a, b, same):
        assert (pagerduty_url_key(a) == pagerduty_url_key(b)) is same

    @pytest.mark.parametrize('value', ['', '   ', None, 42], ids=['empty', 'blank', 'none', 'not-a-string'])
    def test_no_key(self, value):
        assert pagerduty_url_key(value) == ''

    def test_a_remembered_key_is_the_key_and_what_is_remembered_is_bounded(self):
        url = 'https://acme.pagerduty.com/service-directory/PREMEMB'
        model._url_key.cache_clear()
        first = pagerduty_url_key(url)
        again = pagerduty_url_key(url)
        assert first == again == 'id:PREMEMB' and model._url_key.cache_info().hits == 1
        for n in range(model.URL_KEYS_KEPT + 10):
            pagerduty_url_key('https://status.example.com/svc{}'.format(n))
        assert model._url_key.cache_info().currsize == model.URL_KEYS_KEPT
        assert pagerduty_url_key(url) == 'id:PREMEMB'


class TestRulings:
    """The catalog rules decide once per service and teams: the incidents after the first get the same answer."""

    SHAPES = [
        {'service_id': 'PCHK003', 'service_url': PD + '/service-directory/PCHK003'},
        {'service_id': 'PWEB010', 'service_url': PD + '/services/PWEB010'},
        {'service_id': 'PSHR020', 'service_url': PD + '/service-directory/PSHR020'},
        {'service_name': 'billing-service'},
        {'teams': (('PT1', 'Search'),)},
        {'service_name': 'Site Reliability'},
        {'service_name': 'Unknown Service', 'teams': (('PT2', 'Mobile'),)},
        {'service_id': 'PPAY001'},
    ]

    def test_each_incident_is_mapped_as_by_a_catalog_that_met_none_before(self):
        catalog = Catalog(services=CATALOG.services, teams=CATALOG.teams)
        for _ in range(2):
            for shape in self.SHAPES:
                incident = pd_incident(**shape)
                fresh = Catalog(services=CATALOG.services, teams=CATALOG.teams)
                assert map_incident(incident, catalog) == map_incident(incident, fresh), shape
        assert len(catalog.rulings) == len(self.SHAPES)

    def test_a_new_catalog_rules_anew(self):
        incident = pd_incident(service_name='billing-service')
        assert map_incident(incident, CATALOG).rule == 'service_name'
        assert map_incident(incident, Catalog()).rule == 'fallback'

    def test_rulings_are_bounded(self):
        catalog = Catalog(services=CATALOG.services, teams=CATALOG.teams)
        for n in range(model.RULINGS_KEPT + 10):
            map_incident(pd_incident(service_id='PS{}'.format(n), service_name='svc {}'.format(n)), catalog)
        assert len(catalog.rulings) <= model.RULINGS_KEPT
        assert map_incident(pd_incident(service_name='billing-service'), catalog).services == ('Billing-Service',)


class TestCatalogIndexes:
    """The catalog's lookups: names compare case-insensitively after trimming, handles win over display names."""

    def test_handle_beats_another_teams_display_name(self):
        catalog = Catalog(teams=(CatalogTeam('ops', 'Platform'), CatalogTeam('platform', 'Platform Engineering')))
        assert catalog.find_team(' PLATFORM ') == 'platform'
        assert catalog.find_team('platform engineering') == 'platform'
        assert catalog.find_team('Ops') == 'ops'

    def test_unknown_team_is_kept_as_written(self):
        assert CATALOG.team_handle('  Mobile ') == 'Mobile'
        assert CATALOG.team_handle('Payments Platform') == 'payments'
        assert CATALOG.team_handle(None) is None

    def test_indexes_do_not_affect_equality(self):
        assert Catalog(services=CATALOG.services, teams=CATALOG.teams) == CATALOG
