# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Reconciliation: the open incidents in creation order, a share each run, resumed at (creation time, number).

It finds what the log does not show (a priority change, a service move) and anything the feed missed.
An open incident recorded but not met in a whole pass is read by id: resolved, deleted, merged or moved
out of scope. The first pass (the baseline of what is open when collection goes live) is read whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterator, Protocol

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.pagerduty.client import MAX_WINDOW, OFFSET_CAP, PAGE_SIZE, PagerDutyClient

from .pages import NEXT_REQUEST, Look, Page, PassStep
from .record import IncidentRecord, Records

# A pass over the open incidents completes within this many seconds, whatever their number.
RECONCILE_PERIOD = 600.0
# PagerDuty numbers an account's incidents from 1: a position of (t, 0) lies before every incident
# created in second t, and after every one created before it.
BEFORE_FIRST = 0


@dataclass
class Reconciliation:
    """A pass over the open incidents, in creation order, that may span runs.

    `position` is the (creation time, incident number) of the last incident read; the next page
    starts at that creation time and skips what is not past it, so incidents that resolve meanwhile
    cannot shift the pass. At the end of a six-month window it is (window end, `BEFORE_FIRST`).
    `skip` counts incidents of that very second already read, for a second holding more than a
    page. `verify` lists open records the pass did not meet: each is read by id. `started` is
    PagerDuty's time when the pass began (None until its first answer). `met` holds the open
    records a look confirmed since (whatever pass looked), so that a record itself does not change
    when it is only confirmed.
    """

    started: float | None
    position: tuple[float, int] | None = None
    skip: int = 0
    verify: list[str] | None = None
    met: set[str] = field(default_factory=set)


RECONCILIATION: codec.Struct[Reconciliation] = codec.Struct(
    Reconciliation,
    started=codec.Optional(codec.TIME),
    position=codec.Optional(codec.Pair(codec.TIME, codec.COUNT)),
    skip=codec.COUNT,
    verify=codec.Optional(codec.ListOf(codec.TEXT)),
    met=codec.SetOf(),
)


class OpenIncidents(Protocol):
    """What reconciliation reads and moves: its pass, the records it checks, whether the baseline is made, its pace."""

    reconciliation: Reconciliation | None
    incidents: dict[str, IncidentRecord]
    baseline: bool
    reconcile_credit: float


def from_layout_3(raw: Any) -> Any:
    """The pass of layout 3 in today's form: it marked a pass not yet started, and a window's end, with -1."""
    if raw is None:
        return None
    started, position, skip, verify = raw
    if position is not None and position[1] == -1:
        position = [position[0], BEFORE_FIRST]
    return [None if started == -1 else started, position, skip, verify]


def from_layout_4(raw: Any, checked: dict[str, Any]) -> Any:
    """The pass of layout 4 in today's form: the records it met are those confirmed (`checked`) since it began."""
    if raw is None:
        return None
    started = raw[0]
    met = [key for key, at in checked.items() if isinstance(at, (int, float)) and started is not None and at >= started]
    return list(raw) + [sorted(met)]


class ReconcilePass:
    """Pages through the open incidents and, at the end of a pass, reads by id the open records it did not meet."""

    def __init__(self, client: PagerDutyClient, fallback_now: Callable[[], float]) -> None:
        self.client = client
        self.fallback_now = fallback_now
        self.pages = 0

    def read(self, state: OpenIncidents, now: float | None, pages_per_run: int) -> Iterator[PassStep]:
        """This run's share (`pages_per_run`) of the open incidents, one `Page` per request.

        The pass ends (and the baseline is set) once every open incident was read and every open
        record it did not meet was read by id; until then the next run resumes where this one stopped.
        """
        scan = state.reconciliation
        if scan is None:
            scan = state.reconciliation = Reconciliation(started=now)
        pages = 0
        while scan.verify is None:
            if state.baseline and pages >= pages_per_run:
                return
            yield NEXT_REQUEST
            page, move = self._list_page(scan, now)
            # The position moves once the page is taken: a run stopped while taking it reads it again.
            yield page
            move(state)
            pages += 1
        while scan.verify:
            key = scan.verify[0]
            record = state.incidents.get(key)
            if record is not None and record.status != 'resolved' and _unmet(key, scan):
                yield NEXT_REQUEST
                yield self._verify(key)
            scan.verify.pop(0)
        state.baseline = True
        state.reconciliation = None
        # The end of the pass: what it read goes out.
        yield Page()

    def _verify(self, key: str) -> Page:
        """A recorded open incident the pass did not meet, read by id."""
        page = Page(deliver=False)
        try:
            raw = self.client.get_incident(key)
        except ApiError as e:
            if dispose(e) is not Disposition.UNREADABLE:
                raise
            # One answer that cannot be read must not end the verification of those after it.
            page.skipped.append(('unreadable_incident', 1))
            return page
        if raw is None:
            page.gone.append(key)
        else:
            incident = page.parsed(raw)
            if incident is not None:
                page.looks.append(Look(incident))
        return page

    def _list_page(self, scan: Reconciliation, now: float | None) -> tuple[Page, Callable[[OpenIncidents], None]]:
        """One page of open incidents, and how the pass's position moves once it is taken."""
        since: float | None = None
        until: float | None = None
        if scan.position is None:
            listed = self.client.list_open(scan.skip)
        else:
            since = scan.position[0]
            until = min(since + MAX_WINDOW, _present(now, scan) + 60)
            listed = self.client.list_open(scan.skip, since, until)
        self.pages += 1
        if scan.started is None:
            # The first pass starts with PagerDuty's first answer: records it meets are dated by that clock.
            scan.started = self.client.now if self.client.now is not None else self.fallback_now()
        page = Page(malformed=list(listed.malformed))
        position = scan.position
        for incident in listed.incidents:
            key = (incident.created_at, incident.number)
            if scan.position is not None and key <= scan.position:
                continue
            page.looks.append(Look(incident))
            position = key if position is None else max(position, key)
        fresh = len(page.looks)
        if listed.more and not fresh and not _can_step(scan, listed.listed):
            page.warn(
                'The list of open PagerDuty incidents did not end within %d incidents of one position; '
                'this reconciliation pass ends there and the next one starts over',
                OFFSET_CAP,
            )

        def move(state: OpenIncidents) -> None:
            scan.position = position
            _move(scan, state, now, since, until, listed.more, fresh, listed.listed)

        return page, move


def _move(
    scan: Reconciliation,
    state: OpenIncidents,
    now: float | None,
    since: float | None,
    until: float | None,
    more: bool,
    fresh: int,
    size: int,
) -> None:
    """Move the pass's position on after one list page: the next offset, the next window, or the end."""
    if more and not fresh:
        # A whole page of one second already read: step over it within that second, but never
        # past the offset PagerDuty accepts (a server that always says `more` ends the pass here),
        # and not at all for a page shorter than asked for, which cannot have more after it.
        if _can_step(scan, size):
            scan.skip += PAGE_SIZE
            return
        scan.skip = 0
        scan.verify = unmet(state, scan)
        return
    scan.skip = 0
    if more:
        return
    if since is not None and until is not None and until < _present(now, scan):
        # The list was read in a window of at most six months; the rest starts at its end.
        scan.position = (until, BEFORE_FIRST)
        return
    scan.verify = unmet(state, scan)


def _present(now: float | None, scan: Reconciliation) -> float:
    """PagerDuty's time now, or when the pass began for a server that dates no answer."""
    return now if now is not None else scan.started or 0.0


def _can_step(scan: Reconciliation, size: int) -> bool:
    """Whether a full page of one second may be stepped over: never past the offset PagerDuty accepts."""
    return scan.skip + 2 * PAGE_SIZE <= OFFSET_CAP and size >= PAGE_SIZE


def unmet(state: OpenIncidents, scan: Reconciliation) -> list[str]:
    """Open records the pass did not meet: each is read by id."""
    return sorted(key for key in open_keys(state) if _unmet(key, scan))


def open_keys(state: OpenIncidents) -> Collection[str]:
    """The keys of open records: kept by `Records`, counted from any other map."""
    incidents = state.incidents
    if isinstance(incidents, Records):
        return incidents.open_keys()
    return [key for key, record in incidents.items() if record.status != 'resolved']


def meet(state: OpenIncidents, key: str, record: IncidentRecord) -> None:
    """An incident was looked at: an open record is met by the pass under way."""
    scan = state.reconciliation
    if scan is not None and record.status != 'resolved':
        scan.met.add(key)


def _unmet(key: str, scan: Reconciliation) -> bool:
    return scan.started is None or key not in scan.met


def pages_per_run(state: OpenIncidents, interval: float) -> int:
    """Pages of open incidents this run, so that a whole pass takes about `RECONCILE_PERIOD` seconds.

    The pace is `open / 100 × interval / RECONCILE_PERIOD` pages a run, at least one: what is
    left of a page is carried to the next run, so on average an idle run costs the feed's request
    plus that share (at the default interval, 1 + open / 1000).
    """
    open_records = len(open_keys(state))
    rate = open_records / 100 * interval / RECONCILE_PERIOD
    due = state.reconcile_credit + rate
    pages = max(1, math.floor(due))
    state.reconcile_credit = min(max(due - pages, 0.0), 1.0)
    return pages
