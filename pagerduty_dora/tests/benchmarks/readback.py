# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Readback benchmark: reading back DORA failures and events, compared with bare HTTP of the same requests.

Run from the integration folder with the test environment's Python:

    python -m tests.benchmarks.readback --failures 100000 --open 5000

The fakes hold `--failures` DORA failures over `--days` days (with `--storm` of them started in one
second, so that the walk meets a tie) and the events of `--open` open incidents (each a trigger, a
share of them an acknowledgement too), ingested at their own time as the Agent would have sent them.
The readback walks both. The floor replays the very requests the readback made, with one HTTP
session, decoding each JSON answer and nothing more: what the readback costs beyond it is its own.

The fakes run in a process of their own, so their CPU and memory are not counted. The floor and
the readback each run in a fresh process (with the same imports) and report CPU seconds, wall
seconds and peak RSS, streaming what it reads; then the readback keeps what it reads in a dict by
id, as a rebuild would, and reports peak RSS and the peak of Python allocations (tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import time
import tracemalloc
from typing import Any

DAY = 86400.0
HOUR = 3600.0
DD_API_KEY = 'bench0123456789abcdef0123456789ab'
DD_APP_KEY = 'benchapp0123456789abcdef0123456789abcdef'
EVENTS_QUERY = 'source:pagerduty_dora'


def serve_fakes(args: argparse.Namespace, end: float, connection: Any) -> None:
    """Fill the DORA and Events fakes and serve them until told to stop."""
    from ..fakes.dora_api import DoraState
    from ..fakes.events_api import EventsState
    from ..fakes.server import FakeServer, Reply

    rng = random.Random(1)
    start = end - args.days * DAY
    storm = start + args.days * DAY / 2
    clock = {'now': end}
    dora = DoraState(DD_API_KEY, app_key=DD_APP_KEY)
    events = EventsState(DD_API_KEY, DD_APP_KEY, clock=lambda: clock['now'])
    failures = []
    open_ids = set(rng.sample(range(args.failures), args.open))
    for n in range(args.failures):
        started = storm + rng.random() * 0.9 if n < args.storm else start + rng.random() * (end - start - HOUR)
        attributes = {
            'id': 'pagerduty-incident-Q{:012d}'.format(n),
            'name': 'Incident {} on checkout: elevated error rate'.format(n),
            'started_at': int(started * 10**9),
            'services': ['checkout'],
            'team': 'payments',
            'env': 'prod',
            'severity': 'SEV-2',
            'custom_tags': ['pagerduty_incident_number:{}'.format(n), 'pagerduty_service:checkout_api', 'urgency:high'],
        }
        if n not in open_ids:
            attributes['finished_at'] = int((started + 60 + rng.random() * 3 * HOUR) * 10**9)
        failures.append(attributes)
        if n in open_ids:
            # What the Agent sent for an open incident: its trigger and, for some, an acknowledgement.
            sent = [(started, 'triggered', 'error')]
            if rng.random() < args.acknowledged:
                sent.append((started + 120, 'acknowledged', 'warning'))
            for at, kind, alert_type in sent:
                clock['now'] = at + 1
                events.ingest([_event('Q{:012d}'.format(n), at, kind, alert_type)])
    clock['now'] = end
    dora.preload(failures)
    del failures
    datadog = FakeServer(dora.routes() + events.routes()).start()
    log_start = {'at': 0}

    def replay_log(request: Any) -> Reply:
        # The requests since the last call, for the floor to replay.
        recorded = datadog.requests[log_start['at'] :]
        log_start['at'] = len(datadog.requests)
        rows = [{'method': r.method, 'path': r.path, 'query': r.query, 'body': r.body.decode()} for r in recorded]
        return Reply(200, rows)

    logged = FakeServer([('GET', '/_log', replay_log)]).start()
    connection.send({'datadog': datadog.url, 'log': logged.url, 'start': start, 'events': len(events.events)})
    connection.recv()
    datadog.stop()
    logged.stop()


def _event(incident_id: str, at: float, kind: str, alert_type: str) -> dict:
    return {
        'timestamp': int(at),
        'event_type': 'pagerduty_dora',
        'source_type_name': 'pagerduty_dora',
        'aggregation_key': incident_id,
        'alert_type': alert_type,
        'priority': 'normal',
        'msg_title': '#1 {}: elevated error rate'.format(kind),
        'msg_text': '%%% \n### #1 elevated error rate\n\n- **{}** at some time\n %%%'.format(kind),
        'tags': [
            'service:checkout',
            'team:payments',
            'env:prod',
            'urgency:high',
            'transition:{}'.format(kind),
            'pagerduty_transition:{}:{}:{}'.format(incident_id, kind, int(at)),
        ],
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_readback(urls: dict, args: argparse.Namespace, end: float, connection: Any) -> None:
    """The readback over both APIs, timed, then again under tracemalloc keeping what it reads."""
    import logging

    from datadog_checks.base.utils.http import RequestsWrapper
    from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
    from datadog_checks.pagerduty_dora.common.pacing import RequestLimits
    from datadog_checks.pagerduty_dora.datadog.readback import Readback

    def client() -> ApiClient:
        api = ApiClient(
            ApiTarget('datadog', urls['datadog'], {'DD-API-KEY': DD_API_KEY, 'DD-APPLICATION-KEY': DD_APP_KEY}),
            RequestsWrapper({'timeout': 60}, {}),
            RequestLimits(10**6),
            logging.getLogger('bench'),
        )
        api.start_run(time.monotonic() + 3600)
        return api

    since, until = urls['start'] - 1, end
    results: dict[str, Any] = {}
    for name, read in (
        ('failures', lambda r: r.failures(since, until)),
        ('events', lambda r: r.events(EVENTS_QUERY, since, until)),
    ):
        api = client()
        readback = Readback(api)
        cpu, wall = time.process_time(), time.monotonic()
        count = sum(1 for _ in read(readback))
        results[name] = {
            'cpu': time.process_time() - cpu,
            'wall': time.monotonic() - wall,
            'requests': api.limits.used,
            'records': count,
        }
    results['rss_mb'] = _rss_mb()
    walks = (
        ('failures', lambda r: r.failures(since, until), lambda record: record.failure_id),
        ('events', lambda r: r.events(EVENTS_QUERY, since, until), lambda record: record.event_id),
    )
    # Kept as a rebuild would keep them, first for the process's peak, then traced for Python's own.
    kept_all = [{key(record): record for record in read(Readback(client()))} for _, read, key in walks]
    results['rss_kept_mb'] = _rss_mb()
    del kept_all
    for name, read, key in walks:
        tracemalloc.start()
        kept = {key(record): record for record in read(Readback(client()))}
        results[name]['traced_peak_mb'] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        results[name]['kept'] = len(kept)
        del kept
    connection.send(results)


def run_floor(urls: dict, walks: dict[str, list[dict]], connection: Any) -> None:
    """The same requests, one session, each answer decoded and dropped."""
    import requests

    # The readback's imports, so that peak RSS compares like with like.
    import datadog_checks.base.utils.http  # noqa: F401
    import datadog_checks.pagerduty_dora.datadog.readback  # noqa: F401

    session = requests.Session()
    session.headers.update({'DD-API-KEY': DD_API_KEY, 'DD-APPLICATION-KEY': DD_APP_KEY})
    results: dict[str, Any] = {}
    for name, rows in walks.items():
        cpu, wall = time.process_time(), time.monotonic()
        items = 0
        for row in rows:
            url = urls['datadog'] + row['path']
            if row['method'] == 'POST':
                answer = session.post(url, data=row['body'], headers={'Content-Type': 'application/json'}, timeout=60)
            else:
                answer = session.get(url, params={k: v[-1] for k, v in row['query'].items()}, timeout=60)
            items += len(json.loads(answer.content).get('data') or ())
        results[name] = {
            'cpu': time.process_time() - cpu,
            'wall': time.monotonic() - wall,
            'requests': len(rows),
            'items': items,
        }
    results['rss_mb'] = _rss_mb()
    connection.send(results)


def in_process(target: Any, *target_args: Any) -> dict:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*target_args, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--failures', type=int, default=100_000)
    parser.add_argument('--open', type=int, default=5000, help='open incidents, whose events are read back')
    parser.add_argument('--days', type=int, default=60)
    parser.add_argument('--storm', type=int, default=900, help='failures started within one second')
    parser.add_argument('--acknowledged', type=float, default=0.4, help='share of open incidents acknowledged')
    args = parser.parse_args()
    multiprocessing.set_start_method('spawn')
    end = float(int(time.time()))

    parent, child = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(args, end, child), daemon=True)
    fakes.start()
    urls = parent.recv()

    import requests

    readback = in_process(run_readback, urls, args, end)
    # The log holds the timed walks first (failures, then events), then the traced ones.
    rows = requests.get(urls['log'] + '/_log', timeout=60).json()
    used = readback['failures']['requests']
    walks = {'failures': rows[:used], 'events': rows[used : used + readback['events']['requests']]}
    floor = in_process(run_floor, urls, walks)
    parent.send('stop')
    fakes.join(10)

    print(json.dumps({'readback': readback, 'floor': floor, 'events_held': urls['events']}, indent=2))
    print()
    for name, label in (('failures', 'DORA failures'), ('events', 'events of open incidents')):
        mine, bare = readback[name], floor[name]
        per_thousand = 1000 * mine['requests'] / max(1, mine['records'])
        line = '{:<24}{:>10,} read in {:,} requests ({:.3f} per 1,000)'
        print(line.format(label, mine['records'], mine['requests'], per_thousand))
        print(_against('  CPU seconds', mine['cpu'], bare['cpu'], 's'))
        print(_against('  wall seconds', mine['wall'], bare['wall'], 's'))
        print('  traced peak, all kept {:>10.1f} MB'.format(mine['traced_peak_mb']))
    print(_against('peak RSS, streamed', readback['rss_mb'], floor['rss_mb'], 'MB'))
    print(_against('peak RSS, all kept', readback['rss_kept_mb'], floor['rss_mb'], 'MB'))


def _against(label: str, value: float, floor: float, unit: str) -> str:
    return '{:<24}{:>10.2f} {} = {:.2f} x floor ({:.2f} {})'.format(label, value, unit, value / floor, floor, unit)


if __name__ == '__main__':
    main()
