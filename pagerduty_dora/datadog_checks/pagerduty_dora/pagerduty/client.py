# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty REST API v2: the incident queries the collector needs, with PagerDuty's paging rules."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Sequence

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError, TransientError, UnreadableResponse
from datadog_checks.pagerduty_dora.common.http import ApiClient, BodyReader
from datadog_checks.pagerduty_dora.common.times import LATEST_TIME, format_time, parse_time

from .incident import OPEN_STATUSES
from .listing import Body, IncidentPage, RepeatedPages, parse_page
from .monitor import MonitorAlert, datadog_alert

# Log entry types that change an incident's status, by the action they stand for.
STATUS_ENTRIES = {
    'trigger_log_entry': 'trigger',
    'acknowledge_log_entry': 'acknowledge',
    'unacknowledge_log_entry': 'unacknowledge',
    'resolve_log_entry': 'resolve',
}
# Entries PagerDuty also writes on a resolved incident: a note or a field edit is no sign of a reopen.
NOT_REOPEN_EVIDENCE = frozenset(
    ('annotate_log_entry', 'field_value_change_log_entry', 'custom_field_value_change_log_entry')
)

PAGE_SIZE = 100
# PagerDuty answers 400 when offset + limit passes this.
OFFSET_CAP = 10_000
# Longest `since`..`until` span PagerDuty accepts.
MAX_WINDOW = 180 * 86400
PD_ACCEPT = 'application/vnd.pagerduty+json;version=2'
# PagerDuty entry ids are short; a longer one is not an id and would be kept in the state.
MAX_ENTRY_ID_LENGTH = 128
# Incident lists embed each incident's first trigger entry, whose channel names a Datadog monitor that
# triggered it: the monitor mapping then costs no request of its own.
WITH_TRIGGER = ('include[]', 'first_trigger_log_entries')
# Alerts read of one incident to find the one that triggered it (the oldest).
ALERTS_PAGE = 5
# Trigger entries remembered from incidents' own logs; past this the memory starts over.
MAX_TRIGGERS_KEPT = 1000


def auth_headers(token: str) -> dict[str, str]:
    """Headers that authenticate a REST API key; the token is only ever placed here."""
    return {'Authorization': 'Token token={}'.format(token), 'Accept': PD_ACCEPT}


@dataclass
class LogPage:
    entries: list[Any]
    more: bool
    total: int | None
    # The offset the answer says it starts at (None when it says none): a server that ignores the
    # requested offset answers page one again.
    offset: int | None = None


@dataclass
class LogEntry:
    """One log entry: `action` is the status change it records ('' for any other kind of entry);
    `kind` its type without the `_log_entry` suffix (`assign`, `urgency_change`...); `evidence`
    whether it shows the incident open (any entry but a note or a field edit); `incident` is the
    embedded incident object, when the list was asked to include it."""

    id: str
    action: str
    at: float
    incident_id: str
    incident: Any = None
    kind: str = ''
    evidence: bool = True
    # A trigger entry read with its channel (`include[]=channels`): the Datadog monitor that sent its event.
    monitor: MonitorAlert | None = None


class PagerDutyClient:
    """Queries incidents and log entries within the configured scope."""

    def __init__(
        self,
        api: ApiClient,
        *,
        service_ids: Sequence[str] = (),
        team_ids: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        # PagerDuty's own time, from the `Date` header of its latest answer (whole seconds): the one
        # clock that PagerDuty's timestamps are compared with. None until PagerDuty has answered.
        self.now: float | None = None
        # An answer without a `Date` (a proxy may strip it) is dated by the Agent's clock; counted here.
        self._clock = clock
        self.undated = 0
        self._scope: list[tuple[str, str]] = [('service_ids[]', s) for s in service_ids]
        self._scope += [('team_ids[]', t) for t in team_ids]
        # The monitor (None: none) each incident's trigger entry named, where its own log was read with its
        # channels: the monitor mapping of that incident then needs no request of its own.
        self.triggers: dict[str, MonitorAlert | None] = {}
        # Pages of the lists read again and again (open incidents, resolved ones), parsed once per body.
        self.repeated_pages = RepeatedPages()

    def start_run(self) -> None:
        """A run begins: PagerDuty's time is read again from its next answer."""
        self.now = None

    def take_undated(self) -> int:
        """How many answers since the last call had no `Date` (and were dated by the Agent's clock)."""
        undated, self.undated = self.undated, 0
        return undated

    @property
    def requests_per_run(self) -> int | None:
        """The most requests one run makes to PagerDuty (`max_requests_per_run`); None when runs are paced."""
        return self.api.limits.max_requests

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
            WITH_TRIGGER,
        ] + self._scope
        return self._page(self._get('/incidents', params, endpoint='incidents'))

    def list_open(self, offset: int = 0, since: float | None = None, until: float | None = None) -> IncidentPage:
        """One page of currently open incidents, oldest first: all of them, or those created in [since, until)."""
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
            WITH_TRIGGER,
        ] + self._scope
        return self._page(self._get('/incidents', params, endpoint='incidents_open', read=self.repeated_pages.read))

    def list_resolved(self, offset: int = 0) -> IncidentPage:
        """One page of resolved incidents of any creation time, the latest resolve first."""
        params = [
            ('statuses[]', 'resolved'),
            ('date_range', 'all'),
            ('time_zone', 'UTC'),
            ('sort_by', 'resolved_at:desc'),
            ('limit', str(PAGE_SIZE)),
            ('offset', str(offset)),
            WITH_TRIGGER,
        ] + self._scope
        return self._page(self._get('/incidents', params, endpoint='incidents_resolved', read=self.repeated_pages.read))

    def get_incident(self, incident_id: str) -> Any | None:
        """The incident with this id, or None when PagerDuty no longer knows it (deleted)."""
        response = self._get_unless_gone(
            '/incidents/{}'.format(incident_id), [('time_zone', 'UTC'), WITH_TRIGGER], endpoint='incident'
        )
        if response is None:
            return None
        data = response.data
        if not isinstance(data, dict) or not isinstance(data.get('incident'), dict):
            raise UnreadableResponse(self.api.name, 'incident answer without an incident object')
        return data['incident']

    def incident_alerts(self, incident_id: str) -> list[Any]:
        """The first alerts of one incident, oldest first (an empty list when PagerDuty no longer knows it)."""
        params = [('time_zone', 'UTC'), ('sort_by', 'created_at:asc'), ('limit', str(ALERTS_PAGE)), ('offset', '0')]
        response = self._get_unless_gone('/incidents/{}/alerts'.format(incident_id), params, endpoint='incident_alerts')
        if response is None:
            return []
        data = response.data
        alerts = data.get('alerts') if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise UnreadableResponse(self.api.name, 'alert list answer without an alerts array')
        return alerts

    def log_entries(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> LogPage:
        """One page of the account's log entries in [since, until), newest first, each with its incident.

        `is_overview` leaves out notifications; `include[]=incidents` embeds each entry's incident as
        it is now, so one request shows both what happened and where it stands; `include[]=channels`
        gives a trigger entry the event that opened the incident (a Datadog monitor's). PagerDuty filters
        this list by team but not by service: a `service_ids` scope is applied by the caller.
        """
        params = [
            ('since', format_time(since)),
            ('until', format_time(until)),
            ('time_zone', 'UTC'),
            ('is_overview', 'true'),
            ('include[]', 'incidents'),
            ('include[]', 'channels'),
            ('limit', str(PAGE_SIZE)),
            ('offset', str(offset)),
            ('total', 'true' if with_total else 'false'),
        ] + [scope for scope in self._scope if scope[0] == 'team_ids[]']
        data = self._get('/log_entries', params, endpoint='log_entries').data
        entries = data.get('log_entries') if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise TransientError(self.api.name, 'log entry answer without a log_entries array')
        echoed = data.get('offset')
        return LogPage(
            entries=entries,
            more=data.get('more') is True,
            total=_total(data),
            offset=echoed if isinstance(echoed, int) and not isinstance(echoed, bool) else None,
        )

    def incident_log(
        self, incident_id: str, since: float | None = None, before_page: Callable[[], None] | None = None
    ) -> list[LogEntry]:
        """The status entries of one incident from `since` on (all of them without it), oldest first.

        Every page is read, up to the offset cap; `before_page` is called before each request (it
        raises to stop the run). A page that adds no entry not read already ends the reading,
        whatever `more` says, so a list that never ends costs a page more, not a hundred.
        """
        found: list[LogEntry] = []
        seen: set[str] = set()
        offset = 0
        while True:
            if before_page is not None:
                before_page()
            params = [('time_zone', 'UTC'), ('is_overview', 'true'), ('limit', str(PAGE_SIZE)), ('offset', str(offset))]
            params.append(('include[]', 'channels'))
            if since is not None:
                params += [('since', format_time(since)), ('until', format_time(since + MAX_WINDOW))]
            response = self._get_unless_gone(
                '/incidents/{}/log_entries'.format(incident_id), params, endpoint='incident_log_entries'
            )
            if response is None:
                return []
            data = response.data
            entries = data.get('log_entries') if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise TransientError(self.api.name, 'log entry answer without a log_entries array')
            fresh = [entry for entry in map(parse_log_entry, entries) if entry is not None and entry.id not in seen]
            seen.update(entry.id for entry in fresh)
            found.extend(fresh)
            self._remember_trigger(incident_id, found)
            if not data.get('more') or not fresh or offset + 2 * PAGE_SIZE > OFFSET_CAP:
                # Listed newest first: reversed, then sorted stably, entries of one second keep their order.
                found.reverse()
                found.sort(key=lambda entry: entry.at)
                return found
            offset += PAGE_SIZE

    def _remember_trigger(self, incident_id: str, entries: list[LogEntry]) -> None:
        trigger = next((entry for entry in entries if entry.action == 'trigger'), None)
        if trigger is not None:
            if len(self.triggers) >= MAX_TRIGGERS_KEPT:
                self.triggers.clear()
            self.triggers[incident_id] = trigger.monitor

    def _get(self, path: str, params: Any, endpoint: str, read: BodyReader | None = None) -> Any:
        """GET through the API client, noting PagerDuty's time from the answer's `Date` header."""
        response = self.api.get(path, params, endpoint=endpoint, read=read)
        at = http_date(response.headers)
        if at is None:
            self.undated += 1
            at = float(math.floor(self._clock()))
        # Within a run PagerDuty's time only moves forward, whatever one answer says.
        self.now = at if self.now is None else max(self.now, at)
        return response

    def _get_unless_gone(self, path: str, params: Any, endpoint: str) -> Any | None:
        """`_get`, or None when PagerDuty no longer knows what `path` names (the `GONE` disposition: deleted)."""
        try:
            return self._get(path, params, endpoint)
        except ApiError as e:
            if dispose(e) is not Disposition.GONE:
                raise
            return None

    def _page(self, response: Any) -> IncidentPage:
        """The incidents of a list answer, parsed (or as parsed before, for a body read before: `RepeatedPages`)."""
        body = response.data
        if isinstance(body, Body):
            if body.page is not None:
                return body.page
            data = body.data
        else:
            data = body
        if not isinstance(data, dict) or not isinstance(data.get('incidents'), list):
            raise TransientError(self.api.name, 'incident list answer without an incidents array')
        page = parse_page(data, _total(data))
        if isinstance(body, Body):
            self.repeated_pages.keep(body, page)
        return page


def _total(data: dict) -> int | None:
    total = data.get('total')
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


def http_date(headers: Any) -> float | None:
    """The epoch second of an HTTP `Date` header, or None when there is none that reads."""
    try:
        value = headers.get('Date') or headers.get('date')
    except AttributeError:
        return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    at = moment.timestamp()
    return float(math.floor(at)) if 0 < at < LATEST_TIME else None


def parse_log_entry(raw: Any) -> LogEntry | None:
    """The parts of a log entry the collector acts on, or None for one it does not (or cannot read)."""
    if not isinstance(raw, dict):
        return None
    kind = raw.get('type')
    entry_id = raw.get('id')
    if not isinstance(kind, str) or not isinstance(entry_id, str) or not entry_id:
        return None
    try:
        at = parse_time(raw.get('created_at'))
    except (TypeError, ValueError, OverflowError):
        return None
    incident = raw.get('incident')
    incident_id = incident.get('id') if isinstance(incident, dict) else None
    if not isinstance(incident_id, str) or not incident_id:
        return None
    if not at < LATEST_TIME or len(entry_id) > MAX_ENTRY_ID_LENGTH:
        return None
    kind = kind.replace('_reference', '')
    return LogEntry(
        id=entry_id,
        action=STATUS_ENTRIES.get(kind, ''),
        at=at,
        incident_id=incident_id,
        incident=incident if isinstance(incident, dict) and incident.get('type') == 'incident' else None,
        kind=kind[: -len('_log_entry')] if kind.endswith('_log_entry') else kind,
        evidence=kind not in NOT_REOPEN_EVIDENCE and kind != 'trigger_log_entry',
        monitor=datadog_alert(raw.get('channel')) if kind == 'trigger_log_entry' else None,
    )
