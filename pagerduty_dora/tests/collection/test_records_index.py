# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the per-run scans ask of the records, kept as records change, always equals a count of them all.

`Records` keeps the open, unsettled and resolved keys and the open-incident gauge's counts from the
changes it is told of; these tests make random changes (records put, replaced, removed, held twice,
fields set, records changed after they were removed) and compare every answer with a full count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadog_checks.pagerduty_dora.collection.record import IncidentRecord, Records
from datadog_checks.pagerduty_dora.collection.state import LAYOUT, CollectorState, RecordMap
from datadog_checks.pagerduty_dora.collection.story import settled
from datadog_checks.pagerduty_dora.datadog.marks import rejected

PROFILE = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
KEYS = ['P1', 'P2', 'P3', 'P4', 'P5']
FIELDS: dict[str, list[Any]] = {
    'status': ['triggered', 'acknowledged', 'resolved'],
    'tag_set': ['', 'aaa', 'bbb'],
    'wanted': [True, False],
    'desired': ['', 'f1', 'f2'],
    'delivered': ['', 'f1', 'f2', rejected('f1')],
}


def stored_text(records: dict[str, IncidentRecord]) -> str:
    """The records' text as the state stores them."""
    domain = LAYOUT.parts['incidents'].domain
    assert isinstance(domain, RecordMap)
    return domain.text(records)


def new_record(draw: Any) -> IncidentRecord:
    record = IncidentRecord('triggered', None, 'high', 'PSVC', 'checkout', 1.0, None)
    for name, values in FIELDS.items():
        object.__setattr__(record, name, draw(st.sampled_from(values)))
    return record


def full_count(records: dict[str, IncidentRecord]) -> dict[str, Any]:
    """The answers counted from every record."""
    return {
        'open': {key for key, r in records.items() if r.status != 'resolved'},
        'resolved': {key for key, r in records.items() if r.status == 'resolved'},
        'unsettled': [key for key, r in records.items() if not settled(r.delivered, r.desired)],
        'gauge': Counter(
            (r.status, r.tag_set) for r in records.values() if r.tag_set and r.wanted and r.status != 'resolved'
        ),
        'text': stored_text(dict(records)),
    }


def kept(records: Records) -> dict[str, Any]:
    """The answers `Records` keeps."""
    return {
        'open': set(records.open_keys()),
        'resolved': set(records.resolved_keys()),
        'unsettled': list(records.in_order(records.unsettled_keys())),
        'gauge': +records.gauge_counts(),
        'text': stored_text(records),
    }


operations = st.sampled_from(['put', 'replace_same', 'delete', 'pop', 'set', 'set_removed', 'twice', 'update', 'ask'])


@PROFILE
@given(st.data())
def test_kept_answers_equal_a_full_count(data: Any) -> None:
    records = Records([], settled)
    removed: list[IncidentRecord] = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=30))):
        operation = data.draw(operations)
        key = data.draw(st.sampled_from(KEYS))
        if operation == 'put':
            records[key] = new_record(data.draw)
        elif operation == 'replace_same' and key in records:
            records[key] = records[key]
        elif operation in ('delete', 'pop') and key in records:
            removed.append(records.pop(key) if operation == 'pop' else records[key])
            if operation == 'delete':
                del records[key]
        elif operation == 'set' and key in records:
            name = data.draw(st.sampled_from(sorted(FIELDS)))
            setattr(records[key], name, data.draw(st.sampled_from(FIELDS[name])))
        elif operation == 'set_removed' and removed:
            record = data.draw(st.sampled_from(removed))
            record.status = data.draw(st.sampled_from(FIELDS['status']))
        elif operation == 'twice' and records:
            records[key] = records[data.draw(st.sampled_from(sorted(records)))]
        elif operation == 'update':
            records.update({key: new_record(data.draw)})
        assert kept(records) == full_count(records)
    assert kept(records) == full_count(records)


def test_a_field_set_is_seen_by_the_records_holding_it() -> None:
    record = IncidentRecord('triggered', None, 'high', 'PSVC', 'checkout', 1.0, None, tag_set='aaa')
    records = Records([('P1', record)], settled)
    assert records.gauge_counts() == Counter({('triggered', 'aaa'): 1})
    before = stored_text(records)

    record.status = 'acknowledged'

    assert records.gauge_counts() == Counter({('acknowledged', 'aaa'): 1})
    assert stored_text(records) != before
    assert records.open_keys() == {'P1'} and records.resolved_keys() == set()


def test_a_state_takes_in_a_plain_map_set_in_its_place() -> None:
    state = CollectorState()
    state.incidents = {'P1': IncidentRecord('resolved', None, 'high', 'PSVC', 'checkout', 1.0, 2.0, desired='f1')}
    assert list(state.undelivered()) == ['P1']
    assert isinstance(state.incidents, Records)
    state.prune(10.0, delivering=False)
    assert state.incidents == {}
