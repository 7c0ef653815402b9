# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Service Catalog as plain values: entities, teams, and the indexes the matching rules look them up by."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

# Service URLs whose key is remembered (`pagerduty_url_key`); each at most a few kB (`incident.py`).
URL_KEYS_KEPT = 1024
# Catalog rulings kept per catalog (`Catalog.rulings`); past this many they start over.
RULINGS_KEPT = 4096
# PagerDuty renders a service page as `/service-directory/<ID>` and its API `html_url` sometimes as
# `/services/<ID>`; both name the same service, and the ID alone identifies it across hosts and regions.
_SERVICE_PATH = re.compile(r'/(?:service-directory|services)/([A-Za-z0-9]+)(?:/.*)?\Z')


def name_key(value: Any) -> str:
    """How names compare: case-insensitively, after trimming (empty for anything that is not a string)."""
    return value.strip().casefold() if isinstance(value, str) else ''


def pagerduty_url_key(url: Any) -> str:
    """Normalise a PagerDuty service URL into the key two URLs of the same service share, or '' if none.

    Scheme, host case, a trailing slash, query and fragment are ignored. When the path names a service
    (`/service-directory/<ID>` or `/services/<ID>`) the ID alone decides, so US and EU hosts, the two
    path forms and the account subdomain's spelling do not matter. An account has few services, and
    every incident is mapped by its service's URL: the keys of the latest URLs are remembered.
    """
    if not isinstance(url, str) or not url.strip():
        return ''
    return _url_key(url)


@lru_cache(maxsize=URL_KEYS_KEPT)
def _url_key(url: str) -> str:
    text = url.strip()
    if '://' not in text:
        text = 'https://' + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or '').lower()
    except ValueError:
        return ''
    path = parts.path.rstrip('/')
    found = _SERVICE_PATH.search(path)
    if found:
        return 'id:' + found.group(1).upper()
    if not host:
        return ''
    return 'url:' + host + path


# The entity kinds whose name is sent as a DORA service. Datadog's DORA Metrics takes `service` as the
# Software Catalog service (an APM `kind: service` entity, the `service` tag); a datastore, queue, API,
# frontend, library or system is not one, so those kinds contribute their owner team only.
DORA_SERVICE_KINDS = frozenset({'service'})


@dataclass(frozen=True)
class CatalogService:
    """A Software Catalog entity: its name, owning team, PagerDuty service URL, origin and kind.

    `kind` is the v3 entity kind (lower case; every v2.x definition is a `service`). `owners` are the
    v3 `additionalOwners`: team handles that rules 3 and 4 may know, never the entity's team.
    `inherit_from` is the v3 `metadata.inheritFrom` reference, kept for the catalog to resolve.
    """

    name: str
    team: str | None
    pagerduty_url: str | None
    source: str
    kind: str = 'service'
    owners: tuple[str, ...] = ()
    inherit_from: str | None = None

    @property
    def is_dora_service(self) -> bool:
        """Whether the entity's name may be sent as a DORA service."""
        return self.kind in DORA_SERVICE_KINDS


@dataclass(frozen=True)
class CatalogTeam:
    """A Datadog team: its handle (what is emitted) and display name."""

    handle: str
    name: str


def _index(services: Sequence[CatalogService], key) -> dict[str, tuple[CatalogService, ...]]:
    index: dict[str, list[CatalogService]] = {}
    for service in services:
        k = key(service)
        if k:
            index.setdefault(k, []).append(service)
    return {k: tuple(v) for k, v in index.items()}


@dataclass(frozen=True)
class Catalog:
    """Services and teams from every catalog source, with the lookup indexes the rules use."""

    services: tuple[CatalogService, ...] = ()
    teams: tuple[CatalogTeam, ...] = ()
    by_pagerduty_url: Mapping[str, tuple[CatalogService, ...]] = field(init=False, repr=False, compare=False)
    by_name: Mapping[str, tuple[CatalogService, ...]] = field(init=False, repr=False, compare=False)
    team_handles: Mapping[str, str] = field(init=False, repr=False, compare=False)
    # What the catalog rules decided for each PagerDuty service and teams met (`mapping.py`), at
    # most `RULINGS_KEPT`: they depend on nothing else, and an account has few of them.
    rulings: dict[tuple[Any, ...], tuple[str, tuple[str, ...], str | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, 'rulings', {})
        object.__setattr__(self, 'services', tuple(self.services))
        object.__setattr__(self, 'teams', tuple(self.teams))
        object.__setattr__(
            self, 'by_pagerduty_url', _index(self.services, lambda s: pagerduty_url_key(s.pagerduty_url))
        )
        # Only services are found by name: rule 2 and overrides send the name as the DORA service.
        object.__setattr__(
            self, 'by_name', _index(self.services, lambda s: name_key(s.name) if s.is_dora_service else '')
        )
        handles: dict[str, str] = {}
        # Display names first, handles last: a handle is the exact identifier, so where one team's
        # display name equals another team's handle, the handle wins.
        for team in self.teams:
            if name_key(team.name):
                handles.setdefault(name_key(team.name), team.handle)
        for team in self.teams:
            if name_key(team.handle):
                handles[name_key(team.handle)] = team.handle
        object.__setattr__(self, 'team_handles', handles)

    def find_team(self, name: Any) -> str | None:
        """The handle of the Datadog team whose handle or display name is `name`, or None."""
        return self.team_handles.get(name_key(name))

    def team_handle(self, team: str | None) -> str | None:
        """`team` as a handle when the teams list knows it (by handle or display name), else as written."""
        if team is None or not team.strip():
            return None
        return self.find_team(team) or team.strip()

    def services_named(self, name: Any) -> tuple[CatalogService, ...]:
        return self.by_name.get(name_key(name), ())
