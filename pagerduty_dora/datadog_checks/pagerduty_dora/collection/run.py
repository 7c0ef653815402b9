# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the looks of one run share, what the run reports, and how it ends early."""

from __future__ import annotations

from dataclasses import dataclass, field

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

from .monitors import MonitorLookup


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


@dataclass
class Run:
    """What the looks of one run share: its catalog and report, and where its feed reading starts."""

    catalog: Catalog
    report: RunReport
    # Entries before it were read by earlier runs.
    read_start: float
    log_reads: int = 0
    monitors: MonitorLookup | None = None  # decides monitor mappings; None with `monitor_mapping: false`
