# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Where the tests find the repository's files, from whichever folder of `tests/` a test module sits in."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The integration's folder (`pagerduty_dora/`), as ddev sees it.
INTEGRATION = TESTS.parent
REPOSITORY = INTEGRATION.parent
PACKAGE = INTEGRATION / 'datadog_checks' / 'pagerduty_dora'
DOCS = INTEGRATION / 'docs'
FIXTURES = TESTS / 'fixtures'
# Samples of every released stored layout (see tests/layouts/world.py).
LAYOUT_SAMPLES = TESTS / 'layouts'
