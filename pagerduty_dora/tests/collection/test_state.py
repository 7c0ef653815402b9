# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's stored state: every value a pass can store loads again, damage costs only its part."""

from __future__ import annotations

import copy
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
from datadog_checks.pagerduty_dora.collection.record import RECORD, IncidentRecord, tag_key
from datadog_checks.pagerduty_dora.collection.state import DAMAGE_COST, LAYOUT, STATE_VERSION, CollectorState
from datadog_checks.pagerduty_dora.collection.sweep import CreationWindow
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
def windows(draw: Any) -> CreationWindow:
    since = draw(st.floats(min_value=0.0, max_value=LATEST_TIME - 2, allow_nan=False))
    until = draw(st.floats(min_value=since, max_value=LATEST_TIME, exclude_max=True, allow_nan=False))
    if until <= since:
        until = since + 1
    return CreationWindow(since, until, draw(counts))


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
        met=draw(st.sets(ids, max_size=5)),
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
        tag_set=draw(ids),
        acked=draw(st.booleans()),
        wanted=draw(st.booleans()),
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
        swept_until=draw(optional_time),
        sweep_window=draw(st.one_of(st.none(), windows())),
        sweep_width=draw(amounts),
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
        tag_sets=draw(st.dictionaries(ids, st.lists(ids, max_size=4), max_size=3)),
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
        tag_set=tag_key(['service:checkout']),
        acked=True,
        base=Base('triggered', False, '', None, now - 600, now - 599),
        steps=[Step('E1', now - 300, 'acknowledge', True, 'acknowledge_log_entry')],
        emitted=['E1'],
        counted=True,
        monitor=MonitorMapping(4207311, MONITOR_GROUP, ('checkout',), 'payments', 'prod', '1.4.2'),
    )
    return CollectorState(
        live_since=now - 86400,
        baseline=True,
        swept_until=now - 3600,
        sweep_window=CreationWindow(now - 3600, now, 200),
        sweep_width=86400.0,
        feed=Feed(now - 60, FeedWindow(now - 120, now - 60, 97, now - 60, ['L1', 'L2', 'L3']), 600.0, 1),
        reconciliation=Reconciliation(now - 30, (now - 2 * 365 * 86400, BEFORE_FIRST), 100, None, {'PABC123'}),
        resend=CreationWindow(now - 7200, now - 3600),
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
        tag_sets={tag_key(['service:checkout']): ['service:checkout']},
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
                state.feed = Feed(read_until=state.live_since)
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
            assert again.feed == Feed(read_until=state.last_run[0])
        if part == 'live_since':
            assert again.live_since == state.feed.read_until

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
        assert state.last_run is not None and again.feed == Feed(read_until=state.last_run[0])
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


def layout_5(state: CollectorState) -> dict[str, Any]:
    """`state` as layout 5 stored it: the sweep's cursor under `horizon`, `window` and `width`."""
    stored = json.loads(state.dumps())
    stored['horizon'] = stored.pop('swept_until')
    stored['window'] = stored.pop('sweep_window')
    stored['width'] = stored.pop('sweep_width')
    stored['version'] = 5
    return stored


def layout_4(state: CollectorState, checked_at: dict[str, float]) -> dict[str, Any]:
    """`state` as layout 4 stored it: each record with its tags and `checked_at`, no table, no pass's `met`."""
    stored = layout_5(state)
    tag_sets = stored.pop('tag_sets')
    for key, raw in stored['incidents'].items():
        # Layout 4: ..., delivered, tags, acked, wanted, checked_at, base, ...
        raw[9:12] = [tag_sets.get(raw[9], []), raw[10], raw[11], checked_at[key]]
    if stored['reconciliation'] is not None:
        stored['reconciliation'].pop()
    stored['version'] = 4
    return stored


class TestLayout3:
    """Layout 3 migrates forward."""

    def test_the_end_of_a_six_month_window_is_kept(self) -> None:
        state = full_state()
        stored = layout_4(state, {'PABC123': 1.0, 'PDEF456': 1.0})
        stored['version'] = 3
        stored['reconciliation'] = [-1, [1_700_000_000.0, -1], 0, None]
        again, damage = CollectorState.read(json.dumps(stored))
        assert damage == []
        assert again.reconciliation == Reconciliation(None, (1_700_000_000.0, BEFORE_FIRST), 0, None)
        assert again.incidents == state.incidents


class TestLayout4:
    """Layout 4: records kept their tags and when they were last confirmed."""

    def test_tags_go_to_the_table_and_the_pass_keeps_what_it_met(self) -> None:
        state = full_state()
        assert state.reconciliation is not None and state.reconciliation.started is not None
        started = state.reconciliation.started
        # PABC123 was confirmed since the pass began, PDEF456 before.
        stored = layout_4(state, {'PABC123': started + 5, 'PDEF456': started - 5})
        assert stored['incidents']['PABC123'][9] == ['service:checkout']
        again, damage = CollectorState.read(json.dumps(stored))
        assert damage == []
        assert again == state
        assert again.tag_sets == {tag_key(['service:checkout']): ['service:checkout']}
        assert again.reconciliation is not None and again.reconciliation.met == {'PABC123'}

    def test_a_pass_not_started_met_nothing(self) -> None:
        state = full_state()
        state.reconciliation = Reconciliation(None)
        again, damage = CollectorState.read(json.dumps(layout_4(state, {'PABC123': 1.0, 'PDEF456': 2.0})))
        assert damage == []
        assert again.reconciliation == Reconciliation(None)

    def test_records_without_tags_name_none(self) -> None:
        state = full_state()
        for record in state.incidents.values():
            record.tag_set = ''
        state.tag_sets = {}
        again, damage = CollectorState.read(json.dumps(layout_4(state, {'PABC123': 1.0, 'PDEF456': 2.0})))
        assert damage == [] and again.tag_sets == {}
        assert {record.tag_set for record in again.incidents.values()} == {''}


class TestLayout5:
    """Layout 5, the last released before this one: the sweep's cursor was stored under other names."""

    def test_a_sweep_under_way_goes_on_where_it_was(self) -> None:
        state = full_state()
        assert state.sweep_window is not None and state.sweep_window.offset > 0
        stored = layout_5(state)
        assert (stored['horizon'], stored['window'], stored['width']) == (
            state.swept_until,
            [state.sweep_window.since, state.sweep_window.until, state.sweep_window.offset],
            state.sweep_width,
        )
        again, damage = CollectorState.read(json.dumps(stored))
        assert damage == []
        assert again == state
        assert (again.swept_until, again.sweep_window, again.sweep_width) == (
            state.swept_until,
            state.sweep_window,
            state.sweep_width,
        )

    def test_a_sweep_not_started_stays_so(self) -> None:
        state = full_state()
        state.swept_until, state.sweep_window, state.sweep_width = None, None, 0.0
        again, damage = CollectorState.read(json.dumps(layout_5(state)))
        assert damage == [] and again == state

    def test_a_damaged_sweep_cursor_costs_its_part_alone(self) -> None:
        stored = layout_5(full_state())
        stored['window'] = [5, 1, 0]
        again, damage = CollectorState.read(json.dumps(stored))
        assert [d.part for d in damage] == ['sweep_window']
        assert again.sweep_window is None and again.swept_until == full_state().swept_until


class TestWrittenAPieceAtATime:
    """Records keep their text from the last write: only those a field of which was set are encoded again."""

    def state(self) -> CollectorState:
        state = full_state()
        record = state.incidents['PABC123']
        state.incidents = {key: copy.deepcopy(record) for key in ('PABC123', 'PDEF456')}
        return state

    def test_the_text_is_the_whole_document(self) -> None:
        state = self.state()
        state.dumps()
        plain = {name: part.domain.encode(getattr(state, name)) for name, part in LAYOUT.parts.items()}
        assert json.loads(state.dumps()) == json.loads(json.dumps(dict(plain, version=STATE_VERSION)))

    def test_only_a_changed_record_is_encoded_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        state = self.state()
        state.dumps()
        encoded: list[Any] = []
        encode = RECORD.encode

        def counted(record: IncidentRecord) -> list[Any]:
            encoded.append(record)
            return encode(record)

        monkeypatch.setattr(RECORD, 'encode', counted)
        state.dumps()
        assert encoded == []
        state.incidents['PDEF456'].priority = 'P3'
        again = json.loads(state.dumps())
        assert encoded == [state.incidents['PDEF456']]
        assert [again['incidents'][key][1] for key in ('PABC123', 'PDEF456')] == ['P1', 'P3']

    def test_a_record_under_another_key_is_written_under_it(self) -> None:
        state = self.state()
        state.dumps()
        state.incidents['PNEW789'] = state.incidents.pop('PDEF456')
        assert sorted(json.loads(state.dumps())['incidents']) == ['PABC123', 'PNEW789']
