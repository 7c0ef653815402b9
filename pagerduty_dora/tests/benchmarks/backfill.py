# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Backfill benchmark: the check against the simulated PagerDuty, compared with bare HTTP of its own requests.

Run from the integration folder with the test environment's Python:

    python -m tests.benchmarks.backfill --incidents 100000 --days 60 --hot-day 12000 --open 5000

Runs are spaced as the Agent spaces them: the check and the fakes share a clock that jumps to the
next run's due time (an interval after the previous run started) and through every wait the check
makes for a rate limit window, so the windows the fakes advertise turn as they would in a real
hour, without waiting for them. PagerDuty advertises its 960 requests a minute; Datadog's DORA
intake advertises `--datadog-rate-limit` a minute (its limit is not published). Neither must answer
a single 429.

After the backfill it measures idle runs (PagerDuty's clock moving an interval before each, so that
the feed's second look at late entries is paid for), an Agent restart, and how many runs pass
before a priority change of an open incident is reported: as PagerDuty serves it (no log entry),
and from a server that logs it.

The fakes log every request. Each request the check made in the backfill, and in the idle runs, is
then made again by a bare client (one keep-alive `requests.Session` with the check's socket timeout,
each answer read and dropped) in a fresh process: the check's CPU over that replay's is what the
check costs beyond its HTTP. The backfill's are made once more by a client that, like the check
wherever one reading of the environment says the same for its APIs, does not read the environment
at every request: how much of the difference that is. The backfill's requests are also replayed run
by run, right after each run, against a twin of the fakes (the same account, rate limits never
reached), so that the check and its replay are measured side by side while the machine's speed
drifts; the shared clock does not count the time the replay takes. The replays and the floor are
answered as the check was, rate limit headers included (a limit they never reach), so that they
read the same answers. The floor is the thinnest correct client (windows under the cap, 100 a
page, one POST each), also in a fresh process. The fakes run in a process of their own, so their
CPU is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pickle
import resource
import tempfile
import time
from typing import Any
from urllib.parse import urlencode

DAY = 86400.0
IDLE_RUNS = 20
# The idle runs' requests are few: their replay is made this many times, for a steadier measure.
IDLE_REPLAYS = 20
# Request headers a bare client sends too: the keys, and what the body is.
REPLAYED_HEADERS = ('authorization', 'accept', 'content-type', 'dd-api-key', 'dd-application-key')
# Open incidents resolved before the restart is measured.
RESOLVED = 500
TOKEN = 'bench-token'
DD_API_KEY = 'bench0123456789abcdef0123456789ab'
# The limit both fakes advertise while they are off: never reached, so nothing waits, while every
# answer still carries the rate limit headers the check was answered with (the same bytes to read).
NEVER_REACHED = 10**9
# The socket timeout of every request the check makes (the Agent's default `timeout`, connect and
# read): the bare clients set it too, since a socket with a timeout waits for each read and write
# with a `poll` call of its own, which is part of the HTTP, not of the check.
TIMEOUT = (10.0, 10.0)


def serve_fakes(args: argparse.Namespace, end: float, skew: Any, connection: Any) -> None:
    """Build the account and serve PagerDuty and DORA until told to stop, on the clock shared with the check."""
    from ..fakes.dora_api import DoraState
    from ..fakes.pagerduty import DEFAULT_RATE_LIMIT, PagerDutyAccount, PagerDutySimulator
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

    def clock() -> float:
        return time.monotonic() + skew.value

    dora = DoraState(DD_API_KEY, rate_limit=args.datadog_rate_limit, period=60, clock=clock)
    # Posts are counted, not kept: 100,000 stored payloads would only measure the fake.
    dora.posts = _Counter()
    pagerduty = PagerDutySimulator(account, clock=clock).start()
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

    def limits(request: Any) -> Reply:
        # Off for the clients that do not pace themselves (the floor, the replays), on for the check.
        on = request.arg('on') == 'true'
        pagerduty.rate_limit = DEFAULT_RATE_LIMIT if on else NEVER_REACHED
        dora.rate_limit = args.datadog_rate_limit if on else NEVER_REACHED
        return Reply(200, {'pagerduty': pagerduty.limited, 'datadog': dora.limited})

    datadog: Any = None

    def marks(request: Any) -> Reply:
        return Reply(200, {'pagerduty': len(pagerduty.requests), 'datadog': len(datadog.requests)})

    def log(request: Any) -> Reply:
        # The check's requests between two marks, written for a replay; the benchmark's own are left out.
        recorded = []
        for name, server in (('pagerduty', pagerduty.server), ('datadog', datadog)):
            since, until = int(request.arg(name + '_from') or 0), int(request.arg(name + '_to') or 0)
            recorded += [
                _replayable(server.url, r) for r in server.requests[since:until] if not r.path.startswith('/_')
            ]
        with open(str(request.arg('path')), 'wb') as out:
            pickle.dump(recorded, out)
        return Reply(200, {'requests': len(recorded)})

    routes = [
        ('GET', '/_stats', lambda r: Reply(200, _kinds(pagerduty.requests))),
        ('GET', '/_marks', marks),
        ('POST', '/_log', log),
        ('POST', '/_limits', limits),
        ('POST', '/_advance', advance),
        ('POST', '/_priority', change_priority),
        ('POST', '/_resolve', resolve_some),
    ]
    datadog = FakeServer(dora.routes() + routes).start()
    connection.send({'pagerduty': pagerduty.url, 'datadog': datadog.url, 'start': start, 'open': _open_count(account)})
    connection.recv()
    pagerduty.stop()
    datadog.stop()


def _replayable(base: str, request: Any) -> tuple[str, str, dict, bytes]:
    """A recorded request as a bare client makes it again: method, whole URL, headers, body."""
    url = base + request.path
    if request.query:
        url += '?' + urlencode(request.query, doseq=True)
    headers = {name: value for name, value in request.headers.items() if name in REPLAYED_HEADERS}
    return request.method, url, headers, request.body


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
            params: dict[str, Any] = {
                'since': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since)),
                'until': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until)),
                'time_zone': 'UTC',
                'limit': 100,
                'offset': offset,
            }
            page = json.loads(session.get(urls['pagerduty'] + '/incidents', params=params, timeout=TIMEOUT).content)
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
                session.post(
                    urls['datadog'] + '/api/v2/dora/failure',
                    json=body,
                    headers={'DD-API-KEY': DD_API_KEY},
                    timeout=TIMEOUT,
                )
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


def run_check(urls: dict, args: argparse.Namespace, skew: Any, replayer: Any, connection: Any) -> None:
    """The real check, run after run on the Agent's schedule, until the backfill is delivered.

    After each run of the backfill, `replayer` makes that run's requests again (`replay_run_by_run`).
    """
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    import requests

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
    if args.max_requests:
        instance['max_requests_per_run'] = args.max_requests
    check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
    schedule = Schedule(skew, args.interval, args.profile)
    schedule.start_profile()
    check.monotonic = schedule.monotonic
    check.sleep = schedule.sleep
    errors: list[str] = []
    before, marks = pagerduty_requests(urls), _marks(urls)
    side_by_side = {'cpu': 0.0, 'requests': 0}
    run_marks = marks
    while True:
        error = schedule.run(check)
        if error:
            errors.append(json.loads(error)[0]['message'])
        run_marks = _replay_beside(urls, run_marks, replayer, skew, side_by_side)
        report = check.last_report
        assert check.collector is not None
        dora = check.collector.dora
        if report is not None and report.sweep_complete and dora is not None and dora.pending == 0:
            break
        if schedule.runs > 10_000:
            break
        aggregator.reset()
    schedule.save_profile('backfill')
    replayer.send(None)
    backfill = {'cpu': schedule.cpu, 'runs': schedule.runs, 'longest_run': schedule.longest, 'beside': side_by_side}
    backfill_requests = _minus(pagerduty_requests(urls), before)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    idle_marks = _marks(urls)
    schedule.start_profile()
    idle = _idle_runs(check, schedule, urls, aggregator)
    schedule.save_profile('idle')
    after_idle = _marks(urls)
    # Some incidents resolve, and a run takes that in: the state then holds records of resolved incidents too.
    requests.post(urls['datadog'] + '/_resolve', params={'count': str(RESOLVED)}, timeout=60)
    time.sleep(1.0)
    aggregator.reset()
    check.run()
    restart = _restart(instance, aggregator)
    latency = {logged: _runs_to_see_priority_change(check, urls, aggregator, logged) for logged in (True, False)}
    connection.send(
        {
            **backfill,
            'rss_mb': rss,
            'errors': errors[:3],
            'requests': backfill_requests,
            'marks': {'backfill': (marks, idle_marks), 'idle': (idle_marks, after_idle)},
            **idle,
            'priority_change_runs': latency,
            'state_bytes': len(check.collector.state.dumps()) if check.collector else 0,
            'restart': restart,
        }
    )


class Schedule:
    """The Agent's schedule on a clock shared with the fakes: a run every `interval` seconds, and waits
    that pass at once. `skew` is what the shared clock is ahead of the machine's monotonic clock."""

    def __init__(self, skew: Any, interval: float, profile: str = '') -> None:
        self.skew = skew
        self.profile = profile
        self.profiler: Any = None
        self.interval = interval
        self.runs = 0
        self.cpu = 0.0
        self.longest = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skew.value

    def start_profile(self) -> None:
        """With `--profile`, profile the runs from now on (the profile's own cost is in the CPU measured)."""
        if self.profile:
            import cProfile

            self.profiler = cProfile.Profile(time.process_time)

    def save_profile(self, name: str) -> None:
        """The profile of the runs since `start_profile`, written as `<profile>-<name>.pstats`."""
        if self.profiler is not None:
            self.profiler.dump_stats('{}-{}.pstats'.format(self.profile, name))
            self.profiler = None

    def sleep(self, seconds: float) -> None:
        self.skew.value += max(0.0, seconds)

    def run(self, check: Any) -> Any:
        """One run of `check`, its CPU counted; then the clock moves on to the next run's due time."""
        started, cpu = self.monotonic(), time.process_time()
        if self.profiler is not None:
            self.profiler.enable()
        error = check.run()
        if self.profiler is not None:
            self.profiler.disable()
        self.cpu += time.process_time() - cpu
        self.runs += 1
        took = self.monotonic() - started
        self.longest = max(self.longest, took)
        self.sleep(self.interval - took)
        return error


def _idle_runs(check: Any, schedule: Schedule, urls: dict, aggregator: Any) -> dict:
    """Runs with nothing new: reconciliation is paced so that a pass takes about 10 minutes, and the feed's
    second look is taken once every 5 minutes of PagerDuty's time, so the cost of an idle run is an
    average over a pass and more, with PagerDuty's clock moving an interval before each run."""
    import requests

    before, cpu = pagerduty_requests(urls), schedule.cpu
    for _ in range(IDLE_RUNS):
        requests.post(urls['datadog'] + '/_advance', params={'seconds': str(schedule.interval)}, timeout=60)
        aggregator.reset()
        schedule.run(check)
    kinds = _minus(pagerduty_requests(urls), before)
    return {
        'idle_cpu': (schedule.cpu - cpu) / IDLE_RUNS,
        'idle_requests': kinds['total'] / IDLE_RUNS,
        'idle_by_kind': {kind: count / IDLE_RUNS for kind, count in kinds.items() if kind != 'total'},
    }


def _marks(urls: dict) -> dict:
    import requests

    return requests.get(urls['datadog'] + '/_marks', timeout=60).json()


def _replay_beside(urls: dict, since: dict, replayer: Any, skew: Any, totals: dict) -> dict:
    """The requests of the run that just ended, made again by `replayer`; the marks the next run starts from.

    The time this takes is taken off the shared clock: the next run starts when it would have.
    """
    began = time.monotonic()
    until = _marks(urls)
    with tempfile.TemporaryDirectory() as folder:
        path = _write_log(urls, (since, until), os.path.join(folder, 'run.pickle'))
        replayer.send(path)
        result = replayer.recv()
    totals['cpu'] += result['cpu']
    totals['requests'] += result['requests']
    after = _marks(urls)
    skew.value -= time.monotonic() - began
    return after


def replay_run_by_run(twin: dict, live: dict, connection: Any) -> None:
    """Make each run's requests again, one run at a time, against the twin of the fakes; its CPU seconds each."""
    import requests

    session = requests.Session()
    bases = [(live[api], twin[api]) for api in ('pagerduty', 'datadog')]
    while True:
        path = connection.recv()
        if path is None:
            return
        with open(path, 'rb') as recorded:
            logged = [
                (method, _on_twin(url, bases), headers, body) for method, url, headers, body in pickle.load(recorded)
            ]
        cpu = time.process_time()
        _make_again(session, logged, {})
        connection.send({'cpu': time.process_time() - cpu, 'requests': len(logged)})


def _on_twin(url: str, bases: list[tuple[str, str]]) -> str:
    """`url` of the live fakes, on their twin."""
    for base, other in bases:
        if url.startswith(base):
            return other + url[len(base) :]
    return url


def _make_again(session: Any, logged: list, statuses: dict[int, int]) -> int:
    """Each logged request made again by `session`, its answer read and dropped; answers counted by status.

    Returns the bytes read (every answer is read whole, as the check reads each).
    """
    read = 0
    for method, url, headers, body in logged:
        answer = session.request(
            method, url, data=body or None, headers=headers, allow_redirects=False, timeout=TIMEOUT
        )
        read += len(answer.content)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return read


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


def replay(path: str, repeat: int, trust_env: bool, connection: Any) -> None:
    """The requests logged at `path`, made again `repeat` times by a bare keep-alive client; its CPU seconds.

    Without `trust_env`, the client does not read the environment (proxies, CA bundles, `.netrc`)
    at every request, as the check does not wherever one reading says the same for its APIs.
    """
    import requests

    with open(path, 'rb') as recorded:
        logged = pickle.load(recorded)
    session = requests.Session()
    session.trust_env = trust_env
    statuses: dict[int, int] = {}
    cpu = time.process_time()
    for _ in range(repeat):
        _make_again(session, logged, statuses)
    connection.send({'cpu': (time.process_time() - cpu) / repeat, 'requests': len(logged), 'statuses': statuses})


def replayed(urls: dict, marks: tuple[dict, dict], repeat: int = 1, trust_env: bool = True) -> dict:
    """The check's requests between two marks, made again by a bare client in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        return in_process(replay, _write_log(urls, marks, os.path.join(folder, 'requests.pickle')), repeat, trust_env)


def _write_log(urls: dict, marks: tuple[dict, dict], path: str) -> str:
    """Have the fakes write the check's requests between two marks to `path`, for a replay; the path."""
    import requests

    since, until = marks
    params = {'path': path}
    for api in ('pagerduty', 'datadog'):
        params.update({api + '_from': since[api], api + '_to': until[api]})
    requests.post(urls['datadog'] + '/_log', params=params, timeout=600)
    return path


def limits(urls: dict, on: bool) -> dict:
    """Turn the fakes' rate limits on or off; how many requests each answered 429 for its limit so far."""
    import requests

    return requests.post(urls['datadog'] + '/_limits', params={'on': str(on).lower()}, timeout=60).json()


def in_process(target: Any, *target_args: Any) -> dict:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*target_args, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


def measure(urls: dict, twin: dict, args: argparse.Namespace, skew: Any) -> dict:
    """The floor, the check, and the replays of the check's requests, each in a fresh process."""
    limits(urls, on=False)
    limits(twin, on=False)
    floor = in_process(run_floor, urls, float(urls['end']))
    limits(urls, on=True)
    # The check starts a minute later: the floor's requests are not counted in its windows.
    skew.value += 60
    mine, theirs = multiprocessing.Pipe()
    replayer = multiprocessing.Process(target=replay_run_by_run, args=(twin, urls, theirs))
    replayer.start()
    check = in_process(run_check, urls, args, skew, mine)
    replayer.join()
    limited = limits(urls, on=False)
    backfill = replayed(urls, check['marks']['backfill'])
    unread = replayed(urls, check['marks']['backfill'], trust_env=False)
    idle = replayed(urls, check['marks']['idle'], repeat=IDLE_REPLAYS)
    return {
        'floor': floor,
        'check': check,
        'replay': backfill,
        'replay_without_environment': unread,
        'idle_replay': idle,
        'limited': limited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--incidents', type=int, default=100_000)
    parser.add_argument('--days', type=int, default=60)
    parser.add_argument('--hot-day', type=int, default=12_000, help='incidents created on one day of the window')
    parser.add_argument('--interval', type=int, default=60, help='the check\'s min_collection_interval')
    parser.add_argument('--open', type=int, default=5000, help='incidents still open at the end')
    parser.add_argument('--datadog-rate-limit', type=int, default=3000, help='DORA requests a minute, advertised')
    parser.add_argument('--max-requests', type=int, default=0, help='max_requests_per_run (0: unset)')
    parser.add_argument('--profile', default='', help='write the check\'s profiles to PROFILE-backfill.pstats, -idle')
    args = parser.parse_args()
    multiprocessing.set_start_method('spawn')
    end = float(int(time.time()))
    skew = multiprocessing.Value('d', 0.0, lock=False)

    parent, child = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(args, end, skew, child), daemon=True)
    fakes.start()
    # The twin answers the side-by-side replay: the same account on a clock of its own, never rate limited.
    twin_parent, twin_child = multiprocessing.Pipe()
    twin_skew = multiprocessing.Value('d', 0.0, lock=False)
    twin_fakes = multiprocessing.Process(target=serve_fakes, args=(args, end, twin_skew, twin_child), daemon=True)
    twin_fakes.start()
    urls = dict(parent.recv(), end=end)
    twin = twin_parent.recv()
    results = measure(urls, twin, args, skew)
    for connection, process in ((parent, fakes), (twin_parent, twin_fakes)):
        connection.send('stop')
        process.join(10)
    print(json.dumps(dict(results, open_incidents=urls['open']), indent=2))
    print()
    report(args, results, urls['open'])


def report(args: argparse.Namespace, results: dict, open_count: int) -> None:
    floor, check, replay, idle_replay = results['floor'], results['check'], results['replay'], results['idle_replay']
    unread = results['replay_without_environment']
    pages = math.ceil(args.incidents / 100)
    requests = check['requests']
    sweep = requests['sweep'] + requests['other']
    rows = [
        ('incidents', '{:,}'.format(args.incidents)),
        ('PagerDuty sweep requests', '{:,} = {:.3f} x ceil(N/100) (target <= 1.05 x + 5)'.format(sweep, sweep / pages)),
        ('change feed requests', '{:,} over {} runs'.format(requests['feed'], check['runs'])),
        (
            'reconciliation requests',
            '{:,} over {} runs ({:,} open)'.format(requests['open_list'], check['runs'], open_count),
        ),
        ('PagerDuty requests, all', '{:,} = {:.3f} x ceil(N/100)'.format(requests['total'], requests['total'] / pages)),
        ('requests replayed', '{:,} (statuses {})'.format(replay['requests'], replay['statuses'])),
        ('429s for a spent limit', 'PagerDuty {pagerduty}, Datadog {datadog} (target 0)'.format(**results['limited'])),
        (
            'runs to catch up',
            '{} (goal <= 60 at 100,000); longest {:.1f} s of the {} s interval'.format(
                check['runs'], check['longest_run'], args.interval
            ),
        ),
        (
            'CPU, backfill',
            '{:.1f} s = {:.2f} x the replay ({:.1f} s; goal <= 1.2), {:.2f} x the floor ({:.1f} s; goal <= 1.3)'.format(
                check['cpu'], check['cpu'] / replay['cpu'], replay['cpu'], check['cpu'] / floor['cpu'], floor['cpu']
            ),
        ),
        (
            'CPU, backfill, no environment',
            '{:.2f} x its requests replayed by a client that does not read the environment either ({:.1f} s)'.format(
                check['cpu'] / unread['cpu'],
                unread['cpu'],
            ),
        ),
        (
            'CPU, backfill, side by side',
            '{:.1f} s = {:.2f} x its requests replayed beside each run ({:.1f} s, {:,} requests; goal <= 1.2)'.format(
                check['cpu'],
                check['cpu'] / check['beside']['cpu'],
                check['beside']['cpu'],
                check['beside']['requests'],
            ),
        ),
        (
            'CPU, an idle run',
            '{:.1f} ms = {:.2f} x the replay of its {:.1f} requests ({:.1f} ms; goal <= 2)'.format(
                check['idle_cpu'] * 1000,
                check['idle_cpu'] / idle_replay['cpu'] * IDLE_RUNS,
                idle_replay['requests'] / IDLE_RUNS,
                idle_replay['cpu'] * 1000 / IDLE_RUNS,
            ),
        ),
        (
            'peak RSS, check',
            '{:.1f} MB (floor process {:.1f} MB; target <= 100 MB)'.format(check['rss_mb'], floor['rss_mb']),
        ),
        (
            'requests in an idle run',
            '{:.2f} (target <= 1.5 + open/1000 = {:.2f}): {:.2f} change feed, {:.2f} reconciliation'.format(
                check['idle_requests'],
                1.5 + open_count / 1000,
                check['idle_by_kind']['feed'],
                check['idle_by_kind']['open_list'],
            ),
        ),
    ]
    restart = check['restart']
    rows += [
        (
            'state',
            '{:,} bytes: {:.0f} per open record ({:,}), {:.0f} per resolved ({:,})'.format(
                restart['state_bytes'],
                restart['bytes_per_open'],
                restart['open_records'],
                restart['bytes_per_resolved'],
                restart['resolved_records'],
            ),
        ),
        (
            'restart',
            'first run {:.0f} ms CPU, next run {:.0f} ms (encoding the state: {:.0f} ms)'.format(
                restart['first_run_cpu'] * 1000, restart['next_run_cpu'] * 1000, restart['encode_cpu'] * 1000
            ),
        ),
        (
            'runs to see a priority change',
            '{} logged, {} unlogged (target: within 10 runs at 5,000 open)'.format(
                *(_latency(check['priority_change_runs'], logged) for logged in (True, False))
            ),
        ),
    ]
    for label, text in rows:
        print('{:<31} {}'.format(label, text))


def _latency(latency: dict, logged: bool) -> Any:
    # The pipe keeps the keys as they were; JSON would have made them strings.
    return latency.get(logged, latency.get(str(logged).lower()))


if __name__ == '__main__':
    main()
