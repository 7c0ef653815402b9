# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collection engine against a model of PagerDuty: random histories, the limits they found, old accounts."""
