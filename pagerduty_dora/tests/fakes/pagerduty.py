# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The demo's simulated PagerDuty account and API with the powers only the tests use.

`PagerDutyAccount` extends the demo's account (`demo/account.py`, one model of incidents and log
entries) with what a test needs to set up and check: a log entry may be indexed late
(`index_delay`): PagerDuty's log lists show it only some seconds after its time, while the
incident object is always current; `history` records every mutation in order, the ground truth a
test compares the collector's output with; more mutations PagerDuty logs little or nothing of
(unacknowledge, urgency change, service move, merge, delete); and accounts built in bulk.

`PagerDutySimulator` extends the demo's API (`demo/pagerduty.py`, one server with the real API's
edges) with `ratelimit-*` headers on every answer, 429 past the per-minute budget, keys without
read access (403), a record of every request, and injected faults (429 with and without headers,
5xx, slow answers, cut bodies, bad JSON) through `faults`.

`InProcessPagerDuty` is the client's reads answered straight from an account, as the API serves
them, for the pass and loop tests that need no HTTP; `raw_incident` is one incident as it renders.

    account = PagerDutyAccount(now=parse_time('2026-11-26T12:00:00Z'))
    api = account.add_service('checkout-api', team_ids=[account.add_team('Payments')])
    incident_id = account.trigger(api, 'Checkout errors', priority='P1')
    with PagerDutySimulator(account) as pagerduty:
        ...  # point a client at pagerduty.url with `Authorization: Token token=<account.token>`
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import threading
import time
from array import array
from http import HTTPStatus
from typing import Any, Callable, Iterable, Sequence

from datadog_checks.pagerduty_dora.common.errors import UnreadableResponse
from datadog_checks.pagerduty_dora.common.times import parse_time
from datadog_checks.pagerduty_dora.demo import account as demo_account
from datadog_checks.pagerduty_dora.demo.account import ACKNOWLEDGED, API_URL, RESOLVED, TRIGGERED, UTC_ZONE
from datadog_checks.pagerduty_dora.demo.pagerduty import ApiError, PagerDutyApi, token
from datadog_checks.pagerduty_dora.demo.rendering import (
    ACK,
    ASSIGN,
    LOG_ENTRY_TYPES,
    NOTIFY,
    PRIORITY,
    RESOLVE,
    STATUSES,
    TRIGGER,
    UNACK,
    URGENCIES,
    URGENCY,
    IncidentFacts,
    encode_id,
)
from datadog_checks.pagerduty_dora.pagerduty.client import (
    MAX_WINDOW,
    PAGE_SIZE,
    LogEntry,
    LogPage,
    PagerDutyClient,
    parse_log_entry,
)
from datadog_checks.pagerduty_dora.pagerduty.listing import IncidentPage, parse_page
from datadog_checks.pagerduty_dora.pagerduty.transitions import TRANSITION_KINDS

from .faults import Faults
from .server import FakeServer, Reply, Request

DEFAULT_RATE_LIMIT = 960
RATE_LIMIT_WINDOW = 60.0
# Named faults this fake answers, besides any HTTP status (see `faults`).
FAULT_KINDS = ('429_bare', 'timeout', 'truncated', 'bad_json')

_ACCOUNT_OPTIONS = ('subdomain', 'token', 'time_zone', 'now', 'logs_priority_changes', 'index_delay')
# What `history` records, per incident: every transition the collector knows, and the incident's end.
HISTORY_KINDS = TRANSITION_KINDS + ('merged', 'deleted')


def _argsort(times: array) -> array:
    """Positions of `times` (whole seconds) in ascending order, ties in position order, as an array.

    Sorting one float per element (time and position packed into 53 bits) instead of a list of
    positions with a key list keeps a 100,000-incident account's build within a few megabytes.
    """
    if len(times) >= 1 << 22 or any(t >= 1 << 31 or t < 0 for t in times):
        return array('i', sorted(range(len(times)), key=times.__getitem__))
    packed = sorted(array('d', (t * 4194304.0 + i for i, t in enumerate(times))))
    return array('i', (int(k) & 0x3FFFFF for k in packed))


class PagerDutyAccount(demo_account.PagerDutyAccount):
    """The demo's account, in the America/New_York zone and on the machine's clock by default.

    `index_delay` is how many seconds after its time a new log entry first shows in the log lists:
    a number, or a callable given the entry's type (`'acknowledge_log_entry'`...) that returns one.
    It applies to the entries written from then on, so a test may change it before any mutation.
    `logs_priority_changes` makes priority changes write a `priority_change_log_entry`, as a server
    that does not conform would; PagerDuty writes none.

    `history` holds every mutation, in the order made, as `(incident_id, kind, at, detail)`: `kind` is
    one of `HISTORY_KINDS`; `detail` is the new value of a `*_changed` (priority name or None, urgency,
    service id), the survivor's id of a `merged`, else None. A merge is recorded as `resolved` then
    `merged`. Incidents built in bulk by `populate` are not recorded.
    """

    def __init__(
        self,
        *,
        subdomain: str = 'acme',
        token: str = 'sim-token',
        time_zone: str = 'America/New_York',
        now: float | None = None,
        logs_priority_changes: bool = False,
        index_delay: float | Callable[[str], float] = 0.0,
    ) -> None:
        super().__init__(subdomain=subdomain, token=token, time_zone=time_zone, now=time.time() if now is None else now)
        self.logs_priority_changes = logs_priority_changes
        self.index_delay = index_delay
        self.history: list[tuple[str, str, float, Any]] = []
        # Deleted incidents (404 by id, absent from every list) and merged ones (index -> survivor).
        self._deleted: set[int] = set()
        self._merged: dict[int, int] = {}
        # When each entry written with an indexing delay first shows (sequence -> time); an entry
        # leaves this once shown, so the lists filter only while some entry is still being indexed.
        self._unindexed: dict[int, float] = {}

    def _record(self, incident_id: str, kind: str, at: float, detail: Any) -> None:
        super()._record(incident_id, kind, at, detail)
        self.history.append((incident_id, kind, at, detail))

    def index_of(self, incident_id: str) -> int:
        index = super().index_of(incident_id)
        if index in self._deleted:
            raise KeyError('unknown incident id {!r}'.format(incident_id))
        return index

    def exists(self, incident_id: str) -> bool:
        with self.lock:
            try:
                self.index_of(incident_id)
            except KeyError:
                return False
            return True

    # -- late indexing -----------------------------------------------------------------------

    def _log(self, index: int, kind: int, at: float) -> int:
        sequence = super()._log(index, kind, at)
        delay = self.index_delay(LOG_ENTRY_TYPES[kind]) if callable(self.index_delay) else self.index_delay
        if delay > 0:
            self._unindexed[sequence] = at + delay
        return sequence

    def _indexed(self, sequences: Iterable[int]) -> list[int]:
        """The entries of `sequences` that the log lists show by now (callers hold `lock`)."""
        if self._unindexed:
            now = self._now
            for sequence in [s for s, shown in self._unindexed.items() if shown <= now]:
                del self._unindexed[sequence]
        if not self._unindexed:
            return list(sequences)
        hidden = self._unindexed
        return [s for s in sequences if s not in hidden]

    def log_entries(self, since: float | None, until: float | None, **options: Any) -> list[int]:
        rows = self._indexed(super().log_entries(since, until, **options))
        if self._deleted:
            deleted, owner = self._deleted, self._log_incident
            rows = [s for s in rows if owner[s] not in deleted]
        return rows

    def created_in(self, since: float | None, until: float | None, *filters: set[int]) -> array:
        rows = super().created_in(since, until, *filters)
        if self._deleted:
            rows = array('i', (i for i in rows if i not in self._deleted))
        return rows

    # -- more mutations ----------------------------------------------------------------------

    def unacknowledge(self, incident_id: str) -> None:
        """Acknowledged -> triggered, as when an acknowledgement times out."""
        self._transition(incident_id, (ACKNOWLEDGED,), TRIGGERED, UNACK, 'unacknowledged')

    def merge(self, incident_id: str, into_id: str) -> None:
        """Merge an open incident into another: it is resolved with a merge resolve reason."""
        with self.lock:
            survivor = self.index_of(into_id)
            self.resolve(incident_id)
            self._merged[self.index_of(incident_id)] = survivor
            self.history.append((incident_id, 'merged', self._now, into_id))

    def delete(self, incident_id: str) -> None:
        """Remove the incident: `GET /incidents/{id}` answers 404 and no list shows it or its log entries."""
        with self.lock:
            self._deleted.add(self.index_of(incident_id))
            self._record(incident_id, 'deleted', self._now, None)

    def set_priority(self, incident_id: str, name: str | None) -> None:
        """Set or clear the priority. PagerDuty logs no priority change (`logs_priority_changes` makes one)."""
        kind = PRIORITY if self.logs_priority_changes else None
        self._change(incident_id, self._priority, self._priority_index(name), 'priority_changed', name, kind)

    def set_urgency(self, incident_id: str, urgency: str) -> None:
        """Change the urgency; logged as an `urgency_change_log_entry`."""
        if urgency not in URGENCIES:
            raise ValueError('urgency must be one of {}'.format(URGENCIES))
        self._change(incident_id, self._urgency, URGENCIES.index(urgency), 'urgency_changed', urgency, URGENCY)

    def move(self, incident_id: str, service_id: str) -> None:
        """Move the incident to another service (its teams follow the service; no log entry)."""
        self._change(incident_id, self._service, self._service_index(service_id), 'service_changed', service_id, None)

    def _facts(self, index: int, zone: dt.tzinfo) -> IncidentFacts:
        survivor = self._merged.get(index)
        merged_into = None if survivor is None else (survivor + 1, self._titles[survivor])
        return dataclasses.replace(super()._facts(index, zone), merged_into=merged_into)

    # -- reading -----------------------------------------------------------------------------

    def created_at(self, incident_id: str) -> float:
        """When the incident was created (UTC epoch seconds)."""
        with self.lock:
            return self._created[self.index_of(incident_id)]

    def status(self, incident_id: str) -> str:
        with self.lock:
            return STATUSES[self._status[self.index_of(incident_id)]]

    def incident_ids(self) -> list[str]:
        """Every incident id, in creation order."""
        with self.lock:
            return [encode_id(index + 1) for index in self._by_created]

    # -- bulk generation ---------------------------------------------------------------------

    @classmethod
    def generate(
        cls, count: int, start: float, end: float, seed: int = 0, *, services: int = 12, **options: Any
    ) -> 'PagerDutyAccount':
        """A new account (4 teams, `services` services) with `count` incidents created in [start, end).

        `options` are the account's (`token`, `now`..., `now` defaulting to `end`) and `populate`'s
        (`hot_day`, `hot_day_count`, `open_fraction`)."""
        account_options = {name: options.pop(name) for name in _ACCOUNT_OPTIONS if name in options}
        account_options.setdefault('now', end)
        account = cls(**account_options)
        rng = random.Random(seed)
        teams = [account.add_team('Team {}'.format(name)) for name in ('Payments', 'Search', 'Platform', 'Identity')]
        for number in range(services):
            account.add_service('service-{:02d}'.format(number + 1), team_ids=[teams[number % len(teams)]])
        account.populate(count, start, end, seed=rng.randrange(2**32), **options)
        return account

    def populate(
        self,
        count: int,
        start: float,
        end: float,
        seed: int = 0,
        *,
        hot_day: float | None = None,
        hot_day_count: int = 0,
        open_fraction: float = 0.02,
    ) -> None:
        """Add `count` incidents created in [start, end), with their log entries; the 24 hours from
        `hot_day` hold exactly `hot_day_count` of them. Most are resolved; `open_fraction` stay open. Nothing
        happens after `now`. Built in bulk: 100,000 incidents take a few seconds."""
        if not self._services:
            raise ValueError('add at least one service before populating')
        if hot_day_count > count or (hot_day_count and hot_day is None):
            raise ValueError('hot_day_count needs hot_day and must not exceed count')
        rng = random.Random(seed)
        uniform, choices = rng.uniform, rng.random
        if hot_day_count:
            # The hot day holds exactly `hot_day_count`: the others are spread over the rest of the range.
            if hot_day is None or not start <= hot_day <= end - 86400:
                raise ValueError('the hot day must lie within [start, end)')
            created = [int(uniform(start, end - 86400)) for _ in range(count - hot_day_count)]
            created = [at + 86400 if at >= hot_day else at for at in created]
            created += [int(uniform(hot_day, hot_day + 86400)) for _ in range(hot_day_count)]
        else:
            created = [int(uniform(start, end)) for _ in range(count)]
        created.sort()
        titles = ['{} on {}'.format(what, where) for what in _TITLE_WHAT for where in _TITLE_WHERE]
        service_count, now = len(self._services), self._now
        log_time, log_incident, log_kind = self._log_time, self._log_incident, self._log_kind
        with self.lock:
            for created_at in created:
                at = float(min(created_at, now))
                urgency = 0 if choices() < 0.8 else 1
                priority = rng.randrange(len(self.priorities)) if choices() < 0.7 else -1
                index = self._append(at, rng.choice(titles), rng.randrange(service_count), urgency, priority)
                log_time.extend((at, at, at))
                log_incident.extend((index, index, index))
                log_kind.extend((TRIGGER, ASSIGN, NOTIFY))
                duration = 60.0 + int(rng.expovariate(1 / 3600.0))
                resolved_at = at + duration
                stays_open = choices() < open_fraction or resolved_at > now
                acked_at = at + int(duration * choices())
                if choices() < 0.7 and acked_at <= now:
                    self._status[index] = ACKNOWLEDGED
                    self._acked[index] = self._changed[index] = self._updated[index] = acked_at
                    log_time.append(acked_at)
                    log_incident.append(index)
                    log_kind.append(ACK)
                if not stays_open:
                    self._status[index] = RESOLVED
                    self._resolved[index] = self._changed[index] = self._updated[index] = resolved_at
                    log_time.append(resolved_at)
                    log_incident.append(index)
                    log_kind.append(RESOLVE)
            del created
            # Rebuild both time indexes once: existing incidents may be younger than the new ones.
            self._by_created = _argsort(self._created)
            self._created_sorted = array('d', (self._created[i] for i in self._by_created))
            self._log_by_time = _argsort(log_time)
            self._log_time_sorted = array('d', (log_time[i] for i in self._log_by_time))
            self.version += 1


_TITLE_WHAT = (
    'High error rate',
    'Latency above SLO',
    'Disk almost full',
    'Pods crash looping',
    'Queue backlog growing',
)
_TITLE_WHERE = ('checkout', 'search', 'login', 'payments', 'the edge', 'the batch workers')
_RATE_LIMITED = {'error': {'message': 'Rate Limit Exceeded', 'code': 2020}}


class PagerDutySimulator(PagerDutyApi):
    """Serve a `PagerDutyAccount` as PagerDuty's REST API v2 on a loopback port.

    `forbidden_tokens` are valid keys without read access (403). `rate_limit` is the per-minute
    request budget, counted on `clock` (monotonic seconds) in fixed one-minute windows. Every
    answer's `Date` header gives the account's `now`.
    `timeout_delay` is how long a `timeout` fault holds its answer.
    """

    server_class = FakeServer
    account: PagerDutyAccount

    def __init__(
        self,
        account: PagerDutyAccount,
        *,
        forbidden_tokens: Iterable[str] = (),
        rate_limit: int = DEFAULT_RATE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        timeout_delay: float = 3.0,
    ) -> None:
        self.forbidden_tokens = set(forbidden_tokens)
        self.rate_limit = rate_limit
        self.timeout_delay = timeout_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._window_used = 0
        # Requests answered 429 because the minute's budget was spent (injected faults aside), and the
        # fewest requests a minute had left: a client that paces itself meets no 429 and keeps its reserve.
        self.limited = 0
        self.least_remaining: int | None = None
        self.faults = Faults(FAULT_KINDS)
        super().__init__(account)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def count(self, path_prefix: str = '') -> int:
        """How many requests reached the server under `path_prefix` (faults included)."""
        return self.server.count(None, path_prefix)

    # -- request pipeline --------------------------------------------------------------------

    def _guard(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Faults come first, ahead of authentication and the rate limit, as a proxy's would.

        Every route of the demo's table (`routes()`) is served through this.
        """

        def serve(request: Request) -> Reply:
            fault = self.faults.take(request)
            if fault is None:
                return self._answer(request, handler)
            if fault.kind == '429':
                return Reply(429, _RATE_LIMITED, self._rate_headers(remaining=0, reset=fault.reset))
            if fault.kind == '429_bare':
                return Reply(429, _RATE_LIMITED)
            if fault.status is not None:
                return Reply(fault.status, {'error': {'message': HTTPStatus(fault.status).phrase}})
            if fault.kind == 'bad_json':
                return Reply(200, raw=b'{"incidents": [{"id": "P', headers=self._rate_headers())
            answer = self._answer(request, handler)
            reply = Reply(answer.status, answer.body, answer.headers, answer.raw)
            if fault.kind == 'timeout':
                reply.delay = self.timeout_delay
            else:  # truncated
                reply.truncate = True
            return reply

        return serve

    def _knows(self, key: str | None) -> bool:
        return super()._knows(key) or key in self.forbidden_tokens

    def _handle(self, request: Request, handler: Callable[[Request], Any]) -> Any:
        budget = self._spend()
        if budget is None:
            self.limited += 1
            return Reply(429, _RATE_LIMITED, self._rate_headers(remaining=0))
        if token(request) in self.forbidden_tokens:
            handler = _forbidden
        reply = super()._handle(request, handler)
        reply.headers.update(self._rate_headers(remaining=budget))
        return reply

    def _spend(self) -> int | None:
        """Take one request from this minute's budget; return what is left, or None when none was."""
        with self._lock:
            now = self._clock()
            if self._window_start is None or now - self._window_start >= RATE_LIMIT_WINDOW:
                self._window_start, self._window_used = now, 0
            if self._window_used >= self.rate_limit:
                return None
            self._window_used += 1
            remaining = self.rate_limit - self._window_used
            if self.least_remaining is None or remaining < self.least_remaining:
                self.least_remaining = remaining
            return remaining

    def _rate_headers(self, remaining: int | None = None, reset: int | None = None) -> dict[str, str]:
        with self._lock:
            if reset is None:
                start = self._window_start if self._window_start is not None else self._clock()
                reset = max(1, math.ceil(start + RATE_LIMIT_WINDOW - self._clock()))
            if remaining is None:
                remaining = max(0, self.rate_limit - self._window_used)
        return {
            'ratelimit-limit': str(self.rate_limit),
            'ratelimit-remaining': str(remaining),
            'ratelimit-reset': str(reset),
        }


def _forbidden(request: Request) -> Any:
    raise ApiError(403, 'Access Denied', 2010, ['Read access required'])


# The present of the in-process accounts below.
NOW = parse_time('2026-11-20T10:00:00Z')


def small_account(now: float = NOW) -> tuple[PagerDutyAccount, str]:
    """An account in UTC with one service (`Checkout API`, team Payments) and no incident; and the service's id."""
    account = PagerDutyAccount(time_zone='UTC', now=now)
    return account, account.add_service('Checkout API', team_ids=[account.add_team('Payments')])


def raw_incident(number: int, created_at: float, status: str = 'triggered') -> dict:
    """Incident `P{number:05d}` as `GET /incidents/{id}` renders it: created at `created_at` (in UTC), P1,
    acknowledged then or resolved a minute later as `status` says."""
    account, service = small_account(created_at)
    incident_id = account.trigger(service, 'Checkout latency above SLO', priority='P1')
    if status == 'acknowledged':
        account.acknowledge(incident_id)
    elif status == 'resolved':
        account.advance(60)
        account.resolve(incident_id)
    return dict(account.incident(incident_id), id='P{:05d}'.format(number), incident_number=number)


class InProcessPagerDuty(PagerDutyClient):
    """The client's reads answered straight from an account, without HTTP, for the pass and loop tests.

    It stands in for the client whole, so its constructor does not call the client's. Answers are
    what the API serves for the client's requests: log entries newest first without notifications,
    each with its incident; incidents oldest first; `PAGE_SIZE` to a page, `total` when asked; all in
    UTC and dated with the account's `now`. Each request is recorded as a tuple, its name first;
    `unreadable` makes that many next requests fail to read.
    """

    requests_per_run = 500

    def __init__(self, account: PagerDutyAccount | None = None) -> None:
        self.account = small_account()[0] if account is None else account
        self.now: float | None = None
        self.requests: list[tuple[Any, ...]] = []
        self.unreadable = 0
        self.undated = 0
        self.triggers: dict[str, Any] = {}

    def start_run(self) -> None:
        """A run starts: PagerDuty's time is read again from the next answer, as the client's own does."""
        self.now = None

    def _answer(self, request: tuple[Any, ...]) -> None:
        self.requests.append(request)
        if self.unreadable:
            self.unreadable -= 1
            raise UnreadableResponse('PagerDuty', 'the answer is not JSON')
        self.now = self.account.now

    def _incidents(self, rows: Sequence[int], offset: int, with_total: bool = False) -> IncidentPage:
        with self.account.lock:
            page = [self.account.render_incident(i, UTC_ZONE, API_URL, True) for i in rows[offset : offset + PAGE_SIZE]]
        more = offset + PAGE_SIZE < len(rows)
        return parse_page({'incidents': page, 'more': more}, len(rows) if with_total else None)

    def log_entries(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> LogPage:
        self._answer(('log_entries', since, until, offset))
        account = self.account
        with account.lock:
            rows = account.log_entries(since, until, overview=True)
            page = [
                account.render_log_entry(s, UTC_ZONE, API_URL, True, True) for s in rows[offset : offset + PAGE_SIZE]
            ]
        return LogPage(page, offset + PAGE_SIZE < len(rows), len(rows) if with_total else None, offset)

    def list_open(self, offset: int = 0, since: float | None = None, until: float | None = None) -> IncidentPage:
        self._answer(('list_open', offset, since, until))
        with self.account.lock:
            rows = self.account.created_in(since, until, {TRIGGERED, ACKNOWLEDGED}, set(), set())
        return self._incidents(rows, offset)

    def list_created(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> IncidentPage:
        self._answer(('list_created', since, until, offset))
        with self.account.lock:
            rows = self.account.created_in(since, until, set(), set(), set())
        return self._incidents(rows, offset, with_total)

    def get_incident(self, incident_id: str) -> dict | None:
        self._answer(('get_incident', incident_id))
        with self.account.lock:
            try:
                index = self.account.index_of(incident_id)
            except KeyError:
                return None
            return self.account.render_incident(index, UTC_ZONE, API_URL, True)

    def incident_log(
        self, incident_id: str, since: float | None = None, before_page: Callable[[], None] | None = None
    ) -> list[LogEntry]:
        """The incident's status entries from `since` on, oldest first, in one request (every page at once)."""
        if before_page is not None:
            before_page()
        self._answer(('incident_log', incident_id, since))
        account = self.account
        with account.lock:
            try:
                index = account.index_of(incident_id)
            except KeyError:
                return []
            until = None if since is None else since + MAX_WINDOW
            rows = account.log_entries(since, until, incident=index, overview=True)
            raw = [account.render_log_entry(s, UTC_ZONE, API_URL, False, True) for s in rows]
        entries = [entry for entry in map(parse_log_entry, raw) if entry is not None]
        entries.reverse()
        entries.sort(key=lambda entry: entry.at)
        self._remember_trigger(incident_id, entries)
        return entries


__all__ = [
    'FAULT_KINDS',
    'HISTORY_KINDS',
    'NOW',
    'InProcessPagerDuty',
    'PagerDutyAccount',
    'PagerDutySimulator',
    'raw_incident',
    'small_account',
]
