# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Each pass on its own: the cursor it owns, the rule that moves it, and what it yields per request."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import pytest

from datadog_checks.pagerduty_dora.collection.feed import (
    LATE_PERIOD,
    MAX_HELD_PAGES,
    UNREADABLE_RETRIES,
    FeedPass,
    page_step,
)
from datadog_checks.pagerduty_dora.collection.feed_position import Feed
from datadog_checks.pagerduty_dora.collection.pages import DAY, LATE_REACH, NEXT_REQUEST, OVERLAP, Page, PassStep
from datadog_checks.pagerduty_dora.collection.reconcile import ReconcilePass, pages_per_run
from datadog_checks.pagerduty_dora.collection.record import IncidentRecord
from datadog_checks.pagerduty_dora.collection.state import CollectorState
from datadog_checks.pagerduty_dora.collection.sweep import CreationWindow, SweepPass, plan_window
from datadog_checks.pagerduty_dora.common.errors import UnreadableResponse
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.demo.rendering import encode_id
from datadog_checks.pagerduty_dora.pagerduty.client import PAGE_SIZE, LogPage
from datadog_checks.pagerduty_dora.pagerduty.transitions import Base

from ..fakes.pagerduty import NOW, InProcessPagerDuty, PagerDutyAccount, small_account


def agent_clock() -> float:
    raise AssertionError('the Agent clock is read only when PagerDuty dates no answer')


def pages_of(steps: Iterable[PassStep]) -> list[Page]:
    """The pages a pass yields, without the points before each request."""
    return [step for step in steps if isinstance(step, Page)]


def next_page(steps: Iterator[PassStep]) -> Page:
    """Step a pass up to the next page it yields."""
    for step in steps:
        if isinstance(step, Page):
            return step
    raise AssertionError('the pass ended')


def pagerduty_at(now: float = NOW) -> tuple[InProcessPagerDuty, PagerDutyAccount]:
    """The in-process PagerDuty over a fresh account of one service, at `now`."""
    account, _ = small_account(now)
    return InProcessPagerDuty(account), account


def at(account: PagerDutyAccount, when: float, change: Callable[[], object]) -> object:
    """Make `change` at `when` of the account's clock, then go back to the present."""
    present, account.now = account.now, when
    try:
        return change()
    finally:
        account.now = present


def opened(account: PagerDutyAccount, born: float, *, title: str = 'Checkout latency above SLO') -> str:
    """An incident triggered at `born`: its trigger and assignment entries are listed (its notification is not)."""
    service = account.services[0]['id']
    return str(at(account, born, lambda: account.trigger(service, title)))


def acknowledged(account: PagerDutyAccount, incident_id: str, times: Iterable[float]) -> None:
    """Acknowledge (again) the incident at each of `times`: one entry each."""
    for when in times:
        at(account, when, lambda: account.acknowledge(incident_id))


def resolved(account: PagerDutyAccount, born: float) -> str:
    """An incident triggered at `born` and resolved a minute later."""
    incident_id = opened(account, born)
    at(account, born + 60, lambda: account.resolve(incident_id))
    return incident_id


def story_of(account: PagerDutyAccount, count: int, born: float) -> str:
    """An incident born at `born` and acknowledged `count` times after it, one a second: `count + 2` entries listed."""
    incident_id = opened(account, born)
    acknowledged(account, incident_id, [born + n for n in range(1, count + 1)])
    return incident_id


def entry_ids(account: PagerDutyAccount, incident_id: str | None = None) -> list[str]:
    """The ids of the listed entries (of one incident or all), oldest first."""
    incident = None if incident_id is None else account.index_of(incident_id)
    with account.lock:
        listed = account.log_entries(None, None, incident=incident, overview=True)
    return [encode_id(sequence, prefix='R') for sequence in reversed(listed)]


class EndlessPagerDuty(InProcessPagerDuty):
    """Says there are more log entries after every page."""

    def log_entries(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> LogPage:
        page = super().log_entries(since, until, offset, with_total)
        page.more = True
        return page


def record(status: str = 'triggered') -> IncidentRecord:
    return IncidentRecord(
        status=status,
        priority=None,
        urgency='high',
        service_id='PSERVICE',
        service_name='Checkout',
        created_at=NOW - DAY,
        resolved_at=None,
        delivered='',
        acked=False,
        wanted=True,
        base=Base(),
        steps=[],
        emitted=[],
        counted=True,
    )


class TestFeedPass:
    """The change feed reads up to PagerDuty's present, window by window, newest entry down."""

    def test_an_idle_feed_costs_one_request_and_reaches_pagerdutys_present(self) -> None:
        pagerduty, _ = pagerduty_at()
        feed = Feed(read_until=NOW - 60)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 3600, since_last_run=60.0))
        assert len(pagerduty.requests) == 1
        assert [(p.looks, p.deliver) for p in pages] == [([], True)]
        assert (feed.read_until, feed.window) == (NOW, None)
        assert pagerduty.requests[0][1] == NOW - 60 - OVERLAP

    def test_entries_are_handed_oldest_first_grouped_by_incident(self) -> None:
        pagerduty, account = pagerduty_at()
        # Before collection went live: not news, not handed over.
        opened(account, NOW - 5000)
        first = opened(account, NOW - 50)
        acknowledged(account, first, [NOW - 40])
        second = opened(account, NOW - 30)
        feed = Feed(read_until=NOW - 100)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 200, since_last_run=60.0))
        looks = [(look.incident.id, [e.id for e in look.entries or []]) for p in pages for look in p.looks]
        assert looks == [(first, entry_ids(account, first)), (second, entry_ids(account, second))]
        assert [len(entries) for _, entries in looks] == [3, 2]

    def test_a_window_of_several_pages_is_read_from_the_newest_down_with_shared_entries(self) -> None:
        pagerduty, account = pagerduty_at()
        acknowledged(account, opened(account, NOW - 5000), [NOW - 1000 + n for n in range(PAGE_SIZE + 20)])
        feed = Feed(read_until=NOW - 1000)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0))
        offsets = [request[3] for request in pagerduty.requests]
        assert offsets == [0, page_step()]
        seen = [e.id for p in pages for look in p.looks for e in look.entries or []]
        assert set(seen) == set(entry_ids(account)[2:]) and len(set(seen)) == PAGE_SIZE + 20
        assert feed.read_until == NOW

    def test_a_run_stopped_while_taking_a_page_reads_it_again(self) -> None:
        pagerduty, account = pagerduty_at()
        acknowledged(account, opened(account, NOW - 5000), [NOW - 1000 + n for n in range(PAGE_SIZE + 20)])
        feed = Feed(read_until=NOW - 1000)
        stopped = FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0)
        next_page(stopped)
        assert feed.window is not None and feed.window.offset == 0
        reading = FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0)
        first = next_page(reading)
        second = next_page(reading)
        # The first page was taken: the window went on, a page less the entries two pages share.
        assert feed.window is not None and feed.window.offset == page_step()
        assert feed.read_until == NOW - 1000
        rest = pages_of(reading)
        read = [e.id for p in [first, second, *rest] for look in p.looks for e in look.entries or []]
        assert len(set(read)) == PAGE_SIZE + 20
        assert len(read) - len(set(read)) == PAGE_SIZE - page_step()
        assert (feed.read_until, feed.window) == (NOW, None)

    def test_a_feed_position_ahead_of_pagerdutys_clock_is_read_again_from_the_last_run(self) -> None:
        pagerduty, _ = pagerduty_at()
        feed = Feed(read_until=NOW + 3 * 3600)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - DAY, since_last_run=120.0))
        assert [p.repaired for p in pages] == [True, False]
        assert "ahead of PagerDuty's clock" in pages[0].warnings[0][0]
        assert pagerduty.requests[1][1] == NOW - 120 - OVERLAP - OVERLAP
        assert feed.read_until == NOW

    def test_an_unreadable_page_is_retried_then_cornered_and_passed_over(self) -> None:
        pagerduty, _ = pagerduty_at()
        feed = Feed(read_until=NOW - 60)
        for attempt in range(1, UNREADABLE_RETRIES):
            pagerduty.unreadable = 1
            with pytest.raises(UnreadableResponse):
                pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - DAY, since_last_run=60.0))
            assert (feed.failures, feed.read_until) == (attempt, NOW - 60)
        pagerduty.unreadable = 1000
        # PagerDuty dates no answer now: the feed reads up to the Agent's clock.
        passes = FeedPass(pagerduty, lambda: NOW).read(feed, NOW - DAY, 60.0)
        pages = []
        with pytest.raises(UnreadableResponse):
            for step in passes:
                if isinstance(step, Page):
                    pages.append(step)
        # Halved down to the feed position's second, which is passed over; the next window fails afresh.
        assert [s for p in pages for s in p.skipped] == [('unreadable', 1)]
        warned = [w for p in pages for w in p.warnings]
        assert [w[1:3] for w in warned] == [(format_time(NOW - 60), format_time(NOW - 59))]
        assert (feed.failures, feed.read_until) == (1, NOW - 59)

    def test_an_incident_born_in_the_window_waits_for_the_page_with_its_trigger(self) -> None:
        pagerduty, account = pagerduty_at()
        born = story_of(account, PAGE_SIZE + 9, NOW - 900)
        feed = Feed(read_until=NOW - 1000)
        reading = FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0)
        newest = next_page(reading)
        assert newest.looks == []
        oldest = next_page(reading)
        # The position stays at the page that held entries back while the next one is taken.
        assert feed.window is not None and feed.window.offset == 0
        [story] = oldest.looks
        ids = [entry.id for entry in story.entries or []]
        assert ids == entry_ids(account, born) and len(ids) == PAGE_SIZE + 11
        assert pages_of(reading) == []
        assert (feed.read_until, feed.window) == (NOW, None)

    def test_a_run_stopped_while_entries_are_held_reads_them_again(self) -> None:
        pagerduty, account = pagerduty_at()
        story_of(account, PAGE_SIZE + 9, NOW - 900)
        feed = Feed(read_until=NOW - 1000)
        next_page(FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0))
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 2000, since_last_run=60.0))
        assert [r[3] for r in pagerduty.requests] == [0, 0, page_step()]
        assert [len(look.entries or []) for p in pages for look in p.looks] == [PAGE_SIZE + 11]

    def test_a_story_longer_than_the_pages_held_goes_over_without_its_trigger(self) -> None:
        pagerduty, account = pagerduty_at()
        story_of(account, (MAX_HELD_PAGES + 2) * PAGE_SIZE - 1, NOW - 3000)
        feed = Feed(read_until=NOW - 3100)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 4000, since_last_run=60.0))
        handed = [len(p.looks) for p in pages]
        assert handed == [0] * MAX_HELD_PAGES + [1] * (len(pages) - MAX_HELD_PAGES)
        first = pages[MAX_HELD_PAGES].looks[0].entries or []
        assert len(first) == MAX_HELD_PAGES * page_step() + PAGE_SIZE
        assert not any(entry.action == 'trigger' for entry in first)
        assert [e.action for p in pages[-1:] for look in p.looks for e in look.entries or []][0] == 'trigger'

    @pytest.mark.parametrize(
        'budget, held', [(1, 0), (3, 0), (7, 2), (22, 10), (500, MAX_HELD_PAGES)], ids=['1', '3', '7', '22', '500']
    )
    def test_a_small_request_budget_holds_fewer_pages(self, budget: int, held: int) -> None:
        pagerduty, _ = pagerduty_at()
        pagerduty.requests_per_run = budget
        assert FeedPass(pagerduty, agent_clock).max_held == held

    def test_a_log_that_always_says_more_ends_its_window_after_one_page_back(self) -> None:
        account, _ = small_account()
        pagerduty = EndlessPagerDuty(account)
        acknowledged(account, opened(account, NOW - 5000), [NOW - 50 + n for n in range(5)])
        feed = Feed(read_until=NOW - 100)
        pages = pages_of(FeedPass(pagerduty, agent_clock).read(feed, NOW - 200, since_last_run=60.0))
        assert [r[3] for r in pagerduty.requests] == [0, page_step(), 0, page_step()]
        assert [s for p in pages for s in p.skipped] == [('endless', 1)]
        assert len([w for p in pages for w in p.warnings]) == 1
        assert (feed.read_until, feed.window) == (NOW, None)


class TestSecondLook:
    """Once a period of PagerDuty's time, the feed reads the log again from `LATE_REACH` back, for late entries."""

    def test_a_run_crossing_a_period_reads_back_up_to_where_its_feed_began(self) -> None:
        assert NOW % LATE_PERIOD == 0
        pagerduty, account = pagerduty_at()
        incident_id = opened(account, NOW - 5000)
        feed = Feed(read_until=NOW - 60)
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(feed, NOW - DAY, since_last_run=60.0))
        # Indexed fifteen minutes late: not there for the run that read its second.
        acknowledged(account, incident_id, [NOW - 900])
        late = pages_of(passes.second_look(NOW - DAY))
        assert [request[1] for request in pagerduty.requests] == [NOW - 60 - OVERLAP, NOW - LATE_REACH]
        assert pagerduty.requests[1][2] == NOW - 60 - OVERLAP
        assert late[0].reads_back_to == NOW - LATE_REACH
        assert [(look.incident.id, [e.id for e in look.entries or []]) for p in late for look in p.looks] == [
            (incident_id, entry_ids(account, incident_id)[2:])
        ]
        assert (feed.read_until, feed.window) == (NOW, None)

    @pytest.mark.parametrize(
        'read_until, clock',
        [(NOW + 60, NOW + 120), (NOW, NOW + LATE_PERIOD - 1)],
        ids=['within-a-period', 'up-to-its-end'],
    )
    def test_a_run_within_one_period_takes_no_second_look(self, read_until: float, clock: float) -> None:
        pagerduty, _ = pagerduty_at(clock)
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(Feed(read_until=read_until), NOW - DAY, since_last_run=60.0))
        assert pages_of(passes.second_look(NOW - DAY)) == []
        assert len(pagerduty.requests) == 1

    def test_no_second_look_after_a_repaired_feed_position_or_before_going_live(self) -> None:
        pagerduty, _ = pagerduty_at()
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(Feed(read_until=NOW + 3 * 3600), NOW - DAY, since_last_run=120.0))
        assert pages_of(passes.second_look(NOW - DAY)) == []
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(Feed(read_until=NOW - 60), NOW - 60, since_last_run=60.0))
        assert pages_of(passes.second_look(NOW - 60)) == []
        assert len(pagerduty.requests) == 3

    def test_what_the_feed_warned_about_is_not_warned_about_again(self) -> None:
        account, _ = small_account()
        pagerduty = EndlessPagerDuty(account)
        acknowledged(account, opened(account, NOW - 5000), [NOW - 600 + n for n in range(5)])
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(Feed(read_until=NOW - 60), NOW - DAY, since_last_run=60.0))
        late = pages_of(passes.second_look(NOW - DAY))
        assert [r[3] for r in pagerduty.requests[1:]] == [0, page_step(), 0, page_step()]
        assert [(p.skipped, p.warnings) for p in late if p.skipped or p.warnings] == []
        assert sorted({e.id for p in late for look in p.looks for e in look.entries or []}) == sorted(
            entry_ids(account)[2:]
        )

    def test_an_unreadable_page_ends_the_second_look_until_its_next_turn(self) -> None:
        pagerduty, _ = pagerduty_at()
        feed = Feed(read_until=NOW - 60)
        passes = FeedPass(pagerduty, agent_clock)
        pages_of(passes.read(feed, NOW - DAY, since_last_run=60.0))
        pagerduty.unreadable = 1
        late = pages_of(passes.second_look(NOW - DAY))
        assert [(p.looks, p.skipped, p.warnings) for p in late] == [([], [], [])]
        assert (feed.read_until, feed.window, feed.failures) == (NOW, None, 0)


class TestEveryRequestIsAnnounced:
    """Each pass yields `NEXT_REQUEST` before each of its requests: where the collector may stop it."""

    def test_one_point_before_each_request_of_every_pass(self) -> None:
        pagerduty, account = pagerduty_at()
        incidents = [opened(account, NOW - DAY + n) for n in range(1, PAGE_SIZE + 30)]
        acknowledged(account, incidents[0], [NOW - 900 + n for n in range(PAGE_SIZE + 20)])
        state = CollectorState(swept_until=NOW - 2 * DAY)
        state.incidents['PGONE1'] = record()
        passes = [
            FeedPass(pagerduty, agent_clock).read(Feed(read_until=NOW - 1000), NOW - 2000, since_last_run=60.0),
            ReconcilePass(pagerduty, agent_clock).read(state, None, pages_per_run=1),
            SweepPass(pagerduty).history(state, NOW),
        ]
        for steps in passes:
            before = len(pagerduty.requests)
            points = 0
            for step in steps:
                if step is NEXT_REQUEST:
                    points += 1
                    # Announced, not yet made.
                    assert len(pagerduty.requests) == before + points - 1
            assert points == len(pagerduty.requests) - before > 1


class TestReconcilePass:
    """Open incidents in creation order, a paced share each run, and what a pass did not meet read by id."""

    def test_the_baseline_reads_every_page_then_verifies_what_it_did_not_meet(self) -> None:
        pagerduty, account = pagerduty_at()
        for n in range(1, 2 * PAGE_SIZE + 6):
            opened(account, NOW - DAY + n)
        state = CollectorState()
        state.incidents['PGONE1'] = record()
        pages = pages_of(ReconcilePass(pagerduty, agent_clock).read(state, None, pages_per_run=1))
        looks = [look.incident.number for p in pages for look in p.looks]
        assert looks == list(range(1, 2 * PAGE_SIZE + 6))
        assert [p.gone for p in pages if p.gone] == [['PGONE1']]
        assert [r[0] for r in pagerduty.requests] == ['list_open'] * 3 + ['get_incident']
        assert (state.baseline, state.reconciliation) == (True, None)

    def test_after_the_baseline_each_run_reads_its_share_and_resumes_by_position(self) -> None:
        pagerduty, account = pagerduty_at()
        for n in range(1, 3 * PAGE_SIZE + 1):
            opened(account, NOW - DAY + n)
        state = CollectorState(baseline=True)
        first = pages_of(ReconcilePass(pagerduty, agent_clock).read(state, NOW, pages_per_run=2))
        assert len(pagerduty.requests) == 2
        assert state.reconciliation is not None
        # The second page starts at the first one's last creation time, which it lists again.
        assert state.reconciliation.position == (NOW - DAY + 2 * PAGE_SIZE - 1, 2 * PAGE_SIZE - 1)
        rest = pages_of(ReconcilePass(pagerduty, agent_clock).read(state, NOW, pages_per_run=2))
        numbers = [look.incident.number for p in first + rest for look in p.looks]
        assert numbers == list(range(1, 3 * PAGE_SIZE + 1))
        assert state.reconciliation is None

    def test_an_unreadable_answer_to_one_verification_does_not_end_the_others(self) -> None:
        pagerduty, _ = pagerduty_at()
        state = CollectorState(baseline=True)
        state.incidents['PA'] = record()
        state.incidents['PB'] = record()
        passes = ReconcilePass(pagerduty, agent_clock).read(state, NOW, pages_per_run=1)
        next_page(passes)
        pagerduty.unreadable = 1
        pages = pages_of(passes)
        assert [p.skipped for p in pages] == [[('unreadable_incident', 1)], [], []]
        assert [p.gone for p in pages] == [[], ['PB'], []]

    @pytest.mark.parametrize(
        'open_records, interval, pages',
        [(0, 60.0, 1), (1000, 60.0, 1), (5000, 60.0, 5), (5000, 15.0, 1), (20000, 60.0, 20)],
        ids=['none', 'a_thousand', 'five_thousand', 'short_interval', 'twenty_thousand'],
    )
    def test_the_pace_completes_a_pass_in_ten_minutes(self, open_records: int, interval: float, pages: int) -> None:
        state = CollectorState()
        state.incidents = {str(n): record() for n in range(open_records)}
        assert pages_per_run(state, interval) == pages


class TestSweepPass:
    """History by creation time: windows sized under the offset cap, `swept_until` moved once a window is read."""

    def test_history_is_read_window_by_window_up_to_the_target(self) -> None:
        pagerduty, account = pagerduty_at()
        for n in range(1, 11):
            resolved(account, NOW - n * DAY)
        state = CollectorState(swept_until=NOW - 30 * DAY)
        pages = pages_of(SweepPass(pagerduty).history(state, NOW))
        assert sorted(look.incident.number for p in pages for look in p.looks) == list(range(1, 11))
        assert (state.swept_until, state.sweep_window) == (NOW, None)

    def test_a_window_over_the_offset_cap_is_narrowed_before_it_is_read(self) -> None:
        pagerduty, account = pagerduty_at()
        for n in range(1, 10_150):
            resolved(account, NOW - 10 * DAY + n * 60)
        state = CollectorState(swept_until=NOW - 10 * DAY)
        pages = SweepPass(pagerduty).history(state, NOW)
        first = next_page(pages)
        # The first answer only sized the window: the page taken is the narrower window's first.
        assert len(pagerduty.requests) == 2
        assert 0 < state.sweep_width <= 10 * DAY / 2
        assert (
            state.sweep_window is not None and state.sweep_window.until - state.sweep_window.since == state.sweep_width
        )
        assert len(first.looks) == PAGE_SIZE

    def test_resending_ends_where_it_was_asked_to(self) -> None:
        pagerduty, account = pagerduty_at()
        incident_id = resolved(account, NOW - 2 * DAY)
        state = CollectorState(resend=CreationWindow(NOW - 3 * DAY, NOW - DAY), resend_end=NOW - DAY)
        pages = pages_of(SweepPass(pagerduty).resend(state))
        assert [look.incident.id for p in pages for look in p.looks] == [incident_id]
        assert (state.resend, state.resend_end) == (None, None)

    def test_near_the_present_a_window_reaches_back_for_late_indexed_incidents(self) -> None:
        window = plan_window(NOW - 600, NOW, 0.0)
        assert window == CreationWindow(since=NOW - 600 - OVERLAP, until=NOW)
        assert plan_window(NOW, NOW, 0.0) is None
