# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The repository itself: package map, documents, wheel, Dockerfile, a fresh clone, the fast lane."""
