# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The configuration checked against what it names: misspelt option names, unknown PagerDuty services and teams."""
