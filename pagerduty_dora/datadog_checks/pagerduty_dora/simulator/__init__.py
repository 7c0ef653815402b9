# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Loopback simulations of PagerDuty and of the Datadog API, shared by `--demo` and the test suite."""
