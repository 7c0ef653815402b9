# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The three passes of a run over PagerDuty's lists, each resumable across runs by a stable position.

- `read_feed`: the account's log, window by window, each window's end fixed when it is planned and
  its pages read from the highest offset down, so entries are applied in the order they happened;
- `reconcile`: the open incidents in creation order, resumed at (creation time, incident number);
- `sweep`: incidents by creation time, in windows sized to stay under PagerDuty's offset cap.

They only page and hand what they read to a `Steps` object (the collector), which decides what each
incident means and does the output; they stop by raising what the steps raise (budget, deadline).
"""

from __future__ import annotations

from typing import Any, Protocol

from datadog_checks.pagerduty_dora.common.http import UnreadableResponse
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.pagerduty.client import (
    MAX_WINDOW,
    OFFSET_CAP,
    PAGE_SIZE,
    LogEntry,
    LogPage,
    PagerDutyClient,
    parse_log_entry,
)
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, MalformedIncident, parse_incident

from .state import CollectorState, Feed, FeedWindow, Reconciliation, Window

DAY = 86400.0
# How far back each run's first feed window reaches before the horizon, for entries PagerDuty
# indexes late (it indexes within seconds to a minute).
OVERLAP = 180.0
# Entries shared by two consecutive pages of a feed window, matched by id.
PAGE_OVERLAP = 3
# Feed windows are sized for this many entries, far below the offset cap.
WINDOW_ENTRIES = 5000
# Runs a feed page may fail to read before it is narrowed, then passed over.
UNREADABLE_RETRIES = 3
# A pass over the open incidents completes within this many seconds, whatever their number.
RECONCILE_PERIOD = 600.0
# Windows are sized for this many records, leaving room under the offset cap for growth.
WINDOW_TARGET = 8000


class Steps(Protocol):
    """What the passes hand their findings to, and ask before each request."""

    def parse(self, raw: Any) -> Incident | None: ...

    def observe(self, incident: Incident, entries: list[LogEntry] | None = None) -> None: ...

    def redeliver(self, incident: Incident) -> None: ...

    def sweep_incident(self, incident: Incident) -> None: ...

    def gone(self, key: str) -> None: ...

    def deliver(self) -> None: ...

    def before_request(self) -> None: ...

    def before_sweep_request(self) -> None: ...

    def warning(self, message: str, *args: Any) -> None: ...

    def skipped_entries(self, reason: str, count: int) -> None: ...

    def fallback_now(self) -> float: ...

    def horizon_ahead(self, feed: Feed, now: float) -> None: ...


class Passes:
    """Pages through PagerDuty for one collector; `state` is the collector's, read and moved on here."""

    def __init__(self, client: PagerDutyClient, steps: Steps) -> None:
        self.client = client
        self.steps = steps
        self.pages = 0

    # The change feed ---------------------------------------------------------------------------

    def read_feed(self, feed: Feed, live_since: float) -> None:
        """Apply every log entry up to PagerDuty's present second, window by window.

        The run's first window reaches back `OVERLAP` before the horizon for entries PagerDuty
        indexed late; entries are matched by id (in the incidents' stories), so reading one twice is
        harmless. Each window is sized from the `total` PagerDuty reports to stay far below the offset
        cap, and paged from the newest entry down (see `FeedWindow`), so nothing that PagerDuty adds
        while it is read can push an entry out of sight. The horizon moves only once a window is read.
        """
        target: float | None = None
        since = feed.horizon - OVERLAP
        while True:
            window = feed.window
            if window is None:
                if target is not None and since >= target:
                    return
                width = min(feed.width if feed.width > 0 else MAX_WINDOW, MAX_WINDOW)
                until = since + max(1.0, width)
                if target is not None:
                    until = max(since + 1, min(until, target))
                window = feed.window = FeedWindow(since, until, 0, until)
            page = self._feed_page(feed, window)
            if target is None:
                # PagerDuty's present, from its own answer: what lies at or past it is read next run.
                target = self.client.now if self.client.now is not None else self.steps.fallback_now()
                if feed.horizon > target + 1:
                    self.steps.horizon_ahead(feed, target)
                    since = feed.horizon - OVERLAP
                    continue
                window.end = min(window.end, max(target, window.since + 1))
            if page is None:
                since = feed.horizon
                continue
            if window.offset == 0 and page.total is not None and page.total > WINDOW_ENTRIES:
                if window.until - window.since > 1:
                    # Too many entries for one window: a narrower one, planned from what PagerDuty counted.
                    feed.width = _narrower(window.until - window.since, page.total, WINDOW_ENTRIES)
                    feed.window = None
                    since = window.since
                    continue
            if self._page_through(feed, window, page, live_since):
                feed.window = None
                feed.horizon = max(feed.horizon, window.end)
                if window.offset < WINDOW_ENTRIES // 4:
                    feed.width = min(MAX_WINDOW, max(feed.width, window.until - window.since) * 2)
                since = window.end
            self.steps.deliver()

    def _page_through(self, feed: Feed, window: FeedWindow, page: LogPage, live_since: float) -> bool:
        """Apply one page of `window` and move on to the next; True once the window is read."""
        ids = [entry.get('id') for entry in page.entries if isinstance(entry, dict)]
        if window.offset > 0 and window.tail and not set(window.tail) & set(ids):
            # The page does not repeat the end of the previous one: entries vanished (a deleted
            # incident) and shifted the list; read from a page earlier, matching entries by id.
            window.offset = max(0, window.offset - _page_step())
            window.tail = []
            return False
        if page.offset is not None and page.offset != window.offset:
            self.steps.warning(
                'PagerDuty answered log entries from offset %d when asked for offset %d; the rest of %s to %s '
                'is skipped, and reconciliation recovers the state of the incidents it concerns',
                page.offset,
                window.offset,
                format_time(window.since),
                format_time(window.until),
            )
            self.steps.skipped_entries('unpaged', 1)
            return True
        self._apply(page.entries, window.since, window.until, live_since)
        # `more` is believed when it says there is more; a full page is read past even when it says not.
        more = page.more or len(page.entries) >= PAGE_SIZE
        if not more or not page.entries:
            return True
        if window.offset + 2 * PAGE_SIZE > OFFSET_CAP:
            times = [entry.at for entry in map(parse_log_entry, page.entries) if entry is not None]
            oldest = min(times, default=window.since)
            if oldest > window.since:
                # The window grew past the offset cap while it was read: the rest of it, older than
                # what was read, is read as a window of its own.
                window.until, window.offset, window.tail = oldest + 1, 0, []
                return False
            self.steps.warning(
                'More than %d PagerDuty log entries are dated %s; the rest of that second is skipped',
                OFFSET_CAP,
                format_time(window.since),
            )
            self.steps.skipped_entries('offset_cap', 1)
            return True
        window.offset += _page_step()
        window.tail = [str(i) for i in ids[-(PAGE_SIZE - _page_step()) :]] if PAGE_SIZE > _page_step() else []
        return False

    def _feed_page(self, feed: Feed, window: FeedWindow) -> LogPage | None:
        """One page of the log, or None when it cannot be read after `UNREADABLE_RETRIES` runs and was skipped.

        A page that never reads (PagerDuty, or a proxy, answers something that is not JSON) must not
        stop the feed for ever: its window is narrowed to one second, then that second is passed over
        with a warning and a count, and reconciliation and the incidents' own logs recover what it held.
        """
        self.steps.before_request()
        try:
            page = self.client.log_entries(window.since, window.until, window.offset, with_total=window.offset == 0)
        except UnreadableResponse:
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
            feed.horizon = max(feed.horizon, window.until if window.offset == 0 else window.end)
            self.steps.skipped_entries('unreadable', 1)
            self.steps.warning(
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
        return page

    def _apply(self, raw_entries: list[Any], since: float, until: float, live_since: float) -> None:
        """Hand one page's entries in [since, until) to the steps, per incident, oldest first."""
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
            self.steps.skipped_entries('malformed', unusable)
        for raw_incident, entries in by_incident.values():
            incident = self.steps.parse(raw_incident)
            if incident is not None:
                self.steps.observe(incident, entries)

    # Reconciliation ----------------------------------------------------------------------------

    def reconcile(self, state: CollectorState, now: float | None, pages_per_run: int) -> None:
        """Read this run's share (`pages_per_run`) of the open incidents, and end the pass when it has read them all.

        The first pass (the baseline of what is open when collection goes live) is read whole.
        """
        scan = state.reconciliation
        if scan is None:
            scan = state.reconciliation = Reconciliation(started=-1.0 if now is None else now)
        pages = 0
        while scan.verify is None:
            if state.baseline and pages >= pages_per_run:
                return
            self.steps.before_request()
            self._reconcile_page(scan, state, now)
            pages += 1
            self.steps.deliver()
        while scan.verify:
            # A recorded open incident the pass did not meet: resolved, deleted, merged or moved away.
            key = scan.verify[0]
            record = state.incidents.get(key)
            if record is not None and record.status != 'resolved' and record.checked_at < scan.started:
                self.steps.before_request()
                try:
                    raw = self.client.get_incident(key)
                except UnreadableResponse:
                    # One answer that cannot be read must not end the verification of those after it.
                    self.steps.skipped_entries('unreadable_incident', 1)
                    scan.verify.pop(0)
                    continue
                if raw is None:
                    self.steps.gone(key)
                else:
                    incident = self.steps.parse(raw)
                    if incident is not None:
                        self.steps.observe(incident)
            scan.verify.pop(0)
        self.steps.deliver()
        state.baseline = True
        state.reconciliation = None

    def _reconcile_page(self, scan: Reconciliation, state: CollectorState, now: float | None) -> None:
        since: float | None = None
        until: float | None = None
        if scan.position is None:
            page = self.client.list_open(scan.skip)
        else:
            since = scan.position[0]
            until = min(since + MAX_WINDOW, (now if now is not None else scan.started) + 60)
            page = self.client.list_open(scan.skip, since, until)
        self.pages += 1
        if scan.started < 0:
            # The first pass starts with PagerDuty's first answer: records it meets are dated by that clock.
            scan.started = self.client.now if self.client.now is not None else self.steps.fallback_now()
        fresh = 0
        for raw in page.incidents:
            incident = self.steps.parse(raw)
            if incident is None:
                continue
            key = (incident.created_at, incident.number)
            if scan.position is not None and key <= scan.position:
                continue
            fresh += 1
            self.steps.observe(incident)
            scan.position = key if scan.position is None else max(scan.position, key)
        if page.more and not fresh:
            # A whole page of one second already read: step over it within that second, but never
            # past the offset PagerDuty accepts (a server that always says `more` ends the pass here),
            # and not at all for a page shorter than asked for, which cannot have more after it.
            if scan.skip + 2 * PAGE_SIZE <= OFFSET_CAP and len(page.incidents) >= PAGE_SIZE:
                scan.skip += PAGE_SIZE
                return
            self.steps.warning(
                'The list of open PagerDuty incidents did not end within %d incidents of one position; '
                'this reconciliation pass ends there and the next one starts over',
                OFFSET_CAP,
            )
            scan.skip = 0
            scan.verify = _unmet(state, scan)
            return
        scan.skip = 0
        if page.more:
            return
        if since is not None and until is not None and until < (now if now is not None else scan.started):
            # The list was read in a window of at most six months; the rest starts at its end.
            scan.position = (until, -1)
            return
        scan.verify = _unmet(state, scan)

    # Creation-time sweep -----------------------------------------------------------------------

    def sweep(self, state: CollectorState, target: float) -> None:
        """Process every incident created before `target`, from `state.horizon` on."""
        assert state.horizon is not None
        while True:
            window = state.window or _plan_window(state.horizon, target, state.width)
            if window is None:
                return
            state.window = window
            done, width = self._sweep_window(window, deliver_only=False)
            if width is not None:
                state.window, state.width = None, width
                continue
            if done is not None:
                state.horizon = max(state.horizon, done)
                state.window = None
                if window.offset < WINDOW_TARGET // 4:
                    state.width = min(MAX_WINDOW, max(state.width, window.until - window.since) * 2)

    def resend(self, state: CollectorState) -> None:
        """Deliver the history that runs with DORA delivery off kept back, window by window."""
        while state.resend is not None and state.resend_end is not None:
            window = state.resend
            done, width = self._sweep_window(window, deliver_only=True)
            if width is not None:
                state.resend = Window(window.since, window.since + width)
            elif done is not None and done < state.resend_end:
                state.resend = Window(done, min(state.resend_end, done + MAX_WINDOW))
            else:
                state.resend = state.resend_end = None

    def _sweep_window(self, window: Window, *, deliver_only: bool) -> tuple[float | None, float | None]:
        """Page through one creation-time window from `window.offset` on.

        Returns (creation time up to which it is done, None) when the window is finished, or
        (None, narrower width) when its first page shows it holds more than the offset cap.
        """
        while True:
            self.steps.before_sweep_request()
            first = window.offset == 0
            page = self.client.list_created(window.since, window.until, window.offset, with_total=first)
            self.pages += 1
            if first and _over_cap(window, page.total, page.more, len(page.incidents)):
                return None, _narrower(window.until - window.since, page.total or 0)
            for raw in page.incidents:
                incident = self.steps.parse(raw)
                if incident is not None:
                    (self.steps.redeliver if deliver_only else self.steps.sweep_incident)(incident)
            self.steps.deliver()
            # An empty page that claims more is not believed: the window ends there.
            more = page.more and bool(page.incidents)
            if more and window.offset + 2 * PAGE_SIZE <= OFFSET_CAP:
                window.offset += PAGE_SIZE
                continue
            if more:
                last = max((i.created_at for i in map(_quiet_parse, page.incidents) if i), default=None)
                if last is not None and last > window.since:
                    # The window grew past the offset cap while it was paged: go on from the last
                    # creation time seen rather than leave the rest behind.
                    window.since, window.offset = last, 0
                    continue
                self.steps.warning(
                    'More than %d incidents were created within one second at %s; the rest of that second is skipped',
                    OFFSET_CAP,
                    format_time(window.since),
                )
            return window.until, None


def _page_step() -> int:
    """How far the next feed page starts after the last: a page less the entries two pages share."""
    return PAGE_SIZE - min(PAGE_OVERLAP, PAGE_SIZE // 4)


def _unmet(state: CollectorState, scan: Reconciliation) -> list[str]:
    """Open records the pass did not meet: each is read by id."""
    return sorted(
        key
        for key, record in state.incidents.items()
        if record.status != 'resolved' and record.checked_at < scan.started
    )


def _plan_window(horizon: float, target: float, width: float) -> Window | None:
    if horizon >= target:
        return None
    width = min(width if width > 0 else MAX_WINDOW, MAX_WINDOW)
    # Near the present, reach back for late-indexed incidents, but never so far that the window
    # ends before the horizon: the cursor only moves forward.
    since = horizon - min(OVERLAP, width / 2) if horizon > target - DAY else horizon
    until = min(target, max(since + width, horizon + 1))
    return Window(since=since, until=max(until, since + 1))


def _quiet_parse(raw: Any) -> Incident | None:
    try:
        return parse_incident(raw)
    except MalformedIncident:
        return None


def _over_cap(window: Window, total: int | None, more: bool, size: int) -> bool:
    """Whether a first page says its window holds more than PagerDuty lets an offset reach.

    Only a full page is taken at its word, and a window of one second cannot narrow further: a
    server that reports a huge total for everything still lets the sweep move on.
    """
    return (
        total is not None
        and total > OFFSET_CAP - PAGE_SIZE
        and more
        and size >= PAGE_SIZE
        and window.until - window.since > 1.0
    )


def _narrower(span: float, total: int, target: int = WINDOW_TARGET) -> float:
    """A window width expected to hold `target` records, given `total` in `span` seconds."""
    return max(1.0, min(span / 2, span * target / max(total, 1) * 0.9))
