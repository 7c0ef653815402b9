# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's Events API v2 read side, fed with the Agent events a check submitted.

The check sends events through the Agent, not over HTTP: `ingest()` takes the dicts the stub
aggregator records (`aggregator.events`) and stores them as Datadog's intake would. It refuses
events dated more than 18 hours before the fake's clock (`date_happened` is limited to that), and
counts them in `refused`; it adds the `source:` tag from `source_type_name` and stores tags
normalised as Datadog does (lowercase; characters other than letters, digits, `_ - : . /` become
`_`), so a tag read back may differ from the one sent.

It answers, in the shapes of the official client's `EventsListResponse`:
- `GET /api/v2/events` with `filter[query]` (event-platform syntax on tags, `status`, and
  `@aggregation_key` / `@title`), `filter[from]` / `filter[to]` (milliseconds, RFC 3339 or date
  math such as `now-15m`; by default the last 15 minutes, as Datadog does), `sort` (`timestamp` or
  `-timestamp`, the default), `page[limit]` (1-1000, default 10) and `page[cursor]`;
- `POST /api/v2/events/search` with the same in an `EventsListRequest` body.
`from` is inclusive and `to` exclusive. A page holding `page[limit]` events carries a cursor in
`meta.page.after` even when nothing follows, so a client must expect an empty last page. With
`index_delay`, an event becomes searchable that many seconds after it was ingested, as Datadog's
indexing lags its intake. Requests need `DD-API-KEY`, `DD-APPLICATION-KEY` and `events_read` (a 403
saying so otherwise); faults (`faults`) are taken after the permission check.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlencode

from datadog_checks.pagerduty_dora.demo.datadog import FORBIDDEN, read_time

from . import search_query
from .dora_api import NOT_AUTHORIZED, datadog_fault
from .faults import Faults
from .server import Reply, Request, Route

__all__ = ['EVENTS_PATH', 'MAX_EVENT_AGE', 'READ', 'SEARCH_PATH', 'EventsState', 'normalize_tag']

EVENTS_PATH = '/api/v2/events'
SEARCH_PATH = '/api/v2/events/search'
READ = 'events_read'
# Datadog's intake does not accept events dated more than 18 hours in the past.
MAX_EVENT_AGE = 18 * 3600
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
DEFAULT_FROM = 'now-15m'
SORTS = ('timestamp', '-timestamp')
LIST_PARAMS = {'filter[query]', 'filter[from]', 'filter[to]', 'sort', 'page[cursor]', 'page[limit]'}
SEARCH_FIELDS = {'filter': {'from', 'to', 'query'}, 'options': {'timeOffset', 'timezone'}, 'page': {'cursor', 'limit'}}
FAULT_KINDS = ('timeout',)
# `@` attributes a query may name, and the stored field each reads.
QUERY_ATTRIBUTES = {'@aggregation_key': 'aggregation_key', '@title': 'title', 'status': 'status'}
STATUSES = {'error': 'error', 'warning': 'warning', 'success': 'success', 'info': 'info'}

_TAG_DISALLOWED = re.compile(r'[^\w\-:./]')
_DATE_MATH = re.compile(r'now(?:-(\d+)([smhdw]))?')
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}


def normalize_tag(tag: str) -> str:
    """A tag as Datadog stores it: lowercase, other characters than letters, digits, `_-:./` as `_`."""
    return _TAG_DISALLOWED.sub('_', tag.strip().lower())[:200]


@dataclass(frozen=True)
class StoredEvent:
    """One event as the fake holds it; `seq` orders events of the same millisecond."""

    seq: int
    event_id: str
    timestamp_ms: int
    ingested_at: float
    tags: tuple[str, ...]
    title: str
    text: str
    aggregation_key: str | None
    status: str
    priority: str
    source_type_name: str | None
    host: str | None

    @property
    def key(self) -> tuple[int, int]:
        return (self.timestamp_ms, self.seq)

    def values_of(self, key: str) -> Iterator[str]:
        field = QUERY_ATTRIBUTES.get(key)
        if field is not None:
            value = getattr(self, field)
            if value is not None:
                yield value
            return
        prefix = key + ':'
        for tag in self.tags:
            if tag.startswith(prefix):
                yield tag[len(prefix) :]

    def to_api(self) -> dict:
        """An `EventResponse`, as Datadog renders a stored Agent event."""
        inner: dict[str, Any] = {
            'evt': {'id': str(10**18 + self.seq), 'source_id': 1, 'type': 'agent', 'uid': self.event_id},
            'priority': self.priority,
            'status': self.status,
            'tags': list(self.tags),
            'timestamp': self.timestamp_ms,
            'title': self.title,
        }
        if self.aggregation_key is not None:
            inner['aggregation_key'] = self.aggregation_key
        if self.source_type_name is not None:
            inner['source_type_name'] = self.source_type_name
        if self.host is not None:
            inner['hostname'] = self.host
        return {
            'id': self.event_id,
            'type': 'event',
            'attributes': {
                'timestamp': _render_ms(self.timestamp_ms),
                'tags': list(self.tags),
                'message': self.text,
                'attributes': inner,
            },
        }


class Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class EventsState:
    """The events Datadog holds for the account, what it refused, the searches it answered, its faults.

    `clock` is the fake's wall clock (epoch seconds): the 18-hour rule, the default time range and
    `index_delay` are measured on it. Remove `events_read` from `permissions` to have reads refused.
    """

    def __init__(
        self,
        api_key: str,
        app_key: str,
        *,
        clock: Callable[[], float] = time.time,
        permissions: Iterable[str] = (READ,),
        index_delay: float = 0.0,
        normalize_tags: bool = True,
        timeout_delay: float = 2.0,
    ) -> None:
        self.api_key = api_key
        self.app_key = app_key
        self.permissions = set(permissions)
        self.index_delay = index_delay
        self.normalize_tags = normalize_tags
        self.timeout_delay = timeout_delay
        self.faults = Faults(FAULT_KINDS)
        self.events: list[StoredEvent] = []
        self.refused = 0
        self.searches: list[dict] = []
        self.rejected: list[tuple[int, list[str]]] = []
        self._keys: list[tuple[int, int]] = []
        self._clock = clock
        self._seq = 0
        self._lock = threading.Lock()

    # Intake ------------------------------------------------------------------------------------

    def ingest(self, events: Iterable[dict]) -> int:
        """Store Agent events (`aggregator.events` dicts) as Datadog's intake would; return how many it kept."""
        kept = 0
        with self._lock:
            now = self._clock()
            for event in events:
                stored = self._store(event, now)
                if stored is None:
                    self.refused += 1
                    continue
                position = bisect.bisect_right(self._keys, stored.key)
                self._keys.insert(position, stored.key)
                self.events.insert(position, stored)
                kept += 1
        return kept

    def _store(self, event: dict, now: float) -> StoredEvent | None:
        timestamp = event.get('timestamp')
        happened = float(timestamp) if isinstance(timestamp, (int, float)) and timestamp else now
        if happened < now - MAX_EVENT_AGE:
            return None
        self._seq += 1
        source = event.get('source_type_name')
        tags = [str(tag) for tag in event.get('tags') or ()]
        if source:
            tags.append('source:{}'.format(source))
        if self.normalize_tags:
            tags = [normalize_tag(tag) for tag in tags]
        alert_type = event.get('alert_type') or 'info'
        return StoredEvent(
            seq=self._seq,
            event_id=base64.urlsafe_b64encode('event-{:012d}'.format(self._seq).encode()).decode().rstrip('='),
            timestamp_ms=int(happened * 1000),
            ingested_at=now,
            tags=tuple(dict.fromkeys(tags)),
            title=str(event.get('msg_title') or ''),
            text=str(event.get('msg_text') or ''),
            aggregation_key=event.get('aggregation_key'),
            status=STATUSES.get(alert_type, 'info'),
            priority=event.get('priority') or 'normal',
            source_type_name=source,
            host=event.get('host'),
        )

    # API ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Route tuples for `FakeServer`."""
        return [('GET', re.escape(EVENTS_PATH), self.handle_list), ('POST', re.escape(SEARCH_PATH), self.handle_search)]

    def handle_list(self, request: Request) -> Reply:
        """`GET /api/v2/events`."""
        unknown = sorted(set(request.query) - LIST_PARAMS)
        params = {name: request.arg(name) for name in LIST_PARAMS}
        return self._answer(request, params, ['{}: unknown parameter'.format(name) for name in unknown], link=True)

    def handle_search(self, request: Request) -> Reply:
        """`POST /api/v2/events/search`."""
        try:
            body = request.json() if request.body else {}
        except ValueError:
            body = None
        errors: list[str] = []
        params: dict[str, Any] = {}
        if not isinstance(body, dict):
            errors.append('body: must be a JSON object')
            body = {}
        errors += ['{}: unknown field'.format(name) for name in sorted(set(body) - set(SEARCH_FIELDS) - {'sort'})]
        for section, fields in SEARCH_FIELDS.items():
            value = body.get(section, {})
            if not isinstance(value, dict):
                errors.append('{}: must be an object'.format(section))
                continue
            errors += ['{}.{}: unknown field'.format(section, name) for name in sorted(set(value) - fields)]
        found_page, found_filter = body.get('page'), body.get('filter')
        page: dict = found_page if isinstance(found_page, dict) else {}
        flt: dict = found_filter if isinstance(found_filter, dict) else {}
        params = {
            'filter[query]': flt.get('query'),
            'filter[from]': flt.get('from'),
            'filter[to]': flt.get('to'),
            'sort': body.get('sort'),
            'page[cursor]': page.get('cursor'),
            'page[limit]': page.get('limit'),
        }
        return self._answer(request, params, errors, link=False)

    def _answer(self, request: Request, params: dict[str, Any], errors: list[str], *, link: bool) -> Reply:
        with self._lock:
            refused = self._guard(request)
            if refused is not None:
                return refused
            try:
                if errors:
                    raise Refused(self._bad(errors))
                reply = self._page(params)
            except Refused as e:
                return e.reply
            if link and reply.body['meta']['page'].get('after'):
                query = {k: v for k, v in params.items() if v is not None}
                query['page[cursor]'] = reply.body['meta']['page']['after']
                host = request.headers.get('host', '127.0.0.1')
                reply.body['links'] = {'next': 'http://{}{}?{}'.format(host, EVENTS_PATH, urlencode(query))}
            return reply

    def _guard(self, request: Request) -> Reply | None:
        if (
            request.headers.get('dd-api-key') != self.api_key
            or request.headers.get('dd-application-key') != self.app_key
        ):
            return Reply(403, FORBIDDEN)
        if READ not in self.permissions:
            return Reply(403, NOT_AUTHORIZED)
        fault = self.faults.take(request)
        if fault is not None:
            exhausted = {'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': str(fault.reset)}
            return datadog_fault(fault, {}, exhausted, self.timeout_delay)
        return None

    def _bad(self, errors: list[str]) -> Reply:
        self.rejected.append((400, errors))
        return Reply(400, {'errors': errors})

    def _page(self, params: dict[str, Any]) -> Reply:
        now = self._clock()
        since = self._time(params.get('filter[from]') or DEFAULT_FROM, now, 'filter[from]')
        until = self._time(params.get('filter[to]') or 'now', now, 'filter[to]')
        sort = params.get('sort') or '-timestamp'
        if sort not in SORTS:
            raise Refused(self._bad(['sort: must be one of {}'.format(', '.join(SORTS))]))
        limit = _int(params.get('page[limit]'), DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            raise Refused(self._bad(['page[limit]: must be an integer from 1 to {}'.format(MAX_LIMIT)]))
        try:
            terms = search_query.parse(params.get('filter[query]'))
        except ValueError as e:
            raise Refused(self._bad(['filter[query]: {}'.format(e)])) from None
        after = self._cursor(params.get('page[cursor]'), sort)
        self.searches.append(dict(params))
        descending = sort.startswith('-')
        lo = bisect.bisect_left(self._keys, (since, 0))
        hi = bisect.bisect_left(self._keys, (until, 0))
        if after is not None:
            if descending:
                hi = min(hi, bisect.bisect_left(self._keys, after))
            else:
                lo = max(lo, bisect.bisect_right(self._keys, after))
        positions = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        visible_until = now - self.index_delay
        found: list[StoredEvent] = []
        for position in positions:
            event = self.events[position]
            if event.ingested_at > visible_until or not search_query.matches(terms, event.values_of):
                continue
            found.append(event)
            if len(found) == limit:
                break
        page: dict[str, str] = {}
        if len(found) == limit:
            page['after'] = _encode_cursor(found[-1].key, sort)
        meta = {'elapsed': 1, 'page': page, 'request_id': 'fake-{}'.format(len(self.searches)), 'status': 'done'}
        return Reply(200, {'data': [event.to_api() for event in found], 'meta': meta})

    def _time(self, value: Any, now: float, name: str) -> int:
        """A time bound in milliseconds: an integer of milliseconds, RFC 3339, or `now[-N<unit>]`."""
        text = str(value).strip()
        if re.fullmatch(r'\d+', text):
            return int(text)
        math = _DATE_MATH.fullmatch(text)
        if math:
            back = int(math.group(1)) * _UNITS[math.group(2)] if math.group(1) else 0
            return int((now - back) * 1000)
        parsed = read_time(text)
        if parsed is None:
            raise Refused(self._bad(['{}: not a timestamp, an RFC 3339 date or date math: {!r}'.format(name, text)]))
        return int(parsed * 1000)

    def _cursor(self, value: Any, sort: str) -> tuple[int, int] | None:
        if value is None:
            return None
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(value) + '=' * (-len(str(value)) % 4)))
            timestamp_ms, seq, cursor_sort = decoded
            if cursor_sort != sort:
                raise ValueError('the cursor was made for another sort order')
            return (int(timestamp_ms), int(seq))
        except (ValueError, TypeError):
            raise Refused(self._bad(['page[cursor]: invalid cursor'])) from None


def _encode_cursor(key: tuple[int, int], sort: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key[0], key[1], sort]).encode()).decode().rstrip('=')


def _int(value: Any, default: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _render_ms(timestamp_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '{:03d}Z'.format(timestamp_ms % 1000)
