# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's Software Catalog and Teams endpoints, for `FakeServer`.

It answers like the real API where the check depends on it: `page[size]` and `page[limit]` above 100
are refused, service definitions have no total (a short page ends the listing), entities carry
`links.next` and their schema in `included`, and a missing or wrong `DD-API-KEY` or
`DD-APPLICATION-KEY`, or a key without the needed permission, answers 403.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable
from urllib.parse import urlencode

from .server import Reply, Request

DEFINITIONS_PATH = '/api/v2/services/definitions'
ENTITIES_PATH = '/api/v2/catalog/entity'
TEAMS_PATH = '/api/v2/team'
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10

Route = tuple[str, str, Callable[[Request], Reply]]


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


class CatalogState:
    """What the fake Datadog account holds: v2.2 definitions, v3 entities, teams, and the accepted keys.

    `teams` are `(handle, display name)` pairs. `catalog_read` / `teams_read` say whether the
    application key has `apm_service_catalog_read` / `teams_read`.
    """

    def __init__(
        self,
        *,
        definitions: list[dict[str, Any]] | None = None,
        entities: list[dict[str, Any]] | None = None,
        teams: list[tuple[str, str]] | None = None,
        api_key: str = 'fake-dd-api-key',
        app_key: str = 'fake-dd-app-key',
        catalog_read: bool = True,
        teams_read: bool = True,
    ) -> None:
        self.definitions = list(definitions or [])
        self.entities = list(entities or [])
        self.teams = list(teams or [])
        self.api_key = api_key
        self.app_key = app_key
        self.catalog_read = catalog_read
        self.teams_read = teams_read

    def authorized(self, request: Request, permission: bool) -> Reply | None:
        """None when the keys are right and hold the permission, else the 403 the real API answers."""
        if (
            request.headers.get('dd-api-key') != self.api_key
            or request.headers.get('dd-application-key') != self.app_key
        ):
            return Reply(403, {'errors': ['Forbidden']})
        if not permission:
            return Reply(403, {'errors': ['Forbidden']})
        return None


def _int_arg(request: Request, name: str, default: int) -> int | None:
    value = request.arg(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _bad_request(detail: str) -> Reply:
    return Reply(400, {'errors': [detail]})


def _definitions(state: CatalogState) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        refused = state.authorized(request, state.catalog_read)
        if refused:
            return refused
        size = _int_arg(request, 'page[size]', DEFAULT_PAGE_SIZE)
        number = _int_arg(request, 'page[number]', 0)
        if size is None or number is None or not 1 <= size <= MAX_PAGE_SIZE:
            return _bad_request('page[size] must be between 1 and {}'.format(MAX_PAGE_SIZE))
        page = state.definitions[number * size : (number + 1) * size]
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
            for d in page
        ]
        return Reply(200, {'data': data})

    return handler


def _entities(state: CatalogState) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        refused = state.authorized(request, state.catalog_read)
        if refused:
            return refused
        limit = _int_arg(request, 'page[limit]', MAX_PAGE_SIZE)
        offset = _int_arg(request, 'page[offset]', 0)
        if limit is None or offset is None or not 1 <= limit <= MAX_PAGE_SIZE:
            return _bad_request('page[limit] must be between 1 and {}'.format(MAX_PAGE_SIZE))
        kind = request.arg('filter[kind]')
        selected = [e for e in state.entities if kind is None or e.get('kind') == kind]
        page = selected[offset : offset + limit]
        include_schema = 'schema' in (request.arg('include') or '').split(',')
        data, included = [], []
        for entity in page:
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

    return handler


def _teams(state: CatalogState) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        refused = state.authorized(request, state.teams_read)
        if refused:
            return refused
        size = _int_arg(request, 'page[size]', DEFAULT_PAGE_SIZE)
        number = _int_arg(request, 'page[number]', 0)
        if size is None or number is None or not 1 <= size <= MAX_PAGE_SIZE:
            return _bad_request('page[size] must be between 1 and {}'.format(MAX_PAGE_SIZE))
        page = state.teams[number * size : (number + 1) * size]
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
            for handle, name in page
        ]
        total = len(state.teams)
        last = max(0, (total - 1) // size)
        return Reply(
            200,
            {
                'data': data,
                'meta': {
                    'pagination': {
                        'type': 'number_size',
                        'number': number,
                        'size': size,
                        'total': total,
                        'first_number': 0,
                        'last_number': last,
                        'prev_number': number - 1 if number > 0 else None,
                        'next_number': number + 1 if number < last else None,
                    }
                },
            },
        )

    return handler


def catalog_routes(state: CatalogState) -> list[Route]:
    """Routes for `FakeServer`: the service definitions, catalog entity and team listings over `state`."""
    return [
        ('GET', DEFINITIONS_PATH, _definitions(state)),
        ('GET', ENTITIES_PATH, _entities(state)),
        ('GET', TEAMS_PATH, _teams(state)),
    ]
