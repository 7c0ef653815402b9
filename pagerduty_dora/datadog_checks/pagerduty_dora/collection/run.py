# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One run as its parts read it, what the run reports, how it ends early, and what the instance turned on.

The collector makes a `Run` at the start of each run, once the state it collects with is settled,
and hands it to the parts: they read the state, PagerDuty's clock, the deadline, the failures held
at a rebuild and the run's mode from it, rather than calling back into the collector. The only
thing of it that moves is where the feed reading starts, by `read_back_to`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.datadog.readback import Readback
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

from .monitors import MonitorLookup
from .ports import Attribution, DoraQueue
from .state import CollectorState


class StopRun(Exception):
    """The run ends early but cleanly: its budget or deadline is spent; work resumes next run."""


@dataclass
class RunReport:
    """What one run did, for logs, the dry run and tests."""

    pages: int = 0
    skipped: int = 0
    sweep_complete: bool = False
    stopped: str = ''
    mappings: dict[str, tuple[Incident, MappingResult]] = field(default_factory=dict)


@dataclass(frozen=True)
class Mode:
    """How a collector runs: whether its state is stored, and whether each incident's mapping is reported.

    Under the Agent the state is stored and no mapping kept; the command line's dry run stores nothing and
    keeps every mapping, its demo keeps every mapping too.
    """

    persist: bool = True
    keep_mappings: bool = False


@dataclass(frozen=True)
class Features:
    """What an instance turned on beyond collecting, each None when off.

    `dora`: DORA failure delivery (`submit_dora_failures`); `attribution`: change-failure attribution
    (`attribute_change_failures`); `readback`: what this instance sent, read back from Datadog with
    `datadog_app_key` by the event search `record_query`, so that a state that starts empty is rebuilt
    and drift is found; `monitors`: the monitor mapping (off with `monitor_mapping: false`).
    """

    dora: DoraQueue | None = None
    attribution: Attribution | None = None
    readback: Readback | None = None
    record_query: str = ''
    monitors: MonitorLookup | None = None


# Collection alone: nothing delivered, attributed or read back, no monitor mapping.
NO_FEATURES = Features()


@dataclass(frozen=True)
class RunClock:
    """The clocks of one run: PagerDuty's (the `Date` of its latest answer), the Agent's, and the deadline.

    `wall` is the Agent's clock, for a server that dates none of its answers; `monotonic` and
    `deadline` bound the run.
    """

    pagerduty: PagerDutyClient
    wall: Callable[[], float]
    monotonic: Callable[[], float]
    deadline: float

    def now(self) -> float:
        """PagerDuty's time: the `Date` of its latest answer (the Agent's clock only before any answer)."""
        now = self.pagerduty.now
        return now if now is not None else self.fallback_now()

    def fallback_now(self) -> float:
        """The Agent's clock, for a server that dates none of its answers."""
        return float(math.floor(self.wall()))

    def check_deadline(self) -> None:
        if self.monotonic() > self.deadline:
            raise StopRun('the run reached its time limit')


@dataclass(eq=False)
class Run:
    """What the parts of one run read: its state, catalog, clocks, the failures held at a rebuild and its mode.

    `held` holds the digests of the failures Datadog held when the state was rebuilt, while history is
    compared with them (empty otherwise). `read_start`: log entries before it were read by earlier
    runs; only a page that repairs the feed's position (`Feed.read_until`) moves it back (`read_back_to`).
    """

    state: CollectorState
    catalog: Catalog
    report: RunReport
    clock: RunClock
    held: Mapping[str, str]
    mode: Mode
    read_start: float

    def read_back_to(self, at: float) -> None:
        """Log entries from `at` on are read again this run (a repaired feed position)."""
        self.read_start = min(self.read_start, at)

    def now(self) -> float:
        """PagerDuty's time (`RunClock.now`)."""
        return self.clock.now()

    def check_deadline(self) -> None:
        """Stop the run (`StopRun`) once its deadline has passed."""
        self.clock.check_deadline()
