# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import copy
import json

import pytest

from datadog_checks.pagerduty_dora.common.times import format_time, parse_time
from datadog_checks.pagerduty_dora.pagerduty.incident import MalformedIncident, parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import (
    NEW,
    Base,
    Step,
    adopt,
    field_changes,
    fold,
    observed,
    replay,
)

from ..paths import FIXTURES

FIXTURE = json.loads((FIXTURES / 'incident_acknowledged.json').read_text())
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


def step(action, time, entry_id=None, evidence=True, kind=''):
    return Step(entry_id or '{}-{}'.format(action or kind or 'entry', time), at(time), action, evidence, kind)


def played(base, incident, *steps):
    transitions, _ = replay(base, steps, incident)
    return [(t.kind, format_time(t.at)[11:19], t.first) for t in transitions]


class TestReplay:
    """Log entries replayed in time order from a base: several changes between two looks, each once."""

    INCIDENT = parse_incident(raw(status='resolved', resolved_at='2026-11-20T09:45:00Z', acknowledgements=[]))

    @pytest.mark.parametrize(
        'start, steps, expected',
        [
            (
                NEW,
                [step('trigger', '09:15:00'), step('acknowledge', '09:20:00'), step('resolve', '09:45:00')],
                [
                    ('triggered', '09:15:00', True),
                    ('acknowledged', '09:20:00', True),
                    ('resolved', '09:45:00', True),
                ],
            ),
            (
                'triggered',
                [step('resolve', '09:30:00'), step('', '09:40:00', kind='assign'), step('resolve', '09:45:00')],
                [('resolved', '09:30:00', True), ('reopened', '09:40:00', True), ('resolved', '09:45:00', True)],
            ),
            (
                'triggered',
                [step('acknowledge', '09:20:00'), step('unacknowledge', '09:25:00'), step('acknowledge', '09:30:00')],
                [
                    ('acknowledged', '09:20:00', True),
                    ('unacknowledged', '09:25:00', True),
                    ('acknowledged', '09:30:00', False),
                ],
            ),
            (
                'resolved',
                [step('acknowledge', '09:50:00')],
                [('reopened', '09:50:00', True), ('acknowledged', '09:50:00', True)],
            ),
            ('resolved', [step('', '09:50:00', evidence=False, kind='annotate')], []),
            ('acknowledged', [step('acknowledge', '09:50:00')], []),
            ('triggered', [step('trigger', '09:15:00')], []),
            (
                NEW,
                [step('resolve', '09:15:00'), step('', '09:15:00', kind='assign'), step('trigger', '09:15:00')],
                [('triggered', '09:15:00', True), ('resolved', '09:15:00', True)],
            ),
            (
                'triggered',
                [step('resolve', '09:45:00'), step('acknowledge', '09:20:00')],
                [('acknowledged', '09:20:00', True), ('resolved', '09:45:00', True)],
            ),
        ],
        ids=[
            'created-acked-resolved',
            'resolve-reopen-resolve',
            'ack-unack-ack',
            'ack-of-resolved-is-a-reopen',
            'a-note-on-a-resolved-incident-is-no-reopen',
            're-acknowledge',
            'duplicate-trigger',
            'one-second-on-two-pages-is-no-reopen',
            'late-acknowledgement-goes-in-its-place',
        ],
    )
    def test_sequences(self, start, steps, expected):
        assert played(Base(start), self.INCIDENT, *steps) == expected

    def test_keys_name_the_entry_that_proves_each_transition(self):
        steps = [
            step('resolve', '09:30:00', 'R1'),
            step('', '09:40:00', 'A2', kind='assign'),
            step('acknowledge', '09:41:00', 'K3'),
        ]
        transitions, _ = replay(Base('triggered'), steps, self.INCIDENT)
        assert [t.key for t in transitions] == ['R1', 'reopen:R1', 'K3']

    def test_entries_before_the_base_are_reflected(self):
        base = Base('triggered', at=at('09:30:00'))
        assert played(base, self.INCIDENT, step('acknowledge', '09:20:00')) == []

    def test_an_entry_of_the_second_an_object_was_read_is_no_evidence_of_a_reopen(self):
        base = observed(self.INCIDENT, at('09:50:00'))
        assert played(base, self.INCIDENT, step('acknowledge', '09:50:00')) == []
        # An object does not show earlier acknowledgements: this one is not taken for the first.
        assert played(base, self.INCIDENT, step('acknowledge', '09:50:01')) == [
            ('reopened', '09:50:01', True),
            ('acknowledged', '09:50:01', False),
        ]


class TestFold:
    """Steps older than the overlap move into the base; the story that remains replays the same."""

    INCIDENT = TestReplay.INCIDENT

    def test_fold_keeps_the_rest_of_the_story(self):
        steps = [
            step('trigger', '09:15:00', 'T'),
            step('acknowledge', '09:20:00', 'A'),
            step('resolve', '09:45:00', 'R'),
        ]
        base, kept, folded = fold(Base(), steps, at('09:30:00'), self.INCIDENT)
        assert (base.status, base.acked, folded) == ('acknowledged', True, {'trigger', 'A'})
        assert [s.id for s in kept] == ['R']
        assert played(base, self.INCIDENT, *kept) == [('resolved', '09:45:00', True)]


class TestAdopt:
    """The last resort: the incident's own status when no entry explains it, keyed so it is taken once."""

    def test_resolved_to_acknowledged(self):
        incident = parse_incident(raw())
        transitions = adopt(Base('resolved', resolve_key='R9'), incident, NOW)
        assert [(t.kind, t.key) for t in transitions] == [
            ('reopened', 'reopen:R9'),
            ('acknowledged', 'adopt:ack:{}'.format(int(incident.last_status_change_at))),
        ]

    def test_field_changes_carry_previous_values_and_an_urgency_change_its_own_time(self):
        incident = parse_incident(raw())
        steps = [step('', '09:31:00', kind='urgency_change')]
        changes = field_changes(('P3', 'low', 'POTHER', 'Old service'), incident, steps, NOW)
        found = {t.kind: (t.previous, t.at) for t in changes}
        assert found['priority_changed'][0] == 'P3'
        assert found['urgency_changed'] == ('low', at('09:31:00'))
        assert found['service_changed'][0] == 'Old service'
