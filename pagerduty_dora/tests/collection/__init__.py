# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collection engine: passes, stories, the stored state, upgrades, moves and delivery."""
