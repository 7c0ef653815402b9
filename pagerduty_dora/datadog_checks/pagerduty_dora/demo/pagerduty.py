# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The parts of PagerDuty's REST API v2 the check reads, serving a `PagerDutyAccount` on 127.0.0.1.

It keeps the real API's edges, because those are what the check must meet:

- `since`/`until` on `GET /incidents` filter on *creation* time; a naive timestamp is read in the
  *account* time zone; times are rendered in the account zone unless `time_zone` says otherwise;
- no `since`/`until` means the last 30 days; a range over 6 months is a 400;
- `limit` is capped at 100; `offset + limit` past 10,000 is a 400 with code 2002;
- log entries come newest first;
- a `Date` header on every answer with the account's `now`, not the machine's clock.

    account = PagerDutyAccount(now=parse_time('2026-11-26T12:00:00Z'))
    api = account.add_service('checkout-api', team_ids=[account.add_team('Payments')])
    incident_id = account.trigger(api, 'Checkout errors', priority='P1')
    with PagerDutyApi(account) as pagerduty:
        ...  # point a client at pagerduty.url with `Authorization: Token token=<account.token>`
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from array import array
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .account import UTC_ZONE, PagerDutyAccount
from .rendering import STATUSES, URGENCIES
from .server import LoopbackServer, Reply, Request, Route

MAX_LIMIT = 100
DEFAULT_LIMIT = 25
MAX_OFFSET_PLUS_LIMIT = 10000
DEFAULT_RANGE = 30 * 86400
MAX_RANGE_MONTHS = 6
UNAUTHORIZED = {'error': {'message': 'Authentication failed', 'code': 2006}}


class ApiError(Exception):
    """A request the real API would refuse; becomes a PagerDuty-shaped error body."""

    def __init__(self, status: int, message: str, code: int, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reply = Reply(
            status, {'error': dict({'message': message, 'code': code}, **({'errors': list(errors)} if errors else {}))}
        )


def invalid(detail: str) -> ApiError:
    return ApiError(400, 'Invalid Input Provided', 2001, [detail])


def not_found() -> ApiError:
    return ApiError(404, 'Not Found', 2100)


class PagerDutyApi:
    """Serve a `PagerDutyAccount` as the PagerDuty REST API v2 on a loopback port."""

    server_class: Any = LoopbackServer

    def __init__(self, account: PagerDutyAccount) -> None:
        self.account = account
        self._query_cache: dict[tuple, array] = {}
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

    # -- request pipeline --------------------------------------------------------------------

    def _guard(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """What every route is served through."""

        def serve(request: Request) -> Reply:
            return self._answer(request, handler)

        return serve

    def _answer(self, request: Request, handler: Callable[[Request], Any]) -> Any:
        if not self._knows(token(request)):
            return Reply(401, UNAUTHORIZED)
        return self._handle(request, handler)

    def _knows(self, key: str | None) -> bool:
        return key == self.account.token

    def _handle(self, request: Request, handler: Callable[[Request], Any]) -> Any:
        try:
            with self.account.lock:
                return handler(request)
        except ApiError as e:
            return e.reply

    # -- parameters --------------------------------------------------------------------------

    def _zone(self, request: Request) -> dt.tzinfo:
        name = request.arg('time_zone')
        if not name:
            return self.account.time_zone
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid('Time zone is invalid.') from None
        return UTC_ZONE if name in ('UTC', 'Etc/UTC') else zone

    def _moment(self, text: str) -> float:
        """Read a `since`/`until` value; one without an offset is in the account's time zone."""
        try:
            moment = dt.datetime.fromisoformat(text.strip().replace('Z', '+00:00').replace('z', '+00:00'))
        except ValueError:
            raise invalid('{} is invalid.'.format(text)) from None
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
            raise invalid('since must be before until.')
        # The real message is as unhelpful as this; the client must not rely on its text.
        if until > _add_months(dt.datetime.fromtimestamp(since, dt.timezone.utc), MAX_RANGE_MONTHS).timestamp():
            raise invalid(' is invalid.')
        return since, until

    def _paging(self, request: Request) -> tuple[int, int]:
        try:
            limit = int(request.arg('limit') or DEFAULT_LIMIT)
            offset = int(request.arg('offset') or 0)
        except ValueError:
            raise invalid('limit and offset must be integers.') from None
        if limit < 1 or offset < 0:
            raise invalid('limit must be positive and offset not negative.')
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

    def _incident(self, request: Request) -> int:
        try:
            return self.account.index_of(request.match['id'])
        except KeyError:
            raise not_found() from None

    # -- incidents ---------------------------------------------------------------------------

    def _list_incidents(self, request: Request) -> Reply:
        account = self.account
        zone = self._zone(request)
        since, until = self._window(request, default_range=True)
        statuses = _choices(request.args('statuses'), STATUSES, 'statuses')
        urgencies = _choices(request.args('urgencies'), URGENCIES, 'urgencies')
        service_ids = set(request.args('service_ids'))
        services = {i for i, s in enumerate(account.services) if s['id'] in service_ids}
        if service_ids and not services:
            services = {-1}  # unknown ids match nothing rather than everything
        if request.args('team_ids'):
            team_services = account.team_services(request.args('team_ids')) or {-1}
            services = services & team_services if services else team_services
        sort_by = request.arg('sort_by') or 'created_at'
        field, _, direction = sort_by.partition(':')
        if field not in ('created_at', 'incident_number', 'resolved_at') or direction not in ('', 'asc', 'desc'):
            raise invalid('sort_by {} is invalid.'.format(sort_by))
        chosen = tuple(tuple(sorted(values)) for values in (statuses, services, urgencies))
        key = (account.version, since, until, chosen, field)
        rows = self._query_cache.get(key)
        if rows is None:
            rows = _sorted(account, account.created_in(since, until, statuses, services, urgencies), field)
            if len(self._query_cache) > 16:
                self._query_cache.clear()
            self._query_cache[key] = rows
        if direction == 'desc':
            rows = rows[::-1]
        trigger = with_trigger(request)
        return self._page(request, 'incidents', rows, lambda i: account.render_incident(i, zone, self.url, trigger))

    def _get_incident(self, request: Request) -> Reply:
        index = self._incident(request)
        incident = self.account.render_incident(index, self._zone(request), self.url, with_trigger(request))
        return Reply(200, {'incident': incident})

    def _incident_alerts(self, request: Request) -> Reply:
        """`GET /incidents/{id}/alerts`, oldest first: the alert that opened the incident, if a monitoring tool did."""
        alerts = self.account.render_alerts(self._incident(request), self.url)
        return self._page(request, 'alerts', range(len(alerts)), lambda i: alerts[i])

    # -- log entries -------------------------------------------------------------------------

    def _log_rows(self, request: Request, incident: int | None, services: set[int] | None) -> list[int]:
        since, until = self._window(request, default_range=incident is None)
        overview = request.arg('is_overview') == 'true'
        return self.account.log_entries(since, until, incident=incident, overview=overview, services=services)

    def _list_log_entries(self, request: Request) -> Reply:
        team_ids = request.args('team_ids')
        services = self.account.team_services(team_ids) if team_ids else None
        return self._render_log_page(request, self._log_rows(request, None, services))

    def _incident_log_entries(self, request: Request) -> Reply:
        index = self._incident(request)
        return self._render_log_page(request, self._log_rows(request, index, None))

    def _render_log_page(self, request: Request, rows: Sequence[int]) -> Reply:
        zone = self._zone(request)
        include = request.args('include')
        with_incident, channels = 'incidents' in include, 'channels' in include
        return self._page(
            request,
            'log_entries',
            rows,
            lambda s: self.account.render_log_entry(s, zone, self.url, with_incident, channels),
        )

    # -- services and teams ------------------------------------------------------------------

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
            raise not_found()
        return Reply(200, {'service': self._render_service(found[0])})

    def _get_team(self, request: Request) -> Reply:
        found = [t for t in self.account.teams if t['id'] == request.match['id']]
        if not found:
            raise not_found()
        return Reply(200, {'team': dict(found[0], type='team', summary=found[0]['name'])})


def with_trigger(request: Request) -> bool:
    """Whether the request asks for each incident's first trigger entry (`include[]=first_trigger_log_entries`)."""
    return 'first_trigger_log_entries' in request.args('include')


def token(request: Request) -> str | None:
    """The API key of `Authorization: Token token=...`, or None."""
    scheme, _, value = request.headers.get('authorization', '').partition(' ')
    if scheme.lower() != 'token' or not value.startswith('token='):
        return None
    return value[len('token=') :].strip()


def _choices(values: list[str], allowed: Sequence[str], name: str) -> set[int]:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise invalid('{} {} is invalid.'.format(name, unknown[0]))
    return {allowed.index(v) for v in values}


def _sorted(account: PagerDutyAccount, rows: array, field: str) -> array:
    """Incidents (in creation order) in the order of `sort_by`'s field."""
    if field == 'incident_number':
        return array('i', sorted(rows))
    if field == 'resolved_at':
        # Open incidents have no resolve: they come after every resolved one, in creation order.
        resolved = account._resolved
        done = sorted((i for i in rows if not math.isnan(resolved[i])), key=resolved.__getitem__)
        return array('i', done + [i for i in rows if math.isnan(resolved[i])])
    return rows


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
