# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the API client adds to each request: its bookkeeping, without HTTP.

Run from the integration folder with the test environment's Python:

    python -m tests.benchmarks.client_overhead

The check's own `ApiClient`s (built by the check, with its health hooks counting every request)
make requests through a stand-in for the HTTP wrapper that answers at once, with the rate limit
headers each API sends: what is timed is only what the client does around a request (pacing,
counting, reading the headers, encoding a DORA failure, deciding what the answer means). It prints
microseconds of CPU per request, the best of a few rounds.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Iterator

DD_API_KEY = 'bench0123456789abcdef0123456789ab'
HEADERS = {
    'pagerduty': {'ratelimit-limit': '960', 'ratelimit-remaining': '900', 'ratelimit-reset': '30'},
    'datadog': {
        'X-RateLimit-Limit': '3000',
        'X-RateLimit-Remaining': '2900',
        'X-RateLimit-Reset': '30',
        'X-RateLimit-Period': '60',
    },
}
FAILURE = {
    'data': {
        'attributes': {
            'id': 'pagerduty-incident-Q1AB2CD3EF',
            'name': 'Checkout: elevated error rate on the payments API',
            'started_at': 1793620800000000000,
            'services': ['checkout'],
            'team': 'payments',
            'env': 'prod',
            'severity': 'P2',
            'custom_tags': ['pagerduty_incident_number:1234', 'pagerduty_service:checkout_api', 'urgency:high'],
        }
    }
}


class Answer:
    """A streamed answer as the HTTP wrapper returns it, with headers as `requests` holds them."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.encoding = 'utf-8'
        self._body = body

    def iter_content(self, size: int) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        return None


class Wrapper:
    """Answers every request at once: 202 to a post, a small JSON body to anything else."""

    def __init__(self, headers: dict) -> None:
        from requests.structures import CaseInsensitiveDict

        self.headers = CaseInsensitiveDict(dict(headers, **{'Content-Type': 'application/json'}))

    def get(self, url: str, **options: Any) -> Answer:
        return Answer(200, self.headers, b'{"incidents":[],"more":false}')

    def post(self, url: str, **options: Any) -> Answer:
        return Answer(202, self.headers, b'')


def clients() -> tuple[Any, Any]:
    """The check's two clients, each in front of a `Wrapper` with its API's headers."""
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

    instance = {
        'pagerduty_api_url': 'https://api.pagerduty.com',
        'api_token': 'bench-token',
        'datadog_api_key': DD_API_KEY,
        'env': 'prod',
        # A cap no round reaches, so that releases with a default cap compare with this one.
        'max_requests_per_run': 10**9,
    }
    check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
    for initialization in check.check_initializations:
        initialization()
    check.health.start_run()
    for api in (check.pagerduty_api, check.datadog_api):
        api._http = Wrapper(HEADERS[api.name])
        api.start_run(time.monotonic() + 10**6)
    return check.pagerduty_api, check.datadog_api


def per_request(make: Any, requests: int, rounds: int) -> float:
    """The fewest microseconds of CPU a request took, over `rounds` rounds of `requests`."""
    best = float('inf')
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(requests):
            make()
        best = min(best, (time.process_time() - began) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--requests', type=int, default=20_000)
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    pagerduty, datadog = clients()
    params = [('limit', '100'), ('offset', '0')]
    timed = (
        ('GET, PagerDuty headers', lambda: pagerduty.get('/incidents', params, endpoint='incidents')),
        ('POST of a DORA failure', lambda: datadog.post('/api/v2/dora/failure', FAILURE, 'dora', expect_json=False)),
    )
    for label, make in timed:
        print('{:<26} {:>6.1f} us of CPU a request'.format(label, per_request(make, args.requests, args.rounds)))


if __name__ == '__main__':
    main()
