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

import math
from typing import Any, Protocol

from .client import MAX_WINDOW, OFFSET_CAP, PAGE_SIZE, LogEntry, PagerDutyClient, parse_log_entry
from .incident import Incident, MalformedIncident, parse_incident
from .state import CollectorState, Feed, FeedWindow, Reconciliation, Window
from .times import format_time

DAY = 86400.0
# How far back each query reaches before the last horizon, for records PagerDuty indexes late.
OVERLAP = 120.0
# Windows are sized for this many records, leaving room under the offset cap for growth.
WINDOW_TARGET = 8000
# Pages of open incidents read per run once the baseline pass is done.
RECONCILE_PAGES = 1


class Steps(Protocol):
    """What the passes hand their findings to, and ask before each request."""

    def parse(self, raw: Any) -> Incident | None: ...

    def observe(self, incident: Incident, entries: list[LogEntry] | None = None) -> None: ...

    def redeliver(self, incident: Incident) -> None: ...

    def gone(self, key: str) -> None: ...

    def deliver(self) -> None: ...

    def before_request(self) -> None: ...

    def warning(self, message: str, *args: Any) -> None: ...


class Passes:
    """Pages through PagerDuty for one collector; `state` is the collector's, read and moved on here."""

    def __init__(self, client: PagerDutyClient, steps: Steps) -> None:
        self.client = client
        self.steps = steps
        self.pages = 0

    # The change feed ---------------------------------------------------------------------------

    def read_feed(self, feed: Feed, live_since: float, now: float) -> None:
        """Apply every log entry up to `now` (whole seconds), window by window."""
        target = float(math.floor(now))
        while True:
            window = feed.window
            if window is None:
                if feed.horizon >= target:
                    return
                window = self._open_feed_window(feed, target, live_since)
                if window is None:
                    continue
            page = self.client.log_entries(window.since, window.until, window.offset)
            self.pages += 1
            self._apply(page.entries, feed, live_since)
            if window.offset <= 0:
                feed.window = None
                _close_feed_window(feed, window.since, window.until, window.total)
            else:
                window.offset -= PAGE_SIZE
            self.steps.deliver()

    def _open_feed_window(self, feed: Feed, target: float, live_since: float) -> FeedWindow | None:
        """Plan the next window and read its first page; None when that page was the whole window."""
        since = feed.horizon - OVERLAP
        width = feed.width if feed.width > 0 else MAX_WINDOW
        until = min(target, max(feed.horizon + 1, since + min(width, MAX_WINDOW)))
        page = self.client.log_entries(since, until, 0, with_total=True)
        self.pages += 1
        if page.more and page.total is None and until - since > 2 * OVERLAP:
            # Without a total the pages cannot be read oldest first: narrow until one page holds it.
            feed.width = max(1.0, (until - since) / 4)
            return None
        if page.total is not None and page.total > OFFSET_CAP - PAGE_SIZE and until - feed.horizon > 1:
            feed.width = _narrower(until - since, page.total)
            return None
        total = page.total if page.total is not None else len(page.entries)
        last = min(OFFSET_CAP - PAGE_SIZE, ((max(total, 1) - 1) // PAGE_SIZE) * PAGE_SIZE)
        if not page.more or last == 0:
            self._apply(page.entries, feed, live_since)
            _close_feed_window(feed, since, until, total)
            self.steps.deliver()
            return None
        feed.window = FeedWindow(since, until, total, last)
        return feed.window

    def _apply(self, raw_entries: list[Any], feed: Feed, live_since: float) -> None:
        """Apply one page (newest first, as PagerDuty lists it) in the order it happened."""
        live_second = math.floor(live_since)
        for raw in reversed(raw_entries):
            entry = parse_log_entry(raw)
            if entry is None or entry.id in feed.applied:
                continue
            feed.applied[entry.id] = entry.at
            if entry.at < live_second or entry.incident is None:
                continue
            incident = self.steps.parse(entry.incident)
            if incident is not None:
                self.steps.observe(incident, [entry] if entry.action else [])

    # Reconciliation ----------------------------------------------------------------------------

    def reconcile(self, state: CollectorState, now: float) -> None:
        """Read this run's share of the open incidents, and end the pass when it has read them all."""
        scan = state.reconciliation
        if scan is None:
            scan = state.reconciliation = Reconciliation(started=now)
        pages = 0
        while scan.verify is None:
            if state.baseline and pages >= RECONCILE_PAGES:
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
                raw = self.client.get_incident(key)
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

    def _reconcile_page(self, scan: Reconciliation, state: CollectorState, now: float) -> None:
        since: float | None = None
        until: float | None = None
        if scan.position is None:
            page = self.client.list_open(scan.skip)
        else:
            since = scan.position[0]
            until = min(since + MAX_WINDOW, now + 60)
            page = self.client.list_open(scan.skip, since, until)
        self.pages += 1
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
            # A whole page of one second already read: step over it within that second.
            scan.skip += PAGE_SIZE
            return
        scan.skip = 0
        if page.more:
            return
        if since is not None and until is not None and until < now:
            # The list was read in a window of at most six months; the rest starts at its end.
            scan.position = (until, -1)
            return
        scan.verify = sorted(
            key
            for key, record in state.incidents.items()
            if record.status != 'resolved' and record.checked_at < scan.started
        )

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
            self.steps.before_request()
            first = window.offset == 0
            page = self.client.list_created(window.since, window.until, window.offset, with_total=first)
            self.pages += 1
            if first and _over_cap(window, page.total, page.more, len(page.incidents)):
                return None, _narrower(window.until - window.since, page.total or 0)
            for raw in page.incidents:
                incident = self.steps.parse(raw)
                if incident is not None:
                    (self.steps.redeliver if deliver_only else self.steps.observe)(incident)
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


def _close_feed_window(feed: Feed, since: float, until: float, entries: int) -> None:
    feed.horizon = max(feed.horizon, until)
    if entries < WINDOW_TARGET // 4:
        feed.width = min(MAX_WINDOW, max(feed.width, (until - since)) * 2)
    keep_from = feed.horizon - OVERLAP
    feed.applied = {key: at for key, at in feed.applied.items() if at >= keep_from}


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


def _narrower(span: float, total: int) -> float:
    """A window width expected to hold `WINDOW_TARGET` records, given `total` in `span` seconds."""
    return max(1.0, span * WINDOW_TARGET / max(total, 1) * 0.9)
