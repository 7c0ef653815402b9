# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import copy
import json
from pathlib import Path

import pytest

from datadog_checks.pagerduty_dora.incident import MalformedIncident, parse_incident
from datadog_checks.pagerduty_dora.state import CollectorState, Feed, FeedWindow, Reconciliation, Window
from datadog_checks.pagerduty_dora.times import format_time, parse_time
from datadog_checks.pagerduty_dora.transitions import (
    NEW,
    UNKNOWN,
    Horizons,
    ReadLog,
    Replay,
    adopt,
    apply_entry,
    field_changes,
    record_of,
    reopened_unlogged,
    settle,
)

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


def at(text):
    return parse_time('2026-11-20T{}Z'.format(text))


def replay_of(status, *, acked=False, resolved_at=None, status_at=0.0):
    return Replay(status, acked=acked, resolved_at=resolved_at, status_at=status_at)


def played(replay, incident, *entries):
    found = []
    for action, time in entries:
        found += [(t.kind, format_time(t.at)[11:19], t.first) for t in apply_entry(replay, action, at(time), incident)]
    return found


class TestReplay:
    """Status log entries replayed against what was last emitted: several changes between two looks."""

    INCIDENT = parse_incident(raw(status='resolved', resolved_at='2026-11-20T09:45:00Z', acknowledgements=[]))

    @pytest.mark.parametrize(
        'start, entries, expected',
        [
            (
                NEW,
                [('trigger', '09:15:00'), ('acknowledge', '09:20:00'), ('resolve', '09:45:00')],
                [
                    ('triggered', '09:15:00', True),
                    ('acknowledged', '09:20:00', True),
                    ('resolved', '09:45:00', True),
                ],
            ),
            (
                'triggered',
                [('resolve', '09:30:00'), ('resolve', '09:45:00')],
                [('resolved', '09:30:00', True), ('reopened', '09:45:00', True), ('resolved', '09:45:00', True)],
            ),
            (
                'acknowledged',
                [('resolve', '09:30:00'), ('resolve', '09:45:00')],
                [('resolved', '09:30:00', True), ('reopened', '09:45:00', True), ('resolved', '09:45:00', True)],
            ),
            (
                'triggered',
                [('acknowledge', '09:20:00'), ('unacknowledge', '09:25:00'), ('acknowledge', '09:30:00')],
                [
                    ('acknowledged', '09:20:00', True),
                    ('unacknowledged', '09:25:00', True),
                    ('acknowledged', '09:30:00', False),
                ],
            ),
            (
                'resolved',
                [('acknowledge', '09:50:00')],
                [('reopened', '09:50:00', True), ('acknowledged', '09:50:00', True)],
            ),
            ('acknowledged', [('acknowledge', '09:50:00')], []),
            ('triggered', [('trigger', '09:15:00')], []),
            (UNKNOWN, [('resolve', '09:45:00')], [('resolved', '09:45:00', True)]),
            (UNKNOWN, [('acknowledge', '09:20:00')], [('acknowledged', '09:20:00', False)]),
        ],
        ids=[
            'created-acked-resolved',
            'resolve-reopen-resolve',
            'acked-resolve-reopen-resolve',
            'ack-unack-ack',
            'ack-of-resolved-is-a-reopen',
            're-acknowledge',
            'duplicate-trigger',
            'unknown-resolve-is-no-reopen',
            'unknown-ack-is-not-the-first',
        ],
    )
    def test_sequences(self, start, entries, expected):
        assert played(replay_of(start), self.INCIDENT, *entries) == expected

    def test_entries_before_the_last_look_are_reflected(self):
        replay = replay_of('resolved', resolved_at=at('09:30:00'), status_at=at('09:40:00'))
        assert played(replay, self.INCIDENT, ('resolve', '09:30:00')) == []

    def test_an_entry_of_the_very_second_of_the_last_look_is_no_evidence_of_a_reopen(self):
        replay = replay_of('resolved', resolved_at=at('09:40:00'), status_at=at('09:40:00') + 0.6)
        assert played(replay, self.INCIDENT, ('resolve', '09:40:00')) == []
        assert replay.status == 'resolved'


class TestSnapshot:
    """What the incident object alone shows: unlogged reopens, field changes, last-resort adoption."""

    def test_unlogged_reopen_is_claimed_once_the_log_is_read_past_it(self):
        incident = parse_incident(
            raw(status='triggered', acknowledgements=[], last_status_change_at='2026-11-20T09:50:00Z')
        )
        replay = replay_of('resolved', resolved_at=at('09:40:00'))
        assert reopened_unlogged(replay, incident, covered_until=at('09:50:00')) is None
        reopen = reopened_unlogged(replay, incident, covered_until=at('09:55:00'))
        assert (reopen.kind, format_time(reopen.at)) == ('reopened', '2026-11-20T09:50:00Z')
        assert replay.status == 'triggered'

    def test_no_reopen_before_the_last_resolve(self):
        incident = parse_incident(
            raw(status='triggered', acknowledgements=[], last_status_change_at='2026-11-20T09:30:00Z')
        )
        replay = replay_of('resolved', resolved_at=at('09:40:00'))
        assert reopened_unlogged(replay, incident, covered_until=at('10:00:00')) is None

    def test_field_changes_carry_previous_values(self):
        record = record_of(parse_incident(FIXTURE), replay_of('acknowledged'))
        moved = raw(
            priority={'id': 'P2ID', 'summary': 'P2', 'name': 'P2'},
            urgency='low',
            service={'id': 'PSVC002', 'summary': 'Billing', 'html_url': 'https://acme.pagerduty.com/services/PSVC002'},
        )
        found = [(t.kind, t.previous) for t in field_changes(record, parse_incident(moved), NOW)]
        assert found == [('priority_changed', 'P1'), ('urgency_changed', 'high'), ('service_changed', 'Checkout API')]

    def test_arrival_of_a_resolved_incident_replays_its_life(self):
        incident = parse_incident(raw(status='resolved', resolved_at='2026-11-20T09:45:00Z'))
        found = [(t.kind, format_time(t.at)) for t in adopt(Replay(NEW), incident, incident.created_at)]
        assert found == [('triggered', '2026-11-20T09:15:00Z'), ('resolved', '2026-11-20T09:45:00Z')]

    def test_adopt_from_resolved_to_acknowledged(self):
        incident = parse_incident(FIXTURE)
        found = [t.kind for t in adopt(replay_of('resolved', acked=True), incident, NOW)]
        assert found == ['reopened', 'acknowledged']


class Logged:
    def __init__(self, action, time):
        self.action, self.at = action, at(time)


class TestSettle:
    """The decision step: what the incident's own state means, and when only its own log can tell."""

    HORIZONS = Horizons(
        live_since=at('08:00:00'), covered=at('10:00:00'), baseline=True, now=at('10:00:30'), overlap=120
    )

    def test_an_open_incident_without_a_record_after_the_baseline_asks_for_its_log(self):
        incident = parse_incident(
            raw(status='triggered', acknowledgements=[], last_status_change_at='2026-11-20T09:50:00Z')
        )
        replay = Replay.of(None, incident, None)
        assert settle(replay, incident, None, self.HORIZONS) == ReadLog(None)
        assert replay.status == UNKNOWN

    @pytest.mark.parametrize(
        'log, expected',
        [([('trigger', '09:15:00'), ('resolve', '09:40:00')], ['reopened']), ([('trigger', '09:15:00')], [])],
        ids=['resolved-before-so-reopened', 'never-resolved-so-moved-into-scope'],
    )
    def test_its_log_tells_a_reopen_from_a_move_into_scope(self, log, expected):
        incident = parse_incident(
            raw(status='triggered', acknowledgements=[], last_status_change_at='2026-11-20T09:50:00Z')
        )
        replay = Replay.of(None, incident, None)
        found = settle(replay, incident, None, self.HORIZONS, [Logged(*entry) for entry in log])
        assert [t.kind for t in found] == expected
        assert replay.status == 'triggered'

    def test_before_the_baseline_an_unknown_incident_is_recorded_silently(self):
        incident = parse_incident(
            raw(status='triggered', acknowledgements=[], last_status_change_at='2026-11-20T09:50:00Z')
        )
        horizons = Horizons(at('08:00:00'), at('10:00:00'), False, at('10:00:30'), 120)
        assert settle(Replay.of(None, incident, None), incident, None, horizons) == []

    def test_a_change_the_feed_read_past_without_showing_asks_for_the_log_since_the_last_look(self):
        incident = parse_incident(FIXTURE)  # acknowledged at 09:20
        record = record_of(
            parse_incident(raw(status='triggered', acknowledgements=[])),
            replay_of('triggered', status_at=at('09:10:00')),
        )
        replay = Replay.of(record, incident, None)
        assert settle(replay, incident, record, self.HORIZONS) == ReadLog(at('09:10:00'))
        found = settle(replay, incident, record, self.HORIZONS, [Logged('acknowledge', '09:20:00')])
        assert [(t.kind, format_time(t.at)) for t in found] == [('acknowledged', '2026-11-20T09:20:00Z')]

    def test_a_change_the_feed_has_not_read_yet_waits_for_it(self):
        incident = parse_incident(raw(last_status_change_at='2026-11-20T09:59:30Z'))
        record = record_of(parse_incident(raw(status='triggered', acknowledgements=[])), replay_of('triggered'))
        replay = Replay.of(record, incident, None)
        assert settle(replay, incident, record, self.HORIZONS) == []
        assert replay.status == 'triggered'


class TestStateRoundTrip:
    """The stored state survives a round trip and rejects what it cannot read."""

    def test_round_trip(self):
        state = CollectorState(horizon=1.0, live_since=2.0, window=Window(3.0, 4.0, 200), width=86400.0)
        state.feed = Feed(horizon=5.0, window=FeedWindow(4.0, 5.0, 250, 200), width=60.0, applied={'R1': 4.5})
        state.reconciliation = Reconciliation(started=6.0, position=(3.5, 12), skip=100, verify=['A'])
        state.incidents['A'] = record_of(
            parse_incident(FIXTURE), replay_of('acknowledged', acked=True), fingerprint='abc'
        )
        again = CollectorState.loads(state.dumps())
        assert again == state

    @pytest.mark.parametrize(
        'text',
        [
            '{',
            '[]',
            '{"version": 99}',
            '{"version": 2, "incidents": {"A": [1, 2]}}',
            '{"version": 2, "window": 5}',
            '{"version": 1, "incidents": {}}',
        ],
        ids=['truncated', 'wrong-type', 'future-version', 'short-record', 'bad-window', 'older-layout'],
    )
    def test_damaged(self, text):
        with pytest.raises(ValueError):
            CollectorState.loads(text)
