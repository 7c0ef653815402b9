# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The instance options the collector acts on, as the config models validated them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import Override


@dataclass
class Settings:
    """The instance options the collector acts on, as the config models validated them."""

    backfill_days: int
    env: str | None = None
    overrides: Sequence[Override] = ()
    severity_mapping: dict[str, str] | None = None
    urgencies: Sequence[str] | None = None
    priorities: Sequence[str] | None = None
    service_ids: Sequence[str] = ()
    team_ids: Sequence[str] = ()
    unmapped_incidents: str = 'send'
    # Seconds between runs (`min_collection_interval`), which paces reconciliation.
    interval: float = 60.0
    # Days after its resolve during which an incident is read again (see `recheck.py`).
    recheck_resolved_days: int = 14
