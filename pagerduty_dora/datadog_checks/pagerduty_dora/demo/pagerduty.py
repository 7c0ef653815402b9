# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A small simulated PagerDuty account and the parts of its REST API v2 the check reads, on 127.0.0.1.

`PagerDutyAccount` holds services, teams and incidents, with a clock that only moves when told to,
and mutations (trigger, acknowledge, resolve, reopen, priority change) that write log entries the
way PagerDuty does, including what PagerDuty does *not* log (a reopen). `PagerDutyApi` serves it:
incidents filtered on creation time, log entries newest first, pages of at most 100, times in UTC.
Incidents and log entries become PagerDuty's JSON through `rendering.Renderer`.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from datadog_checks.pagerduty_dora.common.times import format_time, parse_time

from .rendering import (
    ACK,
    ASSIGN,
    ENTITY_BASE,
    LOG_ENTRY_TYPES,
    NOTIFY,
    RESOLVE,
    TRIGGER,
    IncidentFacts,
    Renderer,
    decode_id,
    encode_id,
    priorities,
)
from .server import LoopbackServer, Reply, Request, Route

# The log entry kinds `is_overview=true` lists: all but the notifications.
OVERVIEW_KINDS = frozenset(kind for kind in range(len(LOG_ENTRY_TYPES)) if kind != NOTIFY)
MAX_LIMIT = 100
DEFAULT_LIMIT = 25


@dataclass
class _Incident:
    title: str
    service: int
    urgency: str
    priority: int  # index into the account's priorities, -1 for none
    created: float
    status: str = 'triggered'
    updated: float = 0.0
    changed: float = 0.0
    acked: float | None = None
    resolved: float | None = None
    event: dict[str, Any] | None = None


class PagerDutyAccount:
    """One PagerDuty account: services, teams, priorities, incidents and their log entries.

    Times are UTC epoch seconds. `now` only moves when set or advanced; every mutation stamps it.
    """

    def __init__(self, *, subdomain: str = 'acme', token: str = 'sim-token', now: float = 0.0) -> None:
        self.subdomain = subdomain
        self.token = token
        self.now = now
        self.lock = threading.RLock()
        self.priorities = priorities()
        self._services: list[dict[str, Any]] = []
        self._team_names: dict[str, str] = {}
        self._incidents: list[_Incident] = []
        self._log: list[tuple[float, int, int]] = []  # (at, incident index, kind), in the order written

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = float(int(value))

    def advance(self, seconds: float) -> float:
        self.now = self._now + seconds
        return self._now

    def add_team(self, name: str) -> str:
        team_id = encode_id(ENTITY_BASE['team'] + len(self._team_names))
        self._team_names[team_id] = name
        return team_id

    def add_service(self, name: str, team_ids: Iterable[str] = ()) -> str:
        service_id = encode_id(ENTITY_BASE['service'] + len(self._services))
        self._services.append({'id': service_id, 'name': name, 'team_ids': list(team_ids)})
        return service_id

    def service_url(self, service_id: str) -> str:
        return 'https://{}.pagerduty.com/service-directory/{}'.format(self.subdomain, service_id)

    @property
    def services(self) -> list[dict[str, Any]]:
        """Every service: id, name, team ids and page URL."""
        return [dict(s, html_url=self.service_url(s['id'])) for s in self._services]

    @property
    def teams(self) -> list[dict[str, str]]:
        """Every team: id and name."""
        return [{'id': team_id, 'name': name} for team_id, name in self._team_names.items()]

    def trigger(
        self,
        service_id: str,
        title: str,
        urgency: str = 'high',
        priority: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> str:
        """Open a new incident on a service now and return its id; `event` is what the monitoring tool sent."""
        with self.lock:
            service = [s['id'] for s in self._services].index(service_id)
            rank = [name for _, name in self.priorities].index(priority) if priority else -1
            now = self._now
            self._incidents.append(_Incident(title, service, urgency, rank, now, updated=now, changed=now, event=event))
            index = len(self._incidents) - 1
            self._log += [(now, index, kind) for kind in (TRIGGER, ASSIGN, NOTIFY)]
            return encode_id(index + 1)

    def _transition(self, incident_id: str, allowed: tuple[str, ...], status: str, kind: int | None) -> None:
        with self.lock:
            index, incident = self._get(incident_id)
            if incident.status not in allowed:
                raise ValueError('incident {} is {}; cannot go to {}'.format(incident_id, incident.status, status))
            incident.status, incident.changed, incident.updated = status, self._now, self._now
            incident.acked = self._now if status == 'acknowledged' else None
            incident.resolved = self._now if status == 'resolved' else None
            if kind is not None:
                self._log.append((self._now, index, kind))

    def acknowledge(self, incident_id: str) -> None:
        self._transition(incident_id, ('triggered', 'acknowledged'), 'acknowledged', ACK)

    def resolve(self, incident_id: str) -> None:
        self._transition(incident_id, ('triggered', 'acknowledged'), 'resolved', RESOLVE)

    def reopen(self, incident_id: str) -> None:
        """Resolved -> triggered. PagerDuty logs no reopen; it logs the assignment that comes with it."""
        self._transition(incident_id, ('resolved',), 'triggered', ASSIGN)

    def set_priority(self, incident_id: str, name: str | None) -> None:
        with self.lock:
            index, incident = self._get(incident_id)
            # PagerDuty logs no priority change: only re-reading the incident shows it.
            incident.priority = [n for _, n in self.priorities].index(name) if name else -1
            incident.updated = self._now

    def incident(self, incident_id: str, api_url: str = 'https://api.pagerduty.com') -> dict:
        """The incident as `GET /incidents/{id}` renders it."""
        with self.lock:
            return self.render_incident(self._get(incident_id)[0], api_url)

    def _get(self, incident_id: str) -> tuple[int, _Incident]:
        number = decode_id(incident_id)
        if number is None or not 1 <= number <= len(self._incidents):
            raise KeyError('unknown incident id {!r}'.format(incident_id))
        return number - 1, self._incidents[number - 1]

    # -- what the API serves (callers hold `lock`) ------------------------------------------

    def renderer(self, api_url: str) -> Renderer:
        return Renderer(self.subdomain, api_url, self._services, self._team_names)

    def render_incident(self, index: int, api_url: str, with_trigger: bool = False) -> dict:
        return self.renderer(api_url).incident(self._facts(index), with_trigger)

    def render_alerts(self, index: int, api_url: str) -> list[dict]:
        return self.renderer(api_url).alerts(self._facts(index))

    def _facts(self, index: int) -> IncidentFacts:
        incident = self._incidents[index]

        def at(epoch: float | None) -> str | None:
            return None if epoch is None else format_time(epoch)

        return IncidentFacts(
            number=index + 1,
            title=incident.title,
            status=incident.status,
            urgency=incident.urgency,
            priority=self.priorities[incident.priority] if incident.priority >= 0 else None,
            created=at(incident.created),
            updated=at(incident.updated),
            changed=at(incident.changed),
            acked=at(incident.acked),
            resolved=at(incident.resolved),
            service=incident.service,
            event=incident.event,
        )

    def created_in(self, since: float | None, until: float | None, statuses: Sequence[str]) -> list[int]:
        """Indexes of the incidents created in [since, until) with one of `statuses` (any when empty), oldest first."""
        return [
            index
            for index, incident in enumerate(self._incidents)
            if (since is None or incident.created >= since)
            and (until is None or incident.created < until)
            and (not statuses or incident.status in statuses)
        ]

    def log_entries(self, since: float | None, until: float | None, incident: int | None = None) -> list[int]:
        """Positions in the log of the entries written in [since, until), of one incident or all, newest first."""
        ordered = sorted(range(len(self._log)), key=lambda position: self._log[position][0])
        times = [self._log[position][0] for position in ordered]
        low = 0 if since is None else bisect.bisect_left(times, since)
        high = len(times) if until is None else bisect.bisect_left(times, until)
        rows = [p for p in ordered[low:high] if incident is None or self._log[p][1] == incident]
        rows.reverse()
        return rows

    def render_log_entry(self, position: int, api_url: str, with_incident: bool, channels: bool = False) -> dict:
        """A log entry; `channels` (`include[]=channels`) gives a trigger entry the whole event that opened it."""
        at, index, kind = self._log[position]
        incident = self._incidents[index]
        renderer = self.renderer(api_url)
        reference = (
            self.render_incident(index, api_url)
            if with_incident
            else renderer.incident_reference(index + 1, incident.title)
        )
        entry = renderer.log_entry(position, kind, format_time(at), incident.service, incident.title, reference)
        if channels and kind == TRIGGER:
            entry['channel'] = renderer.trigger_channel(self._facts(index))
        return entry


class PagerDutyApi:
    """Serve a `PagerDutyAccount` as the PagerDuty REST API v2 on a loopback port."""

    server_class: Any = LoopbackServer

    def __init__(self, account: Any) -> None:
        self.account = account
        # Answers are dated by the account's clock, as PagerDuty's are by its own.
        self.server = self.server_class(self.routes(), clock=lambda: float(account.now))

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Any:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def routes(self) -> list[Route]:
        return [
            ('GET', r'/incidents', self._guard(self._list_incidents)),
            ('GET', r'/incidents/(?P<id>[^/]+)', self._guard(self._get_incident)),
            ('GET', r'/incidents/(?P<id>[^/]+)/log_entries', self._guard(self._incident_log_entries)),
            ('GET', r'/incidents/(?P<id>[^/]+)/alerts', self._guard(self._incident_alerts)),
            ('GET', r'/log_entries', self._guard(self._list_log_entries)),
            ('GET', r'/services', self._guard(self._list_services)),
            ('GET', r'/services/(?P<id>[^/]+)', self._guard(self._get_service)),
            ('GET', r'/teams/(?P<id>[^/]+)', self._guard(self._get_team)),
        ]

    def _render_service(self, service: dict[str, Any]) -> dict[str, Any]:
        return {
            'id': service['id'],
            'type': 'service',
            'summary': service['name'],
            'name': service['name'],
            'html_url': service['html_url'],
            'teams': [{'id': t, 'type': 'team_reference'} for t in service['team_ids']],
        }

    def _list_services(self, request: Request) -> Reply:
        """`GET /services`, with `query` matching the services whose name contains it, as PagerDuty does."""
        query = (request.arg('query') or '').casefold()
        services = [s for s in self.account.services if query in s['name'].casefold()]
        return self._page(request, 'services', range(len(services)), lambda i: self._render_service(services[i]))

    def _get_service(self, request: Request) -> Reply:
        found = [s for s in self.account.services if s['id'] == request.match['id']]
        if not found:
            return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})
        return Reply(200, {'service': self._render_service(found[0])})

    def _get_team(self, request: Request) -> Reply:
        found = [t for t in self.account.teams if t['id'] == request.match['id']]
        if not found:
            return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})
        return Reply(200, {'team': dict(found[0], type='team', summary=found[0]['name'])})

    def _guard(self, handler: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            if request.headers.get('authorization') != 'Token token={}'.format(self.account.token):
                return Reply(401, {'error': {'message': 'Authentication failed', 'code': 2006}})
            with self.account.lock:
                return handler(request)

        return serve

    def _page(self, request: Request, key: str, rows: Sequence[int], render: Callable[[int], dict]) -> Reply:
        limit = min(int(request.arg('limit') or DEFAULT_LIMIT), MAX_LIMIT)
        offset = int(request.arg('offset') or 0)
        page = [render(row) for row in rows[offset : offset + limit]]
        total = len(rows) if request.arg('total') == 'true' else None
        body = {key: page, 'limit': limit, 'offset': offset, 'total': total, 'more': offset + len(page) < len(rows)}
        return Reply(200, body)

    def _window(self, request: Request) -> tuple[float | None, float | None]:
        since, until = request.arg('since'), request.arg('until')
        return (parse_time(since) if since else None), (parse_time(until) if until else None)

    def _list_incidents(self, request: Request) -> Reply:
        since, until = self._window(request)
        rows = self.account.created_in(since, until, request.args('statuses'))
        trigger = with_trigger(request)
        return self._page(request, 'incidents', rows, lambda i: self.account.render_incident(i, self.url, trigger))

    def _get_incident(self, request: Request) -> Reply:
        try:
            index, _ = self.account._get(request.match['id'])
        except KeyError:
            return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})
        return Reply(200, {'incident': self.account.render_incident(index, self.url, with_trigger(request))})

    def _incident_alerts(self, request: Request) -> Reply:
        """`GET /incidents/{id}/alerts`: the alert that opened the incident, if a monitoring tool did."""
        try:
            index, _ = self.account._get(request.match['id'])
        except KeyError:
            return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})
        alerts = self.account.render_alerts(index, self.url)
        return self._page(request, 'alerts', range(len(alerts)), lambda i: alerts[i])

    def _log_page(self, request: Request, incident: int | None) -> Reply:
        rows = self.account.log_entries(*self._window(request), incident=incident)
        if request.arg('is_overview') == 'true':
            rows = [p for p in rows if self.account._log[p][2] in OVERVIEW_KINDS]
        included, channels = 'incidents' in request.args('include'), 'channels' in request.args('include')
        return self._page(
            request, 'log_entries', rows, lambda p: self.account.render_log_entry(p, self.url, included, channels)
        )

    def _list_log_entries(self, request: Request) -> Reply:
        return self._log_page(request, None)

    def _incident_log_entries(self, request: Request) -> Reply:
        try:
            index, _ = self.account._get(request.match['id'])
        except KeyError:
            return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})
        return self._log_page(request, index)


def with_trigger(request: Request) -> bool:
    """Whether the request asks for each incident's first trigger entry (`include[]=first_trigger_log_entries`)."""
    return 'first_trigger_log_entries' in request.args('include')
