# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What goes to Datadog: DORA failures, Agent events, the delivery queue and reading back."""
