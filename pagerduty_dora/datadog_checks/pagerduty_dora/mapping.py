# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which Datadog service, team, env and severity an incident belongs to: the Service Catalog matching rules.

Everything here is a pure function of an incident, a catalog and the instance options, so each rule
can be tested on its own. The rules run in a fixed order and the first that matches wins (`RULES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from .incident import Incident
from .text import text_or_none

RULES = (
    'override',
    'service_url',
    'service_url_team',
    'service_name',
    'team_name',
    'service_name_as_team',
    'fallback',
)

# `priorities: [none]` selects incidents without a priority.
NO_PRIORITY = 'none'

OVERRIDE_FIELDS = ('pagerduty_service', 'service', 'team', 'env')

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
    path forms and the account subdomain's spelling do not matter.
    """
    if not isinstance(url, str) or not url.strip():
        return ''
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


def incident_url_key(incident: Incident) -> str:
    """The URL key of the incident's PagerDuty service; its id stands in when the payload has no `html_url`."""
    return pagerduty_url_key(incident.service_url) or 'id:' + incident.service_id.upper()


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

    def __post_init__(self) -> None:
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

    def services_for_url(self, url: Any) -> tuple[CatalogService, ...]:
        return self.by_pagerduty_url.get(pagerduty_url_key(url), ())

    def services_named(self, name: Any) -> tuple[CatalogService, ...]:
        return self.by_name.get(name_key(name), ())


@dataclass(frozen=True)
class Override:
    """A `service_overrides` entry: the PagerDuty service it applies to (id, name or URL) and what it sets."""

    pagerduty_service: str
    service: str | None
    team: str | None
    env: str | None

    def matches(self, incident: Incident) -> bool:
        wanted = self.pagerduty_service.strip()
        if wanted == incident.service_id:
            return True
        if name_key(wanted) and name_key(wanted) == name_key(incident.service_name):
            return True
        key = pagerduty_url_key(wanted)
        return bool(key) and key == incident_url_key(incident)


@dataclass(frozen=True)
class MappingResult:
    """The outcome for one incident: which rule decided, the Datadog services, team handle, env, severity."""

    rule: str
    services: tuple[str, ...]
    team: str | None
    env: str | None
    severity: str | None


def parse_overrides(raw: Sequence[Mapping[str, Any]] | None) -> list[Override]:
    """Validate `service_overrides` into `Override`s, in order.

    Raises `ValueError` naming the entry (by position) and what is wrong: not a mapping, an unknown
    key, a missing `pagerduty_service`, a value that is not a string, or nothing to set.
    """
    overrides: list[Override] = []
    for position, entry in enumerate(raw or ()):
        where = 'service_overrides[{}]'.format(position)
        if not isinstance(entry, Mapping):
            raise ValueError('{} must be a mapping with pagerduty_service and service/team/env'.format(where))
        unknown = sorted(str(k) for k in entry if k not in OVERRIDE_FIELDS)
        if unknown:
            raise ValueError(
                '{} has unknown key(s) {}; allowed: {}'.format(where, ', '.join(unknown), ', '.join(OVERRIDE_FIELDS))
            )
        for key in OVERRIDE_FIELDS:
            if entry.get(key) is not None and not isinstance(entry.get(key), str):
                raise ValueError('{}.{} must be a string'.format(where, key))
        pagerduty_service = text_or_none(entry.get('pagerduty_service'))
        if pagerduty_service is None:
            raise ValueError('{} needs pagerduty_service (a PagerDuty service id, name or URL)'.format(where))
        override = Override(
            pagerduty_service=pagerduty_service,
            service=text_or_none(entry.get('service')),
            team=text_or_none(entry.get('team')),
            env=text_or_none(entry.get('env')),
        )
        if override.service is None and override.team is None and override.env is None:
            raise ValueError('{} sets none of service, team, env'.format(where))
        overrides.append(override)
    return overrides


def severity_of(priority: str | None, severity_mapping: Mapping[str, str] | None) -> str | None:
    """`severity_mapping[priority]` (keys compared case-insensitively), else the priority name; None without one."""
    if priority is None or not priority.strip():
        return None
    wanted = name_key(priority)
    for key, value in (severity_mapping or {}).items():
        if name_key(key) == wanted and text_or_none(value):
            return value.strip()
    return priority.strip()


def _catalog_rules(incident: Incident, catalog: Catalog) -> tuple[str, tuple[str, ...], str | None]:
    """Rules 1 to 5 (see the README's mapping table): (rule, services, team handle)."""
    by_url = catalog.by_pagerduty_url.get(incident_url_key(incident), ())
    if by_url:
        # The same entity may come from several sources; count distinct entities, not definitions.
        distinct: dict[tuple[str, str], CatalogService] = {}
        for service in by_url:
            distinct.setdefault((service.kind, name_key(service.name)), service)
        if len(distinct) == 1 and by_url[0].is_dora_service:
            service = by_url[0]
            return 'service_url', (service.name.strip(),), catalog.team_handle(service.team)
        # Several entities, or one that is not a DORA service (a datastore, a queue...): only their team
        # can be sent, and it is only certain when every one of them has it.
        owners = [catalog.team_handle(s.team) for s in distinct.values()]
        if all(owners) and len({name_key(owner) for owner in owners}) == 1:
            return 'service_url_team', (), owners[0]

    named = catalog.services_named(incident.service_name)
    if named:
        service = next((s for s in named if s.team), named[0])
        return 'service_name', (service.name.strip(),), catalog.team_handle(service.team)

    for team in incident.teams:
        handle = catalog.find_team(team.name)
        if handle:
            return 'team_name', (), handle

    handle = catalog.find_team(incident.service_name)
    if handle:
        return 'service_name_as_team', (), handle

    services = (incident.service_name.strip(),) if incident.service_name.strip() else ()
    first_team = next((t.name.strip() for t in incident.teams if t.name.strip()), None)
    return 'fallback', services, first_team


def map_incident(
    incident: Incident,
    catalog: Catalog,
    *,
    overrides: Sequence[Override] = (),
    env: str | None = None,
    severity_mapping: Mapping[str, str] | None = None,
) -> MappingResult:
    """Map one incident with the first matching rule of `RULES`.

    An override's given fields win. The fields it leaves empty come from the catalog rules, except
    that an override naming a catalog service without a team takes that service's team. Teams named
    by an override are resolved to the handle when the teams list knows them.
    """
    rule, services, team = _catalog_rules(incident, catalog)
    chosen_env = text_or_none(env)
    override = next((o for o in overrides if o.matches(incident)), None)
    if override is not None:
        rule = 'override'
        if override.service is not None:
            services = (override.service,)
            if override.team is None:
                known = next((s.team for s in catalog.services_named(override.service) if s.team), None)
                if known:
                    team = catalog.team_handle(known)
        if override.team is not None:
            team = catalog.team_handle(override.team)
        if override.env is not None:
            chosen_env = override.env
    return MappingResult(
        rule=rule,
        services=services,
        team=team,
        env=chosen_env,
        severity=severity_of(incident.priority, severity_mapping),
    )


def passes_filters(incident: Incident, *, urgencies: Sequence[str] | None, priorities: Sequence[str] | None) -> bool:
    """Whether the incident counts as a failure under the `urgencies` and `priorities` options.

    None or an empty list means no filter. Names compare case-insensitively; `none` in `priorities`
    selects incidents without a priority.
    """
    if urgencies:
        if name_key(incident.urgency) not in {name_key(u) for u in urgencies}:
            return False
    if priorities:
        wanted = {name_key(p) for p in priorities}
        if incident.priority is None or not incident.priority.strip():
            return NO_PRIORITY in wanted
        return name_key(incident.priority) in wanted
    return True
