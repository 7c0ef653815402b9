# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Datadog API source of the catalog: service definitions, v3 catalog entities and Datadog Teams.

Each listing is read to its end, within `MAX_PAGES`; a definition that cannot be read is skipped with
a warning, and a listing that cannot be read fails the whole source (`CatalogSourceError`, or the
`ApiError` of the request), so that a partial catalog never replaces the last good one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator, cast
from urllib.parse import parse_qs, urlsplit

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError
from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.permissions import catalog_refusal
from datadog_checks.pagerduty_dora.common.text import for_log, text_or_none

from .definitions import CatalogSourceError, InvalidDefinition, merge_services, merge_teams, parse_definition
from .model import CatalogService, CatalogTeam, name_key

SOURCE_API = 'datadog_api'

DEFINITIONS_PATH = '/api/v2/services/definitions'
ENTITIES_PATH = '/api/v2/catalog/entity'
TEAMS_PATH = '/api/v2/team'
# The largest page every one of the three endpoints accepts.
PAGE_SIZE = 100
# A bound on pages per endpoint, so a server that never ends a listing cannot keep a refresh going.
MAX_PAGES = 1000

SCOPES = {
    DEFINITIONS_PATH: 'apm_service_catalog_read',
    ENTITIES_PATH: 'apm_service_catalog_read',
    TEAMS_PATH: 'teams_read',
}


class CatalogApi:
    """Reads the catalog through `api`, the Datadog `ApiClient` (carrying `DD-API-KEY` and `DD-APPLICATION-KEY`).

    `warning` is told of each definition skipped, `log` of what only a debug log needs.
    """

    def __init__(self, api: ApiClient, log: Any, warning: Callable[..., None]) -> None:
        self._api = api
        self._log = log
        self._warning = warning

    @property
    def fingerprint(self) -> str:
        """The settings a cached copy must have been read with to stand in for this source."""
        return 'api:' + self._api.base_url

    def load(self) -> tuple[tuple[CatalogService, ...], tuple[CatalogTeam, ...]]:
        # v3 entities first: where a service has both, its v3 entity is the newer definition.
        entities = self._fetch_entities()
        definitions = self._fetch_definitions()
        teams = self._fetch_teams()
        return merge_services([entities, definitions]), merge_teams([teams])

    def _get(self, path: str, params: dict[str, Any]) -> Mapping[str, Any]:
        try:
            response = self._api.get(path, params=params, endpoint=path)
        except ApiError as e:
            if dispose(e) is not Disposition.FIX_KEY:
                raise
            # The key refused: the source fails with what to fix, the permission this listing needs.
            raise CatalogSourceError(catalog_refusal(cast(AuthError, e), path, SCOPES.get(path, 'needed'))) from None
        body = response.data
        if not isinstance(body, Mapping) or not isinstance(body.get('data'), list):
            raise CatalogSourceError('GET {} answered a body without a data list'.format(path))
        return body

    def _numbered_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list]:
        """The `data` of each page of a listing paged by `page[number]`, first to last."""
        previous_first = None
        for number in range(MAX_PAGES):
            data = self._get(path, dict(params, **{'page[size]': PAGE_SIZE, 'page[number]': number}))['data']
            first = _item_id(data[0]) if data else None
            # A server that ignores page[number] would repeat page 0 forever.
            if first is not None and first == previous_first:
                return
            previous_first = first
            yield data
            if len(data) < PAGE_SIZE:
                return

    def _fetch_definitions(self) -> list[CatalogService]:
        services: list[CatalogService] = []
        for data in self._numbered_pages(DEFINITIONS_PATH, {'schema_version': 'v2.2'}):
            for item in data:
                attributes = item.get('attributes') if isinstance(item, Mapping) else None
                schema = attributes.get('schema') if isinstance(attributes, Mapping) else None
                where = 'service definition {}'.format(_item_id(item) or '(no id)')
                try:
                    services.extend(parse_definition(schema, SOURCE_API))
                except InvalidDefinition as e:
                    self._warning('Skipping %s from the Datadog API: %s', for_log(where), for_log(str(e)))
        return services

    def _fetch_entities(self) -> list[CatalogService]:
        services: list[CatalogService] = []
        offset = 0
        for _ in range(MAX_PAGES):
            params = {
                'filter[kind]': 'service',
                'include': 'schema',
                'page[offset]': offset,
                'page[limit]': PAGE_SIZE,
            }
            body = self._get(ENTITIES_PATH, params)
            data = body['data']
            included: list = body['included'] if isinstance(body.get('included'), list) else []
            schemas = {
                inc['id']: _dig(inc, 'attributes', 'schema')
                for inc in included
                if _dig(inc, 'type') == 'schema' and isinstance(_dig(inc, 'id'), str)
            }
            for entity in data:
                services.extend(self._entity_services(entity, schemas))
            next_offset = _next_offset(body.get('links'))
            # Only the offset of `links.next` is used, on our own base URL: credentials never follow a link.
            if not data or next_offset is None or next_offset <= offset:
                break
            offset = next_offset
        return services

    def _entity_services(self, entity: Any, schemas: Mapping[Any, Any]) -> list[CatalogService]:
        if not isinstance(entity, Mapping):
            self._warning('Skipping a catalog entity from the Datadog API: not an object')
            return []
        attributes: Mapping[str, Any] = entity['attributes'] if isinstance(entity.get('attributes'), Mapping) else {}
        where = 'catalog entity {}'.format(
            text_or_none(attributes.get('name')) or _item_id(entity) or '(no id)',
        )
        schema_id = _dig(entity, 'relationships', 'schema', 'data', 'id')
        schema = schemas.get(schema_id) if isinstance(schema_id, str) else None
        if schema is None and isinstance(entity.get('id'), str):
            schema = schemas.get(entity['id'])
        try:
            if schema is not None:
                return parse_definition(schema, SOURCE_API)
            # Without its schema an entity still gives its name and owner, enough for the name rules.
            if name_key(attributes.get('kind')) not in ('', 'service'):
                return []
            name = text_or_none(attributes.get('name'))
            if name is None:
                raise InvalidDefinition('no name')
            return [
                CatalogService(
                    name=name, team=text_or_none(attributes.get('owner')), pagerduty_url=None, source=SOURCE_API
                )
            ]
        except InvalidDefinition as e:
            self._warning('Skipping %s from the Datadog API: %s', for_log(where), for_log(str(e)))
            return []

    def _fetch_teams(self) -> list[CatalogTeam]:
        teams: list[CatalogTeam] = []
        for data in self._numbered_pages(TEAMS_PATH, {}):
            for item in data:
                attributes = item.get('attributes') if isinstance(item, Mapping) else None
                if not isinstance(attributes, Mapping):
                    attributes = {}
                handle = text_or_none(attributes.get('handle'))
                if handle is None:
                    self._log.debug('skipping a Datadog team without a handle: %s', for_log(_item_id(item)))
                    continue
                teams.append(CatalogTeam(handle=handle, name=text_or_none(attributes.get('name')) or handle))
        return teams


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _item_id(item: Any) -> str | None:
    if isinstance(item, Mapping) and isinstance(item.get('id'), str):
        return item['id']
    return None


def _next_offset(links: Any) -> int | None:
    if not isinstance(links, Mapping) or not isinstance(links.get('next'), str) or not links['next']:
        return None
    try:
        values = parse_qs(urlsplit(links['next']).query).get('page[offset]')
        return int(values[-1]) if values else None
    except ValueError:
        return None
