# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty's change events and priorities, plugged into a running `PagerDutySimulator`.

    changes = ChangeEvents.install(world.pagerduty)
    changes.send(service_id, 'Deploy checkout v42', custom_details={'version': 'v42'}, at=...)

serves, through the simulator's own pipeline (authentication, rate limit, faults):

- `GET /incidents/{id}/related_change_events`: the change events PagerDuty relates to an incident,
  each with its `correlation_reason`, in the shape of PagerDuty's OpenAPI (`ChangeEvent` with
  `timestamp`, `services`, `integration`, `summary`, `source`, `links`, `custom_details`). The fake
  relates, as PagerDuty's Change Correlation does, the most recent change event of the incident's
  service before the incident was created (`most_recent`), plus whatever a test relates itself
  (`intelligent` or `related_service`). `limit` is read; there is no offset;
- `GET /priorities`: the account's priorities in order, most severe first, paged by `limit`/`offset`.

`enabled = False` makes the account one without change events: every incident relates none.
"""

from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.demo.pagerduty import ApiError
from datadog_checks.pagerduty_dora.demo.rendering import ENTITY_BASE, encode_id

from .pagerduty import PagerDutySimulator
from .server import Reply, Request

# PagerDuty relates changes from this long before an incident.
LOOKBACK = 24 * 3600.0
REASONS = ('most_recent', 'related_service', 'intelligent')


@dataclass
class ChangeEvent:
    id: str
    at: float
    service_ids: list[str]
    summary: str
    custom_details: dict = field(default_factory=dict)
    source: str = 'acme-deploy-pipeline'
    links: list[dict] = field(default_factory=list)

    def render(self, api_url: str, reason: str) -> dict:
        return {
            'id': self.id,
            'type': 'change_event',
            'summary': self.summary,
            'timestamp': format_time(self.at),
            'source': self.source,
            'self': '{}/change_events/{}'.format(api_url, self.id),
            'integration': {'id': encode_id(ENTITY_BASE['policy'] + 5000), 'type': 'inbound_integration_reference'},
            'services': [{'id': s, 'type': 'service_reference'} for s in self.service_ids],
            'custom_details': dict(self.custom_details),
            'links': list(self.links),
            'images': [],
            'correlation_reason': {'reason': reason},
        }


class ChangeEvents:
    """Change events sent to a simulated account, and the ones it relates to each incident."""

    def __init__(self, simulator: PagerDutySimulator) -> None:
        self.simulator = simulator
        self.account = simulator.account
        self.events: list[ChangeEvent] = []
        self.related: dict[str, list[tuple[str, str]]] = {}
        self.enabled = True
        self._lock = threading.Lock()

    @classmethod
    def install(cls, simulator: PagerDutySimulator) -> 'ChangeEvents':
        """Serve change events and priorities on `simulator`, beside its own routes."""
        changes = cls(simulator)
        server = simulator.server
        # The loopback server matches routes in order; these paths are served by no other route.
        server._routes += [
            (method, re.compile(pattern + r'\Z'), simulator._guard(handler))
            for method, pattern, handler in changes.routes()
        ]
        return changes

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ('GET', r'/incidents/(?P<id>[^/]+)/related_change_events', self._related_change_events),
            ('GET', r'/priorities', self._priorities),
        ]

    def send(
        self,
        service_id: str,
        summary: str,
        *,
        at: float | None = None,
        custom_details: dict | None = None,
        links: list[dict] | None = None,
    ) -> str:
        """A change event on a PagerDuty service (as the Events API's change/enqueue makes one); returns its id."""
        with self._lock:
            event_id = '01CHANGE{:018d}'.format(len(self.events) + 1)
            when = self.account.now if at is None else float(at)
            details = dict(custom_details or {})
            self.events.append(ChangeEvent(event_id, when, [service_id], summary, details, links=links or []))
            self.events.sort(key=lambda e: e.at)
            return event_id

    def relate(self, incident_id: str, event_id: str, reason: str = 'intelligent') -> None:
        """Relate a change event to an incident, as PagerDuty's intelligent correlation does."""
        if reason not in REASONS:
            raise ValueError('reason must be one of {}'.format(REASONS))
        with self._lock:
            self.related.setdefault(incident_id, []).append((event_id, reason))

    def related_to(self, incident_id: str) -> list[tuple[ChangeEvent, str]]:
        """(event, reason) PagerDuty relates to the incident: explicit relations first, then the most recent change."""
        incident = self.account.incident(incident_id)
        created = self.account.created_at(incident_id)
        service = incident['service']['id']
        by_id = {e.id: e for e in self.events}
        out = [(by_id[event_id], reason) for event_id, reason in self.related.get(incident_id, []) if event_id in by_id]
        times = [e.at for e in self.events]
        for event in reversed(self.events[: bisect.bisect_right(times, created)]):
            if event.at < created - LOOKBACK:
                break
            if service in event.service_ids:
                if all(event.id != e.id for e, _ in out):
                    out.append((event, 'most_recent'))
                break
        return out

    def _related_change_events(self, request: Request) -> Reply:
        incident_id = request.match['id']
        if not self.account.exists(incident_id):
            raise ApiError(404, 'Not Found', 2100)
        limit = int(request.arg('limit') or 25)
        related = self.related_to(incident_id) if self.enabled else []
        page = [event.render(self.simulator.url, reason) for event, reason in related[:limit]]
        return Reply(200, {'change_events': page, 'limit': None, 'offset': None, 'total': None, 'more': False})

    def _priorities(self, request: Request) -> Reply:
        limit = min(int(request.arg('limit') or 25), 100)
        offset = int(request.arg('offset') or 0)
        rows = list(self.account.priorities)
        page = [
            {
                'id': priority_id,
                'type': 'priority',
                'summary': name,
                'self': '{}/priorities/{}'.format(self.simulator.url, priority_id),
                'name': name,
                'description': '{} incidents'.format(name),
            }
            for priority_id, name in rows[offset : offset + limit]
        ]
        more = offset + len(page) < len(rows)
        return Reply(200, {'priorities': page, 'limit': limit, 'offset': offset, 'more': more, 'total': None})
