# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The change feed: the account's log entries, window by window, each window read from its newest entry down.

Each window's end is fixed when it is planned and its pages are read from offset 0 (the newest
entries) down, `PAGE_OVERLAP` entries shared by consecutive pages, so an entry PagerDuty adds while
the window is read only pushes older ones to higher offsets and none is lost. Entries are matched by
id in the incidents' stories, so reading one twice is harmless. The feed's position (`Feed.read_until`)
moves only once a window is read; an unreadable page is retried, then cornered and passed over with a count.

An incident born in a window has its newest entries on the first pages read and its trigger on a later
one: its entries are held back until the page with its trigger is read, and the window's position
stays at the first page holding any, so a run stopped in between reads them again. A story longer than
`MAX_HELD_PAGES` pages (fewer under a small request budget) is handed over without its trigger, and
the incident's own log is read instead.

A page that does not go on where the one before ended is read again from a page earlier, once per
place and run: a list that says `more` for ever (an empty page after one that said `more`) ends its
window the second time, with a warning and a count, instead of spending the run going back and forth.

**Entries indexed late.** PagerDuty indexes most entries within a minute, which each run's first
window covers by reading `OVERLAP` back; some it indexes many minutes late. So once every
`LATE_PERIOD` of PagerDuty's time (the first run whose present crosses a multiple of it, as the
feed's position shows: nothing more is stored), the feed takes a second, slower look at the log from
`LATE_REACH` before the present up to where this run's reading started, and incidents' records keep
their steps that long (`story.py`). An entry read again is matched by id; one indexed late joins its
incident's story at its own time. The second looks are at most `LATE_PERIOD` plus one interval
apart, so an entry indexed up to `LATE_REACH - LATE_PERIOD - interval` late (15 minutes at the
default 60-second interval) is read while its incident's story still holds its neighbours. What the
feed already warned about (an unpaged list, one that never ends) is not warned about or counted
again, and a page the second look cannot read ends it until its next turn.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Generator, Iterator

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.pagerduty.client import (
    OFFSET_CAP,
    PAGE_SIZE,
    LogEntry,
    LogPage,
    PagerDutyClient,
    parse_log_entry,
)

from .feed_position import WINDOW_ENTRIES, Feed, FeedWindow
from .feed_position import Next as _Next
from .pages import DAY, LATE_REACH, NEXT_REQUEST, OVERLAP, Look, Page, PassStep, narrower

# Entries shared by two consecutive pages of a feed window, matched by id.
PAGE_OVERLAP = 3
# Runs a feed page may fail to read before it is narrowed, then passed over.
UNREADABLE_RETRIES = 3
# Longest pause between two runs taken into account when a stored feed position is repaired.
MAX_REPAIR_SPAN = 7 * DAY
# Pages a window is read past its stored position while entries wait for their incident's trigger:
# what a stopped run reads again. Past it, those incidents' own logs are read.
MAX_HELD_PAGES = 10
# The second look at the log is taken once per this much of PagerDuty's time (see the module docstring).
LATE_PERIOD = 300.0


class FeedPass:
    """Reads the log up to PagerDuty's present second and moves `feed` on as windows complete.

    `since_last_run` is the Agent-measured time since the previous run (None: unknown); it places a
    stored position (`Feed.read_until`) found ahead of PagerDuty's clock back where the last run really was.
    """

    def __init__(self, client: PagerDutyClient, fallback_now: Callable[[], float]) -> None:
        self.client = client
        self.fallback_now = fallback_now
        self.pages = 0
        # Looks of incidents born in the window being read, waiting for the page with their trigger,
        # and the incidents handed over without it (their own log is read: nothing more to wait for).
        self._held: dict[str, Look] = {}
        self._handed: set[str] = set()
        # A run stopped among held pages reads them again, and a story longer than them costs about
        # as many pages of its own log: a run must afford both to get past them.
        budget = client.requests_per_run
        self.max_held = MAX_HELD_PAGES if budget is None else max(0, min(MAX_HELD_PAGES, (budget - 2) // 2))
        # (since, until, offset) of the pages this run went back a page from, as for vanished entries.
        self._went_back: set[tuple[float, float, int]] = set()
        self._warned_endless = False
        # Whether the second look is being read: what the feed warned about is not warned about again.
        self._late = False
        # Where this run's `read` began, and the present it reached (None: it did not, or was repaired).
        self._started = 0.0
        self._reached: float | None = None

    def read(self, feed: Feed, live_since: float, since_last_run: float | None) -> Iterator[PassStep]:
        """One `Page` per request, oldest entries first within each page, until the present is read."""
        self._started, self._reached = feed.read_until, None
        self._reached = yield from self._read(feed, live_since, feed.read_until - OVERLAP, None, since_last_run)

    def second_look(self, live_since: float) -> Iterator[PassStep]:
        """After `read` reached the present: when it is due, the log since `LATE_REACH` ago up to where `read` began."""
        start, reached = self._started, self._reached
        if reached is None or not late_look_due(start, reached):
            return
        since, until = max(reached - LATE_REACH, live_since), start - OVERLAP
        if until <= since:
            return
        # Its looks may hold entries older than this run's reading: news where no story holds them.
        yield Page(reads_back_to=since, deliver=False)
        self._late = True
        try:
            yield from self._read(Feed(read_until=since), live_since, since, until, None)
        except ApiError as e:
            if dispose(e) is not Disposition.UNREADABLE:
                raise
            # The feed itself retries and corners an unreadable page; this look is taken again at its next turn.
            return
        finally:
            self._late = False

    def _read(
        self, feed: Feed, live_since: float, since: float, target: float | None, since_last_run: float | None
    ) -> Generator[PassStep, None, float | None]:
        """Read `feed` from `since` up to `target` (None: PagerDuty's present); the present read, None if repaired."""
        # Where reading is while entries are held: `feed.window` stays at the first page holding any.
        ahead: FeedWindow | None = None
        held_pages = 0
        repaired = False
        while True:
            window = feed.window
            if window is None:
                if target is not None and since >= target:
                    return None if repaired else target
                window = feed.window = feed.plan(since, target)
            reading = ahead if ahead is not None else window
            yield NEXT_REQUEST
            page = Page(deliver=False)
            log = self._request(feed, reading, page)
            if target is None:
                # PagerDuty's present, from its own answer: what lies at or past it is read next run.
                target = self.client.now if self.client.now is not None else self.fallback_now()
                if feed.read_until > target + 1:
                    _repair(feed, target, since_last_run, page)
                    since, repaired = feed.read_until - OVERLAP, True
                    yield page
                    continue
                window.end = min(window.end, max(target, window.since + 1))
            if log is None or self._narrowed(feed, reading, log):
                since = feed.read_until if log is None else window.since
                ahead, held_pages = None, 0
                self._hand_over(page)
                yield page
                continue
            following = self._page_through(reading, log, live_since, page)
            holding = following is not None and held_pages < self.max_held
            held_pages = held_pages + 1 if self._hold(page, max(window.since, live_since) if holding else None) else 0
            page.deliver = True
            # The cursor moves once the page is taken: a run stopped while taking it reads it again.
            yield page
            ahead = feed.passed(window, reading, following, held_pages > 0)
            if following is None:
                since = window.end

    @staticmethod
    def _narrowed(feed: Feed, reading: FeedWindow, log: LogPage) -> bool:
        """Too many entries for one window: a narrower one is planned from what PagerDuty counted."""
        if reading.offset != 0 or log.total is None or log.total <= WINDOW_ENTRIES:
            return False
        if reading.until - reading.since <= 1:
            return False
        feed.width = narrower(reading.until - reading.since, log.total, WINDOW_ENTRIES)
        feed.window = None
        return True

    def _page_through(self, window: FeedWindow, log: LogPage, live_since: float, page: Page) -> _Next | None:
        """Take one page of `window` into `page`; the window's next (until, offset, tail), or None once it is read."""
        ids = [entry.get('id') for entry in log.entries if isinstance(entry, dict)]
        if window.offset > 0 and window.tail and not set(window.tail) & set(ids):
            # The page does not repeat the end of the previous one: entries vanished (a deleted
            # incident) and shifted the list; read from a page earlier, matching entries by id.
            place = (window.since, window.until, window.offset)
            if place not in self._went_back:
                self._went_back.add(place)
                return window.until, max(0, window.offset - page_step()), []
            # Read again from a page earlier, the list still does not go on where it said it would:
            # it says `more` for ever. The window ends here; reading it again would repeat the loop.
            self._endless(window, page)
            return None
        if log.offset is not None and log.offset != window.offset:
            if self._late:
                return None
            page.warn(
                'PagerDuty answered log entries from offset %d when asked for offset %d; the rest of %s to %s '
                'is skipped, and reconciliation recovers the state of the incidents it concerns',
                log.offset,
                window.offset,
                format_time(window.since),
                format_time(window.until),
            )
            page.skipped.append(('unpaged', 1))
            return None
        _take(log.entries, window.since, window.until, live_since, page)
        # `more` is believed when it says there is more; a full page is read past even when it says not.
        more = log.more or len(log.entries) >= PAGE_SIZE
        if not more or not log.entries:
            return None
        if window.offset + 2 * PAGE_SIZE > OFFSET_CAP:
            return _past_cap(window, log, page)
        tail = [str(i) for i in ids[-(PAGE_SIZE - page_step()) :]] if PAGE_SIZE > page_step() else []
        return window.until, window.offset + page_step(), tail

    def _endless(self, window: FeedWindow, page: Page) -> None:
        """A window whose list does not end where it says: counted, and warned about once per run."""
        if self._late:
            return
        page.skipped.append(('endless', 1))
        if self._warned_endless:
            return
        self._warned_endless = True
        page.warn(
            'PagerDuty log entries of %s to %s did not continue at offset %d where the page before said there '
            'were more; the window ends there, and reconciliation recovers the state of the incidents it concerns',
            format_time(window.since),
            format_time(window.until),
            window.offset,
        )

    def _hold(self, page: Page, born_since: float | None) -> bool:
        """Hold back the looks of `page` at incidents born since `born_since` whose trigger it lacks; whether any are.

        Held entries join their incident's look on the page with its trigger. With `born_since` None
        (the window ends, or has held entries long enough) every held look is handed over as it is.
        """
        for look in page.looks:
            held = self._held.pop(look.incident.id, None)
            if held is not None and held.entries:
                # Pages are read from the newest down: what was held is newer than this page's entries.
                known = {entry.id for entry in look.entries or []}
                look.entries = list(look.entries or []) + [e for e in held.entries if e.id not in known]
        if born_since is None:
            self._hand_over(page)
            return False
        kept = []
        for look in page.looks:
            if look.incident.created_at >= born_since and look.incident.id not in self._handed and not _triggered(look):
                self._held[look.incident.id] = look
            else:
                kept.append(look)
        page.looks = kept
        return bool(self._held)

    def _hand_over(self, page: Page) -> None:
        """Every held look goes out with `page`; one without its trigger has its own log read, and is not held again."""
        page.looks.extend(self._held.values())
        self._held.clear()
        self._handed.update(look.incident.id for look in page.looks if not _triggered(look))

    def _request(self, feed: Feed, window: FeedWindow, page: Page) -> LogPage | None:
        """One page of the log, or None when it cannot be read after `UNREADABLE_RETRIES` runs and was skipped.

        A page that never reads (PagerDuty, or a proxy, answers something that is not JSON) must not
        stop the feed for ever: its window is narrowed to one second, then that second is passed over
        with a warning and a count, and reconciliation and the incidents' own logs recover what it held.
        """
        try:
            log = self.client.log_entries(window.since, window.until, window.offset, with_total=window.offset == 0)
        except ApiError as e:
            if dispose(e) is not Disposition.UNREADABLE:
                raise
            feed.failures += 1
            if feed.failures < UNREADABLE_RETRIES:
                raise
            # From here on the bad page is cornered within this run: each failure halves the window,
            # down to one second, which is passed over.
            if window.until - window.since > 1 and window.offset == 0:
                feed.width = max(1.0, (window.until - window.since) / 2)
                feed.window = None
                return None
            feed.window, feed.failures = None, 0
            feed.read_until = max(feed.read_until, window.until if window.offset == 0 else window.end)
            page.skipped.append(('unreadable', 1))
            page.warn(
                'PagerDuty log entries of %s to %s could not be read after %d tries and were skipped; '
                'reconciliation recovers the state of the incidents they concern',
                format_time(window.since),
                format_time(window.until),
                UNREADABLE_RETRIES,
            )
            return None
        self.pages += 1
        if feed.failures < UNREADABLE_RETRIES:
            feed.failures = 0
        return log


def late_look_due(start: float, now: float) -> bool:
    """Whether PagerDuty's time crossed a multiple of `LATE_PERIOD` since the feed's position `start`."""
    return math.floor(now / LATE_PERIOD) > math.floor(start / LATE_PERIOD)


def page_step() -> int:
    """How far the next feed page starts after the last: a page less the entries two pages share."""
    return PAGE_SIZE - min(PAGE_OVERLAP, PAGE_SIZE // 4)


def _repair(feed: Feed, now: float, since_last_run: float | None, page: Page) -> None:
    """The stored position is ahead of PagerDuty's clock: read again from where the last run really was."""
    span = min(max(since_last_run, 0.0), MAX_REPAIR_SPAN) if since_last_run is not None else DAY
    repaired = now - span - OVERLAP
    page.warn(
        "The stored position of the change feed (%s) is ahead of PagerDuty's clock (%s); reading again from %s",
        format_time(feed.read_until),
        format_time(now),
        format_time(repaired),
    )
    page.repaired = True
    page.reads_back_to = repaired - OVERLAP
    feed.read_until, feed.window = repaired, None


def _past_cap(window: FeedWindow, log: LogPage, page: Page) -> _Next | None:
    """A window that reached the offset cap: the older rest becomes a window of its own, or one second is skipped."""
    times = [entry.at for entry in map(parse_log_entry, log.entries) if entry is not None]
    oldest = min(times, default=window.since)
    if oldest > window.since:
        # The window grew past the offset cap while it was read: the rest of it, older than what
        # was read, is read as a window of its own.
        return oldest + 1, 0, []
    page.warn(
        'More than %d PagerDuty log entries are dated %s; the rest of that second is skipped',
        OFFSET_CAP,
        format_time(window.since),
    )
    page.skipped.append(('offset_cap', 1))
    return None


def _triggered(look: Look) -> bool:
    """Whether the entries of `look` hold its incident's trigger."""
    return any(entry.action == 'trigger' for entry in look.entries or [])


def _take(raw_entries: list[Any], since: float, until: float, live_since: float, page: Page) -> None:
    """One page's entries in [since, until), grouped per incident, oldest first, as looks of `page`."""
    by_incident: dict[str, tuple[Any, list[LogEntry]]] = {}
    unusable = 0
    for raw in reversed(raw_entries):
        entry = parse_log_entry(raw)
        if entry is None:
            unusable += 1
            continue
        if not since <= entry.at < until or entry.at < live_since:
            continue
        if entry.incident is None:
            unusable += 1
            continue
        found = by_incident.get(entry.incident_id)
        if found is None:
            by_incident[entry.incident_id] = (entry.incident, [entry])
        else:
            found[1].append(entry)
    if unusable:
        page.skipped.append(('malformed', unusable))
    for raw_incident, entries in by_incident.values():
        incident = page.parsed(raw_incident)
        trigger = next((entry for entry in entries if entry.action == 'trigger'), None)
        if incident is not None and trigger is not None:
            # Read with its channel, the trigger entry says which monitor, if any, opened the incident.
            incident = replace(incident, trigger_known=True, trigger=trigger.monitor)
        if incident is not None:
            page.looks.append(Look(incident, entries))
