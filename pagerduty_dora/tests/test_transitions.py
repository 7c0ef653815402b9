# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import copy
import json
from pathlib import Path

import pytest

from datadog_checks.pagerduty_dora.incident import MalformedIncident, format_time, parse_incident, parse_time
from datadog_checks.pagerduty_dora.state import CollectorState, Window
from datadog_checks.pagerduty_dora.transitions import arrival, changes, record_of, reopening

FIXTURE = json.loads((Path(__file__).parent / 'fixtures' / 'incident_acknowledged.json').read_text())
NOW = parse_time('2026-11-20T10:00:00Z')


def raw(**fields):
    incident = copy.deepcopy(FIXTURE)
    incident.update(fields)
    return incident


class TestParseTime:
    """Timestamps: offsets, naive values and garbage."""

    @pytest.mark.parametrize(
        'text, expected',
        [
            ('2026-11-20T09:15:00Z', '2026-11-20T09:15:00Z'),
            ('2026-11-20T04:15:00-05:00', '2026-11-20T09:15:00Z'),
            ('2026-11-20T10:15:00+01:00', '2026-11-20T09:15:00Z'),
            ('2026-11-20T09:15:00.750Z', '2026-11-20T09:15:00Z'),
            ('2026-11-20T09:15:00', '2026-11-20T09:15:00Z'),
        ],
        ids=['utc', 'negative-offset', 'positive-offset', 'fractional', 'naive-read-as-utc'],
    )
    def test_parses_to_utc(self, text, expected):
        assert format_time(parse_time(text)) == expected

    @pytest.mark.parametrize('value', ['', 'yesterday', None, 12], ids=['empty', 'words', 'none', 'number'])
    def test_rejects_garbage(self, value):
        with pytest.raises(ValueError):
            parse_time(value)


class TestParseIncident:
    """PagerDuty's incident object into an Incident."""

    def test_fields(self):
        incident = parse_incident(FIXTURE)
        assert incident.id == 'Q1B2C3D4E5F6G7'
        assert incident.number == 1234
        assert incident.status == 'acknowledged'
        assert incident.priority == 'P1'
        assert incident.service_name == 'Checkout API'
        assert incident.service_url == 'https://acme.pagerduty.com/service-directory/PSVC001'
        assert [t.name for t in incident.teams] == ['Payments']
        assert incident.acknowledged_at == parse_time('2026-11-20T09:20:00Z')
        assert incident.resolved_at is None

    def test_resolved_without_resolved_at_uses_last_status_change(self):
        incident = parse_incident(raw(status='resolved', resolved_at=None))
        assert incident.resolved_at == parse_time('2026-11-20T09:20:00Z')

    @pytest.mark.parametrize(
        'fields, message',
        [
            ({'id': None}, 'missing id'),
            ({'status': 'snoozed'}, 'unknown status'),
            ({'incident_number': '12'}, 'incident_number'),
            ({'created_at': 'not a time'}, 'created_at'),
            ({'service': None}, 'service'),
        ],
        ids=['no-id', 'unknown-status', 'number-as-string', 'bad-created-at', 'no-service'],
    )
    def test_malformed(self, fields, message):
        with pytest.raises(MalformedIncident, match=message):
            parse_incident(raw(**fields))

    def test_priority_without_name_uses_summary_and_missing_priority_is_none(self):
        assert parse_incident(raw(priority={'id': 'X', 'summary': 'P3'})).priority == 'P3'
        assert parse_incident(raw(priority=None)).priority is None


class TestTransitions:
    """Which transitions a change of state produces, and when they happened."""

    @pytest.mark.parametrize(
        'before, after, kinds',
        [
            ('triggered', 'acknowledged', ['acknowledged']),
            ('acknowledged', 'triggered', ['unacknowledged']),
            ('acknowledged', 'resolved', ['resolved']),
            ('triggered', 'resolved', ['acknowledged', 'resolved']),
            ('resolved', 'triggered', ['reopened']),
            ('resolved', 'acknowledged', ['reopened', 'acknowledged']),
            ('acknowledged', 'acknowledged', []),
        ],
        ids=['ack', 'unack', 'resolve', 'ack-and-resolve-between-runs', 'reopen', 'reopen-and-ack', 'no-change'],
    )
    def test_status_changes(self, before, after, kinds):
        record = record_of(parse_incident(raw(status=before, resolved_at='2026-11-20T09:30:00Z')))
        incident = parse_incident(
            raw(status=after, resolved_at='2026-11-20T09:40:00Z' if after == 'resolved' else None)
        )
        assert [t.kind for t in changes(record, incident, NOW)] == kinds

    def test_field_changes_carry_previous_values(self):
        record = record_of(parse_incident(FIXTURE))
        moved = raw(
            priority={'id': 'P2ID', 'summary': 'P2', 'name': 'P2'},
            urgency='low',
            service={'id': 'PSVC002', 'summary': 'Billing', 'html_url': 'https://acme.pagerduty.com/services/PSVC002'},
        )
        found = [(t.kind, t.previous) for t in changes(record, parse_incident(moved), NOW)]
        assert found == [('priority_changed', 'P1'), ('urgency_changed', 'high'), ('service_changed', 'Checkout API')]

    def test_arrival_of_a_resolved_incident_replays_its_life(self):
        incident = parse_incident(raw(status='resolved', resolved_at='2026-11-20T09:45:00Z'))
        found = [(t.kind, format_time(t.at)) for t in arrival(incident)]
        assert found == [
            ('triggered', '2026-11-20T09:15:00Z'),
            ('acknowledged', '2026-11-20T09:20:00Z'),
            ('resolved', '2026-11-20T09:45:00Z'),
        ]

    def test_reopening_uses_the_status_change_time(self):
        incident = parse_incident(raw(status='triggered', acknowledgements=[]))
        assert [(t.kind, format_time(t.at)) for t in reopening(incident, NOW)] == [('reopened', '2026-11-20T09:20:00Z')]


class TestStateRoundTrip:
    """The stored state survives a round trip and rejects what it cannot read."""

    def test_round_trip(self):
        state = CollectorState(horizon=1.0, live_since=2.0, window=Window(3.0, 4.0, 200, 950), width=86400.0)
        state.incidents['A'] = record_of(parse_incident(FIXTURE), 'abc', ['service:checkout'])
        again = CollectorState.loads(state.dumps())
        assert again == state

    @pytest.mark.parametrize(
        'text',
        ['{', '[]', '{"version": 99}', '{"version": 1, "incidents": {"A": [1, 2]}}', '{"version": 1, "window": 5}'],
        ids=['truncated', 'wrong-type', 'future-version', 'short-record', 'bad-window'],
    )
    def test_damaged(self, text):
        with pytest.raises(ValueError):
            CollectorState.loads(text)
