# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a pass hands the collector after each request: the incidents it read, and what it could not use.

The passes (`feed.py`, `reconcile.py`, `sweep.py`) are generators. Before each request a pass yields
`NEXT_REQUEST`, where the collector checks its deadline; after it, the pass yields one `Page`, which
the collector takes and delivers. A pass never calls the collector: it owns its cursor and the rule
that moves it, and moves it when the collector asks for the next step, after taking the page, so a
run stopped while taking a page reads that page again, and one stopped at its deadline does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.pagerduty.client import LogEntry
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, MalformedIncident, parse_incident

DAY = 86400.0
# How far back each run's first feed window reaches before the feed's position (`Feed.read_until`),
# for entries PagerDuty indexes late (it indexes most within seconds to a minute).
OVERLAP = 180.0
# How far back the feed's second, slower look reaches (see `feed.py`), and so how long an incident's
# record keeps its steps apart from its base: an entry indexed later than that finds them folded.
LATE_REACH = 21 * 60.0


class NextRequest:
    """What a pass yields just before it makes a request: the collector may stop the run there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return 'NEXT_REQUEST'


NEXT_REQUEST = NextRequest()


@dataclass
class Look:
    """One incident as a page shows it, with the log entries of it the page held (None: no log read)."""

    incident: Incident
    entries: list[LogEntry] | None = None


@dataclass
class Page:
    """What one request of a pass yielded.

    `looks` are incidents to bring up to date, oldest first; `gone` are ids PagerDuty no longer has;
    `malformed` are raw incidents that could not be parsed, with why. `skipped` counts log entries
    that could not be used, by reason, and `warnings` are (message, args) for the Agent's status page.
    `deliver` says the collector delivers after this page (a pass batches some reads into one POST).
    """

    looks: list[Look] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    malformed: list[tuple[Any, MalformedIncident]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[tuple[Any, ...]] = field(default_factory=list)
    repaired: bool = False
    # Where the entries of this page and the next ones start, when that is before this run's reading.
    reads_back_to: float | None = None
    deliver: bool = True

    def parsed(self, raw: Any) -> Incident | None:
        """`raw` as an incident, or None with the reason kept in `malformed`."""
        try:
            return parse_incident(raw)
        except MalformedIncident as e:
            self.malformed.append((raw, e))
            return None

    def warn(self, message: str, *args: Any) -> None:
        self.warnings.append((message, *args))


# One step of a pass: about to make a request, or what a request gave.
PassStep = Page | NextRequest


def narrower(span: float, total: int, target: int) -> float:
    """A window width expected to hold `target` records, given `total` in `span` seconds."""
    return max(1.0, min(span / 2, span * target / max(total, 1) * 0.9))
