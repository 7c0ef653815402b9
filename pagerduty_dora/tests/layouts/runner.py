# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Run the check of whatever release is first on `PYTHONPATH` once, as an Agent that just started would.

    PYTHONPATH=<release checkout>/pagerduty_dora python runner.py JOB RESULT

JOB is a JSON file: `now` (the account's clock, which `time.time` returns for the whole run),
`instance`, and `cache`, the Agent's persistent cache (full key -> value). RESULT receives the
persistent cache after the run, the events the check submitted, the cache id and key prefix it
used, the run's error if any, and where the package it ran was loaded from.

It imports nothing of this repository but the release's package, so that the code of another
release runs here whole; one process per run is also an Agent restart before every run.
"""

import json
import sys
import time
from typing import Any


def main(job_path: str, result_path: str) -> None:
    with open(job_path, encoding='utf-8') as f:
        job = json.load(f)
    now = float(job['now'])
    # Patched before anything else is imported, so that no module keeps the machine's clock.
    time.time = lambda: now
    time.sleep = lambda seconds: None

    import datadog_checks.pagerduty_dora as package
    from datadog_checks.base import AgentCheck
    from datadog_checks.base.stubs import aggregator, datadog_agent

    (check_class,) = {
        value for value in vars(package).values() if isinstance(value, type) and issubclass(value, AgentCheck)
    }
    datadog_agent._cache.update(job['cache'])
    # Every release's check runs on the clocks it holds as `clock` and `monotonic`.
    check: Any = check_class('pagerduty_dora', {}, [job['instance']])
    check.clock = lambda: now
    check.monotonic = lambda: now
    error = check.run()
    cache_id = check.persistent_cache_id()
    prefix = '{}:{}_'.format(':'.join(check.check_id.split(':')[:-1]), cache_id)
    result = {
        'package': package.__file__,
        'cache_id': cache_id,
        'prefix': prefix,
        'cache': dict(datadog_agent._cache),
        'events': list(aggregator.events),
        'error': json.loads(error)[0]['message'] if error else None,
    }
    with open(result_path, 'w', encoding='utf-8') as f:
        json.dump(result, f)


if __name__ == '__main__':
    main(*sys.argv[1:3])
