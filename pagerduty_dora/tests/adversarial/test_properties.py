# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Properties over generated input: parsing and mapping never fail in a way the collector does not expect."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadog_checks.pagerduty_dora.catalog.definitions import InvalidDefinition, parse_definition
from datadog_checks.pagerduty_dora.catalog.mapping import RULES, Override, map_incident, parse_overrides, passes_filters
from datadog_checks.pagerduty_dora.catalog.model import Catalog, CatalogService, CatalogTeam
from datadog_checks.pagerduty_dora.catalog.sources import SourceCopy
from datadog_checks.pagerduty_dora.common.times import LATEST_TIME, format_time, parse_time
from datadog_checks.pagerduty_dora.datadog.dora import build_failure, failure_id, fingerprint
from datadog_checks.pagerduty_dora.datadog.events import build_event
from datadog_checks.pagerduty_dora.datadog.outputs import mapping_tags
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, MalformedIncident, parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

PROFILE = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)

# A real incident as PagerDuty's `GET /incidents` lists it; every generated case starts from it.
BASE_INCIDENT = {
    'id': 'Q2KQ1OBZJ5R8LM',
    'type': 'incident',
    'summary': '[#1234] Checkout latency above SLO',
    'self': 'https://api.pagerduty.com/incidents/Q2KQ1OBZJ5R8LM',
    'html_url': 'https://acme.pagerduty.com/incidents/Q2KQ1OBZJ5R8LM',
    'incident_number': 1234,
    'title': 'Checkout latency above SLO',
    'created_at': '2026-11-26T09:12:44Z',
    'updated_at': '2026-11-26T09:20:02Z',
    'status': 'acknowledged',
    'incident_key': 'baf7cf21b1da41b4b0db2524e6cb1e63',
    'service': {
        'id': 'PIJ90N7',
        'type': 'service_reference',
        'summary': 'Checkout API',
        'self': 'https://api.pagerduty.com/services/PIJ90N7',
        'html_url': 'https://acme.pagerduty.com/service-directory/PIJ90N7',
    },
    'assignments': [],
    'acknowledgements': [
        {'at': '2026-11-26T09:15:00Z', 'acknowledger': {'id': 'PXPGF42', 'type': 'user_reference'}},
    ],
    'last_status_change_at': '2026-11-26T09:15:00Z',
    'urgency': 'high',
    'priority': {'id': 'PSO75BM', 'type': 'priority', 'summary': 'P1', 'name': 'P1'},
    'teams': [{'id': 'PQ9K7I8', 'type': 'team_reference', 'summary': 'Payments'}],
    'resolved_at': None,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

# Values of the stored collector state: times a query can render, windows and reconciliation passes
# (positions at an incident, or at the end of a six-month window: `(until, -1)`).
stored_times = st.integers(0, int(LATEST_TIME) - 1)
stored_windows = st.tuples(stored_times, stored_times, st.integers(0, 10_000)).map(
    lambda w: [min(w[0], w[1]), max(w[0], w[1]) + 1, w[2]]
)
stored_scans = st.tuples(
    stored_times,
    st.one_of(st.none(), st.tuples(stored_times, st.integers(-1, 1 << 20)).map(list)),
    st.integers(0, 10_000),
    st.one_of(st.none(), st.lists(st.text(max_size=8), max_size=3)),
).map(list)

aware_datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()
)
timestamps = st.one_of(
    aware_datetimes.map(lambda moment: moment.isoformat()),
    aware_datetimes.map(lambda moment: moment.isoformat(timespec='milliseconds')),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(dt.datetime.isoformat),
    st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)).map(
        lambda moment: moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    ),
    st.sampled_from(['', ' ', 'yesterday', '2026-13-01T00:00:00Z', '2026-11-26T25:00:00Z', '2026-11-26', 'Z', '+']),
    st.text(max_size=30),
)
references = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            'id': st.one_of(st.text(max_size=12), json_values),
            'summary': st.one_of(st.text(max_size=30), json_values),
            'name': st.one_of(st.text(max_size=30), json_values),
            'html_url': st.one_of(
                st.text(max_size=60), st.just('https://acme.pagerduty.com/services/PX1'), json_values
            ),
        },
    ),
)
FIELD_VALUES = {
    'id': st.one_of(st.text(max_size=20), st.just('x' * 200), json_values),
    'incident_number': st.one_of(st.integers(), st.just(10**30), json_values),
    'title': st.one_of(st.text(), st.just('t' * 20_000), json_values),
    'status': st.one_of(st.sampled_from(['triggered', 'acknowledged', 'resolved', 'snoozed', 'RESOLVED']), json_values),
    'urgency': st.one_of(st.sampled_from(['high', 'low', 'critical']), json_values),
    'created_at': st.one_of(timestamps, json_values),
    'resolved_at': st.one_of(timestamps, json_values),
    'last_status_change_at': st.one_of(timestamps, json_values),
    'updated_at': st.one_of(timestamps, json_values),
    'service': references,
    'priority': references,
    'teams': st.one_of(st.lists(references, max_size=3), json_values),
    'acknowledgements': st.one_of(st.lists(st.fixed_dictionaries({'at': timestamps}), max_size=3), json_values),
    'html_url': st.one_of(st.text(max_size=40), json_values),
}
MISSING = object()


@st.composite
def incident_documents(draw):
    """A real incident with some fields missing, null, of the wrong type or of an odd value."""
    document = dict(BASE_INCIDENT)
    for name in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=6)):
        value = draw(st.one_of(st.just(MISSING), st.none(), FIELD_VALUES[name]))
        if value is MISSING:
            document.pop(name, None)
        else:
            document[name] = value
    return document


names = st.one_of(st.text(max_size=15), st.sampled_from(['Checkout API', ' checkout api ', 'Payments', 'payments', '']))
urls = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(
        [
            'https://acme.pagerduty.com/service-directory/PIJ90N7',
            'HTTP://ACME.pagerduty.com/services/pij90n7/',
            'acme.pagerduty.com/service-directory/PIJ90N7?x=1#y',
            'http://[::1',
            'https://acme.pagerduty.com/',
            '://',
        ]
    ),
)
catalog_services = st.builds(
    CatalogService, name=names, team=st.one_of(st.none(), names), pagerduty_url=urls, source=st.just('files')
)
catalog_teams = st.builds(CatalogTeam, handle=names, name=names)
overrides = st.builds(
    Override,
    pagerduty_service=st.one_of(names, urls.filter(lambda u: u is not None)),
    service=st.one_of(st.none(), names),
    team=st.one_of(st.none(), names),
    env=st.one_of(st.none(), names),
)


def check_incident(incident: Incident) -> None:
    """Everything downstream of parsing accepts the incident."""
    assert isinstance(incident.id, str) and 0 < len(incident.id) <= 128
    assert incident.status in ('triggered', 'acknowledged', 'resolved')
    assert incident.urgency in ('high', 'low')
    for moment in (incident.created_at, incident.acknowledged_at, incident.resolved_at, incident.updated_at):
        if moment is not None:
            assert math.isfinite(moment) and 0 <= moment < LATEST_TIME
            format_time(moment)
    assert len(incident.title) <= 4096
    mapping = map_incident(incident, Catalog())
    attributes = build_failure(incident, mapping)
    assert attributes['id'] == failure_id(incident.id) and len(attributes['id']) <= 128
    assert len(attributes['name']) <= 500
    json.dumps(attributes)
    fingerprint(attributes)
    tags = mapping_tags(incident, mapping)
    for kind in ('triggered', 'resolved', 'acknowledged', 'priority_changed'):
        event = build_event(Transition(kind, incident, incident.created_at, 'P2'), mapping, tags=tags, now=1.8e9)
        assert len(event['msg_text']) <= 4000


class TestParseIncident:
    """`parse_incident` returns a usable `Incident` or raises `MalformedIncident`, and nothing else."""

    @PROFILE
    @given(incident_documents())
    def test_mutated_real_incident(self, document):
        try:
            incident = parse_incident(document)
        except MalformedIncident:
            return
        check_incident(incident)

    @PROFILE
    @given(json_values)
    def test_any_json_value(self, value):
        try:
            incident = parse_incident(value)
        except MalformedIncident:
            return
        check_incident(incident)

    def test_base_incident_parses(self):
        incident = parse_incident(BASE_INCIDENT)
        assert (incident.priority, incident.service_name, incident.acknowledged_at) == (
            'P1',
            'Checkout API',
            parse_time('2026-11-26T09:15:00Z'),
        )

    @pytest.mark.parametrize(
        'changes, expected',
        [
            ({'priority': {'id': 'PSO75BM', 'type': 'priority'}}, None),
            ({'priority': {'id': 'PSO75BM', 'summary': 'P2'}}, 'P2'),
            ({'priority': None}, None),
        ],
        ids=['priority-without-name', 'priority-summary-only', 'priority-null'],
    )
    def test_priority_forms(self, changes, expected):
        assert parse_incident(dict(BASE_INCIDENT, **changes)).priority == expected

    def test_service_without_html_url_maps_by_id(self):
        service = {k: v for k, v in BASE_INCIDENT['service'].items() if k != 'html_url'}
        incident = parse_incident(dict(BASE_INCIDENT, service=service))
        catalog = Catalog(
            services=(CatalogService('checkout', 'payments', 'https://acme.pagerduty.com/services/PIJ90N7', 'files'),)
        )
        assert incident.service_url == ''
        assert map_incident(incident, catalog).rule == 'service_url'


class TestParseTime:
    """Timestamps with offsets, naive, fractional or garbage: the right instant, or a ValueError."""

    @PROFILE
    @given(aware_datetimes)
    def test_offsets(self, moment):
        try:
            parsed = parse_time(moment.isoformat())
        except ValueError:
            assert not 0 <= moment.timestamp() < LATEST_TIME
            return
        assert parsed == pytest.approx(moment.timestamp(), abs=1e-6)

    @PROFILE
    @given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 1, 1)))
    def test_naive_is_utc(self, moment):
        assert parse_time(moment.isoformat()) == pytest.approx(
            moment.replace(tzinfo=dt.timezone.utc).timestamp(), abs=1e-6
        )

    @PROFILE
    @given(timestamps)
    def test_only_value_error(self, text):
        try:
            parsed = parse_time(text)
        except ValueError:
            return
        assert 0 <= parsed < LATEST_TIME
        format_time(parsed)


class TestMapping:
    """Mapping never raises for any catalog, override or incident, and always names a rule."""

    @PROFILE
    @given(
        incident_documents(),
        st.lists(catalog_services, max_size=6),
        st.lists(catalog_teams, max_size=4),
        st.lists(overrides, max_size=3),
        st.one_of(st.none(), names),
        st.one_of(st.none(), st.dictionaries(names, st.one_of(names, json_values), max_size=3)),
    )
    def test_map_incident(self, document, services, teams, rules, env, severity_mapping):
        try:
            incident = parse_incident(document)
        except MalformedIncident:
            return
        catalog = Catalog(services=tuple(services), teams=tuple(teams))
        result = map_incident(incident, catalog, overrides=rules, env=env, severity_mapping=severity_mapping)
        assert result.rule in RULES
        assert all(isinstance(service, str) for service in result.services)
        assert result.team is None or isinstance(result.team, str)
        passes_filters(incident, urgencies=['high'], priorities=['P1', 'none'])
        build_failure(incident, result)

    @PROFILE
    @given(st.lists(json_values, max_size=3))
    def test_parse_overrides_raises_only_value_error(self, raw):
        try:
            parsed = parse_overrides(raw)
        except ValueError:
            return
        assert all(isinstance(o, Override) for o in parsed)


v2_documents = st.fixed_dictionaries(
    {'schema-version': st.sampled_from(['v2', 'v2.1', 'v2.2', 'v1', None])},
    optional={
        'dd-service': st.one_of(names, json_values),
        'team': st.one_of(names, json_values),
        'dd-team': st.one_of(names, json_values),
        'integrations': st.one_of(
            json_values,
            st.fixed_dictionaries(
                {'pagerduty': st.one_of(urls, json_values, st.fixed_dictionaries({'service-url': urls}))}
            ),
        ),
    },
)
v3_documents = st.fixed_dictionaries(
    {'apiVersion': st.one_of(st.sampled_from(['v3', 'v3.1', 'v2', ' v3 ']), json_values)},
    optional={
        'kind': st.one_of(st.sampled_from(['service', 'Service', 'datastore']), json_values),
        'metadata': st.one_of(
            json_values,
            st.fixed_dictionaries({}, optional={'name': st.one_of(names, json_values), 'owner': st.one_of(names)}),
        ),
        'integrations': st.one_of(
            json_values,
            st.fixed_dictionaries(
                {'pagerduty': st.one_of(json_values, st.fixed_dictionaries({'serviceURL': st.one_of(urls)}))}
            ),
        ),
    },
)


class TestCatalogDocuments:
    """Any catalog document yields services or an `InvalidDefinition`, and whatever it yields maps."""

    @PROFILE
    @given(st.one_of(json_values, v2_documents, v3_documents))
    def test_parse_definition(self, document):
        try:
            services = parse_definition(document, 'files')
        except InvalidDefinition:
            return
        assert all(isinstance(s, CatalogService) and s.name.strip() for s in services)
        incident = parse_incident(BASE_INCIDENT)
        assert map_incident(incident, Catalog(services=tuple(services))).rule in RULES

    @PROFILE
    @given(json_values)
    def test_cached_copy_decodes_or_raises_value_error(self, raw):
        try:
            copy = SourceCopy.from_json('files', raw)
        except (ValueError, TypeError, KeyError):
            return
        format_time(copy.loaded_at)
