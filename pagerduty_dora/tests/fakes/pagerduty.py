# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A simulated PagerDuty account and a loopback fake of the parts of its REST API v2 the check reads.

`PagerDutyAccount` is the world: services, teams, priorities and incidents, with a clock that only
moves when told to, and mutations (trigger, acknowledge, resolve, reopen...) that write log entries
the way PagerDuty does, including what PagerDuty does *not* log: a reopen leaves only the
assignment it makes, a priority change, a service move or a merge leave nothing. A log entry may be
indexed late (`index_delay`): PagerDuty's log lists show it only some seconds after its time, while
the incident object is always current. `history` records every mutation in order, the ground truth
a test compares the collector's output with.

`PagerDutySimulator` serves an account over HTTP on 127.0.0.1 and keeps the real API's edges sharp,
because those are what the collector must survive:

- `since`/`until` on `GET /incidents` filter on *creation* time; a naive timestamp is read in the
  *account* time zone; times are rendered in the account zone unless `time_zone` says otherwise;
- no `since`/`until` means the last 30 days; a range over 6 months is a 400;
- `limit` is capped at 100; `offset + limit` past 10,000 is a 400 with code 2002;
- log entries come newest first;
- `ratelimit-*` headers on every answer, 429 past the per-minute budget, and injected faults
  (429 with and without headers, 5xx, slow answers, cut bodies, bad JSON) through `faults`;
- a `Date` header on every answer with the account's `now`, not the machine's clock.

It renders incidents and log entries with the demo's `Renderer`, so both speak the same JSON.

Incidents are stored column-wise (arrays indexed by incident number) and rendered to JSON only
when a page is served, so an account of 100,000 incidents costs a few megabytes.

    account = PagerDutyAccount(now=parse_time('2026-11-26T12:00:00Z'))
    api = account.add_service('checkout-api', team_ids=[account.add_team('Payments')])
    incident_id = account.trigger(api, 'Checkout errors', priority='P1')
    with PagerDutySimulator(account) as pagerduty:
        ...  # point a client at pagerduty.url with `Authorization: Token token=<account.token>`
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import math
import random
import threading
import time
from array import array
from http import HTTPStatus
from typing import Any, Callable, Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.demo.pagerduty import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OVERVIEW_KINDS,
    PagerDutyApi,
    with_trigger,
)
from datadog_checks.pagerduty_dora.demo.rendering import (
    ACK,
    ASSIGN,
    ENTITY_BASE,
    LOG_ENTRY_TYPES,
    NOTIFY,
    PRIORITY,
    RESOLVE,
    RESPONDER,
    STATUSES,
    TRIGGER,
    UNACK,
    URGENCIES,
    URGENCY,
    IncidentFacts,
    Renderer,
    decode_id,
    encode_id,
    priorities,
)
from datadog_checks.pagerduty_dora.pagerduty.transitions import TRANSITION_KINDS

from .faults import Faults
from .server import FakeServer, Reply, Request

_TRIGGERED, _ACKNOWLEDGED, _RESOLVED = range(3)

MAX_OFFSET_PLUS_LIMIT = 10000
DEFAULT_RANGE = 30 * 86400
MAX_RANGE_MONTHS = 6
DEFAULT_RATE_LIMIT = 960
RATE_LIMIT_WINDOW = 60.0
# Named faults this fake answers, besides any HTTP status (see `faults`).
FAULT_KINDS = ('429_bare', 'timeout', 'truncated', 'bad_json')

_UTC = dt.timezone.utc
_ACCOUNT_OPTIONS = ('subdomain', 'token', 'time_zone', 'now', 'logs_priority_changes', 'index_delay')
# What `history` records, per incident: every transition the collector knows, and the incident's end.
HISTORY_KINDS = TRANSITION_KINDS + ('merged', 'deleted')
_NONE = math.nan  # "no time" in the float columns


def _present(value: float) -> bool:
    return value == value  # NaN marks an absent time


def _argsort(times: array) -> array:
    """Positions of `times` (whole seconds) in ascending order, ties in position order, as an array.

    Sorting one float per element (time and position packed into 53 bits) instead of a list of
    positions with a key list keeps a 100,000-incident account's build within a few megabytes.
    """
    if len(times) >= 1 << 22 or any(t >= 1 << 31 or t < 0 for t in times):
        return array('i', sorted(range(len(times)), key=times.__getitem__))
    packed = sorted(array('d', (t * 4194304.0 + i for i, t in enumerate(times))))
    return array('i', (int(k) & 0x3FFFFF for k in packed))


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class ApiError(Exception):
    """A request the real API would refuse; becomes a PagerDuty-shaped error body."""

    def __init__(self, status: int, message: str, code: int, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reply = Reply(
            status, {'error': dict({'message': message, 'code': code}, **({'errors': list(errors)} if errors else {}))}
        )


def _invalid(detail: str) -> ApiError:
    return ApiError(400, 'Invalid Input Provided', 2001, [detail])


class PagerDutyAccount:
    """One PagerDuty account: services, teams, priorities, incidents and their log entries.

    Times are UTC epoch seconds. `now` only moves when set or advanced; every mutation stamps it.
    Thread-safe: the HTTP fake reads while a test or the demo mutates.

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
        self.subdomain = subdomain
        self.logs_priority_changes = logs_priority_changes
        self.index_delay = index_delay
        self.history: list[tuple[str, str, float, Any]] = []
        self.token = token
        self.time_zone = ZoneInfo(time_zone)
        self._now = float(int(time.time() if now is None else now))
        self.lock = threading.RLock()
        self.version = 0  # bumped by every change, so cached query results know they are stale
        self._services: list[dict[str, Any]] = []  # {'id', 'name', 'team_ids'}
        self._teams: list[dict[str, str]] = []
        self.priorities = priorities()
        self.responder = RESPONDER
        # Incident columns, index = incident number - 1.
        self._created = array('d')
        self._updated = array('d')
        self._changed = array('d')
        self._acked = array('d')
        self._resolved = array('d')
        self._status = array('b')
        self._urgency = array('b')
        self._priority = array('b')  # index into `priorities`, -1 for none
        self._service = array('H')
        self._titles: list[str] = []
        # Deleted incidents (404 by id, absent from every list) and merged ones (index -> survivor).
        self._deleted: set[int] = set()
        self._merged: dict[int, int] = {}
        # What the monitoring tool sent for the incidents it opened (index -> Events API v2 fields).
        self._events: dict[int, dict[str, Any]] = {}
        # Incident indexes in creation order, with their creation times, for bisecting a range.
        self._by_created = array('i')
        self._created_sorted = array('d')
        # Log entry columns, index = log entry sequence; plus their order by time.
        self._log_time = array('d')
        self._log_incident = array('i')
        self._log_kind = array('b')
        self._log_by_time = array('i')
        self._log_time_sorted = array('d')
        # When each entry written with an indexing delay first shows (sequence -> time); an entry
        # leaves this once shown, so the lists filter only while some entry is still being indexed.
        self._unindexed: dict[int, float] = {}

    # -- clock -------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        with self.lock:
            self._now = float(int(value))

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new `now`."""
        with self.lock:
            self._now = float(int(self._now + seconds))
            return self._now

    # -- services, teams, priorities ---------------------------------------------------------

    def add_team(self, name: str) -> str:
        """Create a team and return its id."""
        with self.lock:
            team_id = encode_id(ENTITY_BASE['team'] + len(self._teams))
            self._teams.append({'id': team_id, 'name': name})
            return team_id

    def add_service(self, name: str, team_ids: Iterable[str] = ()) -> str:
        """Create a service (its escalation policy belongs to `team_ids`) and return its id."""
        with self.lock:
            known = {team['id'] for team in self._teams}
            team_ids = list(team_ids)
            unknown = [t for t in team_ids if t not in known]
            if unknown:
                raise KeyError('unknown team ids: {}'.format(unknown))
            service_id = encode_id(ENTITY_BASE['service'] + len(self._services))
            self._services.append({'id': service_id, 'name': name, 'team_ids': team_ids})
            return service_id

    @property
    def services(self) -> list[dict[str, Any]]:
        return [dict(s, html_url=self.service_url(s['id'])) for s in self._services]

    @property
    def teams(self) -> list[dict[str, str]]:
        return [dict(t) for t in self._teams]

    def service_url(self, service_id: str) -> str:
        return 'https://{}.pagerduty.com/service-directory/{}'.format(self.subdomain, service_id)

    def _service_index(self, service_id: str) -> int:
        for index, service in enumerate(self._services):
            if service['id'] == service_id:
                return index
        raise KeyError('unknown service id {!r}'.format(service_id))

    def _priority_index(self, name: str | None) -> int:
        if name is None:
            return -1
        for index, (_, priority_name) in enumerate(self.priorities):
            if priority_name == name:
                return index
        raise KeyError('unknown priority {!r}'.format(name))

    # -- incidents ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._titles)

    def _index(self, incident_id: str) -> int:
        number = decode_id(incident_id)
        if number is None or not 1 <= number <= len(self._titles) or number - 1 in self._deleted:
            raise KeyError('unknown incident id {!r}'.format(incident_id))
        return number - 1

    def exists(self, incident_id: str) -> bool:
        with self.lock:
            try:
                self._index(incident_id)
            except KeyError:
                return False
            return True

    def trigger(
        self,
        service_id: str,
        title: str,
        urgency: str = 'high',
        priority: str | None = None,
        created_at: float | None = None,
        event: dict[str, Any] | None = None,
    ) -> str:
        """Open a new incident on a service and return its id; `created_at` defaults to `now`.

        `event` is what the monitoring tool sent (see `rendering.datadog_event`): PagerDuty keeps it on the
        incident's alert and first trigger entry. Without it the incident was made by hand and has no alert.
        """
        if urgency not in URGENCIES:
            raise ValueError('urgency must be one of {}'.format(URGENCIES))
        with self.lock:
            at = self._now if created_at is None else float(int(created_at))
            index = self._append(
                at, title, self._service_index(service_id), URGENCIES.index(urgency), self._priority_index(priority)
            )
            position = bisect.bisect_right(self._created_sorted, at)
            self._created_sorted.insert(position, at)
            self._by_created.insert(position, index)
            if event is not None:
                self._events[index] = event
            for kind in (TRIGGER, ASSIGN, NOTIFY):
                self._log(index, kind, at)
            self.version += 1
            incident_id = encode_id(index + 1)
            self.history.append((incident_id, 'triggered', at, None))
            return incident_id

    def _append(self, at: float, title: str, service: int, urgency: int, priority: int) -> int:
        self._created.append(at)
        self._updated.append(at)
        self._changed.append(at)
        self._acked.append(_NONE)
        self._resolved.append(_NONE)
        self._status.append(_TRIGGERED)
        self._urgency.append(urgency)
        self._priority.append(priority)
        self._service.append(service)
        self._titles.append(title)
        return len(self._titles) - 1

    def _log(self, index: int, kind: int, at: float) -> None:
        sequence = len(self._log_time)
        self._log_time.append(at)
        self._log_incident.append(index)
        self._log_kind.append(kind)
        position = bisect.bisect_right(self._log_time_sorted, at)
        self._log_time_sorted.insert(position, at)
        self._log_by_time.insert(position, sequence)
        delay = self.index_delay(LOG_ENTRY_TYPES[kind]) if callable(self.index_delay) else self.index_delay
        if delay > 0:
            self._unindexed[sequence] = at + delay

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

    def _transition(self, incident_id: str, allowed_from: tuple[int, ...], to: int, kind: int, name: str) -> None:
        with self.lock:
            index = self._index(incident_id)
            current = self._status[index]
            if current not in allowed_from:
                raise ValueError(
                    'incident {} is {}; cannot go to {}'.format(incident_id, STATUSES[current], STATUSES[to])
                )
            now = self._now
            self._status[index] = to
            self._changed[index] = now
            self._updated[index] = now
            if to == _ACKNOWLEDGED:
                self._acked[index] = now
            elif to == _TRIGGERED:
                self._acked[index] = _NONE
            if to == _RESOLVED:
                self._resolved[index] = now
            else:
                self._resolved[index] = _NONE
            self._log(index, kind, now)
            self.version += 1
            self.history.append((incident_id, name, now, None))

    def acknowledge(self, incident_id: str) -> None:
        """Triggered (or already acknowledged: a re-acknowledge) -> acknowledged."""
        self._transition(incident_id, (_TRIGGERED, _ACKNOWLEDGED), _ACKNOWLEDGED, ACK, 'acknowledged')

    def unacknowledge(self, incident_id: str) -> None:
        """Acknowledged -> triggered, as when an acknowledgement times out."""
        self._transition(incident_id, (_ACKNOWLEDGED,), _TRIGGERED, UNACK, 'unacknowledged')

    def resolve(self, incident_id: str) -> None:
        """Triggered or acknowledged -> resolved."""
        self._transition(incident_id, (_TRIGGERED, _ACKNOWLEDGED), _RESOLVED, RESOLVE, 'resolved')

    def reopen(self, incident_id: str) -> None:
        """Resolved -> triggered. PagerDuty logs no reopen, only the assignment every reopen makes."""
        self._transition(incident_id, (_RESOLVED,), _TRIGGERED, ASSIGN, 'reopened')

    def merge(self, incident_id: str, into_id: str) -> None:
        """Merge an open incident into another: it is resolved with a merge resolve reason."""
        with self.lock:
            survivor = self._index(into_id)
            self.resolve(incident_id)
            self._merged[self._index(incident_id)] = survivor
            self.history.append((incident_id, 'merged', self._now, into_id))

    def delete(self, incident_id: str) -> None:
        """Remove the incident: `GET /incidents/{id}` answers 404 and no list shows it or its log entries."""
        with self.lock:
            self._deleted.add(self._index(incident_id))
            self.version += 1
            self.history.append((incident_id, 'deleted', self._now, None))

    def _change(self, incident_id: str, column: array, value: int, name: str, detail: Any, kind: int | None) -> None:
        with self.lock:
            index = self._index(incident_id)
            column[index] = value
            self._updated[index] = self._now
            if kind is not None:
                self._log(index, kind, self._now)
            self.version += 1
            self.history.append((incident_id, name, self._now, detail))

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

    def created_at(self, incident_id: str) -> float:
        """When the incident was created (UTC epoch seconds)."""
        with self.lock:
            return self._created[self._index(incident_id)]

    def status(self, incident_id: str) -> str:
        with self.lock:
            return STATUSES[self._status[self._index(incident_id)]]

    def incident(self, incident_id: str, *, time_zone: str = 'UTC', api_url: str = 'https://api.pagerduty.com') -> dict:
        """The incident as `GET /incidents/{id}` renders it (in UTC unless told otherwise)."""
        with self.lock:
            return self._render_incident(self._index(incident_id), ZoneInfo(time_zone), api_url)

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
                    self._status[index] = _ACKNOWLEDGED
                    self._acked[index] = self._changed[index] = self._updated[index] = acked_at
                    log_time.append(acked_at)
                    log_incident.append(index)
                    log_kind.append(ACK)
                if not stays_open:
                    self._status[index] = _RESOLVED
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

    # -- queries (used by the HTTP fake; callers hold `lock`) ---------------------------------

    def _created_range(self, since: float | None, until: float | None) -> tuple[int, int]:
        low = 0 if since is None else bisect.bisect_left(self._created_sorted, since)
        high = len(self._created_sorted) if until is None else bisect.bisect_left(self._created_sorted, until)
        return low, max(low, high)

    def _matches(self, index: int, statuses: set[int], services: set[int], urgencies: set[int]) -> bool:
        return (
            index not in self._deleted
            and (not statuses or self._status[index] in statuses)
            and (not services or self._service[index] in services)
            and (not urgencies or self._urgency[index] in urgencies)
        )

    def _team_services(self, team_ids: Sequence[str]) -> set[int]:
        wanted = set(team_ids)
        return {i for i, s in enumerate(self._services) if wanted.intersection(s['team_ids'])}

    # -- rendering ---------------------------------------------------------------------------

    def _time(self, epoch: float, zone: dt.tzinfo) -> str | None:
        if not _present(epoch):
            return None
        if zone is _UTC_ZONE:
            return format_time(epoch)
        return dt.datetime.fromtimestamp(int(epoch), zone).isoformat(timespec='seconds')

    def _renderer(self, api_url: str) -> Renderer:
        return Renderer(self.subdomain, api_url, self._services, {t['id']: t['name'] for t in self._teams})

    def _render_incident(self, index: int, zone: dt.tzinfo, api_url: str, with_trigger: bool = False) -> dict:
        return self._renderer(api_url).incident(self._facts(index, zone), with_trigger)

    def render_alerts(self, index: int, api_url: str) -> list[dict]:
        return self._renderer(api_url).alerts(self._facts(index, _UTC))

    def _facts(self, index: int, zone: dt.tzinfo) -> IncidentFacts:
        survivor = self._merged.get(index)
        return IncidentFacts(
            number=index + 1,
            title=self._titles[index],
            status=STATUSES[self._status[index]],
            urgency=URGENCIES[self._urgency[index]],
            priority=self.priorities[self._priority[index]] if self._priority[index] >= 0 else None,
            created=self._time(self._created[index], zone),
            updated=self._time(self._updated[index], zone),
            changed=self._time(self._changed[index], zone),
            acked=self._time(self._acked[index], zone),
            resolved=self._time(self._resolved[index], zone),
            service=self._service[index],
            merged_into=None if survivor is None else (survivor + 1, self._titles[survivor]),
            event=self._events.get(index),
        )

    def _render_log_entry(
        self, sequence: int, zone: dt.tzinfo, api_url: str, with_incident: bool, channels: bool = False
    ) -> dict:
        """A log entry; `channels` (`include[]=channels`) gives a trigger entry the whole event that opened it."""
        index, renderer = self._log_incident[sequence], self._renderer(api_url)
        title = self._titles[index]
        if with_incident:
            incident = self._render_incident(index, zone, api_url)
        else:
            incident = renderer.incident_reference(index + 1, title)
        at = self._time(self._log_time[sequence], zone)
        kind = self._log_kind[sequence]
        entry = renderer.log_entry(sequence, kind, at, self._service[index], title, incident)
        if channels and kind == TRIGGER:
            entry['channel'] = renderer.trigger_channel(self._facts(index, zone))
        return entry


_UTC_ZONE = ZoneInfo('UTC')
_TITLE_WHAT = (
    'High error rate',
    'Latency above SLO',
    'Disk almost full',
    'Pods crash looping',
    'Queue backlog growing',
)
_TITLE_WHERE = ('checkout', 'search', 'login', 'payments', 'the edge', 'the batch workers')


class PagerDutySimulator(PagerDutyApi):
    """Serve a `PagerDutyAccount` as PagerDuty's REST API v2 on a loopback port.

    `forbidden_tokens` are valid keys without read access (403). `rate_limit` is the per-minute
    request budget, counted on `clock` (monotonic seconds) in fixed one-minute windows. Every
    answer's `Date` header gives the account's `now`.
    `timeout_delay` is how long a `timeout` fault holds its answer.
    """

    server_class = FakeServer

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
        self._query_cache: dict[tuple, array] = {}
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
            reply = self._answer(request, handler)
            if fault.kind == 'timeout':
                reply.delay = self.timeout_delay
            else:  # truncated
                reply.truncate = True
            return reply

        return serve

    def _answer(self, request: Request, handler: Callable[[Request], Any]) -> Any:
        token = _token(request.headers.get('authorization', ''))
        if token != self.account.token and token not in self.forbidden_tokens:
            return Reply(401, {'error': {'message': 'Authentication failed', 'code': 2006}})
        budget = self._spend()
        if budget is None:
            self.limited += 1
            return Reply(429, _RATE_LIMITED, self._rate_headers(remaining=0))
        if token in self.forbidden_tokens:
            reply = Reply(
                403, {'error': {'message': 'Access Denied', 'code': 2010, 'errors': ['Read access required']}}
            )
        else:
            try:
                with self.account.lock:
                    reply = handler(request)
            except ApiError as e:
                reply = e.reply
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

    # -- parameters --------------------------------------------------------------------------

    def _zone(self, request: Request) -> dt.tzinfo:
        name = request.arg('time_zone')
        if not name:
            return self.account.time_zone
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise _invalid('Time zone is invalid.') from None
        return _UTC_ZONE if name in ('UTC', 'Etc/UTC') else zone

    def _moment(self, text: str) -> float:
        """Read a `since`/`until` value; one without an offset is in the account's time zone."""
        try:
            moment = dt.datetime.fromisoformat(text.strip().replace('Z', '+00:00').replace('z', '+00:00'))
        except ValueError:
            raise _invalid('{} is invalid.'.format(text)) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.account.time_zone)
        return moment.timestamp()

    def _window(self, request: Request, default_range: bool = True) -> tuple[float | None, float | None]:
        if request.arg('date_range') == 'all':
            return None, None
        since_text, until_text = request.arg('since'), request.arg('until')
        if not since_text and not until_text and not default_range:
            return None, None
        until = self._moment(until_text) if until_text else self.account.now + 1
        since = self._moment(since_text) if since_text else until - DEFAULT_RANGE
        if since > until:
            raise _invalid('since must be before until.')
        # The real message is as unhelpful as this; the client must not rely on its text.
        if until > _add_months(dt.datetime.fromtimestamp(since, _UTC), MAX_RANGE_MONTHS).timestamp():
            raise _invalid(' is invalid.')
        return since, until

    def _paging(self, request: Request) -> tuple[int, int]:
        try:
            limit = int(request.arg('limit') or DEFAULT_LIMIT)
            offset = int(request.arg('offset') or 0)
        except ValueError:
            raise _invalid('limit and offset must be integers.') from None
        if limit < 1 or offset < 0:
            raise _invalid('limit must be positive and offset not negative.')
        limit = min(limit, MAX_LIMIT)  # capped silently; the answer's `limit` says what was used
        if offset + limit > MAX_OFFSET_PLUS_LIMIT:
            raise ApiError(
                400,
                'Arguments Caused Error',
                2002,
                [
                    'Offset+limit exceeds maximum allowed value of 10000. Please try to refine your search to '
                    'reduce the returned set of records below this number, like adding a date range.'
                ],
            )
        return limit, offset

    def _page(self, request: Request, key: str, rows: Sequence[int], render: Callable[[int], dict]) -> Reply:
        limit, offset = self._paging(request)
        page = [render(row) for row in rows[offset : offset + limit]]
        total = len(rows)
        return Reply(
            200,
            {
                key: page,
                'limit': limit,
                'offset': offset,
                'total': total if request.arg('total') == 'true' else None,
                'more': offset + len(page) < total,
            },
        )

    # -- handlers ----------------------------------------------------------------------------

    def _list_incidents(self, request: Request) -> Reply:
        account = self.account
        zone = self._zone(request)
        since, until = self._window(request, default_range=True)
        statuses = _choices(request.args('statuses'), STATUSES, 'statuses')
        urgencies = _choices(request.args('urgencies'), URGENCIES, 'urgencies')
        service_ids = set(request.args('service_ids'))
        services = {i for i, s in enumerate(account._services) if s['id'] in service_ids}
        if service_ids and not services:
            services = {-1}  # unknown ids match nothing rather than everything
        if request.args('team_ids'):
            team_services = account._team_services(request.args('team_ids')) or {-1}
            services = services & team_services if services else team_services
        sort_by = request.arg('sort_by') or 'created_at'
        field, _, direction = sort_by.partition(':')
        if field not in ('created_at', 'incident_number', 'resolved_at') or direction not in ('', 'asc', 'desc'):
            raise _invalid('sort_by {} is invalid.'.format(sort_by))
        key = (
            account.version,
            since,
            until,
            tuple(sorted(statuses)),
            tuple(sorted(services)),
            tuple(sorted(urgencies)),
            field,
        )
        rows = self._query_cache.get(key)
        if rows is None:
            low, high = account._created_range(since, until)
            window = account._by_created[low:high]
            if statuses or services or urgencies or account._deleted:
                window = array('i', (i for i in window if account._matches(i, statuses, services, urgencies)))
            if field == 'incident_number':
                window = array('i', sorted(window))
            elif field == 'resolved_at':
                # Open incidents have no resolve: they come after every resolved one, in creation order.
                resolved = account._resolved
                done = sorted((i for i in window if not math.isnan(resolved[i])), key=resolved.__getitem__)
                window = array('i', done + [i for i in window if math.isnan(resolved[i])])
            rows = window
            if len(self._query_cache) > 16:
                self._query_cache.clear()
            self._query_cache[key] = rows
        if direction == 'desc':
            rows = rows[::-1]
        trigger = with_trigger(request)
        return self._page(request, 'incidents', rows, lambda i: account._render_incident(i, zone, self.url, trigger))

    def _get_incident(self, request: Request) -> Reply:
        try:
            index = self.account._index(request.match['id'])
        except KeyError:
            raise ApiError(404, 'Not Found', 2100) from None
        incident = self.account._render_incident(index, self._zone(request), self.url, with_trigger(request))
        return Reply(200, {'incident': incident})

    def _incident_alerts(self, request: Request) -> Reply:
        """`GET /incidents/{id}/alerts`, oldest first: the alert that opened the incident, if a monitoring tool did."""
        try:
            index = self.account._index(request.match['id'])
        except KeyError:
            raise ApiError(404, 'Not Found', 2100) from None
        alerts = self.account.render_alerts(index, self.url)
        return self._page(request, 'alerts', range(len(alerts)), lambda i: alerts[i])

    def _log_rows(
        self, request: Request, sequences: Sequence[int], times: Sequence[float], default_range: bool
    ) -> list[int]:
        since, until = self._window(request, default_range=default_range)
        low = 0 if since is None else bisect.bisect_left(times, since)
        high = len(times) if until is None else bisect.bisect_left(times, until)
        rows = self.account._indexed(sequences[low:high])
        if request.arg('is_overview') == 'true':
            kinds = self.account._log_kind
            rows = [s for s in rows if kinds[s] in OVERVIEW_KINDS]
        if self.account._deleted:
            deleted, owner = self.account._deleted, self.account._log_incident
            rows = [s for s in rows if owner[s] not in deleted]
        rows.reverse()  # PagerDuty lists log entries newest first
        return rows

    def _list_log_entries(self, request: Request) -> Reply:
        account = self.account
        rows = self._log_rows(request, account._log_by_time, account._log_time_sorted, default_range=True)
        if request.args('team_ids'):
            services = account._team_services(request.args('team_ids'))
            rows = [s for s in rows if account._service[account._log_incident[s]] in services]
        return self._render_log_page(request, rows)

    def _incident_log_entries(self, request: Request) -> Reply:
        account = self.account
        try:
            index = account._index(request.match['id'])
        except KeyError:
            raise ApiError(404, 'Not Found', 2100) from None
        mine = [s for s in account._log_by_time if account._log_incident[s] == index]
        times = [account._log_time[s] for s in mine]
        return self._render_log_page(request, self._log_rows(request, mine, times, default_range=False))

    def _render_log_page(self, request: Request, rows: Sequence[int]) -> Reply:
        zone = self._zone(request)
        include = request.args('include')
        with_incident, channels = 'incidents' in include, 'channels' in include
        return self._page(
            request,
            'log_entries',
            rows,
            lambda s: self.account._render_log_entry(s, zone, self.url, with_incident, channels),
        )


_RATE_LIMITED = {'error': {'message': 'Rate Limit Exceeded', 'code': 2020}}


def _token(header: str) -> str | None:
    scheme, _, value = header.partition(' ')
    if scheme.lower() != 'token' or not value.startswith('token='):
        return None
    return value[len('token=') :].strip()


def _choices(values: list[str], allowed: Sequence[str], name: str) -> set[int]:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise _invalid('{} {} is invalid.'.format(name, unknown[0]))
    return {allowed.index(v) for v in values}


__all__ = ['FAULT_KINDS', 'LOG_ENTRY_TYPES', 'PagerDutyAccount', 'PagerDutySimulator']
