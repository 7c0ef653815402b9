# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Backfill benchmark: the check against the simulated PagerDuty, compared with the thinnest correct client.

Run from the integration folder with the test environment's Python:

    python -m tests.benchmarks.backfill --incidents 100000 --days 60 --hot-day 12000 --open 5000

After the backfill it measures idle runs (PagerDuty's clock moving an interval before each, so that
the feed's second look at late entries is paid for), and how many runs pass before a priority change
of an open incident is reported: as PagerDuty serves it (no log entry), and from a server that logs it.

The fakes run in a process of their own, so their CPU and memory are not counted. The floor and
the check each run in a fresh process and report their CPU seconds (process time) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import time
from typing import Any

DAY = 86400.0
IDLE_RUNS = 20
# Open incidents resolved before the restart is measured.
RESOLVED = 500
TOKEN = 'bench-token'
DD_API_KEY = 'bench0123456789abcdef0123456789ab'


def serve_fakes(args: argparse.Namespace, end: float, connection: Any) -> None:
    """Build the account and serve PagerDuty and DORA until told to stop."""
    from ..fakes.dora_api import DoraState
    from ..fakes.pagerduty import PagerDutyAccount, PagerDutySimulator
    from ..fakes.server import FakeServer, Reply

    start = end - args.days * DAY
    hot = start + (args.days // 2) * DAY
    account = PagerDutyAccount.generate(
        args.incidents,
        start,
        end,
        seed=1,
        hot_day=hot,
        hot_day_count=args.hot_day,
        open_fraction=args.open / args.incidents,
        token=TOKEN,
        now=end,
    )
    dora = DoraState(DD_API_KEY)
    # Posts are counted, not kept: 100,000 stored payloads would only measure the fake.
    dora.posts = _Counter()
    pagerduty = PagerDutySimulator(account, rate_limit=10**9).start()
    opened = [i for i in account.incident_ids() if account.status(i) != 'resolved']

    def change_priority(request: Any) -> Reply:
        # The middle open incident, so that a pass in creation order reaches it halfway.
        # PagerDuty logs no priority change; `logged` measures a server that does, for comparison.
        account.logs_priority_changes = request.arg('logged') == 'true'
        # The account's clock stood still while the check ran on the real one, or moved ahead of it
        # through the idle runs: the change happens now, and PagerDuty's clock never goes back.
        account.now = max(account.now, time.time())
        target = opened[len(opened) // 2]
        current = (account.incident(target).get('priority') or {}).get('name')
        account.set_priority(target, 'P2' if current != 'P2' else 'P3')
        return Reply(200, {'incident': target})

    def resolve_some(request: Any) -> Reply:
        # Open incidents other than the one whose priority changes, resolved now: records of resolved incidents.
        account.now = max(account.now, time.time())
        count = int(request.arg('count') or 0)
        chosen = [i for i in opened if i != opened[len(opened) // 2] and account.status(i) != 'resolved'][:count]
        for incident in chosen:
            account.resolve(incident)
        return Reply(200, {'resolved': len(chosen)})

    def advance(request: Any) -> Reply:
        # PagerDuty's clock moves as between two runs of the Agent, so that idle runs pay for the
        # feed's second look at late entries, taken once every few minutes of PagerDuty's time.
        return Reply(200, {'now': account.advance(float(request.arg('seconds') or 0))})

    routes = [
        ('GET', '/_stats', lambda r: Reply(200, _kinds(pagerduty.requests))),
        ('POST', '/_advance', advance),
        ('POST', '/_priority', change_priority),
        ('POST', '/_resolve', resolve_some),
    ]
    datadog = FakeServer(dora.routes() + routes).start()
    connection.send({'pagerduty': pagerduty.url, 'datadog': datadog.url, 'start': start, 'open': _open_count(account)})
    connection.recv()
    pagerduty.stop()
    datadog.stop()


def _kinds(requests: list) -> dict:
    """PagerDuty requests by purpose: the creation-time sweep, the feed, reconciliation, the recheck, the rest."""
    kinds = {'total': len(requests), 'sweep': 0, 'feed': 0, 'open_list': 0, 'recheck': 0, 'other': 0}
    for request in list(requests):
        if request.path == '/incidents' and request.args('statuses') == ['resolved']:
            kinds['recheck'] += 1
        elif request.path == '/incidents' and request.args('statuses'):
            kinds['open_list'] += 1
        elif request.path == '/incidents':
            kinds['sweep'] += 1
        elif request.path == '/log_entries':
            kinds['feed'] += 1
        else:
            kinds['other'] += 1
    return kinds


class _Counter(list):
    def append(self, item: Any) -> None:
        self.count_ = getattr(self, 'count_', 0) + 1


def _open_count(account: Any) -> int:
    return sum(1 for i in account.incident_ids() if account.status(i) != 'resolved')


def pagerduty_requests(urls: dict) -> dict:
    import requests

    return requests.get(urls['datadog'] + '/_stats', timeout=60).json()


def _minus(after: dict, before: dict) -> dict:
    return {key: after[key] - before[key] for key in after}


def run_floor(urls: dict, end: float, connection: Any) -> None:
    """The thinnest correct client: windows under the cap, 100 a page, one session, one POST each."""
    import requests

    session = requests.Session()
    session.headers.update(
        {'Authorization': 'Token token=' + TOKEN, 'Accept': 'application/vnd.pagerduty+json;version=2'}
    )
    cpu = time.process_time()
    fetched = posted = 0
    since = urls['start']
    while since < end:
        until = min(end, since + DAY / 2)
        offset = 0
        while True:
            params = {
                'since': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since)),
                'until': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until)),
                'time_zone': 'UTC',
                'limit': 100,
                'offset': offset,
            }
            page = json.loads(session.get(urls['pagerduty'] + '/incidents', params=params).content)
            for incident in page['incidents']:
                fetched += 1
                body = {
                    'data': {
                        'attributes': {
                            'id': 'pagerduty-incident-' + incident['id'],
                            'name': incident['title'],
                            'started_at': 10**9 * int(time.time()),
                            'services': [incident['service']['summary']],
                        }
                    }
                }
                session.post(urls['datadog'] + '/api/v2/dora/failure', json=body, headers={'DD-API-KEY': DD_API_KEY})
                posted += 1
            if not page['more']:
                break
            offset += 100
        since = until
    connection.send(
        {
            'cpu': time.process_time() - cpu,
            'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            'fetched': fetched,
            'posted': posted,
        }
    )


def run_check(urls: dict, args: argparse.Namespace, connection: Any) -> None:
    """The real check, run after run as the Agent would, until the backfill is delivered."""
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    from datadog_checks.base.stubs import aggregator
    from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

    instance = {
        'pagerduty_api_url': urls['pagerduty'],
        'api_token': TOKEN,
        'datadog_api_url': urls['datadog'],
        'datadog_api_key': DD_API_KEY,
        'backfill_days': args.days + 1,
        'min_collection_interval': args.interval,
    }
    check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
    cpu = time.process_time()
    runs, longest, errors = 0, 0.0, []
    before = pagerduty_requests(urls)
    while True:
        started = time.monotonic()
        error = check.run()
        longest = max(longest, time.monotonic() - started)
        runs += 1
        if error:
            errors.append(json.loads(error)[0]['message'])
        report = check.last_report
        assert check.collector is not None
        dora = check.collector.dora
        if report is not None and report.sweep_complete and dora is not None and dora.pending == 0:
            break
        if runs > 10_000:
            break
        aggregator.reset()
    backfill_cpu = time.process_time() - cpu
    backfill_requests = _minus(pagerduty_requests(urls), before)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import requests

    # Idle runs: reconciliation is paced so that a pass takes about 10 minutes, and the feed's second
    # look is taken once every 5 minutes of PagerDuty's time, so the cost of an idle run is an average
    # over a pass and more, with PagerDuty's clock moving an interval before each run.
    idle_before = pagerduty_requests(urls)
    for _ in range(IDLE_RUNS):
        requests.post(urls['datadog'] + '/_advance', params={'seconds': str(args.interval)}, timeout=60)
        aggregator.reset()
        check.run()
    idle_kinds = _minus(pagerduty_requests(urls), idle_before)
    idle = idle_kinds['total'] / IDLE_RUNS
    # Some incidents resolve, and a run takes that in: the state then holds records of resolved incidents too.

    requests.post(urls['datadog'] + '/_resolve', params={'count': str(RESOLVED)}, timeout=60)
    time.sleep(1.0)
    aggregator.reset()
    check.run()
    restart = _restart(instance, aggregator)
    latency = {logged: _runs_to_see_priority_change(check, urls, aggregator, logged) for logged in (True, False)}
    connection.send(
        {
            'cpu': backfill_cpu,
            'rss_mb': rss,
            'runs': runs,
            'longest_run': longest,
            'errors': errors[:3],
            'requests': backfill_requests,
            'idle_requests': idle,
            'idle_by_kind': {kind: count / IDLE_RUNS for kind, count in idle_kinds.items() if kind != 'total'},
            'priority_change_runs': latency,
            'state_bytes': len(check.collector.state.dumps()) if check.collector else 0,
            'restart': restart,
        }
    )


def _restart(instance: dict, aggregator: Any) -> dict:
    """An Agent restart at this size: a new check over the same persistent cache, its first run and the next.

    Also what the stored state holds per incident record, open and resolved.
    """
    from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
    from datadog_checks.pagerduty_dora.collection.record import RECORD

    restarted = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
    cpu = []
    for _ in range(2):
        aggregator.reset()
        began = time.process_time()
        restarted.run()
        cpu.append(time.process_time() - began)
    assert restarted.collector is not None
    state = restarted.collector.state
    sizes: dict[str, list[int]] = {'open': [], 'resolved': []}
    for key, record in state.incidents.items():
        encoded = json.dumps({key: RECORD.encode(record)}, separators=(',', ':'))
        sizes['resolved' if record.status == 'resolved' else 'open'].append(len(encoded) - 1)
    began = time.process_time()
    state.dumps()
    encode = time.process_time() - began
    return {
        'first_run_cpu': cpu[0],
        'next_run_cpu': cpu[1],
        'encode_cpu': encode,
        'state_bytes': len(state.dumps()),
        'open_records': len(sizes['open']),
        'resolved_records': len(sizes['resolved']),
        'bytes_per_open': sum(sizes['open']) / max(1, len(sizes['open'])),
        'bytes_per_resolved': sum(sizes['resolved']) / max(1, len(sizes['resolved'])),
    }


def _runs_to_see_priority_change(check: Any, urls: dict, aggregator: Any, logged: bool) -> int:
    """Runs until the check reports a priority change made just before the first of them."""
    import requests

    incident = requests.post(urls['datadog'] + '/_priority', params={'logged': str(logged).lower()}, timeout=60)
    target = incident.json()['incident']
    for runs in range(1, 500):
        # Runs are a minute apart under the Agent; a second apart is enough for PagerDuty's
        # one-second timestamps to fall behind the check's clock, as they do there.
        time.sleep(1.0)
        aggregator.reset()
        check.run()
        seen = [
            e
            for e in aggregator.events
            if e['aggregation_key'] == target and 'transition:priority_changed' in e['tags']
        ]
        if seen:
            return runs
    return -1


def in_process(target: Any, *target_args: Any) -> dict:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*target_args, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--incidents', type=int, default=100_000)
    parser.add_argument('--days', type=int, default=60)
    parser.add_argument('--hot-day', type=int, default=12_000, help='incidents created on one day of the window')
    parser.add_argument('--interval', type=int, default=60, help='the check\'s min_collection_interval')
    parser.add_argument('--open', type=int, default=5000, help='incidents still open at the end')
    parser.add_argument('--repeat', type=int, default=1, help='floor and check runs, taking turns')
    args = parser.parse_args()
    multiprocessing.set_start_method('spawn')
    end = float(int(time.time()))

    parent, child = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(args, end, child), daemon=True)
    fakes.start()
    urls = parent.recv()

    # Floor and check take turns, so that a slower stretch of the machine weighs on both alike.
    pairs = [(in_process(run_floor, urls, end), in_process(run_check, urls, args)) for _ in range(args.repeat)]
    parent.send('stop')
    fakes.join(10)
    ratios = sorted(check['cpu'] / floor['cpu'] for floor, check in pairs)
    floor, check = pairs[-1]

    pages = math.ceil(args.incidents / 100)
    print(json.dumps({'floor': floor, 'check': check, 'open_incidents': urls['open']}, indent=2))
    print()
    print('incidents                 {:>10,}'.format(args.incidents))
    requests = check['requests']
    print(
        'PagerDuty sweep requests  {:>10,}  = {:.3f} x ceil(N/100) (target <= 1.05 x + 5)'.format(
            requests['sweep'] + requests['other'], (requests['sweep'] + requests['other']) / pages
        )
    )
    print(
        'change feed requests      {:>10,}  over {} runs (one a run while idle)'.format(requests['feed'], check['runs'])
    )
    print(
        'reconciliation requests   {:>10,}  over {} runs ({} open: paced for a pass in about 10 minutes)'.format(
            requests['open_list'], check['runs'], urls['open']
        )
    )
    print(
        'PagerDuty requests, all   {:>10,}  = {:.3f} x ceil(N/100)'.format(requests['total'], requests['total'] / pages)
    )
    print(
        'CPU seconds, check        {:>10.1f}  = {:.2f} x floor ({:.1f} s) (target <= 1.3 x)'.format(
            check['cpu'], check['cpu'] / floor['cpu'], floor['cpu']
        )
    )
    if len(ratios) > 1:
        listed = ', '.join('{:.2f}'.format(ratio) for ratio in ratios)
        print('CPU ratio, {} turns        {} (median {:.2f})'.format(len(ratios), listed, ratios[len(ratios) // 2]))
    print(
        'peak RSS, check           {:>10.1f} MB (floor process {:.1f} MB; target <= 100 MB)'.format(
            check['rss_mb'], floor['rss_mb']
        )
    )
    print(
        'runs / longest run        {:>10} / {:.1f} s (interval {} s)'.format(
            check['runs'], check['longest_run'], args.interval
        )
    )
    print(
        'requests in an idle run   {:>10.2f} on average over {} runs (target <= 1.5 + open/1000 = {:.2f})'.format(
            check['idle_requests'], IDLE_RUNS, 1.5 + urls['open'] / 1000
        )
    )
    by_kind = check['idle_by_kind']
    print(
        '  of which                  {:>8.2f} change feed (its second look included), {:.2f} reconciliation'.format(
            by_kind['feed'], by_kind['open_list']
        )
    )
    restart = check['restart']
    print(
        'state                     {:>10,} bytes: {:.0f} per open record ({:,}), {:.0f} per resolved ({:,})'.format(
            restart['state_bytes'],
            restart['bytes_per_open'],
            restart['open_records'],
            restart['bytes_per_resolved'],
            restart['resolved_records'],
        )
    )
    print(
        'restart at {:,} open      first run {:.0f} ms CPU, next run {:.0f} ms (encoding the state: {:.0f} ms)'.format(
            restart['open_records'],
            restart['first_run_cpu'] * 1000,
            restart['next_run_cpu'] * 1000,
            restart['encode_cpu'] * 1000,
        )
    )
    latency = check['priority_change_runs']
    print(
        'runs to see a priority change of an open incident: {} from a server that logs it, {} unlogged as '
        'PagerDuty serves it (target: within 10 runs at 5,000 open)'.format(
            latency['true'] if 'true' in latency else latency[True],
            latency['false'] if 'false' in latency else latency[False],
        )
    )


if __name__ == '__main__':
    main()
