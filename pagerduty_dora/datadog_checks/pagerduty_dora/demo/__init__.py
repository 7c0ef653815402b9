# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The world of `--demo`: a small simulated PagerDuty account and Datadog API, served on 127.0.0.1."""
