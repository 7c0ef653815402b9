# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The recommended monitors against a table of causes: each cause pages once, in one monitor, per instance.

Each cause is made real (the check runs against the fakes), and the monitors are evaluated on what
the run reported, the way Datadog evaluates them: a service-check monitor alerts on each group of
its `by(...)` tags whose status is CRITICAL run after run, and on each group it saw before that then
reports nothing, when it alerts on no data.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from datadog_checks.base import AgentCheck
from datadog_checks.pagerduty_dora.check import INSTANCE_TAG

from ..harness import World
from ..paths import INTEGRATION

ROOT = INTEGRATION
SERVICE_CHECK_QUERY = re.compile(
    r'^"(?P<check>[a-z_.]+)"\.over\((?P<over>[^)]*)\)\.by\((?P<by>[^)]*)\)\.last\(\d+\)\.count_by_status\(\)$'
)


def monitors() -> dict[str, dict[str, Any]]:
    """The definitions of the monitors the manifest lists, by file name."""
    listed = json.loads((ROOT / 'manifest.json').read_text(encoding='utf-8'))['assets']['monitors'].values()
    return {Path(p).stem: json.loads((ROOT / p).read_text(encoding='utf-8'))['definition'] for p in listed}


def quoted(text: str) -> list[str]:
    return re.findall(r'"([^"]*)"', text)


def groups(definition: dict[str, Any], service_checks: list[Any]) -> dict[tuple[str, ...], list[int]]:
    """The statuses a service-check monitor sees, per group of its `by(...)` tags."""
    match = SERVICE_CHECK_QUERY.match(definition['query'])
    assert match, definition['query']
    over = [tag for tag in quoted(match.group('over')) if tag != '*']
    by = quoted(match.group('by'))
    seen: dict[tuple[str, ...], list[int]] = {}
    for service_check in service_checks:
        if service_check.name != match.group('check') or not all(tag in service_check.tags for tag in over):
            continue
        values = {tag.split(':', 1)[0]: tag.split(':', 1)[1] for tag in service_check.tags if ':' in tag}
        assert all(key in values for key in by), (by, service_check.tags)
        seen.setdefault(tuple(values[key] for key in by), []).append(service_check.status)
    return seen


def pages(service_checks: list[Any], *, before: list[Any] | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """(monitor, group) of every alert the service-check monitors raise on these service checks.

    With `before`, the check reported `before` on its last runs and then `service_checks`: a group seen
    before and not now is no data, which pages where the monitor alerts on no data.
    """
    raised = []
    for name, definition in sorted(monitors().items()):
        if definition['type'] != 'service check':
            continue
        now = groups(definition, service_checks)
        raised += [(name, group) for group, statuses in now.items() if AgentCheck.CRITICAL in statuses]
        if before is not None and definition['options'].get('notify_no_data'):
            raised += [(name, group) for group in groups(definition, before) if group not in now]
    return raised


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def gauge(aggregator: Any, name: str, tag: str) -> list[float]:
    return [m.value for m in aggregator.metrics('pagerduty_dora.' + name) if tag in m.tags]


# The causes an operator meets, how to make each, and the one monitor that must page for it (and the
# group's other tag, beside the instance).
CAUSES: list[tuple[str, Callable[[World], dict[str, Any]], str, tuple[str, ...]]] = [
    ('pagerduty-key-refused', lambda world: {'api_token': 'u+pdRevokedKey_H3jVc9'}, 'can_connect', ('pagerduty',)),
    (
        'pagerduty-unreachable',
        lambda world: {'pagerduty_api_url': 'http://127.0.0.1:{}'.format(closed_port())},
        'can_connect',
        ('pagerduty',),
    ),
    (
        'datadog-key-refused',
        lambda world: {'datadog_app_key': 'appWrongKey0123456789abcdef0123456789ab'},
        'can_connect',
        ('datadog',),
    ),
    ('invalid-configuration', lambda world: {'timeout': -3}, 'can_submit', ()),
    ('catalog-never-loaded', lambda world: {'catalog_files': ['/nonexistent/definitions/*.yaml']}, 'can_submit', ()),
]


class TestOneCauseOnePage:
    """Each cause in the table pages exactly one monitor, once, for its instance."""

    @pytest.mark.parametrize('cause, options, monitor, group', CAUSES, ids=[c[0] for c in CAUSES])
    def test_cause(self, aggregator, dd_run_check, world: World, simulated_run, cause, options, monitor, group):
        check = world.check(**options(world))
        with pytest.raises(Exception):
            dd_run_check(check)

        instance = check.persistent_cache_id()[:16]
        assert pages(
            aggregator.service_checks('pagerduty_dora.can_connect')
            + aggregator.service_checks('pagerduty_dora.can_submit')
        ) == [(monitor, (instance,) + group)]
        if cause == 'datadog-key-refused':
            # DORA failures pile up meanwhile: that monitor is muted by the Datadog API's `api.can_connect` of 0.
            assert gauge(aggregator, 'api.can_connect', 'api:datadog') == [0]
            assert '* min:pagerduty_dora.api.can_connect{api:datadog}' in monitors()['dora_pending']['query']

    def test_check_stopped(self, aggregator, dd_run_check, world: World, simulated_run):
        check = world.check()
        dd_run_check(check)
        healthy = aggregator.service_checks('pagerduty_dora.can_connect') + aggregator.service_checks(
            'pagerduty_dora.can_submit'
        )
        assert pages(healthy) == []

        assert pages([], before=healthy) == [('can_submit', (check.persistent_cache_id()[:16],))]

    def test_two_instances_page_apart(self, aggregator, dd_run_check, world: World, simulated_run):
        """Grouped by the instance, not the host: two instances of one Agent page apart."""
        first = world.check(api_token='u+pdRevokedKey_H3jVc9')
        second = world.check(api_token='u+pdRevokedKey_J7kLm2', service_ids=['PABC123'])
        for check in (first, second):
            with pytest.raises(Exception):
                dd_run_check(check)

        raised = pages(aggregator.service_checks('pagerduty_dora.can_connect'))

        assert sorted(raised) == sorted(
            ('can_connect', (check.persistent_cache_id()[:16], 'pagerduty')) for check in (first, second)
        )


class TestMonitorSet:
    """The set of monitors is the table's, tagged, and grouped by the instance."""

    def test_every_monitor_has_a_cause(self):
        assert sorted(monitors()) == sorted(
            {monitor for _, _, monitor, _ in CAUSES} | {'dora_pending', 'dora_rejected', 'time_to_restore_high'}
        )

    @pytest.mark.parametrize('name', sorted(monitors()), ids=sorted(monitors()))
    def test_tagged(self, name):
        assert 'integration:pagerduty_dora' in monitors()[name]['tags']

    def test_service_check_monitors_group_by_the_instance(self):
        for definition in monitors().values():
            if definition['type'] == 'service check':
                assert INSTANCE_TAG in quoted(SERVICE_CHECK_QUERY.match(definition['query']).group('by'))
                assert 'host' not in definition['query']

    def test_only_one_monitor_alerts_on_no_data(self):
        assert [name for name, d in sorted(monitors().items()) if d['options'].get('notify_no_data')] == ['can_submit']
