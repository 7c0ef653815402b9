# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The creation-time sweep: `backfill_days` of history before going live, and the re-sending of history.

`GET /incidents` filters on creation time, so history is read in creation-time windows, each sized
from the `total` PagerDuty reports to stay under its offset cap and widened again while windows come
back small. The cursor (`state.swept_until`) only moves forward, once a window is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Iterator, Protocol

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.pagerduty.client import MAX_WINDOW, OFFSET_CAP, PAGE_SIZE, PagerDutyClient

from .pages import DAY, NEXT_REQUEST, OVERLAP, Look, Page, PassStep, narrower

# Windows are sized for this many records, leaving room under the offset cap for growth.
WINDOW_TARGET = 8000


@dataclass
class CreationWindow:
    """A creation-time window being paged through: [since, until) from `offset` on."""

    since: float
    until: float
    offset: int = 0


def _not_empty(window: CreationWindow) -> None:
    if window.since >= window.until:
        raise codec.Invalid('empty window')


CREATION_WINDOW: codec.Domain[CreationWindow] = codec.Struct(
    CreationWindow, _not_empty, since=codec.TIME, until=codec.TIME, offset=codec.COUNT
)


class SweepCursor(Protocol):
    """Where the sweep stands: history created before `swept_until` is read, `sweep_window` is being paged,
    `sweep_width` is the next one's."""

    swept_until: float | None
    sweep_window: CreationWindow | None
    sweep_width: float
    resend: CreationWindow | None
    resend_end: float | None


def window_from_layout_1(raw: list | None) -> list | None:
    """A window of layout 1 (since, until, offset, total) in today's form."""
    return None if raw is None else raw[:3]


class SweepPass:
    """Pages through incidents by creation time; each `Page` holds the incidents of one request."""

    def __init__(self, client: PagerDutyClient) -> None:
        self.client = client
        self.pages = 0

    def history(self, state: SweepCursor, target: float) -> Iterator[PassStep]:
        """Every incident created before `target`, from `state.swept_until` on."""
        assert state.swept_until is not None
        while True:
            window = state.sweep_window or plan_window(state.swept_until, target, state.sweep_width)
            if window is None:
                return
            state.sweep_window = window
            done, width = yield from self._window(window)
            if width is not None:
                state.sweep_window, state.sweep_width = None, width
                continue
            if done is not None:
                state.swept_until = max(state.swept_until, done)
                state.sweep_window = None
                if window.offset < WINDOW_TARGET // 4:
                    state.sweep_width = min(MAX_WINDOW, max(state.sweep_width, window.until - window.since) * 2)

    def resend(self, state: SweepCursor) -> Iterator[PassStep]:
        """The history that runs with DORA delivery off kept back, window by window."""
        while state.resend is not None and state.resend_end is not None:
            window = state.resend
            done, width = yield from self._window(window)
            if width is not None:
                state.resend = CreationWindow(window.since, window.since + width)
            elif done is not None and done < state.resend_end:
                state.resend = CreationWindow(done, min(state.resend_end, done + MAX_WINDOW))
            else:
                state.resend = state.resend_end = None

    def _window(self, window: CreationWindow) -> Generator[PassStep, None, tuple[float | None, float | None]]:
        """Page through one creation-time window from `window.offset` on.

        Returns (creation time up to which it is done, None) when the window is finished, or
        (None, narrower width) when its first page shows it holds more than the offset cap.
        """
        while True:
            yield NEXT_REQUEST
            first = window.offset == 0
            listed = self.client.list_created(window.since, window.until, window.offset, with_total=first)
            self.pages += 1
            if first and _over_cap(window, listed.total, listed.more, listed.listed):
                return None, narrower(window.until - window.since, listed.total or 0, WINDOW_TARGET)
            page = Page(looks=[Look(incident) for incident in listed.incidents], malformed=list(listed.malformed))
            # An empty page that claims more is not believed: the window ends there.
            more = listed.more and listed.listed > 0
            last = None
            if more and window.offset + 2 * PAGE_SIZE > OFFSET_CAP:
                last = max((look.incident.created_at for look in page.looks), default=None)
                if last is None or last <= window.since:
                    more, last = False, None
                    page.warn(
                        'More than %d incidents were created within one second at %s; the rest of that second '
                        'is skipped',
                        OFFSET_CAP,
                        format_time(window.since),
                    )
            yield page
            if not more:
                return window.until, None
            if last is None:
                window.offset += PAGE_SIZE
            else:
                # The window grew past the offset cap while it was paged: go on from the last
                # creation time seen rather than leave the rest behind.
                window.since, window.offset = last, 0


def plan_window(swept_until: float, target: float, width: float) -> CreationWindow | None:
    """The next creation-time window from `swept_until`, or None once `target` is reached."""
    if swept_until >= target:
        return None
    width = min(width if width > 0 else MAX_WINDOW, MAX_WINDOW)
    # Near the present, reach back for late-indexed incidents, but never so far that the window
    # ends before `swept_until`: the cursor only moves forward.
    since = swept_until - min(OVERLAP, width / 2) if swept_until > target - DAY else swept_until
    until = min(target, max(since + width, swept_until + 1))
    return CreationWindow(since=since, until=max(until, since + 1))


def _over_cap(window: CreationWindow, total: int | None, more: bool, size: int) -> bool:
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
