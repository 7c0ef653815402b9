# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A simulated PagerDuty account: services, teams, priorities, incidents and their log entries.

The account has a clock that only moves when told to, and mutations (trigger, acknowledge,
resolve, reopen, priority change) that write log entries the way PagerDuty does, including what
PagerDuty does *not* log: a reopen leaves only the assignment it makes, a priority change nothing.
Incidents and log entries become PagerDuty's JSON through `rendering.Renderer`, in the account's
time zone or the one a request names. `pagerduty.PagerDutyApi` serves an account over HTTP.

Incidents are stored column-wise (arrays indexed by incident number) and rendered to JSON only
when a page is served, so an account of 100,000 incidents costs a few megabytes.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
from array import array
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from datadog_checks.pagerduty_dora.common.times import format_time

from .rendering import (
    ACK,
    ASSIGN,
    ENTITY_BASE,
    LOG_ENTRY_TYPES,
    NOTIFY,
    RESOLVE,
    STATUSES,
    TRIGGER,
    URGENCIES,
    IncidentFacts,
    Renderer,
    decode_id,
    encode_id,
    priorities,
)

TRIGGERED, ACKNOWLEDGED, RESOLVED = range(3)
# The log entry kinds `is_overview=true` lists: all but the notifications.
OVERVIEW_KINDS = frozenset(kind for kind in range(len(LOG_ENTRY_TYPES)) if kind != NOTIFY)
UTC_ZONE = ZoneInfo('UTC')
# Where PagerDuty's REST API lives: the address its answers name when not served from elsewhere.
API_URL = 'https://api.pagerduty.com'
NO_TIME = math.nan  # "no time" in the float columns


class PagerDutyAccount:
    """One PagerDuty account: services, teams, priorities, incidents and their log entries.

    Times are UTC epoch seconds. `now` only moves when set or advanced; every mutation stamps it.
    Thread-safe: the HTTP server reads while the demo mutates. `version` is bumped by every change,
    so cached query results know they are stale.
    """

    def __init__(
        self, *, subdomain: str = 'acme', token: str = 'sim-token', time_zone: str = 'UTC', now: float = 0.0
    ) -> None:
        self.subdomain = subdomain
        self.token = token
        self.time_zone = ZoneInfo(time_zone)
        self._now = float(int(now))
        self.lock = threading.RLock()
        self.version = 0
        self.priorities = priorities()
        self._services: list[dict[str, Any]] = []  # {'id', 'name', 'team_ids'}
        self._teams: list[dict[str, str]] = []
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
        """Every service: id, name, team ids and page URL."""
        return [dict(s, html_url=self.service_url(s['id'])) for s in self._services]

    @property
    def teams(self) -> list[dict[str, str]]:
        """Every team: id and name."""
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

    def index_of(self, incident_id: str) -> int:
        """The incident's index; a KeyError for an id no list shows."""
        number = decode_id(incident_id)
        if number is None or not 1 <= number <= len(self._titles):
            raise KeyError('unknown incident id {!r}'.format(incident_id))
        return number - 1

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
            incident_id = encode_id(index + 1)
            self._record(incident_id, 'triggered', at, None)
            return incident_id

    def _append(self, at: float, title: str, service: int, urgency: int, priority: int) -> int:
        self._created.append(at)
        self._updated.append(at)
        self._changed.append(at)
        self._acked.append(NO_TIME)
        self._resolved.append(NO_TIME)
        self._status.append(TRIGGERED)
        self._urgency.append(urgency)
        self._priority.append(priority)
        self._service.append(service)
        self._titles.append(title)
        return len(self._titles) - 1

    def _log(self, index: int, kind: int, at: float) -> int:
        """Write a log entry of the incident at `index`; return its sequence."""
        sequence = len(self._log_time)
        self._log_time.append(at)
        self._log_incident.append(index)
        self._log_kind.append(kind)
        position = bisect.bisect_right(self._log_time_sorted, at)
        self._log_time_sorted.insert(position, at)
        self._log_by_time.insert(position, sequence)
        return sequence

    def _record(self, incident_id: str, kind: str, at: float, detail: Any) -> None:
        """Every mutation ends here, with what it did (`kind`) and the new value it set (`detail`)."""
        self.version += 1

    def _transition(self, incident_id: str, allowed_from: tuple[int, ...], to: int, kind: int, name: str) -> None:
        with self.lock:
            index = self.index_of(incident_id)
            current = self._status[index]
            if current not in allowed_from:
                raise ValueError(
                    'incident {} is {}; cannot go to {}'.format(incident_id, STATUSES[current], STATUSES[to])
                )
            now = self._now
            self._status[index] = to
            self._changed[index] = now
            self._updated[index] = now
            if to == ACKNOWLEDGED:
                self._acked[index] = now
            elif to == TRIGGERED:
                self._acked[index] = NO_TIME
            self._resolved[index] = now if to == RESOLVED else NO_TIME
            self._log(index, kind, now)
            self._record(incident_id, name, now, None)

    def acknowledge(self, incident_id: str) -> None:
        """Triggered (or already acknowledged: a re-acknowledge) -> acknowledged."""
        self._transition(incident_id, (TRIGGERED, ACKNOWLEDGED), ACKNOWLEDGED, ACK, 'acknowledged')

    def resolve(self, incident_id: str) -> None:
        """Triggered or acknowledged -> resolved."""
        self._transition(incident_id, (TRIGGERED, ACKNOWLEDGED), RESOLVED, RESOLVE, 'resolved')

    def reopen(self, incident_id: str) -> None:
        """Resolved -> triggered. PagerDuty logs no reopen, only the assignment every reopen makes."""
        self._transition(incident_id, (RESOLVED,), TRIGGERED, ASSIGN, 'reopened')

    def _change(self, incident_id: str, column: array, value: int, name: str, detail: Any, kind: int | None) -> None:
        with self.lock:
            index = self.index_of(incident_id)
            column[index] = value
            self._updated[index] = self._now
            if kind is not None:
                self._log(index, kind, self._now)
            self._record(incident_id, name, self._now, detail)

    def set_priority(self, incident_id: str, name: str | None) -> None:
        """Set or clear the priority. PagerDuty logs no priority change: only re-reading the incident shows it."""
        self._change(incident_id, self._priority, self._priority_index(name), 'priority_changed', name, None)

    def incident(self, incident_id: str, *, time_zone: str = 'UTC', api_url: str = API_URL) -> dict:
        """The incident as `GET /incidents/{id}` renders it (in UTC unless told otherwise)."""
        with self.lock:
            return self.render_incident(self.index_of(incident_id), ZoneInfo(time_zone), api_url)

    # -- queries (used by the API; callers hold `lock`) --------------------------------------

    def created_in(
        self, since: float | None, until: float | None, statuses: set[int], services: set[int], urgencies: set[int]
    ) -> array:
        """Indexes of the incidents created in [since, until), oldest first, with one of the statuses,
        services and urgencies asked (each: any when empty)."""
        low = 0 if since is None else bisect.bisect_left(self._created_sorted, since)
        high = len(self._created_sorted) if until is None else bisect.bisect_left(self._created_sorted, until)
        window = self._by_created[low : max(low, high)]
        if statuses or services or urgencies:
            window = array('i', (i for i in window if self._matches(i, statuses, services, urgencies)))
        return window

    def _matches(self, index: int, statuses: set[int], services: set[int], urgencies: set[int]) -> bool:
        return (
            (not statuses or self._status[index] in statuses)
            and (not services or self._service[index] in services)
            and (not urgencies or self._urgency[index] in urgencies)
        )

    def team_services(self, team_ids: Sequence[str]) -> set[int]:
        """The indexes of the services whose escalation policy belongs to one of `team_ids`."""
        wanted = set(team_ids)
        return {i for i, s in enumerate(self._services) if wanted.intersection(s['team_ids'])}

    def log_entries(
        self,
        since: float | None,
        until: float | None,
        *,
        incident: int | None = None,
        overview: bool = False,
        services: set[int] | None = None,
    ) -> list[int]:
        """Sequences of the entries written in [since, until), of one incident or all, newest first;
        `overview` leaves out notifications, `services` keeps the entries of those services' incidents."""
        sequences: Sequence[int] = self._log_by_time
        times: Sequence[float] = self._log_time_sorted
        if incident is not None:
            sequences = [s for s in self._log_by_time if self._log_incident[s] == incident]
            times = [self._log_time[s] for s in sequences]
        low = 0 if since is None else bisect.bisect_left(times, since)
        high = len(times) if until is None else bisect.bisect_left(times, until)
        rows = list(sequences[low:high])
        if overview:
            rows = [s for s in rows if self._log_kind[s] in OVERVIEW_KINDS]
        if services is not None:
            rows = [s for s in rows if self._service[self._log_incident[s]] in services]
        rows.reverse()  # PagerDuty lists log entries newest first
        return rows

    # -- rendering ---------------------------------------------------------------------------

    def _time(self, epoch: float, zone: dt.tzinfo) -> str | None:
        if epoch != epoch:  # NaN marks an absent time
            return None
        if zone is UTC_ZONE:
            return format_time(epoch)
        return dt.datetime.fromtimestamp(int(epoch), zone).isoformat(timespec='seconds')

    def _renderer(self, api_url: str) -> Renderer:
        return Renderer(self.subdomain, api_url, self._services, {t['id']: t['name'] for t in self._teams})

    def render_incident(self, index: int, zone: dt.tzinfo, api_url: str, with_trigger: bool = False) -> dict:
        return self._renderer(api_url).incident(self._facts(index, zone), with_trigger)

    def render_alerts(self, index: int, api_url: str) -> list[dict]:
        return self._renderer(api_url).alerts(self._facts(index, dt.timezone.utc))

    def _facts(self, index: int, zone: dt.tzinfo) -> IncidentFacts:
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
            event=self._events.get(index),
        )

    def render_log_entry(
        self, sequence: int, zone: dt.tzinfo, api_url: str, with_incident: bool, channels: bool = False
    ) -> dict:
        """A log entry; `channels` (`include[]=channels`) gives a trigger entry the whole event that opened it."""
        index, renderer = self._log_incident[sequence], self._renderer(api_url)
        title = self._titles[index]
        if with_incident:
            incident = self.render_incident(index, zone, api_url)
        else:
            incident = renderer.incident_reference(index + 1, title)
        at = self._time(self._log_time[sequence], zone)
        kind = self._log_kind[sequence]
        entry = renderer.log_entry(sequence, kind, at, self._service[index], title, incident)
        if channels and kind == TRIGGER:
            entry['channel'] = renderer.trigger_channel(self._facts(index, zone))
        return entry
