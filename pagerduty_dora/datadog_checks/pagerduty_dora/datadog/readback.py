# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Read back from Datadog what this check sent: its DORA failures and its Agent events.

The Agent's persistent cache is local to a node, and the Cluster Agent moves cluster checks between
nodes. Datadog itself keeps the record of what was delivered, so a check that starts over an empty
cache can rebuild from it instead of re-sending its whole history. This module only reads; what to
make of the record is the caller's.

Two APIs, two ways of paging:
- the DORA failure list (`POST /api/v2/dora/failures`) has no cursor. It is walked newest start
  first by moving `to` back to the second of the oldest start seen. Whole seconds, with `to` one
  second past what it must include, make the walk right whether the API reads its bounds as
  inclusive or exclusive, or to the second; what a page repeats is dropped by id. Only failures
  whose start second holds more than a page of failures cannot be walked past: that raises
  `Incomplete`, never a silent gap;
- the Events API (`GET /api/v2/events`) has a cursor (`meta.page.after`), followed until a page
  comes back without one or empty.

Errors stay typed (`common.errors`): `AuthError` carries the endpoint, and `PERMISSIONS` says which
permission of `datadog_app_key` each endpoint needs; `TransientError`, `BudgetExhausted` and
`RequestRejected` propagate as raised. An iteration that raised has not read everything: the
caller must not take what it got as the whole record.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from datadog_checks.pagerduty_dora.common.errors import ApiError, RequestRejected
from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.times import format_time, parse_api_time

from .dora import ID_PREFIX, failure_id
from .events import LIVE_SINCE_TAG

FAILURES_PATH = '/api/v2/dora/failures'
EVENTS_PATH = '/api/v2/events'
FAILURES_LIST_ENDPOINT = 'dora_failures_list'
FAILURE_GET_ENDPOINT = 'dora_failure_get'
EVENTS_LIST_ENDPOINT = 'events_list'
# The permission of `datadog_app_key` each endpoint of this module needs, for the check's messages.
PERMISSIONS = {
    FAILURES_LIST_ENDPOINT: 'dora_metrics_read',
    FAILURE_GET_ENDPOINT: 'dora_metrics_read',
    EVENTS_LIST_ENDPOINT: 'events_read',
}
LIST_TYPE = 'dora_failures_list_request'

# Both APIs answer at most 1000 items a page.
PAGE_LIMIT = 1000
# A bound on pages per iteration, far above what the request budget of a run allows, so that an API
# that ignores its bounds or repeats a cursor ends in `Incomplete` rather than a loop.
MAX_PAGES = 10_000
# The tag the check puts on every event it emits: the stable identity of the transition it reports.
TRANSITION_KEY_TAG = 'pagerduty_transition'
TRANSITION_TAG = 'transition'
# Events API statuses of an alert event, as the Agent's `alert_type`.
_ALERT_TYPES = {'warn': 'warning', 'ok': 'success'}
# `failure_id()` suffixes an incident id it had to clean with `.` and 16 hex digits of a hash.
_HASHED = re.compile(r'.*\.[0-9a-f]{16}')
# Epoch seconds as the live event's tag carries them.
_SECONDS = re.compile(r'[0-9]{1,12}')


class Incomplete(ApiError):
    """The API's answers cannot be walked to the end (a tie wider than a page, a repeated cursor)."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__('datadog', message)
        self.endpoint = endpoint


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """A DORA failure as Datadog holds it. Times are epoch seconds, exact to the millisecond.

    `incident_id` is the id after `pagerduty-incident-`. For a PagerDuty id (letters and digits) it is
    the incident id itself; `exact_id` is False when it has the shape `failure_id()` gives an id it
    had to clean and hash, which cannot be undone: match those by `failure_id`, comparing with
    `dora.failure_id(incident.id)`.
    """

    failure_id: str
    incident_id: str
    exact_id: bool
    name: str | None
    started_at: float
    finished_at: float | None
    services: list[str]
    team: str | None
    env: str | None
    severity: str | None
    custom_tags: list[str]
    version: str | None

    @property
    def open(self) -> bool:
        """Whether the failure has no finish time: its incident was not resolved when last sent."""
        return self.finished_at is None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as Datadog holds it: tags as stored (Datadog lowercases them), time in epoch seconds."""

    event_id: str
    incident_id: str
    timestamp: float
    tags: list[str]
    title: str
    alert_type: str

    def tag_values(self, key: str) -> list[str]:
        """The values of every `key:value` tag of the event, in order."""
        prefix = key + ':'
        return [tag[len(prefix) :] for tag in self.tags if tag.startswith(prefix)]

    @property
    def transition_key(self) -> str | None:
        """The value of the event's `pagerduty_transition:` tag, None when it has none."""
        values = self.tag_values(TRANSITION_KEY_TAG)
        return values[0] if values else None

    @property
    def live_since(self) -> float | None:
        """For the event saying since when the instance reports every transition, that time; else None."""
        values = self.tag_values(LIVE_SINCE_TAG)
        return float(values[0]) if values and _SECONDS.fullmatch(values[0]) else None

    @property
    def transition(self) -> str | None:
        """The value of the event's `transition:` tag (`triggered`, `resolved`...), None when it has none."""
        values = self.tag_values(TRANSITION_TAG)
        return values[0] if values else None


def _epoch(value: Any) -> float | None:
    """A time of the API as epoch seconds: `parse_api_time`, with a fast path for the RFC 3339 the API renders."""
    if isinstance(value, str):
        # A rebuild reads 100,000 failures; this path is a third of the general one's cost.
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return parse_api_time(value)
        if parsed.tzinfo is not None:
            return parsed.timestamp()
    return parse_api_time(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def parse_failure(raw: Any) -> FailureRecord | None:
    """One `DORAIncidentObject` of this check (its id starts with `pagerduty-incident-`), else None.

    None too for an object without a readable start time: it could not be placed in a time range.
    """
    if not isinstance(raw, dict):
        return None
    identifier = raw.get('id')
    if not isinstance(identifier, str) or not identifier.startswith(ID_PREFIX) or len(identifier) == len(ID_PREFIX):
        return None
    attributes = raw.get('attributes')
    if not isinstance(attributes, dict):
        return None
    started = _epoch(attributes.get('started_at'))
    if started is None:
        return None
    suffix = identifier[len(ID_PREFIX) :]
    return FailureRecord(
        failure_id=identifier,
        incident_id=suffix,
        exact_id=not _HASHED.fullmatch(suffix) and failure_id(suffix) == identifier,
        name=_text(attributes.get('name')),
        started_at=started,
        finished_at=_epoch(attributes.get('finished_at')),
        services=_strings(attributes.get('services')),
        team=_text(attributes.get('team')),
        env=_text(attributes.get('env')),
        severity=_text(attributes.get('severity')),
        custom_tags=_strings(attributes.get('custom_tags')),
        version=_text(attributes.get('version')),
    )


def _object(value: Any) -> dict:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _string(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def parse_event(raw: Any) -> EventRecord | None:
    """One `EventResponse`, or None when it lacks an id, an aggregation key or a time."""
    if not isinstance(raw, dict) or not isinstance(raw.get('id'), str):
        return None
    outer = raw.get('attributes')
    if not isinstance(outer, dict):
        return None
    inner = _object(outer.get('attributes'))
    key = inner.get('aggregation_key')
    if not isinstance(key, str) or not key:
        return None
    # The inner time is in milliseconds, exact; the outer one a rendered string.
    millis = inner.get('timestamp')
    if isinstance(millis, int) and not isinstance(millis, bool):
        timestamp: float | None = millis / 1000
    else:
        timestamp = _epoch(outer.get('timestamp'))
    if timestamp is None:
        return None
    tags = _strings(outer.get('tags')) or _strings(inner.get('tags'))
    status = _string(inner.get('status'), 'info')
    return EventRecord(
        event_id=raw['id'],
        incident_id=key,
        timestamp=timestamp,
        tags=tags,
        title=_string(inner.get('title'), ''),
        alert_type=_ALERT_TYPES.get(status, status),
    )


class Readback:
    """Reads this instance's DORA failures and events back from Datadog through the check's `ApiClient`.

    The client needs `datadog_app_key` in its headers. `page_limit` is the page size asked of both
    APIs (at most 1000). `pages` counts the pages read since the object was made, `skipped` the
    items of this check's shape that could not be read (no start time, no aggregation key).
    """

    def __init__(self, api: ApiClient, *, page_limit: int = PAGE_LIMIT, max_pages: int = MAX_PAGES) -> None:
        self._api = api
        self.page_limit = max(1, min(PAGE_LIMIT, page_limit))
        self.max_pages = max_pages
        self.pages = 0
        self.skipped = 0

    def failures(self, since: float, until: float, query: str = '') -> Iterator[FailureRecord]:
        """Every failure of this check that started in [since, until], newest start first, each once.

        `query` (event-platform syntax, such as `env:prod`) narrows the search on Datadog's side.
        Raises `Incomplete` when more failures than a page started within one second.
        """
        low = max(0, math.floor(since) - 1)
        to = math.floor(until) + 1
        # Failures already seen that the next page may repeat (those of its top second), with their start.
        recent: dict[str, float] = {}
        for _ in range(self.max_pages):
            items = self._list_page(low, to, query)
            oldest: float | None = None
            for raw in items:
                failure = parse_failure(raw)
                # Every failure on the page moves the walk, this check's or not.
                started = failure.started_at if failure is not None else _started(raw)
                if started is not None and (oldest is None or started < oldest):
                    oldest = started
                if failure is None:
                    if started is None and _ours(raw):
                        self.skipped += 1
                    continue
                if failure.failure_id in recent:
                    continue
                recent[failure.failure_id] = failure.started_at
                if since <= failure.started_at <= until:
                    yield failure
            if len(items) < self.page_limit:
                return
            if oldest is None:
                raise Incomplete(FAILURES_LIST_ENDPOINT, 'the DORA failure list answered a page without start times')
            next_to = math.floor(oldest) + 1
            if next_to >= to:
                raise Incomplete(
                    FAILURES_LIST_ENDPOINT,
                    'more than {} DORA failures started in the second of {}; the list cannot be paged past them'.format(
                        self.page_limit, format_time(oldest)
                    ),
                )
            # Only what started up to the new `to` (included, should the API include it) can come back.
            recent = {key: started for key, started in recent.items() if started <= next_to}
            to = next_to
        raise Incomplete(FAILURES_LIST_ENDPOINT, 'the DORA failure list took more than {} pages'.format(self.max_pages))

    def failure(self, incident_id: str) -> FailureRecord | None:
        """The failure of one incident, None when Datadog has none."""
        try:
            response = self._api.get(
                '{}/{}'.format(FAILURES_PATH, failure_id(incident_id)), endpoint=FAILURE_GET_ENDPOINT
            )
        except RequestRejected as e:
            if e.status == 404:
                return None
            raise
        data = response.data.get('data') if isinstance(response.data, dict) else None
        return parse_failure(data)

    def events(self, query: str, since: float, until: float) -> Iterator[EventRecord]:
        """Every event matching `query` dated in [since, until], oldest first.

        `query` is in Datadog's event search syntax, such as `source:pagerduty_dora env:prod`.
        """
        params: dict[str, Any] = {
            'filter[query]': query,
            'filter[from]': str(math.floor(since * 1000)),
            # `to` may be exclusive; one millisecond more keeps `until` itself in the range.
            'filter[to]': str(math.floor(until * 1000) + 1),
            'sort': 'timestamp',
            'page[limit]': self.page_limit,
        }
        cursor = None
        for _ in range(self.max_pages):
            if cursor is not None:
                params['page[cursor]'] = cursor
            response = self._api.get(EVENTS_PATH, params=dict(params), endpoint=EVENTS_LIST_ENDPOINT)
            self.pages += 1
            body = _object(response.data)
            data = body.get('data')
            items: list = data if isinstance(data, list) else []
            for raw in items:
                event = parse_event(raw)
                if event is None:
                    self.skipped += 1
                elif since <= event.timestamp <= until:
                    yield event
            page = _object(_object(body.get('meta')).get('page'))
            after = page.get('after')
            if not items or not isinstance(after, str) or not after:
                return
            if after == cursor:
                raise Incomplete(EVENTS_LIST_ENDPOINT, 'the Events API answered the same cursor twice')
            cursor = after
        raise Incomplete(EVENTS_LIST_ENDPOINT, 'the event search took more than {} pages'.format(self.max_pages))

    def _list_page(self, low: int, to: int, query: str) -> list:
        attributes: dict[str, Any] = {
            'from': format_time(low),
            'to': format_time(to),
            'limit': self.page_limit,
            'sort': '-started_at',
        }
        if query:
            attributes['query'] = query
        body = {'data': {'type': LIST_TYPE, 'attributes': attributes}}
        response = self._api.post(FAILURES_PATH, body, endpoint=FAILURES_LIST_ENDPOINT)
        self.pages += 1
        data = response.data.get('data') if isinstance(response.data, dict) else None
        return data if isinstance(data, list) else []


def _started(raw: Any) -> float | None:
    attributes = raw.get('attributes') if isinstance(raw, dict) else None
    return _epoch(attributes.get('started_at')) if isinstance(attributes, dict) else None


def _ours(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get('id'), str) and raw['id'].startswith(ID_PREFIX)
