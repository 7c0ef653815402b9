# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Software Catalog as the mapping rules see it: read from the Datadog API and/or definition files.

`CatalogStore` refreshes each configured source every `catalog_refresh_interval` seconds, keeps the
last good copy of each source in the persistent cache, and answers `current()`: the merged catalog,
the last good copy (with a warning) when a refresh fails, or None while a configured source has never
loaded, so that nothing is submitted with a mapping the catalog would have corrected.

Definition files are kept file by file: a file that turns invalid, empty, unreadable or goes away keeps
giving the entries of its last good read, so one bad file (a deploy halfway through, a typo) never
moves the incidents of the others to the fallback rule. The files source has never loaded only while
no file has ever given a valid definition.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from dataclasses import dataclass, field
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


def _additional_owners(value: Any) -> tuple[str, ...]:
    """The team handles of v3 `metadata.additionalOwners` (`[{name: <team>, type: <role>}]`)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidDefinition('metadata.additionalOwners must be a list')
    owners: list[str] = []
    for position, owner in enumerate(value):
        # The schema's form is a mapping with `name`; a bare handle is what people write by hand.
        handle = owner.get('name') if isinstance(owner, Mapping) else owner
        if not isinstance(handle, str):
            raise InvalidDefinition('metadata.additionalOwners[{}] must be a team name'.format(position))
        if handle.strip() and handle.strip() not in owners:
            owners.append(handle.strip())
    return tuple(owners)


def parse_definition(document: Any, source: str) -> list[CatalogService]:
    """The entities one definition declares (schema v2, v2.1, v2.2, or a v3 entity of any kind).

    Raises `InvalidDefinition` when the document is not a definition or lacks its name.
    """
    if not isinstance(document, Mapping):
        raise InvalidDefinition('not a mapping')
    if 'apiVersion' in document:
        api_version = document.get('apiVersion')
        if not isinstance(api_version, str) or not api_version.strip().startswith('v3'):
            raise InvalidDefinition('unsupported apiVersion {!r}'.format(api_version))
        kind = document.get('kind')
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidDefinition('kind is missing' if kind is None else 'kind must be a non-empty string')
        metadata = document.get('metadata')
        if not isinstance(metadata, Mapping):
            raise InvalidDefinition('metadata must be a mapping')
        name = _optional_text(metadata, 'name', 'metadata.name')
        if name is None:
            raise InvalidDefinition('metadata.name is missing')
        owner = _optional_text(metadata, 'owner', 'metadata.owner')
        owners = _additional_owners(metadata.get('additionalOwners'))
        inherit_from = _optional_text(metadata, 'inheritFrom', 'metadata.inheritFrom')
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
        return [
            CatalogService(
                name=name,
                team=owner,
                pagerduty_url=url,
                source=source,
                kind=name_key(kind),
                owners=owners,
                inherit_from=inherit_from,
            )
        ]

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


def _entity_key(service: CatalogService) -> tuple[str, str]:
    return service.kind, name_key(service.name)


def merge_services(groups: Iterable[Iterable[CatalogService]]) -> tuple[CatalogService, ...]:
    """One entry per entity (kind and name): the first definition wins, later ones fill only what it lacks.

    The same service is often declared more than once (a v2.2 definition and its v3 entity, or a file
    and the API); counting it twice would make rule 1 see two services behind one URL.
    """
    merged: dict[tuple[str, str], CatalogService] = {}
    for group in groups:
        for service in group:
            key = _entity_key(service)
            known = merged.get(key)
            if known is None:
                merged[key] = service
                continue
            filled = dataclasses.replace(
                known,
                team=known.team or service.team,
                pagerduty_url=known.pagerduty_url or service.pagerduty_url,
                owners=known.owners or service.owners,
                inherit_from=known.inherit_from or service.inherit_from,
            )
            if filled != known:
                merged[key] = filled
    return tuple(merged.values())


def merge_teams(groups: Iterable[Iterable[CatalogTeam]]) -> tuple[CatalogTeam, ...]:
    merged: dict[str, CatalogTeam] = {}
    for group in groups:
        for team in group:
            merged.setdefault(name_key(team.handle), team)
    return tuple(merged.values())


def _reference(text: str) -> tuple[str, str] | None:
    """`<kind>:<name>` (or `<kind>:<namespace>/<name>`) as an entity key, or None if it is not one."""
    kind, colon, name = text.partition(':')
    name = name.rsplit('/', 1)[-1]
    if not colon or not name_key(kind) or not name_key(name):
        return None
    return name_key(kind), name_key(name)


def resolve_inheritance(services: Sequence[CatalogService]) -> tuple[tuple[CatalogService, ...], list[str]]:
    """Fill each entity's missing owner and PagerDuty URL from the entity its `inheritFrom` names.

    Chains are followed (a queue inheriting from a service inheriting from a system), within the
    entities given. Returns the entities, in order, and what could not be followed: an unknown
    entity, a reference that is not `<kind>:<name>`, or a cycle (whose entities keep their own fields).
    """
    index = {_entity_key(s): s for s in services}
    resolved: dict[tuple[str, str], CatalogService] = {}
    problems: list[str] = []

    def target(key: tuple[str, str]) -> tuple[str, str] | None:
        service = index[key]
        if service.inherit_from is None or (service.team and service.pagerduty_url):
            return None
        reference = _reference(service.inherit_from)
        if reference is None:
            problems.append(
                'catalog entity {}:{} has inheritFrom {!r}, which is not <kind>:<name>'.format(
                    service.kind, service.name, service.inherit_from
                )
            )
            return None
        if reference not in index:
            problems.append(
                'catalog entity {}:{} inherits from {}, which no catalog source defines'.format(
                    service.kind, service.name, service.inherit_from
                )
            )
            return None
        return reference

    for start in index:
        # Walk the chain without recursion (chains can be long), then resolve it from its far end.
        chain: list[tuple[str, str]] = []
        node: tuple[str, str] | None = start
        parent: CatalogService | None = None
        while node is not None:
            if node in resolved:
                parent = resolved[node]
                break
            if node in chain:
                cycle = chain[chain.index(node) :]
                problems.append(
                    'catalog entities {} inherit from each other in a cycle'.format(
                        ', '.join('{}:{}'.format(index[k].kind, index[k].name) for k in cycle)
                    )
                )
                break
            chain.append(node)
            node = target(node)
        for key in reversed(chain):
            own = index[key]
            if parent is not None and own.inherit_from is not None:
                own = dataclasses.replace(
                    own, team=own.team or parent.team, pagerduty_url=own.pagerduty_url or parent.pagerduty_url
                )
            resolved[key] = own
            parent = own
    return tuple(resolved[_entity_key(s)] for s in index.values()), problems


def file_teams(services: Iterable[CatalogService]) -> tuple[CatalogTeam, ...]:
    """The team handles definition files name (`team`, `owner`, `additionalOwners`), as known teams.

    Without the Teams API these are the only Datadog team names the check can know, and a handle
    written in a definition is one a person chose to name a team by.
    """
    teams: list[CatalogTeam] = []
    for service in services:
        for handle in (service.team, *service.owners):
            if handle and handle.strip():
                teams.append(CatalogTeam(handle=handle.strip(), name=handle.strip()))
    return merge_teams([teams])


def _encode_service(service: CatalogService) -> list[Any]:
    row: list[Any] = [service.name, service.team, service.pagerduty_url]
    if service.kind != 'service' or service.owners or service.inherit_from is not None:
        row += [service.kind, list(service.owners), service.inherit_from]
    return row


def _decode_service(row: Any, source: str) -> CatalogService:
    if not isinstance(row, list) or len(row) not in (3, 6):
        raise ValueError('malformed service')
    name, team, url = row[:3]
    kind, owners, inherit_from = row[3:] if len(row) == 6 else ('service', [], None)
    if (
        not isinstance(name, str)
        or not all(v is None or isinstance(v, str) for v in (team, url, inherit_from))
        or not isinstance(kind, str)
        or not isinstance(owners, list)
        or not all(isinstance(o, str) for o in owners)
    ):
        raise ValueError('malformed service')
    return CatalogService(
        name=name,
        team=team,
        pagerduty_url=url,
        source=source,
        kind=kind,
        owners=tuple(owners),
        inherit_from=inherit_from,
    )


def _decode_time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError('loaded_at is not a number')
    # Shown to the user as a date (`format_time`) when a refresh fails; it must be one.
    if not 0 <= value < LATEST_TIME:
        raise ValueError('loaded_at is out of range')
    return float(value)


@dataclass(frozen=True)
class FileCopy:
    """The entries one definition file gave at its last good read."""

    loaded_at: float
    services: tuple[CatalogService, ...]


@dataclass(frozen=True)
class SourceCopy:
    """What one source held when it last loaded; for the files source, also the last good copy of each file."""

    loaded_at: float
    services: tuple[CatalogService, ...]
    teams: tuple[CatalogTeam, ...]
    fingerprint: str
    files: Mapping[str, FileCopy] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.services) + len(self.teams)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            'loaded_at': self.loaded_at,
            'count': self.count,
            'fingerprint': self.fingerprint,
            # With files, the services are the merge of the files' copies: stored once, per file.
            'services': [] if self.files else [_encode_service(s) for s in self.services],
            'teams': [[t.handle, t.name] for t in self.teams],
        }
        if self.files:
            document['files'] = {
                path: {'loaded_at': copy.loaded_at, 'services': [_encode_service(s) for s in copy.services]}
                for path, copy in self.files.items()
            }
        return document

    @classmethod
    def from_json(cls, source: str, raw: Any) -> 'SourceCopy':
        """Raises `ValueError` (or `TypeError`) on anything that is not what `to_json` wrote."""
        if not isinstance(raw, Mapping):
            raise ValueError('not an object')
        loaded_at = _decode_time(raw['loaded_at'])
        services = [_decode_service(row, source) for row in raw['services']]
        teams = []
        for handle, display in raw['teams']:
            if not isinstance(handle, str) or not isinstance(display, str):
                raise ValueError('malformed team')
            teams.append(CatalogTeam(handle=handle, name=display))
        fingerprint = raw.get('fingerprint')
        if not isinstance(fingerprint, str):
            raise ValueError('fingerprint is not a string')
        files: dict[str, FileCopy] = {}
        raw_files = raw.get('files', {})
        if not isinstance(raw_files, Mapping):
            raise ValueError('files is not an object')
        for path, copy in raw_files.items():
            if not isinstance(copy, Mapping):
                raise ValueError('malformed file copy')
            files[path] = FileCopy(
                _decode_time(copy['loaded_at']), tuple(_decode_service(row, source) for row in copy['services'])
            )
        if files:
            services = list(merge_services(copy.services for copy in files.values()))
        return cls(loaded_at, tuple(services), tuple(teams), fingerprint, files)


@dataclass(frozen=True)
class FileRead:
    """One read of a definition file: its entries, the documents skipped (position, reason), and why
    the file as a whole gave nothing (`problem`: unreadable, not YAML or JSON, empty), if it did not."""

    services: tuple[CatalogService, ...]
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None


def read_definitions_file(path: str) -> FileRead:
    """Read and parse one definition file; never raises for what the file holds."""
    try:
        with open(path, encoding='utf-8') as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return FileRead((), problem='cannot be read ({})'.format(getattr(e, 'strerror', None) or e))
    try:
        documents = _documents(path, content)
    except (ValueError, yaml.YAMLError) as e:
        return FileRead((), problem='is not valid YAML or JSON ({})'.format(_first_line(e)))
    if not documents:
        return FileRead((), problem='holds no definition')
    services: list[CatalogService] = []
    skipped: list[tuple[int | None, str]] = []
    for position, document in enumerate(documents, 1):
        try:
            services.extend(parse_definition(document, SOURCE_FILES))
        except InvalidDefinition as e:
            skipped.append((position if len(documents) > 1 else None, str(e)))
    return FileRead(tuple(services), tuple(skipped), None if services else 'holds no valid definition')


@dataclass(frozen=True)
class CatalogFileReport:
    """What one catalog file gave the catalog at the last refresh, or a `catalog_files` pattern that matched none.

    `entries` is what the file gives the catalog now, `kept` how many of those come from its last good
    copy (loaded at `kept_at`) because the file is `problem` (missing, unreadable, invalid, empty) or has
    invalid definitions since `since`.
    """

    path: str
    entries: int = 0
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None
    since: float | None = None
    kept: int = 0
    kept_at: float | None = None
    unmatched_pattern: bool = False

    def reasons(self) -> list[str]:
        """Why entries were skipped or kept, one line each, for people."""
        if self.unmatched_pattern:
            return ['the pattern matches no file']
        lines = [
            reason if position is None else 'document {}: {}'.format(position, reason)
            for position, reason in self.skipped
        ]
        if self.problem is not None:
            if self.kept:
                lines.append(
                    'file {} since {}; using the {} it gave at {}'.format(
                        self.problem, format_time(self.since or 0), _entries(self.kept), format_time(self.kept_at or 0)
                    )
                )
            else:
                lines.append('file {}'.format(self.problem))
        elif self.kept:
            lines.append(
                'invalid definitions since {}; using {} it gave at {} and no longer gives'.format(
                    format_time(self.since or 0), _entries(self.kept), format_time(self.kept_at or 0)
                )
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        key = 'pattern' if self.unmatched_pattern else 'file'
        return {key: self.path, 'entries': self.entries, 'skipped': self.reasons()}


class CatalogStore:
    """The merged catalog of every configured source, refreshed on an interval, with a persisted last good copy.

    `api` is the Datadog `ApiClient` (carrying `DD-API-KEY` and `DD-APPLICATION-KEY`), or None when
    no application key is configured; `files` are the `catalog_files` globs. `warning` is told what a
    user must see (skipped definitions, stale or missing sources and files), at every run while it
    lasts; `clock` is wall time, since load times are persisted across restarts.
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
            # `per-file`: a copy cached before files were kept one by one cannot stand in for them.
            self._fingerprints[SOURCE_FILES] = 'files/per-file:' + json.dumps(sorted(self._patterns))
        self._cache_read = False
        self._good: dict[str, SourceCopy] = {}
        self._next_refresh: dict[str, float] = {source: float('-inf') for source in self._fingerprints}
        self._failure: dict[str, str] = {}
        self._failing_since: dict[str, float] = {}
        self._catalog: Catalog | None = None
        # Files: the last good copy of each, since when each has been failing, and the last refresh's report.
        self._files: dict[str, FileCopy] = {}
        self._file_failing_since: dict[str, float] = {}
        self._file_reports: list[CatalogFileReport] = []
        self._inheritance_problems: list[str] = []

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
                services, teams = self._load_source(source, now)
            except (ApiError, CatalogSourceError) as e:
                self._failure[source] = str(e)
                self._failing_since.setdefault(source, now)
                self._next_refresh[source] = now + min(self._refresh_interval, RETRY_AFTER_FAILURE)
                self._log.debug('catalog source %s failed to refresh: %s', source, e)
                continue
            files = dict(self._files) if source == SOURCE_FILES else {}
            self._good[source] = SourceCopy(now, services, teams, self._fingerprints[source], files)
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

    def file_report(self) -> list[dict[str, Any]]:
        """Per catalog file, and per pattern that matched none, at the last refresh: entries, and why any were skipped.

        For `--dry-run`, which shows what each file gave before anything is submitted.
        """
        return [report.to_json() for report in self._file_reports]

    def _answer(self) -> Catalog | None:
        for report in self._file_reports:
            self._warn_file(report)
        for problem in self._inheritance_problems:
            self._warning('Ignoring an inheritFrom: %s', problem)
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

    def _warn_file(self, report: CatalogFileReport) -> None:
        if report.unmatched_pattern:
            self._warning('catalog_files pattern %s matches no file', report.path)
            return
        for position, reason in report.skipped:
            where = report.path if position is None else '{} (document {})'.format(report.path, position)
            self._warning('Skipping a service definition in %s: %s', where, reason)
        if report.problem is not None and report.kept:
            self._warning(
                'Catalog file %s %s since %s; still using the %s it gave at %s',
                report.path,
                report.problem,
                format_time(report.since or 0),
                _entries(report.kept),
                format_time(report.kept_at or 0),
            )
        elif report.problem is not None:
            self._warning('Skipping catalog file %s: it %s', report.path, report.problem)
        elif report.kept:
            self._warning(
                'Catalog file %s has invalid definitions since %s; still using %s it gave at %s and no longer gives',
                report.path,
                format_time(report.since or 0),
                _entries(report.kept),
                format_time(report.kept_at or 0),
            )

    def _rebuild(self) -> None:
        copies = [self._good[s] for s in self.sources if s in self._good]
        services, self._inheritance_problems = resolve_inheritance(merge_services(c.services for c in copies))
        if SOURCE_API in self._fingerprints:
            # The Teams API lists the real Datadog teams: names written in files add nothing to it.
            teams = merge_teams(c.teams for c in copies)
        else:
            teams = file_teams(services)
        self._catalog = Catalog(services=services, teams=teams)

    def _load_source(self, source: str, now: float) -> tuple[tuple[CatalogService, ...], tuple[CatalogTeam, ...]]:
        if source == SOURCE_API:
            return self._load_api()
        return self._load_files(now), ()

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
            if source == SOURCE_FILES:
                self._files = dict(copy.files)

    def _save_cache(self) -> None:
        sources = {source: copy.to_json() for source, copy in self._good.items() if source in self._fingerprints}
        self._write_cache(CACHE_KEY, cache.encode(CACHE_VERSION, {'sources': sources}))

    # Files

    def _load_files(self, now: float) -> tuple[CatalogService, ...]:
        """Read every file the patterns match; each file that fails keeps its last good copy.

        Raises `CatalogSourceError` only while no file has ever given a valid definition.
        """
        paths: list[str] = []
        reports: list[CatalogFileReport] = []
        for pattern in self._patterns:
            matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
            matched = [p for p in matched if os.path.isfile(p)]
            if not matched:
                # Not a failure of the source: the other patterns may well hold every definition.
                reports.append(CatalogFileReport(pattern, unmatched_pattern=True))
            paths.extend(p for p in matched if p not in paths)
        effective: dict[str, tuple[CatalogService, ...]] = {}
        for path in paths:
            effective[path], report = self._refresh_file(path, read_definitions_file(path), now)
            reports.append(report)
        # A file that went away (deleted, renamed, a deploy halfway through) keeps its entries too.
        for path, copy in self._files.items():
            if path not in effective:
                since = self._file_failing_since.setdefault(path, now)
                effective[path] = copy.services
                reports.append(
                    CatalogFileReport(
                        path,
                        entries=len(copy.services),
                        problem='is missing',
                        since=since,
                        kept=len(copy.services),
                        kept_at=copy.loaded_at,
                    )
                )
        self._file_reports = reports
        if not self._files:
            raise CatalogSourceError('no file matched by catalog_files has given a valid definition yet')
        return merge_services(effective.values())

    def _refresh_file(
        self, path: str, read: FileRead, now: float
    ) -> tuple[tuple[CatalogService, ...], CatalogFileReport]:
        """The entries one file gives after this read, and its report; updates its last good copy."""
        kept = self._files.get(path)
        if read.problem is None and not read.skipped:
            self._files[path] = FileCopy(now, read.services)
            self._file_failing_since.pop(path, None)
            return read.services, CatalogFileReport(path, entries=len(read.services))
        if kept is None:
            # Nothing to fall back on: what is valid is used, and becomes the file's last good copy.
            if read.services:
                self._files[path] = FileCopy(now, read.services)
            return read.services, CatalogFileReport(
                path, entries=len(read.services), skipped=read.skipped, problem=read.problem
            )
        since = self._file_failing_since.setdefault(path, now)
        # Invalid definitions in a file that was good: its valid definitions are read, and the entries
        # of its last good copy that they no longer give are kept, so a broken document loses nothing.
        fresh = {_entity_key(s) for s in read.services}
        carried = tuple(s for s in kept.services if _entity_key(s) not in fresh)
        services = read.services + carried
        self._files[path] = FileCopy(kept.loaded_at, services)
        return services, CatalogFileReport(
            path,
            entries=len(services),
            skipped=read.skipped,
            problem=read.problem,
            since=since,
            kept=len(carried),
            kept_at=kept.loaded_at,
        )

    # Datadog API

    def _get(self, path: str, params: dict[str, Any]) -> Mapping[str, Any]:
        if self._api is None:
            raise CatalogSourceError('no Datadog API client')
        try:
            response = self._api.get(path, params=params, endpoint=path)
        except AuthError as e:
            raise CatalogSourceError(_auth_problem(e, path)) from None
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


def _auth_problem(error: AuthError, path: str) -> str:
    """What a 401 or 403 on a catalog request means, and what to fix.

    A 403 whose body names a failed permission check comes from valid keys that lack one permission.
    A 401, or a bare 403, comes from a wrong or revoked key (or keys of another Datadog site); since only
    the body tells the two 403s apart, a bare 403 also names the permission, as the second thing to check.
    """
    scope = SCOPES.get(path, 'needed')
    if error.missing_permission:
        return (
            'the Datadog API answered 403 to GET {}: the keys are valid, but the user or service account of the '
            'application key (datadog_app_key) lacks the {} permission'.format(path, scope)
        )
    message = (
        'the Datadog API answered {} to GET {}: the application key (datadog_app_key) or the API key '
        '(datadog_api_key) is wrong or revoked, or datadog_api_url is not your Datadog site'.format(error.status, path)
    )
    if error.status == 403:
        message += '; if both keys are right, the application key lacks the {} permission'.format(scope)
    return message


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


def _entries(count: int) -> str:
    return '1 entry' if count == 1 else '{} entries'.format(count)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
