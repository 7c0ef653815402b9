# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Loopback fakes of PagerDuty and the Datadog API for the tests: the demo's world with every edge
the check must survive, request validators, and injected faults."""
