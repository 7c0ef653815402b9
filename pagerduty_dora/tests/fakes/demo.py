# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The demo's world on the test fakes: the same account, catalog, deployments and changes, served by
fakes that record every request and model every edge of the real APIs."""

from __future__ import annotations

from typing import Any

from datadog_checks.pagerduty_dora.demo import world
from datadog_checks.pagerduty_dora.demo.server import Route

from .catalog_api import CatalogState
from .deployments_api import DeploymentsState
from .dora_api import DoraState
from .pagerduty import PagerDutyAccount, PagerDutySimulator
from .server import FakeServer

__all__ = ['EXPECTED_RULES', 'DemoWorld']

EXPECTED_RULES = world.EXPECTED_RULES


class DemoWorld(world.DemoWorld):
    account_class = PagerDutyAccount
    catalog_class = CatalogState
    dora_class = DoraState
    deployments_class = DeploymentsState

    def serve_pagerduty(self, account: Any) -> PagerDutySimulator:
        return PagerDutySimulator(account)

    def serve_datadog(self, routes: list[Route]) -> FakeServer:
        return FakeServer(routes)
