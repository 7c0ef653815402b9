# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Software Catalog as the mapping rules see it: read from the Datadog API and/or definition files.

`CatalogStore` refreshes each configured source every `catalog_refresh_interval` seconds, keeps the
last good copy of each source in the persistent cache, and answers `current()`: the merged catalog,
the last good copy (with a warning) when a refresh fails, or None while a configured source has never
loaded, so that nothing is submitted with a mapping the catalog would have corrected.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

import yaml

from . import cache
from .api import ApiClient, ApiError, AuthError
from .incident import LATEST_TIME, format_time
from .mapping import Catalog, CatalogService, CatalogTeam, name_key

CACHE_KEY = 'catalog'
CACHE_VERSION = 1

SOURCE_API = 'datadog_api'
SOURCE_FILES = 'files'

DEFINITIONS_PATH = '/api/v2/services/definitions'
ENTITIES_PATH = '/api/v2/catalog/entity'
TEAMS_PATH = '/api/v2/team'
# The largest page every one of the three endpoints accepts.
PAGE_SIZE = 100
# A bound on pages per endpoint, so a server that never ends a listing cannot keep a refresh going.
MAX_PAGES = 1000
# After a failed refresh, try again on a later run rather than waiting a whole refresh interval.
RETRY_AFTER_FAILURE = 30.0

SCOPES = {
    DEFINITIONS_PATH: 'apm_service_catalog_read',
    ENTITIES_PATH: 'apm_service_catalog_read',
    TEAMS_PATH: 'teams_read',
}


class InvalidDefinition(ValueError):
    """A service definition that cannot be read; the message says why."""


class CatalogSourceError(Exception):
    """A catalog source could not be read as a whole; the message is safe to show a user."""


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _optional_text(mapping: Mapping[str, Any], key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidDefinition('{} must be a string'.format(where))
    return _text(value)


def _v2_pagerduty_url(integrations: Any) -> str | None:
    if integrations is None:
        return None
    if not isinstance(integrations, Mapping):
        raise InvalidDefinition('integrations must be a mapping')
    pagerduty = integrations.get('pagerduty')
    if pagerduty is None:
        return None
    # v2 writes the URL as a string, v2.1 and v2.2 as `service-url` in a mapping; accept either in
    # every version, since files converted by hand often keep the older form.
    if isinstance(pagerduty, str):
        return _text(pagerduty)
    if isinstance(pagerduty, Mapping):
        return _optional_text(pagerduty, 'service-url', 'integrations.pagerduty.service-url')
    raise InvalidDefinition('integrations.pagerduty must be a URL or a mapping with service-url')


def parse_definition(document: Any, source: str) -> list[CatalogService]:
    """The services one service definition declares (schema v2, v2.1, v2.2 or v3).

    A v3 entity of another kind than `service` declares none. Raises `InvalidDefinition` when the
    document is not a definition or lacks its service name.
    """
    if not isinstance(document, Mapping):
        raise InvalidDefinition('not a mapping')
    if 'apiVersion' in document:
        api_version = document.get('apiVersion')
        if not isinstance(api_version, str) or not api_version.strip().startswith('v3'):
            raise InvalidDefinition('unsupported apiVersion {!r}'.format(api_version))
        if name_key(document.get('kind')) != 'service':
            return []
        metadata = document.get('metadata')
        if not isinstance(metadata, Mapping):
            raise InvalidDefinition('metadata must be a mapping')
        name = _optional_text(metadata, 'name', 'metadata.name')
        if name is None:
            raise InvalidDefinition('metadata.name is missing')
        owner = _optional_text(metadata, 'owner', 'metadata.owner')
        url = None
        integrations = document.get('integrations')
        if integrations is not None:
            if not isinstance(integrations, Mapping):
                raise InvalidDefinition('integrations must be a mapping')
            pagerduty = integrations.get('pagerduty')
            if pagerduty is not None:
                if not isinstance(pagerduty, Mapping):
                    raise InvalidDefinition('integrations.pagerduty must be a mapping with serviceURL')
                url = _optional_text(pagerduty, 'serviceURL', 'integrations.pagerduty.serviceURL')
        return [CatalogService(name=name, team=owner, pagerduty_url=url, source=source)]

    version = document.get('schema-version')
    if version not in ('v2', 'v2.1', 'v2.2'):
        if version is None:
            raise InvalidDefinition('neither schema-version nor apiVersion is set')
        raise InvalidDefinition('unsupported schema-version {!r}'.format(version))
    name = _optional_text(document, 'dd-service', 'dd-service')
    if name is None:
        raise InvalidDefinition('dd-service is missing')
    # `dd-team` is v2's experimental link to Datadog Teams; `team` is the field every version has.
    team = _optional_text(document, 'team', 'team') or _optional_text(document, 'dd-team', 'dd-team')
    return [
        CatalogService(
            name=name, team=team, pagerduty_url=_v2_pagerduty_url(document.get('integrations')), source=source
        )
    ]


def _documents(path: str, content: str) -> list[Any]:
    """The definitions in one file: every document of a YAML stream, or a JSON value; lists are flattened."""
    if path.lower().endswith('.json'):
        loaded: list[Any] = [json.loads(content)]
    else:
        loaded = list(yaml.safe_load_all(content))
    documents: list[Any] = []
    for item in loaded:
        if item is None:
            continue
        documents.extend(item if isinstance(item, list) else [item])
    return documents


def merge_services(groups: Iterable[Iterable[CatalogService]]) -> tuple[CatalogService, ...]:
    """One entry per service name: the first definition wins, and later ones fill only what it lacks.

    The same service is often declared more than once (a v2.2 definition and its v3 entity, or a file
    and the API); counting it twice would make rule 1 see two services behind one URL.
    """
    merged: dict[str, CatalogService] = {}
    for group in groups:
        for service in group:
            key = name_key(service.name)
            known = merged.get(key)
            if known is None:
                merged[key] = service
            elif (known.team is None and service.team) or (known.pagerduty_url is None and service.pagerduty_url):
                merged[key] = CatalogService(
                    name=known.name,
                    team=known.team or service.team,
                    pagerduty_url=known.pagerduty_url or service.pagerduty_url,
                    source=known.source,
                )
    return tuple(merged.values())


def merge_teams(groups: Iterable[Iterable[CatalogTeam]]) -> tuple[CatalogTeam, ...]:
    merged: dict[str, CatalogTeam] = {}
    for group in groups:
        for team in group:
            merged.setdefault(name_key(team.handle), team)
    return tuple(merged.values())


@dataclass(frozen=True)
class SourceCopy:
    """What one source held when it last loaded."""

    loaded_at: float
    services: tuple[CatalogService, ...]
    teams: tuple[CatalogTeam, ...]
    fingerprint: str

    @property
    def count(self) -> int:
        return len(self.services) + len(self.teams)

    def to_json(self) -> dict[str, Any]:
        return {
            'loaded_at': self.loaded_at,
            'count': self.count,
            'fingerprint': self.fingerprint,
            'services': [[s.name, s.team, s.pagerduty_url] for s in self.services],
            'teams': [[t.handle, t.name] for t in self.teams],
        }

    @classmethod
    def from_json(cls, source: str, raw: Any) -> 'SourceCopy':
        """Raises `ValueError` (or `TypeError`) on anything that is not what `to_json` wrote."""
        if not isinstance(raw, Mapping):
            raise ValueError('not an object')
        loaded_at = raw['loaded_at']
        if isinstance(loaded_at, bool) or not isinstance(loaded_at, (int, float)):
            raise ValueError('loaded_at is not a number')
        # Shown to the user as a date (`format_time`) when a refresh fails; it must be one.
        if not 0 <= loaded_at < LATEST_TIME:
            raise ValueError('loaded_at is out of range')
        services = []
        for name, team, url in raw['services']:
            if not isinstance(name, str) or not all(v is None or isinstance(v, str) for v in (team, url)):
                raise ValueError('malformed service')
            services.append(CatalogService(name=name, team=team, pagerduty_url=url, source=source))
        teams = []
        for handle, display in raw['teams']:
            if not isinstance(handle, str) or not isinstance(display, str):
                raise ValueError('malformed team')
            teams.append(CatalogTeam(handle=handle, name=display))
        fingerprint = raw.get('fingerprint')
        if not isinstance(fingerprint, str):
            raise ValueError('fingerprint is not a string')
        return cls(float(loaded_at), tuple(services), tuple(teams), fingerprint)


class CatalogStore:
    """The merged catalog of every configured source, refreshed on an interval, with a persisted last good copy.

    `api` is the Datadog `ApiClient` (carrying `DD-API-KEY` and `DD-APPLICATION-KEY`), or None when
    no application key is configured; `files` are the `catalog_files` globs. `warning` is told what a
    user must see (skipped definitions, stale or missing sources); `clock` is wall time, since load
    times are persisted across restarts.
    """

    def __init__(
        self,
        *,
        api: ApiClient | None,
        files: Sequence[str],
        refresh_interval: float,
        read_cache: Callable[[str], str],
        write_cache: Callable[[str, str], None],
        log: Any,
        warning: Callable[..., None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._patterns = [p for p in (files or ()) if isinstance(p, str) and p.strip()]
        self._refresh_interval = max(0.0, float(refresh_interval))
        self._read_cache = read_cache
        self._write_cache = write_cache
        self._log = log
        self._warning = warning
        self._clock = clock
        self._fingerprints: dict[str, str] = {}
        if api is not None:
            self._fingerprints[SOURCE_API] = 'api:' + api.base_url
        if self._patterns:
            self._fingerprints[SOURCE_FILES] = 'files:' + json.dumps(sorted(self._patterns))
        self._cache_read = False
        self._good: dict[str, SourceCopy] = {}
        self._next_refresh: dict[str, float] = {source: float('-inf') for source in self._fingerprints}
        self._failure: dict[str, str] = {}
        self._failing_since: dict[str, float] = {}
        self._catalog: Catalog | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The configured sources, in merge order (files first: a local definition is the user's last word)."""
        return tuple(s for s in (SOURCE_FILES, SOURCE_API) if s in self._fingerprints)

    def current(self) -> Catalog | None:
        """The catalog to map with, refreshing the sources that are due.

        An empty catalog when no source is configured; None while a configured source has never loaded.
        """
        if not self._fingerprints:
            return Catalog()
        if not self._cache_read:
            self._cache_read = True
            self._load_cache()
        now = self._clock()
        refreshed = False
        for source in self.sources:
            if now < self._next_refresh[source]:
                continue
            try:
                services, teams = self._load_source(source)
            except (ApiError, CatalogSourceError) as e:
                self._failure[source] = str(e)
                self._failing_since.setdefault(source, now)
                self._next_refresh[source] = now + min(self._refresh_interval, RETRY_AFTER_FAILURE)
                self._log.debug('catalog source %s failed to refresh: %s', source, e)
                continue
            self._good[source] = SourceCopy(now, services, teams, self._fingerprints[source])
            self._failure.pop(source, None)
            self._failing_since.pop(source, None)
            self._next_refresh[source] = now + self._refresh_interval
            refreshed = True
            self._log.debug('catalog source %s loaded %d services and %d teams', source, len(services), len(teams))
        if refreshed or self._catalog is None:
            self._rebuild()
        if refreshed:
            self._save_cache()
        return self._answer()

    def counts(self) -> dict[str, int]:
        """Services plus teams held per configured source that has loaded (for the `catalog.entries` gauge)."""
        return {source: self._good[source].count for source in self.sources if source in self._good}

    def _answer(self) -> Catalog | None:
        missing = [s for s in self.sources if s not in self._good]
        for source in self.sources:
            if source in self._good and source in self._failure:
                self._warning(
                    'Catalog source %s could not be refreshed since %s (%s); using the last good copy, loaded at %s',
                    source,
                    format_time(self._failing_since[source]),
                    self._failure[source],
                    format_time(self._good[source].loaded_at),
                )
        if missing:
            for source in missing:
                self._warning(
                    'Catalog source %s has never loaded (%s); nothing is submitted until it does',
                    source,
                    self._failure.get(source, 'not tried yet'),
                )
            return None
        return self._catalog

    def _rebuild(self) -> None:
        copies = [self._good[s] for s in self.sources if s in self._good]
        self._catalog = Catalog(
            services=merge_services(c.services for c in copies),
            teams=merge_teams(c.teams for c in copies),
        )

    def _load_source(self, source: str) -> tuple[tuple[CatalogService, ...], tuple[CatalogTeam, ...]]:
        if source == SOURCE_API:
            return self._load_api()
        return self._load_files(), ()

    # Persistent cache

    def _load_cache(self) -> None:
        try:
            raw = self._read_cache(CACHE_KEY)
        except Exception as e:  # the Agent's cache reader may fail in ways its docs do not list
            self._log.warning('could not read the cached catalog: %s', e)
            return
        if not raw:
            return
        try:
            sources = cache.decode(raw, CACHE_VERSION)['sources']
            if not isinstance(sources, Mapping):
                raise ValueError('sources is not an object')
        except (ValueError, TypeError, KeyError) as e:
            self._log.warning('ignoring the cached catalog, it cannot be decoded: %s', e)
            return
        for source, fingerprint in self._fingerprints.items():
            if source not in sources:
                continue
            try:
                copy = SourceCopy.from_json(source, sources[source])
            except (ValueError, TypeError, KeyError) as e:
                self._log.warning('ignoring the cached catalog of source %s, it cannot be decoded: %s', source, e)
                continue
            # A copy read with other settings (another Datadog site, other globs) is not a copy of this source.
            if copy.fingerprint != fingerprint:
                self._log.debug('ignoring the cached catalog of source %s, its settings changed', source)
                continue
            self._good[source] = copy

    def _save_cache(self) -> None:
        sources = {source: copy.to_json() for source, copy in self._good.items() if source in self._fingerprints}
        self._write_cache(CACHE_KEY, cache.encode(CACHE_VERSION, {'sources': sources}))

    # Files

    def _load_files(self) -> tuple[CatalogService, ...]:
        paths: list[str] = []
        for pattern in self._patterns:
            matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
            matched = [p for p in matched if os.path.isfile(p)]
            if not matched:
                # A file that disappeared (or was never deployed) fails the source: the last good copy
                # stays in use, and with none nothing is submitted mis-tagged.
                raise CatalogSourceError('catalog_files pattern {} matched no file'.format(pattern))
            paths.extend(p for p in matched if p not in paths)
        services: list[CatalogService] = []
        for path in paths:
            try:
                with open(path, encoding='utf-8') as f:
                    content = f.read()
            except (OSError, UnicodeDecodeError) as e:
                # Unreadable is not invalid: the file may be mid-deploy, so keep the last good copy.
                raise CatalogSourceError('cannot read {}: {}'.format(path, getattr(e, 'strerror', None) or e)) from None
            try:
                documents = _documents(path, content)
            except (ValueError, yaml.YAMLError) as e:
                self._warning('Skipping catalog file %s: it is not valid YAML or JSON (%s)', path, _first_line(e))
                continue
            for position, document in enumerate(documents, 1):
                try:
                    services.extend(parse_definition(document, SOURCE_FILES))
                except InvalidDefinition as e:
                    where = path if len(documents) == 1 else '{} (document {})'.format(path, position)
                    self._warning('Skipping a service definition in %s: %s', where, e)
        return merge_services([services])

    # Datadog API

    def _get(self, path: str, params: dict[str, Any]) -> Mapping[str, Any]:
        if self._api is None:
            raise CatalogSourceError('no Datadog API client')
        try:
            response = self._api.get(path, params=params, endpoint=path)
        except AuthError as e:
            if e.status == 403:
                raise CatalogSourceError(
                    'the Datadog API answered 403 to GET {}: the application key (datadog_app_key) lacks the '
                    '{} permission'.format(path, SCOPES[path])
                ) from None
            raise CatalogSourceError(
                'the Datadog API answered {} to GET {}: check datadog_api_key and datadog_app_key'.format(
                    e.status, path
                )
            ) from None
        body = response.data
        if not isinstance(body, Mapping) or not isinstance(body.get('data'), list):
            raise CatalogSourceError('GET {} answered a body without a data list'.format(path))
        return body

    def _load_api(self) -> tuple[tuple[CatalogService, ...], tuple[CatalogTeam, ...]]:
        # v3 entities first: where a service has both, its v3 entity is the newer definition.
        entities = self._fetch_entities()
        definitions = self._fetch_definitions()
        teams = self._fetch_teams()
        return merge_services([entities, definitions]), merge_teams([teams])

    def _fetch_definitions(self) -> list[CatalogService]:
        services: list[CatalogService] = []
        previous_first = None
        for number in range(MAX_PAGES):
            params = {'schema_version': 'v2.2', 'page[size]': PAGE_SIZE, 'page[number]': number}
            data = self._get(DEFINITIONS_PATH, params)['data']
            first = _item_id(data[0]) if data else None
            # A server that ignores page[number] would repeat page 0 forever.
            if first is not None and first == previous_first:
                break
            previous_first = first
            for item in data:
                attributes = item.get('attributes') if isinstance(item, Mapping) else None
                schema = attributes.get('schema') if isinstance(attributes, Mapping) else None
                where = 'service definition {}'.format(_item_id(item) or '(no id)')
                try:
                    services.extend(parse_definition(schema, SOURCE_API))
                except InvalidDefinition as e:
                    self._warning('Skipping %s from the Datadog API: %s', where, e)
            if len(data) < PAGE_SIZE:
                break
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
            _text(attributes.get('name')) or _item_id(entity) or '(no id)',
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
            name = _text(attributes.get('name'))
            if name is None:
                raise InvalidDefinition('no name')
            return [
                CatalogService(name=name, team=_text(attributes.get('owner')), pagerduty_url=None, source=SOURCE_API)
            ]
        except InvalidDefinition as e:
            self._warning('Skipping %s from the Datadog API: %s', where, e)
            return []

    def _fetch_teams(self) -> list[CatalogTeam]:
        teams: list[CatalogTeam] = []
        previous_first = None
        for number in range(MAX_PAGES):
            data = self._get(TEAMS_PATH, {'page[size]': PAGE_SIZE, 'page[number]': number})['data']
            first = _item_id(data[0]) if data else None
            if first is not None and first == previous_first:
                break
            previous_first = first
            for item in data:
                attributes = item.get('attributes') if isinstance(item, Mapping) else None
                if not isinstance(attributes, Mapping):
                    attributes = {}
                handle = _text(attributes.get('handle'))
                if handle is None:
                    self._log.debug('skipping a Datadog team without a handle: %s', _item_id(item))
                    continue
                teams.append(CatalogTeam(handle=handle, name=_text(attributes.get('name')) or handle))
            if len(data) < PAGE_SIZE:
                break
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


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
