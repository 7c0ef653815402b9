# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The recheck: resolved incidents read again twice a day, for `recheck_resolved_days` after their resolve.

A post-incident review often changes an incident after its resolve (a priority re-rated, a new
title), and PagerDuty logs no such change: the feed never shows it, and reconciliation lists open
incidents only. So once every `RECHECK_PERIOD` of PagerDuty's time a pass lists the resolved
incidents, latest resolve first and whatever their creation time, down to the first one resolved
more than `recheck_resolved_days` before the pass began, `RECHECK_PAGES_PER_RUN` pages a run. It
resumes by position, the resolve time it reached: the offset only says where to look for it. Pages
overlap by `RECHECK_OVERLAP` incidents and what was resolved after the position is passed over, so a
resolve made meanwhile (an incident added at the top of the list) only makes one read twice, and
fewer than `RECHECK_OVERLAP` reopens (incidents leaving the list) make none missed.

An incident the collector still holds (resolved within the last 3 days) is looked at as any other:
a change gets its `*_changed` event, found within Datadog's 18 hours for events and so dated when it
happened, and its DORA failure is updated. One it has forgotten is sent again as its DORA failure
only, and only if it was updated after its resolve and since the previous pass began: what Datadog
last accepted for it was forgotten with its record, and no event can say what it changed from.
Cost: two requests a day per 100 incidents resolved within `recheck_resolved_days`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.pagerduty.client import OFFSET_CAP, PAGE_SIZE, PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

from .pages import DAY, NEXT_REQUEST, Look, Page, PassStep
from .record import IncidentRecord

# How often the resolved incidents are read again: within the age Datadog accepts for an event.
RECHECK_PERIOD = DAY / 2
# List pages a run reads of a pass under way: a pass over many resolved incidents spreads over runs.
RECHECK_PAGES_PER_RUN = 2
# Incidents two consecutive pages of the pass share.
RECHECK_OVERLAP = 10


@dataclass
class Recheck:
    """Where the pass over recently resolved incidents stands.

    `last` is PagerDuty's time when the previous pass began (or when collection went live): an
    incident updated since may have changed. `started` is when the pass under way began (None between
    passes); `reached` is the resolve time of the last incident it read (None before its first page),
    and `offset` where in the list of resolved incidents its next page starts.
    """

    last: float
    started: float | None = None
    reached: float | None = None
    offset: int = 0


def _within_cap(recheck: Recheck) -> None:
    if recheck.offset + PAGE_SIZE > OFFSET_CAP:
        raise codec.Invalid('offset past the one PagerDuty accepts')


RECHECK: codec.Struct[Recheck] = codec.Struct(
    Recheck,
    _within_cap,
    last=codec.TIME,
    started=codec.Optional(codec.TIME),
    reached=codec.Optional(codec.TIME),
    offset=codec.COUNT,
)


class ResolvedIncidents(Protocol):
    """What the recheck reads and moves: its pass, and the records that say which incidents are still held."""

    recheck: Recheck | None
    incidents: dict[str, IncidentRecord]


class RecheckPass:
    """Reads the recently resolved incidents again, a share each run, once every `RECHECK_PERIOD`."""

    def __init__(self, client: PagerDutyClient) -> None:
        self.client = client
        self.pages = 0

    def read(self, state: ResolvedIncidents, now: float, days: int) -> Iterator[PassStep]:
        """This run's pages of the pass, when one is due or under way (none with `days` 0); one `Page` per request."""
        scan = state.recheck
        if days <= 0:
            return
        if scan is None:
            # The first pass comes a period after going live: until then the records show every change.
            state.recheck = Recheck(last=now)
            return
        if scan.started is None:
            if now < scan.last + RECHECK_PERIOD:
                return
            scan.started, scan.reached, scan.offset = now, None, 0
        oldest = scan.started - days * DAY
        for _ in range(RECHECK_PAGES_PER_RUN):
            yield NEXT_REQUEST
            listed = self.client.list_resolved(scan.offset)
            self.pages += 1
            page = Page(malformed=list(listed.malformed))
            reached, ended = self._take(page, listed.incidents, state, scan, oldest)
            ended = ended or not listed.more or not listed.listed
            if not ended and scan.offset + PAGE_SIZE + _step() > OFFSET_CAP:
                ended = True
                page.warn(
                    'More than %d PagerDuty incidents were resolved within `recheck_resolved_days`; the ones '
                    'resolved earliest are not read again',
                    OFFSET_CAP,
                )
            # The position moves once the page is taken: a run stopped while taking it reads it again.
            yield page
            if ended:
                scan.last, scan.started, scan.reached, scan.offset = scan.started, None, None, 0
                return
            scan.reached, scan.offset = reached, scan.offset + _step()

    @staticmethod
    def _take(
        page: Page, listed: Iterable[Incident], state: ResolvedIncidents, scan: Recheck, oldest: float
    ) -> tuple[float | None, bool]:
        """Hand the incidents of one list page to look at to `page`; the resolve time reached, whether the pass ends."""
        reached = scan.reached
        for incident in listed:
            resolved_at = incident.resolved_at
            if resolved_at is not None:
                if resolved_at < oldest:
                    return reached, True
                if scan.reached is not None and resolved_at > scan.reached:
                    # Read already: it was resolved after the position the pass reached.
                    continue
                reached = resolved_at if reached is None else min(reached, resolved_at)
            if incident.id in state.incidents or _changed(incident, scan.last):
                page.looks.append(Look(incident))
        return reached, False


def _step() -> int:
    """How far the next page of the pass starts after the last: a page less the incidents two pages share."""
    return PAGE_SIZE - RECHECK_OVERLAP


def _changed(incident: Incident, since: float) -> bool:
    """Whether an incident the collector no longer holds was updated after its resolve and since `since`."""
    updated = incident.updated_at
    if updated is None:
        # Nothing tells it unchanged: sending its failure again as it is costs one post.
        return True
    return updated >= since and (incident.resolved_at is None or updated > incident.resolved_at)
