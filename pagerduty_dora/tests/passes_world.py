# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""An in-memory PagerDuty client for the pass and collector-loop tests: lists that page as PagerDuty's do."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from datadog_checks.pagerduty_dora.common.errors import UnreadableResponse
from datadog_checks.pagerduty_dora.common.times import format_time, parse_time
from datadog_checks.pagerduty_dora.pagerduty.client import PAGE_SIZE, IncidentPage, LogPage, PagerDutyClient

FIXTURE = json.loads((Path(__file__).parent / 'fixtures' / 'incident_acknowledged.json').read_text())
NOW = parse_time('2026-11-20T10:00:00Z')


def raw_incident(number: int, created_at: float, status: str = 'triggered') -> dict:
    """A PagerDuty incident object numbered `number`, created at `created_at`."""
    raw = copy.deepcopy(FIXTURE)
    raw.update(
        id='P{:05d}'.format(number),
        incident_number=number,
        status=status,
        created_at=format_time(created_at),
        last_status_change_at=format_time(created_at),
        acknowledgements=[],
        resolved_at=format_time(created_at + 60) if status == 'resolved' else None,
    )
    return raw


def log_entry(number: int, at: float, kind: str = 'trigger_log_entry', incident_id: str | None = None) -> dict:
    """A log entry with its incident embedded (`include[]=incidents`), as `GET /log_entries` returns it."""
    incident = raw_incident(int(incident_id[1:]) if incident_id else number, at)
    return {
        'id': 'L{:06d}'.format(number),
        'type': kind,
        'created_at': format_time(at),
        'incident': dict(incident, type='incident'),
    }


class ScriptedPagerDuty(PagerDutyClient):
    """Answers the pass requests from lists, dating every answer with `clock`, and records each request.

    It stands in for the client whole: no HTTP, so its constructor does not call the client's.

    Log entries are answered newest first and incidents oldest first, `PAGE_SIZE` to a page, with
    `total` when asked, as PagerDuty does. `unreadable` makes that many next requests fail to read.
    """

    requests_per_run = 500

    def __init__(self, clock: float = NOW) -> None:
        self.clock = clock
        self.now: float | None = None
        self.entries: list[dict] = []
        self.incidents: dict[str, dict] = {}
        self.requests: list[tuple[Any, ...]] = []
        self.unreadable = 0
        # Every answer is dated.
        self.undated = 0

    def _answer(self, request: tuple[Any, ...]) -> None:
        self.requests.append(request)
        if self.unreadable:
            self.unreadable -= 1
            raise UnreadableResponse('PagerDuty', 'the answer is not JSON')
        self.now = self.clock

    def log_entries(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> LogPage:
        self._answer(('log_entries', since, until, offset))
        chosen = [e for e in self.entries if since <= parse_time(e['created_at']) < until]
        chosen.sort(key=lambda e: (parse_time(e['created_at']), e['id']), reverse=True)
        page = chosen[offset : offset + PAGE_SIZE]
        return LogPage(page, offset + PAGE_SIZE < len(chosen), len(chosen) if with_total else None, offset)

    def _by_creation(self, incidents: list[dict], offset: int) -> IncidentPage:
        incidents.sort(key=lambda i: (parse_time(i['created_at']), i['incident_number']))
        page = incidents[offset : offset + PAGE_SIZE]
        return IncidentPage(page, offset + PAGE_SIZE < len(incidents), len(incidents))

    def list_open(self, offset: int = 0, since: float | None = None, until: float | None = None) -> IncidentPage:
        self._answer(('list_open', offset, since, until))
        chosen = [
            i
            for i in self.incidents.values()
            if i['status'] != 'resolved'
            and (since is None or parse_time(i['created_at']) >= since)
            and (until is None or parse_time(i['created_at']) < until)
        ]
        return self._by_creation(chosen, offset)

    def list_created(self, since: float, until: float, offset: int = 0, with_total: bool = False) -> IncidentPage:
        self._answer(('list_created', since, until, offset))
        chosen = [i for i in self.incidents.values() if since <= parse_time(i['created_at']) < until]
        page = self._by_creation(chosen, offset)
        return IncidentPage(page.incidents, page.more, page.total if with_total else None)

    def get_incident(self, incident_id: str) -> dict | None:
        self._answer(('get_incident', incident_id))
        return self.incidents.get(incident_id)

    def incident_log(self, incident_id: str, since: float | None = None, before_page: Any = None) -> list:
        self._answer(('incident_log', incident_id, since))
        return []
