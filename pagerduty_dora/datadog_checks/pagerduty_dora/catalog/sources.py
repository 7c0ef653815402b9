# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Software Catalog as the mapping rules see it: read from the Datadog API and/or definition files.

`CatalogStore` refreshes each configured source every `catalog_refresh_interval` seconds, keeps the
last good copy of each source in the persistent cache, and answers `current()`: the merged catalog,
the last good copy (with a warning) when a refresh fails, or None while a configured source has never
loaded, so that nothing is submitted with a mapping the catalog would have corrected.

The sources themselves are `CatalogFiles` (`catalog_files`) and `CatalogApi` (the Datadog API); the
definitions they read are parsed, merged and resolved by `definitions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Sequence

from datadog_checks.pagerduty_dora.common import documents
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.times import LATEST_TIME, format_time

from .api import SOURCE_API, CatalogApi
from .definitions import CatalogSourceError, file_teams, merge_services, merge_teams, resolve_inheritance
from .files import SOURCE_FILES, CatalogFiles, FileCopy
from .model import Catalog, CatalogService, CatalogTeam

CACHE_KEY = 'catalog'
CACHE_VERSION = 1

# After a failed refresh, try again on a later run rather than waiting a whole refresh interval.
RETRY_AFTER_FAILURE = 30.0


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


class CatalogStore:
    """The merged catalog of every configured source, refreshed on an interval, with a persisted last good copy.

    `api` is the Datadog `ApiClient` (carrying `DD-API-KEY` and `DD-APPLICATION-KEY`), or None when
    no application key is configured; `files` are the `catalog_files` globs. Of `services`, `warning`
    is told what a user must see (skipped definitions, stale or missing sources and files), at every
    run while it lasts; `clock` is wall time, since load times are persisted across restarts.
    """

    def __init__(
        self,
        *,
        api: ApiClient | None,
        files: Sequence[str],
        refresh_interval: float,
        services: AgentServices,
    ) -> None:
        self._api = CatalogApi(api, services.log, services.warning) if api is not None else None
        self._files = CatalogFiles(files)
        self._refresh_interval = max(0.0, float(refresh_interval))
        self._read_cache = services.read_cache
        self._write_cache = services.write_cache
        self._log = services.log
        self._warning = services.warning
        self._clock = services.clock
        self._fingerprints: dict[str, str] = {}
        if self._api is not None:
            self._fingerprints[SOURCE_API] = self._api.fingerprint
        if self._files.patterns:
            self._fingerprints[SOURCE_FILES] = self._files.fingerprint
        self._cache_read = False
        self._good: dict[str, SourceCopy] = {}
        self._next_refresh: dict[str, float] = {source: float('-inf') for source in self._fingerprints}
        self._failure: dict[str, str] = {}
        self._failing_since: dict[str, float] = {}
        self._catalog: Catalog | None = None
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
            files = dict(self._files.copies) if source == SOURCE_FILES else {}
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

    def unloaded(self) -> dict[str, str]:
        """Per configured source that has never loaded: why (its last failure, or that it was not tried yet).

        For the `can_submit` service check, which says why nothing is submitted.
        """
        return {
            source: self._failure.get(source, 'not tried yet') for source in self.sources if source not in self._good
        }

    def file_report(self) -> list[dict[str, Any]]:
        """Per catalog file, and per pattern that matched none, at the last refresh: entries, and why any were skipped.

        For `--dry-run`, which shows what each file gave before anything is submitted.
        """
        return [report.to_json() for report in self._files.reports]

    def _answer(self) -> Catalog | None:
        for report in self._files.reports:
            report.warn(self._warning)
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
            if self._api is None:
                raise CatalogSourceError('no Datadog API client')
            return self._api.load()
        return self._files.load(now), ()

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
            sources = documents.decode(raw, CACHE_VERSION)['sources']
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
                self._files.restore(copy.files)

    def _save_cache(self) -> None:
        sources = {source: copy.to_json() for source, copy in self._good.items() if source in self._fingerprints}
        self._write_cache(CACHE_KEY, documents.encode(CACHE_VERSION, {'sources': sources}))
