# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty's side: the REST client, incidents as values, and the transitions their log entries prove."""
