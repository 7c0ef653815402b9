# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Datadog's Software Catalog and Teams listings the demo's check reads, for `LoopbackServer`.

They page like the real API: service definitions have no total (a short page ends the listing),
entities carry `links.next` and their schema in `included`, teams give their page numbers. A
missing or wrong `DD-API-KEY` or `DD-APPLICATION-KEY` answers 403.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from .server import Reply, Request, Route

DEFINITIONS_PATH = '/api/v2/services/definitions'
ENTITIES_PATH = '/api/v2/catalog/entity'
TEAMS_PATH = '/api/v2/team'
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
FORBIDDEN = {'errors': ['Forbidden']}
# What Datadog answers a valid key that lacks the permission an endpoint needs.
MISSING_PERMISSION = {'errors': ['Forbidden', 'Failed permission authorization checks']}
MONITOR_PATH = r'/api/v1/monitor/(?P<id>\d+)'


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(parts)))


def v22_definition(name: str, team: str | None = None, pagerduty_url: str | None = None) -> dict[str, Any]:
    """A schema v2.2 service definition, as written in a file or returned in `attributes.schema`."""
    definition: dict[str, Any] = {'schema-version': 'v2.2', 'dd-service': name}
    if team is not None:
        definition['team'] = team
    if pagerduty_url is not None:
        definition['integrations'] = {'pagerduty': {'service-url': pagerduty_url}}
    return definition


def v3_entity(name: str, owner: str | None = None, pagerduty_url: str | None = None, kind: str = 'service') -> dict:
    """A schema v3 entity definition."""
    entity: dict[str, Any] = {'apiVersion': 'v3', 'kind': kind, 'metadata': {'name': name}}
    if owner is not None:
        entity['metadata']['owner'] = owner
    if pagerduty_url is not None:
        entity['integrations'] = {'pagerduty': {'serviceURL': pagerduty_url}}
    return entity


class Refused(Exception):
    """Answers the request with `reply` instead of a page."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class Catalog:
    """What the Datadog account holds: v2.2 definitions, v3 entities, `(handle, display name)` teams, and its keys."""

    def __init__(
        self,
        *,
        definitions: list[dict[str, Any]] | None = None,
        entities: list[dict[str, Any]] | None = None,
        teams: list[tuple[str, str]] | None = None,
        monitors: dict[int, dict[str, Any]] | None = None,
        api_key: str = 'fake-dd-api-key',
        app_key: str = 'fake-dd-app-key',
    ) -> None:
        # Datadog monitors by id, as `GET /api/v1/monitor/{id}` answers (see `monitor`).
        self.monitors = dict(monitors or {})
        self.definitions = list(definitions or [])
        self.entities = list(entities or [])
        self.teams = list(teams or [])
        self.api_key = api_key
        self.app_key = app_key

    def routes(self) -> list[Route]:
        """The service definitions, catalog entity and team listings."""
        return [
            ('GET', DEFINITIONS_PATH, self._serve(self.definitions_page, 'catalog')),
            ('GET', ENTITIES_PATH, self._serve(self.entities_page, 'catalog')),
            ('GET', TEAMS_PATH, self._serve(self.teams_page, 'teams')),
            ('GET', MONITOR_PATH, self._serve(self.monitor_page, 'monitors')),
        ]

    def monitor_page(self, request: Request) -> Reply:
        """`GET /api/v1/monitor/{id}`: the monitor, or 404 for one that does not exist (any more)."""
        found = self.monitors.get(int(request.match['id']))
        if found is None:
            return Reply(404, {'errors': ['Monitor not found']})
        return Reply(200, found)

    def _serve(self, page: Any, scope: str) -> Any:
        def handler(request: Request) -> Reply:
            try:
                self.check_access(request, scope)
                return page(request)
            except Refused as e:
                return e.reply

        return handler

    def check_access(self, request: Request, scope: str) -> None:
        """Raise `Refused` unless the keys are right (and may read `scope`: `catalog` or `teams`)."""
        if (
            request.headers.get('dd-api-key') != self.api_key
            or request.headers.get('dd-application-key') != self.app_key
        ):
            raise Refused(Reply(403, FORBIDDEN))

    def paging(self, request: Request, size_name: str, index_name: str, default_size: int) -> tuple[int, int]:
        """(size, index) of the page asked for."""
        return int(request.arg(size_name) or default_size), int(request.arg(index_name) or 0)

    def definitions_page(self, request: Request) -> Reply:
        size, number = self.paging(request, 'page[size]', 'page[number]', DEFAULT_PAGE_SIZE)
        data = [
            {
                'type': 'service-definition',
                'id': _id('definition', str(d.get('dd-service'))),
                'attributes': {
                    'meta': {
                        'ingested-schema-version': str(d.get('schema-version', 'v2.2')),
                        'ingestion-source': 'api',
                        'last-modified-time': '2026-11-20T09:00:00Z',
                        'github-html-url': '',
                        'origin': 'unknown',
                        'origin-detail': '',
                        'warnings': [],
                    },
                    'schema': d,
                },
            }
            for d in self.definitions[number * size : (number + 1) * size]
        ]
        return Reply(200, {'data': data})

    def entities_page(self, request: Request) -> Reply:
        limit, offset = self.paging(request, 'page[limit]', 'page[offset]', MAX_PAGE_SIZE)
        kind = request.arg('filter[kind]')
        selected = [e for e in self.entities if kind is None or e.get('kind') == kind]
        include_schema = 'schema' in (request.arg('include') or '').split(',')
        data, included = [], []
        for entity in selected[offset : offset + limit]:
            metadata: dict = entity['metadata'] if isinstance(entity.get('metadata'), dict) else {}
            name = str(metadata.get('name'))
            entity_id = _id('entity', str(entity.get('kind')), name)
            schema_id = _id('schema', str(entity.get('kind')), name)
            data.append(
                {
                    'type': 'entity',
                    'id': entity_id,
                    'attributes': {
                        'apiVersion': entity.get('apiVersion'),
                        'kind': entity.get('kind'),
                        'name': metadata.get('name'),
                        'namespace': 'default',
                        'owner': metadata.get('owner'),
                        'displayName': metadata.get('displayName', metadata.get('name')),
                        'tags': [],
                    },
                    'meta': {'ingestionSource': 'api', 'origin': 'unknown', 'createdAt': '2026-11-20T09:00:00Z'},
                    'relationships': {'schema': {'data': {'id': schema_id, 'type': 'schema'}}},
                }
            )
            if include_schema:
                included.append({'type': 'schema', 'id': schema_id, 'attributes': {'schema': entity}})
        base = 'http://{}{}'.format(request.headers.get('host', '127.0.0.1'), ENTITIES_PATH)

        def link(at: int) -> str:
            query = {k: v[-1] for k, v in request.query.items()}
            query.update({'page[offset]': str(at), 'page[limit]': str(limit)})
            return base + '?' + urlencode(query)

        links = {'self': link(offset)}
        if offset + limit < len(selected):
            links['next'] = link(offset + limit)
        if offset > 0:
            links['previous'] = link(max(0, offset - limit))
        body: dict[str, Any] = {
            'data': data,
            'links': links,
            'meta': {'count': len(data), 'includeCount': len(included)},
        }
        if include_schema:
            body['included'] = included
        return Reply(200, body)

    def teams_page(self, request: Request) -> Reply:
        size, number = self.paging(request, 'page[size]', 'page[number]', DEFAULT_PAGE_SIZE)
        data = [
            {
                'type': 'team',
                'id': _id('team', handle),
                'attributes': {
                    'handle': handle,
                    'name': name,
                    'summary': None,
                    'description': None,
                    'avatar': None,
                    'banner': 0,
                    'user_count': 3,
                    'link_count': 0,
                    'created_at': '2026-01-05T10:00:00.000000+00:00',
                    'modified_at': '2026-01-05T10:00:00.000000+00:00',
                },
                'relationships': {},
            }
            for handle, name in self.teams[number * size : (number + 1) * size]
        ]
        total = len(self.teams)
        last = max(0, (total - 1) // size)
        pagination = {
            'type': 'number_size',
            'number': number,
            'size': size,
            'total': total,
            'first_number': 0,
            'last_number': last,
            'prev_number': number - 1 if number > 0 else None,
            'next_number': number + 1 if number < last else None,
        }
        return Reply(200, {'data': data, 'meta': {'pagination': pagination}})


def monitor(monitor_id: int, name: str, query: str, tags: list[str]) -> dict[str, Any]:
    """A monitor as `GET /api/v1/monitor/{id}` answers it (a `by {...}` in `query` makes it Multi Alert)."""
    return {
        'id': monitor_id,
        'name': name,
        'type': 'query alert',
        'query': query,
        'message': '{} @pagerduty-Acme'.format(name),
        'tags': tags,
        'options': {'thresholds': {'critical': 5}, 'notify_no_data': False},
        'overall_state': 'Alert',
        'priority': 2,
        'multi': ' by {' in query,
    }
