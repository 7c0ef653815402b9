# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The change feed's position: its shape, the rules that move it, and its stored form in every layout released.

The feed (`feed.py`) reads the account's log window by window; `Feed` is where it stands between
runs. A window's end is fixed when it is planned (`Feed.plan`), and `Feed.read_until` moves only once a
window is read whole (`Feed.passed`), so a run that stops anywhere reads on from a known place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.pagerduty.client import MAX_WINDOW

# Feed windows are sized for this many entries, far below the offset cap.
WINDOW_ENTRIES = 5000
# At most this many ids of a window's last page are kept (the next page must repeat a few of them).
TAIL_LIMIT = 10
# Where a window goes on: its (until, offset, tail) for the next page.
Next = tuple[float, int, list[str]]


@dataclass
class FeedWindow:
    """A window of the account's log being paged: [since, until), from `offset` on, newest first.

    New entries (and entries PagerDuty indexes late) only push older ones to higher offsets, so
    paging from the newest down loses none; consecutive pages overlap by a few entries and `tail`
    holds the ids the next page must repeat, so an entry that disappears (its incident deleted) is
    noticed and the page read again. `end` is where the feed's `read_until` moves once it is read.
    """

    since: float
    until: float
    offset: int
    end: float
    tail: list[str] = field(default_factory=list)


@dataclass
class Feed:
    """The account-wide log, read as a change feed: every entry before `read_until` (PagerDuty time) was applied.

    `window` is the window being paged, should a run stop in the middle of one; `width` is the span
    of the next window, learned from how many entries the last ones held.
    """

    read_until: float
    window: FeedWindow | None = None
    width: float = 0.0
    # Runs in a row whose feed page could not be read (see `FeedPass._request`).
    failures: int = 0

    def plan(self, since: float, target: float | None) -> FeedWindow:
        """The next window from `since`: as wide as the feed's width allows, never past `target`."""
        width = min(self.width if self.width > 0 else MAX_WINDOW, MAX_WINDOW)
        until = since + max(1.0, width)
        if target is not None:
            until = max(since + 1, min(until, target))
        return FeedWindow(since, until, 0, until)

    def passed(self, window: FeedWindow, reading: FeedWindow, following: Next | None, held: bool) -> FeedWindow | None:
        """Move on past a page of `window` read at `reading`; where reading goes on while entries are held."""
        if following is None:
            self.window = None
            self.read_until = max(self.read_until, window.end)
            if reading.offset < WINDOW_ENTRIES // 4:
                self.width = min(MAX_WINDOW, max(self.width, window.until - window.since) * 2)
            return None
        if held:
            # The stored position stays at the first page holding entries: a stopped run reads them again.
            return FeedWindow(window.since, following[0], following[1], window.end, following[2])
        window.until, window.offset, window.tail = following
        return None


def _not_empty(window: FeedWindow) -> None:
    if window.since >= window.until:
        raise codec.Invalid('empty feed window')


FEED: codec.Struct[Feed] = codec.Struct(
    Feed,
    read_until=codec.TIME,
    window=codec.Optional(
        codec.Struct(
            FeedWindow,
            _not_empty,
            since=codec.TIME,
            until=codec.TIME,
            offset=codec.COUNT,
            end=codec.TIME,
            tail=codec.ListOf(codec.TEXT, TAIL_LIMIT),
        )
    ),
    width=codec.AMOUNT,
    failures=codec.COUNT,
)


def from_layout_2(raw: Any) -> list[Any] | None:
    """The feed of layout 2 (read until, window, width, applied ids) in today's form.

    Layout 2 read a window from its oldest page up: its window is read again from `read_until`, in
    today's order (entries are matched by id, so reading one twice is harmless).
    """
    if raw is None:
        return None
    read_until, _window, width, _applied = raw
    return [read_until, None, width, 0]
