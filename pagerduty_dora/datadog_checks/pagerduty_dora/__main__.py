# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`python -m datadog_checks.pagerduty_dora`: see `cli.py`."""

import sys

from datadog_checks.pagerduty_dora.cli.main import main

if __name__ == '__main__':
    sys.exit(main())
