# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution: its rules, decisions, clients, stored state and texts."""
