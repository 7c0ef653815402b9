# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's loop on its own: it steps each pass one request at a time, checks the deadline, delivers."""

from __future__ import annotations

import logging
from typing import Any, Container, Iterator

import pytest

from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.collection.collector import MAX_QUEUED_BEFORE_SWEEP, STATE_KEY, Collector
from datadog_checks.pagerduty_dora.collection.feed_position import Feed
from datadog_checks.pagerduty_dora.collection.pages import NEXT_REQUEST, OVERLAP, Look, Page, PassStep
from datadog_checks.pagerduty_dora.collection.run import Features, Run, RunClock, RunReport, StopRun
from datadog_checks.pagerduty_dora.collection.settings import Settings
from datadog_checks.pagerduty_dora.collection.state import CollectorState
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs, Submitters
from datadog_checks.pagerduty_dora.pagerduty.client import MAX_WINDOW
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident

from ..fakes.pagerduty import NOW, InProcessPagerDuty, raw_incident


class Catalogs:
    def current(self) -> Catalog:
        return Catalog()

    def counts(self) -> dict[str, int]:
        return {}


class Dora:
    """The DORA queue as the collector sees it: what waits, and each flush."""

    can_remove = True

    def __init__(self) -> None:
        self.flushes = 0
        self.pending = 0
        self.sent: dict[str, dict] = {}

    def flush(self) -> None:
        self.flushes += 1

    def take_outcomes(self, wanted: Container[str] | None = None) -> list[tuple[str, str]]:
        return []

    def queued(self, key: str) -> str | None:
        return None

    def enqueue(self, key: str, attributes: dict, known: str | None = None) -> None:
        self.sent[key] = attributes

    def remove(self, key: str) -> None:
        self.sent.pop(key, None)

    def discard(self, key: str) -> None:
        self.sent.pop(key, None)

    def save(self) -> None:
        pass


class Clock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.value, self.step = 0.0, step

    def __call__(self) -> float:
        self.value += self.step
        return self.value


def collector(pagerduty: InProcessPagerDuty, cache: dict[str, str], **options: Any) -> tuple[Collector, dict]:
    seen: dict[str, list] = {'warnings': [], 'counts': [], 'gauges': []}
    submit = Submitters(
        event=lambda event: None,
        count=lambda name, value, tags=None, **kw: seen['counts'].append((name, value, sorted(tags or []))),
        gauge=lambda name, value, tags=None, **kw: seen['gauges'].append((name, value, sorted(tags or []))),
        histogram=lambda *a, **kw: None,
    )
    made = Collector(
        pagerduty,  # type: ignore[arg-type]
        catalog=Catalogs(),
        features=Features(dora=options.pop('dora', None)),
        outputs=Outputs(submit, instance_tags=[], collect_events=True),
        settings=Settings(backfill_days=1),
        services=AgentServices(
            read_cache=lambda key: cache.get(key, ''),
            write_cache=cache.__setitem__,
            log=logging.getLogger(__name__),
            warning=lambda message, *args: seen['warnings'].append(message % args if args else message),
            clock=lambda: NOW,
        ),
        **options,
    )
    return made, seen


def started(loop: Collector, deadline: float = float('inf')) -> Run:
    """The context of a run that ends at `deadline`, as the collector makes it before its passes."""
    clock = RunClock(loop.client, lambda: NOW, loop._monotonic, deadline)
    return loop._start(clock, Catalog(), RunReport())


def steps(pages: list[Page], made: list[int]) -> Iterator[PassStep]:
    """A pass that makes one request per page of `pages`, counted in `made`, announcing each first."""
    for page in pages:
        yield NEXT_REQUEST
        made.append(1)
        yield page


class TestLoop:
    """How `_drive` steps a pass."""

    def test_the_deadline_is_checked_before_every_request(self) -> None:
        made: list[int] = []
        loop, _ = collector(InProcessPagerDuty(), {}, monotonic=Clock(1.0))
        with pytest.raises(StopRun, match='time limit'):
            pages = [Page(deliver=False) for _ in range(10)]
            loop._drive(started(loop, 3.5), steps(pages, made), lambda incident: None)
        assert len(made) == 3

    def test_a_page_is_delivered_only_when_it_says_so(self) -> None:
        dora = Dora()
        loop, _ = collector(InProcessPagerDuty(), {}, dora=dora)
        pages = [Page(deliver=False), Page(), Page(deliver=False), Page()]
        loop._drive(started(loop), steps(pages, []), lambda incident: None)
        assert dora.flushes == 2

    def test_a_run_stopped_at_its_deadline_has_taken_and_delivered_the_page_before(self) -> None:
        dora = Dora()
        made: list[int] = []
        loop, _ = collector(InProcessPagerDuty(), {}, dora=dora, monotonic=Clock(1.0))
        with pytest.raises(StopRun):
            loop._drive(started(loop, 1.5), steps([Page(), Page()], made), lambda incident: None)
        assert (made, dora.flushes) == ([1], 1)

    def test_history_is_not_read_while_dora_delivery_is_behind(self) -> None:
        dora = Dora()
        dora.pending = MAX_QUEUED_BEFORE_SWEEP + 1
        made: list[int] = []
        loop, _ = collector(InProcessPagerDuty(), {}, dora=dora)
        with pytest.raises(StopRun, match='DORA deliveries are behind'):
            loop._drive(started(loop), steps([Page()], made), lambda incident: None, sweep=True)
        assert made == []
        loop._drive(started(loop), steps([Page()], made), lambda incident: None)
        assert made == [1]

    def test_skipped_entries_are_counted_every_time_and_warned_once_a_run(self) -> None:
        loop, seen = collector(InProcessPagerDuty(), {})
        pages = [Page(skipped=[('malformed', 2)]), Page(skipped=[('malformed', 3), ('unpaged', 1)])]
        loop._drive(started(loop), steps(pages, []), lambda incident: None)
        loop.outputs.flush()
        assert sorted(seen['warnings']) == [
            'Skipped 1 PagerDuty log entries that could not be used (unpaged)',
            'Skipped 2 PagerDuty log entries that could not be used (malformed)',
        ]
        skipped = sorted((c[2], c[1]) for c in seen['counts'] if c[0] == 'log_entries.skipped')
        assert skipped == [(['reason:malformed'], 5), (['reason:unpaged'], 1)]

    def test_a_repaired_feed_position_is_counted_and_moves_where_the_run_reads_from(self) -> None:
        loop, seen = collector(InProcessPagerDuty(), {})
        loop.state.feed = Feed(read_until=NOW + OVERLAP)
        run = started(loop)
        assert run.read_start == NOW
        loop._drive(run, steps([Page(repaired=True, reads_back_to=NOW - 3600 - OVERLAP)], []), lambda incident: None)
        loop.outputs.flush()
        assert run.read_start == loop.recorder.run.read_start == NOW - 3600 - OVERLAP
        assert [c[1:] for c in seen['counts'] if c[0] == 'collection.repaired'] == [(1, ['what:feed_position'])]

    def test_looks_with_entries_and_without_are_handed_over_as_read(self) -> None:
        incident = parse_incident(raw_incident(1, NOW - 60))
        taken: list[tuple] = []
        loop, _ = collector(InProcessPagerDuty(), {})
        page = Page(looks=[Look(incident, []), Look(incident)])
        loop._drive(started(loop), steps([page], []), lambda *args: taken.append(args))
        assert taken == [(incident, []), (incident,)]


class TestRuns:
    """Whole runs against the in-memory PagerDuty: which requests each one makes, and the state it keeps."""

    def test_the_first_run_takes_a_baseline_and_the_next_costs_the_feed_and_a_share(self) -> None:
        pagerduty = InProcessPagerDuty()
        account = pagerduty.account
        incident_id = account.trigger(account.services[0]['id'], 'Checkout latency above SLO', created_at=NOW - 3600)
        cache: dict[str, str] = {}
        first, _ = collector(pagerduty, cache)
        first.run(float('inf'))
        assert [r[0] for r in pagerduty.requests] == ['list_open', 'list_created']
        state = CollectorState.loads(cache[STATE_KEY])
        assert (state.live_since, state.baseline, state.swept_until) == (NOW, True, NOW)
        assert sorted(state.incidents) == [incident_id]

        pagerduty.requests.clear()
        account.now = NOW + 60
        second, _ = collector(pagerduty, cache)
        report = second.run(float('inf'))
        assert [r[0] for r in pagerduty.requests] == ['log_entries', 'list_open']
        assert report.pages == 2
        assert CollectorState.loads(cache[STATE_KEY]).feed == Feed(read_until=NOW + 60, width=MAX_WINDOW)

    def test_a_run_stopped_at_its_deadline_saves_where_it_was(self) -> None:
        pagerduty = InProcessPagerDuty()
        cache: dict[str, str] = {}
        stopped, _ = collector(pagerduty, cache, monotonic=Clock(1.0))
        report = stopped.run(0.5)
        assert report.stopped == 'the run reached its time limit'
        assert pagerduty.requests == []
        assert CollectorState.loads(cache[STATE_KEY]).live_since is None
