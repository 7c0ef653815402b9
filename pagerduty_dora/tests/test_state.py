# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's stored state: every value a pass can store loads again, damage costs only its part."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadog_checks.pagerduty_dora.collection.feed_position import FEED, Feed, FeedWindow
from datadog_checks.pagerduty_dora.collection.rebuild import Rebuild
from datadog_checks.pagerduty_dora.collection.recheck import RECHECK, Recheck
from datadog_checks.pagerduty_dora.collection.reconcile import BEFORE_FIRST, RECONCILIATION, Reconciliation
from datadog_checks.pagerduty_dora.collection.record import RECORD, IncidentRecord
from datadog_checks.pagerduty_dora.collection.state import DAMAGE_COST, LAYOUT, STATE_VERSION, CollectorState
from datadog_checks.pagerduty_dora.collection.sweep import Window
from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.common.documents import Unreadable
from datadog_checks.pagerduty_dora.common.times import LATEST_TIME
from datadog_checks.pagerduty_dora.pagerduty.client import OFFSET_CAP, PAGE_SIZE
from datadog_checks.pagerduty_dora.pagerduty.monitor import MONITOR_GROUP, MONITOR_TAGS, NO_MONITOR, MonitorMapping
from datadog_checks.pagerduty_dora.pagerduty.transitions import ACTIONS, NEW, Base, Step

PROFILE = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
# Three years before the latest time PagerDuty can be asked about, and the edges of the time domain.
times = st.one_of(
    st.sampled_from([0.0, 1.0, 1_700_000_000.0, LATEST_TIME - 1]),
    st.floats(min_value=0.0, max_value=LATEST_TIME, exclude_max=True, allow_nan=False),
)
ids = st.text(min_size=0, max_size=12)
amounts = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)
counts = st.integers(min_value=0, max_value=10_000)


@st.composite
def windows(draw: Any) -> Window:
    since = draw(st.floats(min_value=0.0, max_value=LATEST_TIME - 2, allow_nan=False))
    until = draw(st.floats(min_value=since, max_value=LATEST_TIME, exclude_max=True, allow_nan=False))
    if until <= since:
        until = since + 1
    return Window(since, until, draw(counts))


@st.composite
def feeds(draw: Any) -> Feed:
    window = None
    if draw(st.booleans()):
        w = draw(windows())
        window = FeedWindow(w.since, w.until, w.offset, draw(times), draw(st.lists(ids, max_size=10)))
    return Feed(draw(times), window, draw(amounts), draw(counts))


@st.composite
def reconciliations(draw: Any) -> Reconciliation:
    # A window's end is stored as (end, BEFORE_FIRST): the position every six-month window leaves.
    number = st.one_of(st.just(BEFORE_FIRST), st.integers(min_value=1, max_value=10**9))
    position = draw(st.one_of(st.none(), st.tuples(times, number)))
    return Reconciliation(
        started=draw(st.one_of(st.none(), times)),
        position=position,
        skip=draw(counts),
        verify=draw(st.one_of(st.none(), st.lists(ids, max_size=5))),
    )


@st.composite
def rechecks(draw: Any) -> Recheck:
    # A pass under way stands at an offset PagerDuty accepts for a page.
    return Recheck(
        last=draw(times),
        started=draw(st.one_of(st.none(), times)),
        reached=draw(st.one_of(st.none(), times)),
        offset=draw(st.integers(min_value=0, max_value=OFFSET_CAP - PAGE_SIZE)),
    )


@st.composite
def bases(draw: Any) -> Base:
    return Base(
        status=draw(st.sampled_from([NEW, 'triggered', 'acknowledged', 'resolved'])),
        acked=draw(st.booleans()),
        resolve_key=draw(ids),
        resolved_at=draw(st.one_of(st.none(), times)),
        at=draw(times),
        unsure_until=draw(times),
    )


steps = st.builds(Step, ids, times, st.sampled_from(ACTIONS), st.booleans(), ids)
tag_values = st.from_regex(r'[a-z0-9][a-z0-9_\-:./]{0,20}', fullmatch=True)
# A kept monitor mapping: none yet, no monitor, or one with or without the version it names.
monitors = st.one_of(
    st.none(),
    st.just(NO_MONITOR),
    st.builds(
        MonitorMapping,
        st.integers(min_value=1, max_value=10**12),
        st.sampled_from(['', MONITOR_GROUP, MONITOR_TAGS]),
        st.lists(tag_values, max_size=3).map(tuple),
        st.one_of(st.none(), tag_values),
        st.one_of(st.none(), tag_values),
        st.one_of(st.none(), tag_values),
    ),
)


@st.composite
def records(draw: Any) -> IncidentRecord:
    return IncidentRecord(
        status=draw(st.sampled_from(['triggered', 'acknowledged', 'resolved'])),
        priority=draw(st.one_of(st.none(), ids)),
        urgency=draw(st.sampled_from(['high', 'low', ''])),
        service_id=draw(ids),
        service_name=draw(ids),
        created_at=draw(times),
        resolved_at=draw(st.one_of(st.none(), times)),
        desired=draw(ids),
        delivered=draw(ids),
        tags=draw(st.lists(ids, max_size=4)),
        acked=draw(st.booleans()),
        wanted=draw(st.booleans()),
        checked_at=draw(times),
        base=draw(bases()),
        steps=draw(st.lists(steps, max_size=4)),
        emitted=draw(st.lists(ids, max_size=4)),
        counted=draw(st.booleans()),
        monitor=draw(monitors),
    )


@st.composite
def states(draw: Any) -> CollectorState:
    optional_time = st.one_of(st.none(), times)
    return CollectorState(
        live_since=draw(optional_time),
        baseline=draw(st.booleans()),
        horizon=draw(optional_time),
        window=draw(st.one_of(st.none(), windows())),
        width=draw(amounts),
        feed=draw(st.one_of(st.none(), feeds())),
        reconciliation=draw(st.one_of(st.none(), reconciliations())),
        resend=draw(st.one_of(st.none(), windows())),
        resend_end=draw(optional_time),
        delivering=draw(st.booleans()),
        incidents=draw(st.dictionaries(ids, records(), max_size=4)),
        last_run=draw(st.one_of(st.none(), st.tuples(times, times))),
        refetch=draw(st.lists(ids, max_size=3)),
        gauged=draw(st.lists(st.lists(ids, max_size=3), max_size=3)),
        rebuilt=draw(st.dictionaries(ids, st.lists(ids, max_size=3), max_size=3)),
        rebuilt_at=draw(times),
        drift_at=draw(times),
        reconcile_credit=draw(st.floats(min_value=0.0, max_value=1.0, exclude_max=True)),
        last_event_at=draw(optional_time),
        rebuild=draw(st.one_of(st.none(), st.builds(Rebuild, times))),
        reported_until=draw(optional_time),
        recheck=draw(st.one_of(st.none(), rechecks())),
    )


def full_state() -> CollectorState:
    """A state with every part set, as a live collection three years old stores it."""
    now = 1_790_000_000.0
    record = IncidentRecord(
        status='acknowledged',
        priority='P1',
        urgency='high',
        service_id='PSVC',
        service_name='Checkout \u00e9',
        created_at=now - 3 * 365 * 86400,
        resolved_at=None,
        desired='abc',
        delivered='abd',
        tags=['service:checkout'],
        acked=True,
        checked_at=now - 60,
        base=Base('triggered', False, '', None, now - 600, now - 599),
        steps=[Step('E1', now - 300, 'acknowledge', True, 'acknowledge_log_entry')],
        emitted=['E1'],
        counted=True,
        monitor=MonitorMapping(4207311, MONITOR_GROUP, ('checkout',), 'payments', 'prod', '1.4.2'),
    )
    return CollectorState(
        live_since=now - 86400,
        baseline=True,
        horizon=now - 3600,
        window=Window(now - 3600, now, 200),
        width=86400.0,
        feed=Feed(now - 60, FeedWindow(now - 120, now - 60, 97, now - 60, ['L1', 'L2', 'L3']), 600.0, 1),
        reconciliation=Reconciliation(now - 30, (now - 2 * 365 * 86400, BEFORE_FIRST), 100, None),
        resend=Window(now - 7200, now - 3600),
        resend_end=now - 3600,
        delivering=True,
        incidents={'PABC123': record, 'PDEF456': record},
        last_run=(now - 60, now - 59),
        refetch=['PXYZ'],
        gauged=[['service:checkout']],
        rebuilt={'PABC123': ['trigger']},
        rebuilt_at=now - 86400,
        drift_at=now - 3600,
        reconcile_credit=0.5,
        last_event_at=now - 120,
        rebuild=Rebuild(now + 600),
        reported_until=now - 86400,
        recheck=Recheck(last=now - 86400, started=now - 120, reached=now - 7200, offset=180),
    )


class TestRoundTrip:
    """Every value a pass can store loads again, as it was."""

    def test_every_state_round_trips(self) -> None:
        reached: Counter = Counter()

        @PROFILE
        @given(states())
        def round_trip(state: CollectorState) -> None:
            again, damage = CollectorState.read(state.dumps())
            assert damage == []
            # A live state without a feed is completed on read; every other value comes back as it was.
            if state.live_since is not None and state.feed is None:
                state.feed = Feed(horizon=state.live_since)
            assert again == state
            reached['round trip'] += 1
            scan = state.reconciliation
            if scan is not None and scan.position is not None and scan.position[1] == BEFORE_FIRST:
                reached['end of a six-month window'] += 1
            if state.feed is not None and state.feed.window is not None:
                reached['feed window'] += 1
            if any(record.steps for record in state.incidents.values()):
                reached['records with steps'] += 1
            if any(any(ord(c) > 127 for c in key) for key in state.incidents):
                reached['unicode ids'] += 1
            if any(record.monitor and record.monitor.version for record in state.incidents.values()):
                reached['monitor versions'] += 1
            if state.recheck is not None and state.recheck.started is not None:
                reached['recheck under way'] += 1

        round_trip()
        assert reached['round trip'] == 300
        assert min(reached.values()) >= 10, reached
        assert len(reached) == 7, reached

    def test_the_full_state_round_trips(self) -> None:
        state = full_state()
        assert CollectorState.read(state.dumps()) == (state, [])

    def test_a_monitor_mapping_stored_without_a_version_loads(self) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        for values in stored['incidents'].values():
            assert values[-1].pop('version') == '1.4.2'
        again, damage = CollectorState.read(json.dumps(stored))
        assert damage == []
        assert {r.monitor for r in again.incidents.values()} == {
            MonitorMapping(4207311, MONITOR_GROUP, ('checkout',), 'payments', 'prod')
        }

    def test_a_stored_state_says_its_layout(self) -> None:
        assert json.loads(CollectorState().dumps())['version'] == STATE_VERSION == LAYOUT.version


class TestWholeDocument:
    """Only a value that is no state at all is unreadable as a whole."""

    @pytest.mark.parametrize(
        'text',
        ['{', '[]', '"text"', '{"version": 99}', '{"version": "4"}', '{"incidents": {}}', '{"version": 0}'],
        ids=['truncated', 'list', 'string', 'future-layout', 'version-as-text', 'no-version', 'layout-0'],
    )
    def test_unreadable(self, text: str) -> None:
        with pytest.raises(Unreadable):
            CollectorState.read(text)

    @PROFILE
    @given(
        st.dictionaries(
            st.sampled_from(sorted(LAYOUT.parts)),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                max_leaves=12,
            ),
        )
    )
    def test_any_current_document_decodes_part_by_part(self, parts: dict[str, Any]) -> None:
        text = json.dumps(dict(parts, version=STATE_VERSION))
        state, damage = CollectorState.read(text)
        assert {d.part for d in damage} <= set(parts)
        assert CollectorState.read(state.dumps()) == (state, [])


def _bad_values(domain: codec.Domain) -> list[Any]:
    """Stored values out of `domain`'s range."""
    candidates: list[Any] = [-1, -0.5, LATEST_TIME, 'x', 2, None, {}, [], [None] * 30, 1e400]
    bad = []
    for value in candidates:
        try:
            domain.decode(value)
        except (codec.Invalid, TypeError, ValueError):
            bad.append(value)
    return bad


def _parts_cases() -> list[Any]:
    return [
        pytest.param(name, value, id='{}={!r}'.format(name, value)[:40])
        for name, part in LAYOUT.parts.items()
        for value in _bad_values(part.domain)
    ]


def _fields_cases(domain: codec.Struct[Any], where: str) -> list[Any]:
    return [
        pytest.param(i, value, id='{}.{}={!r}'.format(where, name, value)[:40])
        for i, (name, field_domain) in enumerate(domain.domains)
        for value in _bad_values(field_domain)
    ]


class TestDamage:
    """A stored value out of its range costs its part (or its entry), never the rest, never a run error."""

    @pytest.mark.parametrize('part, value', _parts_cases())
    def test_a_damaged_part_resets_alone(self, part: str, value: Any) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        stored[part] = value
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == [part]
        assert part in DAMAGE_COST
        for name in LAYOUT.parts:
            if name not in (part, 'feed', 'live_since', 'refetch', 'reported_until'):
                assert getattr(again, name) == getattr(state, name), name
        # Collection stays live with a feed, whatever was lost.
        assert again.live_since is not None and again.feed is not None
        assert state.last_run is not None and state.feed is not None
        if part == 'feed':
            assert again.feed == Feed(horizon=state.last_run[0])
        if part == 'live_since':
            assert again.live_since == state.feed.horizon

    @pytest.mark.parametrize('index, value', _fields_cases(RECORD, 'record'))
    def test_a_damaged_record_is_dropped_and_read_again_by_id(self, index: int, value: Any) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        stored['incidents']['PDEF456'][index] = value
        again, damage = CollectorState.read(json.dumps(stored))
        assert [(d.part, list(d.entries)) for d in damage] == [('incidents', ['PDEF456'])]
        assert list(again.incidents) == ['PABC123']
        assert again.refetch == ['PDEF456', 'PXYZ']
        # Its transitions before the last run were reported: a first look at it does not report them again.
        assert state.last_run is not None and again.reported_until == state.last_run[0]
        assert again.feed == state.feed and again.reconciliation == state.reconciliation

    @pytest.mark.parametrize('index, value', _fields_cases(FEED, 'feed'))
    def test_a_damaged_feed_field_restarts_the_feed_at_the_last_run(self, index: int, value: Any) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        stored['feed'][index] = value
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == ['feed']
        assert state.last_run is not None and again.feed == Feed(horizon=state.last_run[0])
        assert again.incidents == state.incidents

    @pytest.mark.parametrize('index, value', _fields_cases(RECHECK, 'recheck'))
    def test_a_damaged_recheck_field_waits_a_period_for_the_next_pass(self, index: int, value: Any) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        stored['recheck'][index] = value
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == ['recheck']
        assert again.recheck is None
        assert again.feed == state.feed and again.incidents == state.incidents
        assert again.reconciliation == state.reconciliation

    def test_a_recheck_past_the_offset_cap_is_damage(self) -> None:
        stored = json.loads(full_state().dumps())
        stored['recheck'][3] = OFFSET_CAP
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == ['recheck'] and again.recheck is None

    @pytest.mark.parametrize('index, value', _fields_cases(RECONCILIATION, 'reconciliation'))
    def test_a_damaged_reconciliation_field_restarts_that_pass(self, index: int, value: Any) -> None:
        state = full_state()
        stored = json.loads(state.dumps())
        stored['reconciliation'][index] = value
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == ['reconciliation']
        assert again.reconciliation is None
        assert again.feed == state.feed and again.incidents == state.incidents

    def test_every_field_of_every_part_is_walked(self) -> None:
        walked = {p.values[0] for p in _parts_cases()}
        assert walked == set(LAYOUT.parts)
        domains: tuple[codec.Struct[Any], ...] = (RECORD, FEED, RECONCILIATION, RECHECK)
        for domain in domains:
            fields = {p.values[0] for p in _fields_cases(domain, '')}
            # Only a kept monitor mapping reads every value: one it cannot read is decided again.
            lenient = [name for i, (name, _) in enumerate(domain.domains) if i not in fields]
            assert lenient == (['monitor'] if domain is RECORD else [])


class TestLayout3:
    """Layout 3, the last released before this one, migrates forward."""

    def test_the_end_of_a_six_month_window_is_kept(self) -> None:
        stored = json.loads(full_state().dumps())
        stored['version'] = 3
        stored['reconciliation'] = [-1, [1_700_000_000.0, -1], 0, None]
        again, damage = CollectorState.read(json.dumps(stored))
        assert damage == []
        assert again.reconciliation == Reconciliation(None, (1_700_000_000.0, BEFORE_FIRST), 0, None)
        assert again.incidents == full_state().incidents
