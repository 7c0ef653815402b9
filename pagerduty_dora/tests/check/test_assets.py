# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The dashboard and recommended monitors query only metrics of metadata.csv, and the manifest lists exactly them."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from datadog_api_client.configuration import Configuration
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor

from ..paths import INTEGRATION

ROOT = INTEGRATION
ASSETS = ROOT / 'assets'
METRIC_PREFIX = 'pagerduty_dora.'
# A metric name inside a query: `avg:pagerduty_dora.incidents.open{...}`, `...95percentile{*} by {service}`.
METRIC_IN_QUERY = re.compile(r'(?<![\w.])pagerduty_dora\.[A-Za-z0-9_.]*[A-Za-z0-9_]')
TEMPLATE_VARIABLE = re.compile(r'\$([A-Za-z_][A-Za-z0-9_]*)')
# Monitor types whose `query` is a metric query.
METRIC_MONITOR_TYPES = ('query alert', 'metric alert')
SERVICE_CHECK_MONITOR_TYPE = 'service check'
SERVICE_CHECK = 'pagerduty_dora.can_connect'
SUBMIT_CHECK = 'pagerduty_dora.can_submit'
MONITOR_FIELDS = ('version', 'created_at', 'last_updated_at', 'title', 'description', 'definition', 'tags')


def api_model(document: dict, model: type) -> Any:
    """`document` read into a model of Datadog's published API client, as the API would read it."""
    return validate_and_convert_types(document, (model,), ['asset'], True, True, Configuration())


def parsed_widgets(widgets: list) -> int:
    """How many widgets, groups included, were read into a known widget definition; raises on one that was not."""
    count = 0
    for widget in widgets:
        definition = widget.definition.get_oneof_instance()
        assert not getattr(definition, '_unparsed', False), widget.id
        count += 1 + parsed_widgets(getattr(definition, 'widgets', None) or [])
    return count


def metadata_metrics() -> set[str]:
    with open(ROOT / 'metadata.csv', newline='', encoding='utf-8') as f:
        return {row['metric_name'] for row in csv.DictReader(f)}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding='utf-8'))


def manifest_assets(kind: str) -> set[str]:
    return set(load(ROOT / 'manifest.json')['assets'].get(kind, {}).values())


def asset_files(kind: str) -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in (ASSETS / kind).glob('*.json')}


def dashboard_metric_queries(node: Any) -> Iterator[str]:
    """Every metric query of a dashboard: formula-style `queries` and legacy `q` requests, in any group."""
    if isinstance(node, dict):
        if node.get('data_source') == 'metrics' and isinstance(node.get('query'), str):
            yield node['query']
        if isinstance(node.get('q'), str):
            yield node['q']
        for value in node.values():
            yield from dashboard_metric_queries(value)
    elif isinstance(node, list):
        for value in node:
            yield from dashboard_metric_queries(value)


def titled_widgets(widgets: list) -> Iterator[tuple[str, list[str]]]:
    """(title, metric queries) of every widget that is not a group, in any group."""
    for widget in widgets:
        definition = widget['definition']
        if definition['type'] == 'group':
            yield from titled_widgets(definition['widgets'])
        else:
            yield definition.get('title', ''), list(dashboard_metric_queries(definition))


def metric_names(query: str) -> list[str]:
    return METRIC_IN_QUERY.findall(query)


def asset_queries() -> list[tuple[str, str]]:
    """(file, query) for every metric query of every dashboard and monitor the manifest lists."""
    queries = []
    for relative in sorted(manifest_assets('dashboards')):
        for query in dashboard_metric_queries(load(ROOT / relative)):
            queries.append((relative, query))
    for relative in sorted(manifest_assets('monitors')):
        definition = load(ROOT / relative)['definition']
        if definition.get('type') in METRIC_MONITOR_TYPES:
            queries.append((relative, definition['query']))
    return queries


class TestMetricNames:
    """Each metric query names metrics that metadata.csv lists, so a rename cannot leave a dead widget or monitor."""

    def test_assets_hold_metric_queries(self):
        queries = asset_queries()
        assert {relative.split('/')[1] for relative, _ in queries} == {'dashboards', 'monitors'}
        assert len(queries) == 65, queries  # 64 on the dashboard, 1 in the metric monitors

    @pytest.mark.parametrize(
        'query, expected',
        [
            ('avg:pagerduty_dora.incidents.time_to_restore.95percentile{$env} by {service}', ['95percentile']),
            ('sum:pagerduty_dora.api.requests{*} by {status_class}.as_count()', ['requests']),
            (
                'sum(last_1h):sum:pagerduty_dora.dora.rejected{*}.as_count() / sum:pagerduty_dora.dora.submitted{*}',
                ['rejected', 'submitted'],
            ),
            ('min:pagerduty_dora.api.can_connect{api:pagerduty}', ['can_connect']),
        ],
        ids=['histogram-aggregate', 'as-count-suffix', 'two-metrics', 'gauge'],
    )
    def test_metric_names_are_read_whole(self, query, expected):
        assert [name.rsplit('.', 1)[1] for name in metric_names(query)] == expected

    def test_every_query_names_a_listed_metric(self):
        listed = metadata_metrics()
        unknown = []
        for relative, query in asset_queries():
            names = metric_names(query)
            assert names, 'no pagerduty_dora metric in {}: {}'.format(relative, query)
            unknown.extend('{}: {}'.format(relative, name) for name in names if name not in listed)
        assert not unknown, 'metrics missing from metadata.csv:\n' + '\n'.join(unknown)

    def test_a_wrong_name_is_caught(self):
        listed = metadata_metrics()
        names = metric_names('avg:pagerduty_dora.incidents.time_to_restore.p95{*}')
        assert names == ['pagerduty_dora.incidents.time_to_restore.p95']
        assert names[0] not in listed


class TestManifest:
    """Every dashboard and monitor file is listed in manifest.json, and every listed file exists."""

    @pytest.mark.parametrize('kind', ['dashboards', 'monitors'], ids=['dashboards', 'monitors'])
    def test_listed_files_match_files_on_disk(self, kind):
        on_disk = asset_files(kind)
        assert on_disk, 'no {} under assets/{}'.format(kind, kind)
        assert manifest_assets(kind) == on_disk


class TestDashboard:
    """The dashboard is in the new /dashboard format and uses only the template variables it defines."""

    def test_template_variables(self):
        for relative in manifest_assets('dashboards'):
            dashboard = load(ROOT / relative)
            assert dashboard['layout_type'] == 'ordered'
            defined = {variable['name'] for variable in dashboard['template_variables']}
            assert {'env', 'team', 'service'} <= defined
            used = set(TEMPLATE_VARIABLE.findall(json.dumps(dashboard['widgets'])))
            assert used, relative
            assert used <= defined, used - defined

    def test_dashboard_matches_the_api_model(self):
        for relative in manifest_assets('dashboards'):
            dashboard = api_model(load(ROOT / relative), Dashboard)
            assert dashboard._unparsed is False
            assert parsed_widgets(dashboard.widgets) == 68

    def test_a_bad_widget_is_caught(self):
        document = load(ROOT / sorted(manifest_assets('dashboards'))[0])
        document['widgets'][1]['definition']['widgets'][0]['definition']['type'] = 'query_valu'
        assert api_model(document, Dashboard)._unparsed is True

    def test_percentile_titles_say_what_they_compute(self):
        # The Agent sends a histogram's median and p95 per flush: a widget of them is no percentile of its time frame.
        for relative in manifest_assets('dashboards'):
            for title, queries in titled_widgets(load(ROOT / relative)['widgets']):
                if any(re.search(r'\.(median|95percentile)\{', query) for query in queries):
                    assert 'per-flush' in title.lower(), title

    def test_severity_split_and_attribution_results(self):
        for relative in manifest_assets('dashboards'):
            queries = list(dashboard_metric_queries(load(ROOT / relative)))
            for metric in ('incidents.triggered', 'incidents.time_to_restore.median'):
                assert any(METRIC_PREFIX + metric + '{' in q and 'by {severity}' in q for q in queries), metric
            assert any(METRIC_PREFIX + 'attribution.results{' in q and 'by {outcome}' in q for q in queries)
            for metric in ('dora.removed', 'dora.unremovable'):
                assert any(METRIC_PREFIX + metric + '{' in q for q in queries), metric


def group_widgets(dashboard: dict, title_start: str) -> list[dict]:
    (group,) = [w for w in dashboard['widgets'] if w['definition'].get('title', '').startswith(title_start)]
    return [w['definition'] for w in group['definition']['widgets']]


class TestDashboardHealth:
    """The health section shows both APIs and both service checks; the attribution note says what the code counts."""

    def test_both_apis_and_both_service_checks(self):
        for relative in manifest_assets('dashboards'):
            widgets = group_widgets(load(ROOT / relative), 'Collection health')
            queries = [q for w in widgets for q in dashboard_metric_queries(w)]
            for api in ('pagerduty', 'datadog'):
                assert 'min:pagerduty_dora.api.can_connect{{api:{}}}'.format(api) in queries, api
            checks = {w['check']: w['group_by'] for w in widgets if w['type'] == 'check_status'}
            assert checks == {SERVICE_CHECK: ['api'], SUBMIT_CHECK: []}

    def test_attribution_note_names_real_outcomes_and_links_dora_metrics(self):
        from datadog_checks.pagerduty_dora.attribution import model

        outcomes = {value for name, value in vars(model).items() if name.isupper() and isinstance(value, str)}
        for relative in manifest_assets('dashboards'):
            (note,) = [
                w for w in group_widgets(load(ROOT / relative), 'Change-failure attribution') if w['type'] == 'note'
            ]
            named = set(re.findall(r'`([a-z_]+)`', note['content'])) - {'attribute_change_failures'}
            assert named and named <= outcomes, named - outcomes
            assert '[DORA Metrics](/ci/dora)' in note['content']
            assert 'change failure rate' in note['content']


class TestMonitors:
    """Recommended monitors carry the fields and tag of the integrations-core monitor format."""

    @pytest.mark.parametrize('relative', sorted(manifest_assets('monitors')), ids=lambda relative: Path(relative).stem)
    def test_monitor_shape(self, relative):
        monitor = load(ROOT / relative)
        assert [field for field in MONITOR_FIELDS if field not in monitor] == []
        assert monitor['version'] == 2
        assert monitor['tags'] == ['integration:pagerduty_dora']
        definition = monitor['definition']
        assert definition['type'] in METRIC_MONITOR_TYPES + (SERVICE_CHECK_MONITOR_TYPE,)
        assert definition['options']['thresholds']['critical'] is not None
        assert definition['message'].strip()
        fields = {key: value for key, value in definition.items() if key != 'restriction_policy'}
        assert api_model(fields, Monitor)._unparsed is False

    @pytest.mark.parametrize('relative', sorted(manifest_assets('monitors')), ids=lambda relative: Path(relative).stem)
    def test_service_check_monitors_use_the_declared_check(self, relative):
        definition = load(ROOT / relative)['definition']
        if definition['type'] != SERVICE_CHECK_MONITOR_TYPE:
            assert SERVICE_CHECK not in definition['query'] and SUBMIT_CHECK not in definition['query']
            return
        declared = {entry['check'] for entry in load(ROOT / 'assets' / 'service_checks.json')}
        assert re.match(r'^"([a-z_.]+)"\.over\(', definition['query']).group(1) in declared
        assert '{{check_message}}' in definition['message']

    def test_only_can_submit_alerts_on_no_data(self):
        # An Agent that stopped running the check sends no service check at all: only no-data alerting
        # notices it, once per instance, in the `can_submit` monitor (`can_connect` would repeat it per API).
        definitions = [load(ROOT / relative)['definition'] for relative in sorted(manifest_assets('monitors'))]
        no_data = {
            d['query'].split('"')[1]: d['options']['notify_no_data']
            for d in definitions
            if d['type'] == SERVICE_CHECK_MONITOR_TYPE
        }
        assert no_data == {SERVICE_CHECK: False, SUBMIT_CHECK: True}
        timeframes = [d['options'].get('no_data_timeframe', 0) for d in definitions if SUBMIT_CHECK in d['query']]
        assert timeframes == [20]

    def test_can_submit_monitor(self):
        """Nothing submitted (invalid configuration, a catalog source that never loaded) has its monitor."""
        declared = {entry['check']: entry for entry in load(ROOT / 'assets' / 'service_checks.json')}
        assert declared[SUBMIT_CHECK]['statuses'] == ['ok', 'critical', 'unknown']
        queries = [load(ROOT / relative)['definition']['query'] for relative in manifest_assets('monitors')]
        assert [q for q in queries if SUBMIT_CHECK in q] == [
            '"pagerduty_dora.can_submit".over("*").by("pagerduty_dora_instance").last(3).count_by_status()'
        ]

    def test_service_check_monitor_per_instance_and_api(self):
        queries = [
            load(ROOT / relative)['definition']['query']
            for relative in manifest_assets('monitors')
            if load(ROOT / relative)['definition']['type'] == SERVICE_CHECK_MONITOR_TYPE
        ]
        assert [q for q in queries if SERVICE_CHECK in q] == [
            '"pagerduty_dora.can_connect".over("*").by("pagerduty_dora_instance","api").last(3).count_by_status()'
        ]

    def test_service_checks_declare_the_groups_the_monitors_use(self):
        declared = {entry['check']: entry['groups'] for entry in load(ROOT / 'assets' / 'service_checks.json')}
        assert declared == {
            SERVICE_CHECK: ['pagerduty_dora_instance', 'api'],
            SUBMIT_CHECK: ['pagerduty_dora_instance'],
        }

    def test_percentile_titles_say_what_they_compute(self):
        for relative in manifest_assets('monitors'):
            monitor = load(ROOT / relative)
            if '95percentile' in monitor['definition']['query']:
                assert 'per-flush' in monitor['title'].lower(), monitor['title']


class TestReadme:
    """The README's metric table lists every metric of metadata.csv and nothing else."""

    def test_metric_table_matches_metadata(self):
        readme = (ROOT / 'README.md').read_text(encoding='utf-8')
        in_table = set(re.findall(r'^\| `(pagerduty_dora\.[A-Za-z0-9_.]+)` \|', readme, flags=re.MULTILINE))
        assert in_table
        assert in_table == metadata_metrics()
