# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collection rule of `urgencies`, `priorities` and `unmapped_incidents`, as the collector and dry run share it."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from datadog_checks.pagerduty_dora.catalog.mapping import RULES, MappingResult
from datadog_checks.pagerduty_dora.catalog.qualification import FALLBACK_RULE, Qualification
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, Team

BASE = Incident(
    id='PINC001',
    number=1,
    title='Checkout latency above SLO',
    status='triggered',
    urgency='high',
    created_at=1_700_000_000.0,
    html_url='https://acme.pagerduty.com/incidents/PINC001',
    service_id='PSVC001',
    service_name='Checkout',
    service_url='https://acme.pagerduty.com/service-directory/PSVC001',
    teams=(Team(id='PTEAM01', name='Payments'),),
    priority='P1',
    acknowledged_at=None,
    resolved_at=None,
    last_status_change_at=None,
    updated_at=None,
)


def incident(urgency: str = 'high', priority: str | None = 'P1') -> Incident:
    return dataclasses.replace(BASE, urgency=urgency, priority=priority)


def mapped(rule: str) -> MappingResult:
    return MappingResult(rule=rule, services=('checkout',), team='payments', env='prod', severity='SEV-1')


class TestFilterReason:
    """Why the filters leave an incident out, in the words the dry run shows; None when it passes."""

    @pytest.mark.parametrize(
        'urgencies, priorities, urgency, priority, expected',
        [
            (None, None, 'low', None, None),
            ([], [], 'low', None, None),
            (['high'], None, 'high', 'P1', None),
            (['HIGH'], None, 'high', 'P1', None),
            (['high'], None, 'low', 'P1', 'low urgency'),
            (None, ['P1'], 'low', 'P1', None),
            (None, ['p2'], 'high', 'P2', None),
            (None, ['P1'], 'high', 'P2', 'priority P2'),
            (None, ['P1'], 'high', None, 'priority none'),
            (None, ['none'], 'high', None, None),
            (None, ['none'], 'high', 'P3', 'priority P3'),
            (['high'], ['P1'], 'low', 'P2', 'low urgency'),
            (['low'], ['P1'], 'low', 'P4', 'priority P4'),
        ],
        ids=[
            'no-filters',
            'empty-lists-filter-nothing',
            'urgency-passes',
            'urgency-case-insensitive',
            'urgency-fails',
            'priority-passes',
            'priority-case-insensitive',
            'priority-fails',
            'no-priority-fails',
            'none-selects-no-priority',
            'none-refuses-a-priority',
            'urgency-reported-first',
            'urgency-passes-priority-fails',
        ],
    )
    def test_reason(self, urgencies, priorities, urgency, priority, expected):
        rule = Qualification(urgencies=urgencies, priorities=priorities)
        assert rule.filter_reason(incident(urgency, priority)) == expected


class TestSkipsUnmapped:
    """`unmapped_incidents: skip` leaves out the incidents the fallback rule decided, and only those."""

    @pytest.mark.parametrize(
        'option, rule, expected',
        [
            ('send', FALLBACK_RULE, False),
            ('skip', FALLBACK_RULE, True),
            ('skip', 'override', False),
            ('skip', 'service_name', False),
            ('send', 'override', False),
        ],
        ids=['send-fallback', 'skip-fallback', 'skip-override', 'skip-service-name', 'send-override'],
    )
    def test_skips(self, option, rule, expected):
        qualification = Qualification(urgencies=None, priorities=None, unmapped_incidents=option)
        assert qualification.skips_unmapped(mapped(rule)) is expected

    def test_default_sends_unmapped(self):
        qualification = Qualification(urgencies=None, priorities=None)
        assert qualification.unmapped_incidents == 'send'
        assert qualification.skips_unmapped(mapped(FALLBACK_RULE)) is False

    def test_fallback_is_the_last_rule(self):
        assert FALLBACK_RULE == RULES[-1] == 'fallback'


class TestQualifies:
    """An incident is collected when it passes the filters and is not a skipped unmapped incident."""

    @pytest.mark.parametrize(
        'urgencies, priorities, option, urgency, priority, rule, expected',
        [
            (None, None, 'send', 'low', None, FALLBACK_RULE, True),
            (['high'], ['P1'], 'skip', 'high', 'P1', 'override', True),
            (['high'], ['P1'], 'send', 'high', 'P1', FALLBACK_RULE, True),
            (['high'], ['P1'], 'skip', 'high', 'P1', FALLBACK_RULE, False),
            (['high'], None, 'send', 'low', 'P1', 'override', False),
            (None, ['P1'], 'send', 'high', 'P2', 'override', False),
            (None, ['P1'], 'skip', 'high', None, FALLBACK_RULE, False),
        ],
        ids=[
            'no-filters',
            'mapped-under-skip',
            'unmapped-under-send',
            'unmapped-under-skip',
            'urgency-filtered',
            'priority-filtered',
            'filtered-and-unmapped',
        ],
    )
    def test_qualifies(self, urgencies, priorities, option, urgency, priority, rule, expected):
        qualification = Qualification(urgencies=urgencies, priorities=priorities, unmapped_incidents=option)
        assert qualification.qualifies(incident(urgency, priority), mapped(rule)) is expected

    def test_agrees_with_its_parts(self):
        """`qualifies` is exactly: no filter reason, and not skipped as unmapped."""
        filters = [None, ['high'], ['low']]
        priority_filters = [None, ['P1'], ['none'], ['P2', 'none']]
        cases = list(
            itertools.product(filters, priority_filters, ('send', 'skip'), ('high', 'low'), ('P1', 'P2', None), RULES)
        )
        disagreeing = []
        for urgencies, priorities, option, urgency, priority, rule in cases:
            qualification = Qualification(urgencies=urgencies, priorities=priorities, unmapped_incidents=option)
            subject, mapping = incident(urgency, priority), mapped(rule)
            parts = qualification.filter_reason(subject) is None and not qualification.skips_unmapped(mapping)
            if qualification.qualifies(subject, mapping) is not parts:
                disagreeing.append((urgencies, priorities, option, urgency, priority, rule))
        assert len(cases) == 3 * 4 * 2 * 2 * 3 * len(RULES)
        assert disagreeing == []

    def test_frozen(self):
        qualification = Qualification(urgencies=['high'], priorities=None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            qualification.unmapped_incidents = 'skip'  # type: ignore[misc]
