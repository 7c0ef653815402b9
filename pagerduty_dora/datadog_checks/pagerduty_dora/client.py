# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty REST API v2: the incident queries the collector needs, with PagerDuty's paging rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from .api import ApiClient, RequestRejected, TransientError
from .incident import OPEN_STATUSES, format_time, parse_time

PAGE_SIZE = 100
# PagerDuty answers 400 when offset + limit passes this.
OFFSET_CAP = 10_000
# Longest `since`..`until` span PagerDuty accepts.
MAX_WINDOW = 180 * 86400
PD_ACCEPT = 'application/vnd.pagerduty+json;version=2'


def auth_headers(token: str) -> dict[str, str]:
    """Headers that authenticate a REST API key; the token is only ever placed here."""
    return {'Authorization': 'Token token={}'.format(token), 'Accept': PD_ACCEPT}


@dataclass
class IncidentPage:
    incidents: list[Any]
    offset: int
    more: bool
    total: int | None


class PagerDutyClient:
    """Queries `GET /incidents` and `GET /incidents/{id}` within the configured scope."""

    def __init__(self, api: ApiClient, *, service_ids: Sequence[str] = (), team_ids: Sequence[str] = ()) -> None:
        self.api = api
        self._scope: list[tuple[str, str]] = [('service_ids[]', s) for s in service_ids]
        self._scope += [('team_ids[]', t) for t in team_ids]

    def list_created(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> IncidentPage:
        """One page of incidents created in [since, until), oldest first, in explicit UTC."""
        params = [
            ('since', format_time(since)),
            ('until', format_time(until)),
            ('time_zone', 'UTC'),
            ('sort_by', 'created_at:asc'),
            ('limit', str(PAGE_SIZE)),
            ('offset', str(offset)),
            ('total', 'true' if with_total else 'false'),
        ] + self._scope
        return self._page(self.api.get('/incidents', params, endpoint='incidents'), offset)

    def list_open(self, offset: int = 0, since: float | None = None, until: float | None = None) -> IncidentPage:
        """One page of currently open incidents, whatever their creation time (or created in a window)."""
        params = [('statuses[]', status) for status in OPEN_STATUSES]
        if since is None or until is None:
            params.append(('date_range', 'all'))
        else:
            params += [('since', format_time(since)), ('until', format_time(until))]
        params += [
            ('time_zone', 'UTC'),
            ('sort_by', 'created_at:asc'),
            ('limit', str(PAGE_SIZE)),
            ('offset', str(offset)),
        ] + self._scope
        return self._page(self.api.get('/incidents', params, endpoint='incidents_open'), offset)

    def open_incidents(
        self, now: float, position: tuple[int, float | None] | None = None, overlap: int = 10
    ) -> Iterator[tuple[list[Any], tuple[int, float | None] | None]]:
        """Yield each page of open incidents with the position of the next one (None after the last).

        A scan can stop after any page and resume from the position given with it. Pages step by
        `PAGE_SIZE - overlap`, so an incident that shifts left while the list is paged (because one
        before it resolved) is still seen. Past PagerDuty's offset cap, the scan continues by
        creation time from the last incident seen.
        """
        offset, since = position or (0, None)
        step = PAGE_SIZE - overlap
        while True:
            until = None if since is None else min(since + MAX_WINDOW, now + 60)
            page = self.list_open(offset, since, until)
            following: tuple[int, float | None] | None = None
            if page.more and offset + step + PAGE_SIZE <= OFFSET_CAP:
                following = (offset + step, since)
            elif page.more:
                last = _last_created(page.incidents)
                if last is None:
                    raise TransientError(self.api.name, 'open incident list passed the offset cap without timestamps')
                following = (0, last)
            elif since is not None and until is not None and until < now:
                following = (0, until)
            yield page.incidents, following
            if following is None:
                return
            offset, since = following

    def get_incident(self, incident_id: str) -> Any | None:
        """The incident with this id, or None when PagerDuty no longer knows it."""
        try:
            response = self.api.get('/incidents/{}'.format(incident_id), [('time_zone', 'UTC')], endpoint='incident')
        except RequestRejected as e:
            if e.status == 404:
                return None
            raise
        data = response.data
        if not isinstance(data, dict) or not isinstance(data.get('incident'), dict):
            raise TransientError(self.api.name, 'incident answer without an incident object')
        return data['incident']

    def acknowledgements(self, incident_id: str, since: float, until: float) -> list[float]:
        """When the incident was acknowledged in [since, until), from its log entries.

        A resolved incident no longer lists its acknowledgements, so an acknowledge followed by a
        resolve between two runs is only visible here.
        """
        times: list[float] = []
        offset = 0
        while True:
            params = [
                ('since', format_time(since)),
                ('until', format_time(until)),
                ('time_zone', 'UTC'),
                ('is_overview', 'true'),
                ('limit', str(PAGE_SIZE)),
                ('offset', str(offset)),
            ]
            response = self.api.get(
                '/incidents/{}/log_entries'.format(incident_id), params, endpoint='incident_log_entries'
            )
            data = response.data
            entries = data.get('log_entries') if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise TransientError(self.api.name, 'log entry answer without a log_entries array')
            for entry in entries:
                if isinstance(entry, dict) and entry.get('type') == 'acknowledge_log_entry':
                    try:
                        times.append(parse_time(entry.get('created_at')))
                    except (TypeError, ValueError, OverflowError):
                        continue
            if not data.get('more') or offset + 2 * PAGE_SIZE > OFFSET_CAP:
                return sorted(times)
            offset += PAGE_SIZE

    def _page(self, response: Any, offset: int) -> IncidentPage:
        data = response.data
        if not isinstance(data, dict) or not isinstance(data.get('incidents'), list):
            raise TransientError(self.api.name, 'incident list answer without an incidents array')
        total = data.get('total')
        return IncidentPage(
            incidents=data['incidents'],
            offset=offset,
            more=bool(data.get('more')),
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )


def _last_created(incidents: list[Any]) -> float | None:
    for raw in reversed(incidents):
        try:
            return parse_time(raw.get('created_at'))
        except (AttributeError, TypeError, ValueError, OverflowError):
            continue
    return None
