# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Helpers every room uses: untrusted text, timestamps, API URLs, the HTTP choke point, cache documents."""
