# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The check as the Agent runs and an operator meets it: configuration, service checks, secrets, assets."""
