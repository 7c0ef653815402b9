# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty: parsing incidents and log entries, and the simulated account the other tests use."""
