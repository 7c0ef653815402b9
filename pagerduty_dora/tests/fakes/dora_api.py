# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's DORA failure API, validating payloads the way the real API does.

Serve it with `FakeServer(state.routes())`. It builds on the demo's intake (`POST
/api/v2/dora/failure`) with the API's rate limit, `DELETE` of a failure, injected faults (`faults`)
and validation. Beyond the published rules it refuses attribute names the API does not define, so
a misspelt field fails a test instead of being silently ignored.

It also answers the read side, in the shapes of the official client's models
(`DORAFailuresListResponse`, `DORAFailureFetchResponse`):
- `POST /api/v2/dora/failures` lists failures: `from`/`to` (RFC 3339) bound when a failure
  *started*, `from` inclusive and `to` exclusive (the stricter reading of the API's "minimum /
  maximum timestamp": a client that pages by moving `to` must not count on seeing `to` itself;
  `to_inclusive` makes it inclusive, for a client that must not count on the opposite either);
  `limit` 1-1000, default 10; `sort` `started_at` or `finished_at`, `-` for descending, default
  `-started_at`, ties by id; `query` in event-platform syntax on service, env, team, severity,
  version and `custom_tags` keys. There is no cursor. Times come back as RFC 3339 strings with
  milliseconds, so what is read back is exact to the millisecond, not the nanosecond posted;
- `GET /api/v2/dora/failures/{id}` returns one failure, 404 when unknown.
Both need `DD-API-KEY`, `DD-APPLICATION-KEY` and the `dora_metrics_read` permission (a 403 saying
so otherwise); faults are taken after the permission check and the rate limit.
"""

from __future__ import annotations

import bisect
import re
import time
from typing import Any, Callable, Iterable, Iterator, TypeGuard

from datadog_checks.pagerduty_dora.demo.datadog import FAILURE_PATH, FORBIDDEN, DoraFailures, read_time, render_time

from . import search_query
from .faults import Fault, Faults
from .server import Handler, Reply, Request

ID_PATTERN = re.compile(r'[A-Za-z0-9\-_.:]{16,128}')
TAG_PATTERN = re.compile(r'[^:\s][^:]*:.+', re.DOTALL)
MAX_CUSTOM_TAGS = 100
ATTRIBUTES = {
    'custom_tags',
    'env',
    'finished_at',
    'git',
    'id',
    'name',
    'services',
    'severity',
    'started_at',
    'team',
    'version',
}
STRING_ATTRIBUTES = ('env', 'name', 'severity', 'team', 'version')
FAULT_KINDS = ('timeout',)  # named faults, besides any HTTP status

FAILURES_PATH = '/api/v2/dora/failures'
READ = 'dora_metrics_read'
WRITE = 'dora_metrics_write'
NOT_AUTHORIZED = {'errors': ['Failed permission authorization checks']}
LIST_TYPE = 'dora_failures_list_request'
LIST_ATTRIBUTES = {'from', 'to', 'limit', 'query', 'sort'}
SORT_FIELDS = ('started_at', 'finished_at')
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Query keys that are attributes of a failure; any other key matches the failure's `custom_tags`.
QUERY_ATTRIBUTES = ('env', 'team', 'severity', 'version')


def to_nanoseconds(value: int) -> int:
    """The API takes seconds, milliseconds or nanoseconds and tells them apart by magnitude."""
    if value < 10**11:
        return value * 10**9
    if value < 10**14:
        return value * 10**6
    return value


def validate(body: Any) -> list[str]:
    """The errors the API would answer a 400 with for this request body (empty when it is valid)."""
    if not isinstance(body, dict) or not isinstance(body.get('data'), dict):
        return ['data: required object']
    attributes = body['data'].get('attributes')
    if not isinstance(attributes, dict):
        return ['data.attributes: required object']
    errors = ['{}: unknown attribute'.format(name) for name in sorted(set(attributes) - ATTRIBUTES)]
    failure_id = attributes.get('id')
    if failure_id is not None and (not isinstance(failure_id, str) or not ID_PATTERN.fullmatch(failure_id)):
        errors.append('id: must be 16-128 characters of a-z, A-Z, 0-9, -, _, ., :')
    started_at = attributes.get('started_at')
    if not _is_int(started_at) or started_at <= 0:
        errors.append('started_at: required positive integer (Unix time in s, ms or ns)')
        started_at = None
    finished_at = attributes.get('finished_at')
    if finished_at is not None:
        if not _is_int(finished_at) or finished_at <= 0:
            errors.append('finished_at: must be a positive integer (Unix time in s, ms or ns)')
        elif started_at is not None and to_nanoseconds(finished_at) < to_nanoseconds(started_at):
            errors.append('finished_at: must not be before started_at')
    services = attributes.get('services')
    if services is not None and (
        not isinstance(services, list) or not all(isinstance(s, str) and s.strip() for s in services)
    ):
        errors.append('services: must be a list of service names')
        services = None
    team = attributes.get('team')
    if not services and not (isinstance(team, str) and team.strip()):
        errors.append('services or team: at least one is required')
    for name in STRING_ATTRIBUTES:
        if name in attributes and not isinstance(attributes[name], str):
            errors.append('{}: must be a string'.format(name))
    tags = attributes.get('custom_tags')
    if tags is not None:
        if not isinstance(tags, list):
            errors.append('custom_tags: must be a list')
        else:
            if len(tags) > MAX_CUSTOM_TAGS:
                errors.append('custom_tags: at most {} tags'.format(MAX_CUSTOM_TAGS))
            bad = [t for t in tags if not isinstance(t, str) or not TAG_PATTERN.fullmatch(t)]
            if bad:
                errors.append('custom_tags: tags must follow the key:value pattern: {!r}'.format(bad[:3]))
    git = attributes.get('git')
    if git is not None and not (
        isinstance(git, dict) and isinstance(git.get('commit_sha'), str) and isinstance(git.get('repository_url'), str)
    ):
        errors.append('git: must have commit_sha and repository_url')
    return errors


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class DoraState(DoraFailures):
    """What the fake DORA API has received, plus its faults and rate limit.

    `failures` holds the latest accepted attributes per failure id, `posts` every accepted one in
    order. With `rate_limit`, at most that many requests are answered per `period` seconds; every
    answer then carries `X-RateLimit-*` headers and the excess gets a 429, as Datadog does. Faults
    are taken after authentication and the rate limit.
    """

    def __init__(
        self,
        api_key: str,
        *,
        app_key: str | None = None,
        rate_limit: int | None = None,
        period: int = 60,
        accepted_status: int = 202,
        timeout_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        permissions: Iterable[str] = (READ, WRITE),
    ) -> None:
        super().__init__(api_key)
        # Deleting and reading failures need an application key as well; without one configured, any is refused.
        self.app_key = app_key
        # What the application key's user may do: remove `dora_metrics_read` to have reads refused.
        self.permissions = set(permissions)
        # Whether the application key's user has `events_read`, for the Events API this fake also answers.
        self.events_read = True
        # Whether the list's `to` includes failures started exactly at `to` (the API does not say).
        self.to_inclusive = False
        # Failures by start time, rebuilt when what was received changed (`_version`).
        self._version = 0
        self._index: list[tuple[int, str]] = []
        self._index_version = -1
        self.rate_limit = rate_limit
        self.period = period
        self.accepted_status = accepted_status
        self.timeout_delay = timeout_delay
        self.removed: list[str] = []
        self.faults = Faults(FAULT_KINDS)
        # The clock the rate limit's windows are counted on (monotonic seconds; a test may give its own).
        self.clock = clock
        self._window_start = clock()
        self._window_used = 0
        # Requests answered 429 because the window was spent, and the fewest requests a window had left:
        # a client that paces itself by the headers meets no 429 and leaves the reserve it promises.
        self.limited = 0
        self.least_remaining: int | None = None

    def routes(self) -> list[tuple[str, str, Handler]]:
        """Route tuples for `FakeServer`."""
        return super().routes() + [
            ('DELETE', re.escape(FAILURE_PATH) + r'/(?P<id>[^/]+)', self.handle_delete),
            ('POST', re.escape(FAILURES_PATH), self.handle_list),
            ('GET', re.escape(FAILURES_PATH) + r'/(?P<id>[^/]+)', self.handle_get),
        ]

    def no_events(self, request: Request) -> Reply:
        """The Events API of a new account, refusing a key without `events_read` as Datadog does."""
        refused, _ = self._admit(request)
        if refused is None and not self.events_read:
            refused = Reply(403, NOT_AUTHORIZED)
        return refused or Reply(200, {'data': [], 'meta': {'page': {}}, 'links': {}})

    def preload(self, failures: Iterable[dict]) -> None:
        """Hold these failures (the `attributes` of accepted posts, each with an `id`) as if posted."""
        with self._lock:
            for attributes in failures:
                self.failures[attributes['id']] = attributes
            self._version += 1

    def handle(self, request: Request) -> Reply:
        reply: Any = super().handle(request)
        with self._lock:
            self._version += 1
        return reply

    def errors(self, body: Any) -> list[str]:
        return validate(body)

    def _admit(
        self, request: Request, *, app_key: bool = False, permission: str | None = None
    ) -> tuple[Reply | None, dict[str, str]]:
        """Authentication, permission, rate limit and injected faults, shared by every route.

        A refusal, or None and the headers of the answer.
        """
        if request.headers.get('dd-api-key') != self.api_key:
            return Reply(403, FORBIDDEN), {}
        if app_key and (self.app_key is None or request.headers.get('dd-application-key') != self.app_key):
            return Reply(403, FORBIDDEN), {}
        if permission is not None and permission not in self.permissions:
            return Reply(403, NOT_AUTHORIZED), {}
        limited = self._rate_limit()
        if limited is not None:
            return limited, {}
        headers = self._rate_headers()
        fault = self.faults.take(request)
        if fault is not None:
            return datadog_fault(fault, headers, self._exhausted_headers(), self.timeout_delay), headers
        return None, headers

    def handle_delete(self, request: Request) -> Reply:
        """`DELETE /api/v2/dora/failure/{id}`: 204 when it existed, 404 when it did not."""
        with self._lock:
            refused, headers = self._admit(request, app_key=True)
            if refused is not None:
                return refused
            failure_id = request.match['id']
            if self.failures.pop(failure_id, None) is None:
                return Reply(404, {'errors': ['Not Found']}, headers=headers)
            self.removed.append(failure_id)
            self._version += 1
            return Reply(204, headers=headers)

    def handle_list(self, request: Request) -> Reply:
        """`POST /api/v2/dora/failures`: one page of failures, newest start first unless `sort` says otherwise."""
        with self._lock:
            refused, headers = self._admit(request, app_key=True, permission=READ)
            if refused is not None:
                return refused
            body = _json(request)
            errors = list_errors(body)
            if errors:
                self.rejected.append((400, errors))
                return Reply(400, {'errors': errors}, headers=headers)
            attributes = body['data']['attributes']
            since, until = read_time(attributes.get('from')), read_time(attributes.get('to'))
            terms = search_query.parse(attributes.get('query'))
            limit = attributes.get('limit', DEFAULT_LIMIT)
            sort = attributes.get('sort', '-started_at')
            ids = self._select(
                None if since is None else _ns(since), None if until is None else _ns(until), sort, terms, limit
            )
            return Reply(200, {'data': [failure_object(i, self.failures[i]) for i in ids]}, headers=headers)

    def handle_get(self, request: Request) -> Reply:
        """`GET /api/v2/dora/failures/{id}`: the failure, 404 when there is none by that id."""
        with self._lock:
            refused, headers = self._admit(request, app_key=True, permission=READ)
            if refused is not None:
                return refused
            attributes = self.failures.get(request.match['id'])
            if attributes is None:
                return Reply(404, {'errors': ['Not Found']}, headers=headers)
            return Reply(200, {'data': failure_object(request.match['id'], attributes)}, headers=headers)

    def _select(self, since: int | None, until: int | None, sort: str, terms: list, limit: int) -> list[str]:
        """Up to `limit` ids of failures started in [since, until) that match `terms`, in `sort` order."""
        index = self._started_index()
        lo = 0 if since is None else bisect.bisect_left(index, (since, ''))
        if until is None:
            hi = len(index)
        elif self.to_inclusive:
            hi = bisect.bisect_right(index, (until, '\uffff'))
        else:
            hi = bisect.bisect_left(index, (until, ''))
        field = sort.lstrip('-')
        descending = sort.startswith('-')
        if field == 'started_at':
            positions: Iterable[int] = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
            found = []
            for position in positions:
                failure_id = index[position][1]
                if search_query.matches(terms, self._values_of(failure_id)):
                    found.append(failure_id)
                    if len(found) == limit:
                        break
            return found
        matching = [i for _, i in index[lo:hi] if search_query.matches(terms, self._values_of(i))]
        finished = {i: self.failures[i].get('finished_at') for i in matching}
        # Open failures have no finish time; they come last in either order.
        closed = [i for i in matching if finished[i] is not None]
        closed.sort(key=lambda i: (to_nanoseconds(finished[i] or 0), i))
        if descending:
            closed.reverse()
        return (closed + sorted(i for i in matching if finished[i] is None))[:limit]

    def _started_index(self) -> list[tuple[int, str]]:
        if self._index_version != self._version:
            self._index = sorted((to_nanoseconds(a['started_at']), i) for i, a in self.failures.items())
            self._index_version = self._version
        return self._index

    def _values_of(self, failure_id: str) -> Callable[[str], Iterator[str]]:
        attributes = self.failures[failure_id]

        def values_of(key: str) -> Iterator[str]:
            if key == 'service':
                yield from attributes.get('services') or ()
            elif key in QUERY_ATTRIBUTES:
                if isinstance(attributes.get(key), str):
                    yield attributes[key]
            else:
                for tag in attributes.get('custom_tags') or ():
                    name, _, value = tag.partition(':')
                    if name.casefold() == key:
                        yield value

        return values_of

    def _rate_limit(self) -> Reply | None:
        if self.rate_limit is None:
            return None
        now = self.clock()
        if now - self._window_start >= self.period:
            self._window_start = now
            self._window_used = 0
        self._window_used += 1
        if self._window_used <= self.rate_limit:
            remaining = self.rate_limit - self._window_used
            self.least_remaining = remaining if self.least_remaining is None else min(self.least_remaining, remaining)
            return None
        self.limited += 1
        return Reply(429, {'errors': ['Too many requests']}, headers=self._exhausted_headers())

    def _reset(self) -> int:
        return max(1, int(self.period - (self.clock() - self._window_start) + 0.999))

    def _rate_headers(self) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        return {
            'X-RateLimit-Limit': str(self.rate_limit),
            'X-RateLimit-Remaining': str(max(0, self.rate_limit - self._window_used)),
            'X-RateLimit-Reset': str(self._reset()),
            'X-RateLimit-Period': str(self.period),
        }

    def _exhausted_headers(self) -> dict[str, str]:
        return {
            'X-RateLimit-Limit': str(self.rate_limit or 1),
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': str(self._reset()),
            'X-RateLimit-Period': str(self.period),
        }


def list_errors(body: Any) -> list[str]:
    """Why the API would answer this list request with a 400 (empty when it would not)."""
    data = body.get('data') if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return ['data: required object']
    attributes = data.get('attributes')
    if not isinstance(attributes, dict):
        return ['data.attributes: required object']
    errors = ['{}: unknown attribute'.format(name) for name in sorted(set(attributes) - LIST_ATTRIBUTES)]
    if data.get('type', LIST_TYPE) != LIST_TYPE:
        errors.append('data.type: must be {}'.format(LIST_TYPE))
    limit = attributes.get('limit', DEFAULT_LIMIT)
    if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
        errors.append('limit: must be an integer from 1 to {}'.format(MAX_LIMIT))
    for name in ('from', 'to'):
        if name in attributes and read_time(attributes[name]) is None:
            errors.append('{}: must be an RFC 3339 date-time with a time zone'.format(name))
    sort = attributes.get('sort', '-started_at')
    if not isinstance(sort, str) or sort.lstrip('-') not in SORT_FIELDS or sort.startswith('--'):
        errors.append('sort: unsupported sort {!r}'.format(sort))
    query = attributes.get('query', '')
    if not isinstance(query, str):
        errors.append('query: must be a string')
    else:
        try:
            search_query.parse(query)
        except ValueError as e:
            errors.append('query: {}'.format(e))
    return errors


def failure_object(failure_id: str, attributes: dict) -> dict:
    """A `DORAIncidentObject`: the posted attributes as the API renders them back, times as RFC 3339."""
    rendered: dict[str, Any] = {}
    for name in ('name', 'services', 'team', 'env', 'severity', 'custom_tags', 'version', 'git'):
        if attributes.get(name) is not None:
            rendered[name] = attributes[name]
    for name in ('started_at', 'finished_at'):
        if attributes.get(name) is not None:
            rendered[name] = render_time(to_nanoseconds(attributes[name]) / 1e9)
    return {'id': failure_id, 'type': 'dora_failure', 'attributes': rendered}


def _ns(epoch: float) -> int:
    return int(round(epoch * 1_000_000)) * 1_000


def _json(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def datadog_fault(fault: Fault, headers: dict[str, str], exhausted: dict[str, str], timeout_delay: float) -> Reply:
    """A fault as Datadog's API answers it: `timeout` is a 504 held back `timeout_delay` seconds, a 429
    carries the `exhausted` rate limit headers, any other status an `errors` list."""
    if fault.kind == 'timeout':
        return Reply(504, {'errors': ['Gateway Timeout']}, delay=timeout_delay)
    if fault.kind == '429':
        return Reply(429, {'errors': ['Too many requests']}, headers=dict(headers, **exhausted))
    status = int(fault.kind)
    message = 'Internal Server Error' if 500 <= status <= 504 else 'Injected error {}'.format(status)
    return Reply(status, {'errors': [message]}, headers=headers)
