# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import datetime as dt
import json

import pytest

from datadog_checks.base import AgentCheck
from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.datadog.events import build_event, format_duration
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import TRANSITION_KINDS, Transition

from ..paths import FIXTURES

MAPPED = MappingResult(rule='service_url', services=('checkout',), team='payments', env='prod', severity='SEV-1')
TAGS = ['team:sre-tools', 'service:checkout', 'env:prod']

CREATED = dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.timezone.utc).timestamp()
INCIDENT_URL = 'https://acme.pagerduty.com/incidents/Q1B2C3D4E5F6G7'


def incident(status='triggered', **changes):
    raw = json.loads((FIXTURES / 'incident_acknowledged.json').read_text())
    raw.update(status=status, urgency='high')
    if status == 'resolved':
        raw['resolved_at'] = '2026-11-20T10:20:00Z'
    raw.update(changes)
    return parse_incident(raw)


def event(kind, at=CREATED + 3900, previous=None, mapping=MAPPED, now=None, **changes):
    status = {'resolved': 'resolved', 'acknowledged': 'acknowledged'}.get(kind, 'triggered')
    transition = Transition(kind=kind, incident=incident(status, **changes), at=at, previous=previous)
    return build_event(transition, mapping, tags=TAGS, now=at + 30 if now is None else now)


class TestEventFields:
    """Fixed fields, alert types per transition kind, and tags passed through."""

    @pytest.mark.parametrize(
        'kind, alert_type',
        [
            ('triggered', 'error'),
            ('reopened', 'error'),
            ('acknowledged', 'warning'),
            ('resolved', 'success'),
            ('unacknowledged', 'info'),
            ('priority_changed', 'info'),
            ('urgency_changed', 'info'),
            ('service_changed', 'info'),
        ],
        ids=lambda value: value,
    )
    def test_alert_type(self, kind, alert_type):
        assert event(kind)['alert_type'] == alert_type

    def test_every_kind_is_covered(self):
        assert len(TRANSITION_KINDS) == 8
        assert {event(kind)['alert_type'] for kind in TRANSITION_KINDS} == {'error', 'warning', 'success', 'info'}

    def test_fixed_fields(self):
        built = event('resolved')
        assert built['timestamp'] == int(CREATED + 3900)
        assert type(built['timestamp']) is int
        assert built['event_type'] == 'pagerduty_dora'
        assert built['source_type_name'] == 'pagerduty_dora'
        assert built['aggregation_key'] == 'Q1B2C3D4E5F6G7'
        assert built['priority'] == 'normal'
        assert built['tags'] == TAGS
        assert built['tags'] is not TAGS

    def test_transition_older_than_18_hours_is_dated_now(self):
        at = CREATED + 3900
        built = event('resolved', at=at, now=at + 19 * 3600)
        assert built['timestamp'] == int(at + 19 * 3600)
        assert '2026-11-20T10:20:00Z (reported late' in built['msg_text']

    def test_accepted_by_the_agent(self, aggregator):
        check = AgentCheck('pagerduty_dora', {}, [{}])
        built = event('resolved')
        check.event(dict(built))
        aggregator.assert_event(
            built['msg_text'],
            count=1,
            tags=TAGS,
            alert_type='success',
            aggregation_key='Q1B2C3D4E5F6G7',
            msg_title=built['msg_title'],
            timestamp=built['timestamp'],
        )


class TestTitle:
    """`[P1] #1234 resolved: <title>`, bounded and on one line."""

    @pytest.mark.parametrize(
        'kind, changes, expected',
        [
            pytest.param('resolved', {}, '[P1] #1234 resolved: Checkout latency above SLO', id='resolved'),
            pytest.param('triggered', {}, '[P1] #1234 triggered: Checkout latency above SLO', id='triggered'),
            pytest.param(
                'priority_changed', {}, '[P1] #1234 priority changed: Checkout latency above SLO', id='priority-changed'
            ),
            pytest.param(
                'reopened', {'priority': None}, '#1234 reopened: Checkout latency above SLO', id='no-priority'
            ),
            pytest.param('acknowledged', {'title': '', 'summary': ''}, '[P1] #1234 acknowledged', id='no-title'),
            pytest.param(
                'triggered', {'title': 'Disk\nfull  on\tdb-1'}, '[P1] #1234 triggered: Disk full on db-1', id='one-line'
            ),
        ],
    )
    def test_title(self, kind, changes, expected):
        assert event(kind, **changes)['msg_title'] == expected

    def test_long_title_is_truncated(self):
        title = event('triggered', title='x' * 10**6)['msg_title']
        assert title == '[P1] #1234 triggered: ' + 'x' * 99 + '…'


class TestText:
    """Markdown text with the link, status, PagerDuty and mapped fields, durations and changes."""

    def test_resolved_text(self):
        text = event('resolved')['msg_text']
        assert text.startswith('%%% \n') and text.endswith('\n %%%')
        assert '[#1234 Checkout latency above SLO]({})'.format(INCIDENT_URL) in text
        assert '**Resolved** at 2026-11-20T10:20:00Z' in text
        assert '**Status:** resolved' in text
        assert '**Time to restore:** 1h 5m (3900 s)' in text
        assert '[Checkout API](https://acme.pagerduty.com/service-directory/PSVC001)' in text
        assert '**PagerDuty teams:** Payments' in text
        assert (
            '**Mapped by rule** `service_url` to service `checkout`, team `payments`, env `prod`, severity `SEV-1`'
            in text
        )
        assert 'Time to acknowledge' not in text

    def test_acknowledged_text(self):
        text = event('acknowledged', at=CREATED + 300)['msg_text']
        assert '**Time to acknowledge:** 5m (300 s)' in text
        assert 'Time to restore' not in text

    @pytest.mark.parametrize('kind', ['triggered', 'reopened', 'unacknowledged'], ids=lambda k: k)
    def test_no_duration_for_other_kinds(self, kind):
        text = event(kind)['msg_text']
        assert 'Time to' not in text

    @pytest.mark.parametrize(
        'kind, previous, changes, expected',
        [
            pytest.param('priority_changed', 'P3', {}, '**Priority changed:** P3 → P1', id='priority'),
            pytest.param('priority_changed', None, {}, '**Priority changed:** (none) → P1', id='priority-from-none'),
            pytest.param('urgency_changed', 'low', {}, '**Urgency changed:** low → high', id='urgency'),
            pytest.param(
                'service_changed',
                'Legacy Checkout',
                {},
                '**PagerDuty service changed:** Legacy Checkout → Checkout API',
                id='service',
            ),
        ],
    )
    def test_change(self, kind, previous, changes, expected):
        assert expected in event(kind, previous=previous, **changes)['msg_text']

    def test_unmapped_fields_read_none(self):
        mapping = MappingResult(rule='team_name', services=(), team='payments', env=None, severity=None)
        text = event('triggered', mapping=mapping)['msg_text']
        assert 'to service (none), team `payments`, env (none), severity (none)' in text

    def test_markdown_in_titles_is_literal(self):
        text = event('triggered', title='Use [this](http://evil) %%% now *bold*')['msg_text']
        assert text.count('%%%') == 2
        assert '](http://evil)' not in text
        assert r'\[this\]\(http://evil\)' in text

    def test_link_is_left_out_when_url_is_not_http(self):
        text = event('triggered', html_url='javascript:alert(1)')['msg_text']
        assert 'javascript:' not in text
        assert '### #1234 Checkout latency above SLO' in text


class TestBounds:
    """An incident of any size gives an event of bounded size."""

    def test_huge_title_and_many_teams(self):
        teams = [
            {'id': 'PT{:04d}'.format(n), 'type': 'team_reference', 'summary': 'Team ' + 'y' * 500} for n in range(200)
        ]
        built = event('resolved', title='x' * 10**6, teams=teams)
        assert len(built['msg_text']) <= 4000
        assert len(built['msg_title']) <= 130
        assert built['msg_text'].endswith('\n %%%')
        assert 'and 190 more' in built['msg_text']

    def test_text_limit_holds_with_long_mapping_values(self):
        mapping = MappingResult(
            rule='override',
            services=tuple('s' * 300 for _ in range(50)),
            team='t' * 5000,
            env='e' * 5000,
            severity='v' * 5000,
        )
        teams = [{'id': 'PT{:04d}'.format(n), 'type': 'team_reference', 'summary': 'z' * 5000} for n in range(50)]
        built = event('resolved', title='x' * 10**6, teams=teams, mapping=mapping)
        assert len(built['msg_text']) <= 4000
        assert built['msg_text'].startswith('%%% \n') and built['msg_text'].endswith('\n %%%')


class TestFormatDuration:
    """Durations read as their two largest units."""

    @pytest.mark.parametrize(
        'seconds, expected',
        [
            (0, '0s'),
            (-5, '0s'),
            (0.4, '0s'),
            (float('nan'), '0s'),
            (float('inf'), '0s'),
            (42, '42s'),
            (59.9, '59s'),
            (60, '1m'),
            (250, '4m 10s'),
            (3600, '1h'),
            (3605, '1h'),
            (3900, '1h 5m'),
            (86400 + 3600 + 61, '1d 1h'),
            (30 * 86400, '30d'),
        ],
        ids=lambda value: str(value),
    )
    def test_format(self, seconds, expected):
        assert format_duration(seconds) == expected
