# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The common layer: the HTTP client, JSON, pacing and the messages of a refused key."""
