# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The passes of one run over PagerDuty's lists, made afresh each run (their cursors live in the state)."""

from __future__ import annotations

from typing import Callable

from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient

from .feed import FeedPass
from .recheck import RecheckPass
from .reconcile import ReconcilePass
from .sweep import SweepPass


class Passes:
    """The change feed, reconciliation, the recheck of resolved incidents and the creation-time sweep."""

    def __init__(self, client: PagerDutyClient, fallback_now: Callable[[], float]) -> None:
        self.feed = FeedPass(client, fallback_now)
        self.reconcile = ReconcilePass(client, fallback_now)
        self.recheck = RecheckPass(client)
        self.sweep = SweepPass(client)

    def pages(self) -> int:
        """PagerDuty requests the passes of this run made."""
        return self.feed.pages + self.reconcile.pages + self.recheck.pages + self.sweep.pages
