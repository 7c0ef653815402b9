# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which Datadog service, team, env and severity an incident belongs to: the Service Catalog matching rules.

Everything here is a pure function of an incident, a catalog and the instance options, so each rule
can be tested on its own. The rules run in a fixed order and the first that matches wins (`RULES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

from datadog_checks.pagerduty_dora.common.text import text_or_none
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
from datadog_checks.pagerduty_dora.pagerduty.monitor import MONITOR_GROUP, MONITOR_TAGS, MonitorMapping

from .model import RULINGS_KEPT, Catalog, CatalogService, name_key, pagerduty_url_key

RULES = (
    'override',
    MONITOR_GROUP,
    MONITOR_TAGS,
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


def incident_url_key(incident: Incident) -> str:
    """The URL key of the incident's PagerDuty service; its id stands in when the payload has no `html_url`."""
    return pagerduty_url_key(incident.service_url) or 'id:' + incident.service_id.upper()


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
    # What the Datadog monitor that triggered the incident gives, whether or not its rule decided.
    monitor: MonitorMapping | None = None

    @property
    def monitor_id(self) -> int | None:
        return self.monitor.monitor_id if self.monitor is not None else None


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
    """Rules 1 to 5 (see the README's mapping table): (rule, services, team handle).

    They read only the incident's service and teams: what they decided is kept in the catalog
    (`Catalog.rulings`), so the incidents of one service and teams are ruled on once.
    """
    key = (incident.service_url, incident.service_id, incident.service_name, incident.teams)
    rulings = catalog.rulings
    ruling = rulings.get(key)
    if ruling is None:
        if len(rulings) >= RULINGS_KEPT:
            rulings.clear()
        ruling = rulings[key] = _rule(incident, catalog)
    return ruling


def _rule(incident: Incident, catalog: Catalog) -> tuple[str, tuple[str, ...], str | None]:
    """`_catalog_rules`, decided."""
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
    monitor: MonitorMapping | None = None,
) -> MappingResult:
    """Map one incident with the first matching rule of `RULES`.

    An override's given fields win. The fields it leaves empty come from the monitor that triggered
    the incident (`monitor`, decided at its first trigger), then from the catalog rules, except that
    an override or a monitor naming a catalog service without a team takes that service's team. The
    monitor's env wins over the instance `env`. Teams are resolved to the handle when the teams list
    knows them.
    """
    rule, services, team = _catalog_rules(incident, catalog)
    chosen_env = text_or_none(env)
    if monitor is not None and monitor.rule:
        rule = monitor.rule
        if monitor.services:
            services = monitor.services
            team = _team_of(catalog, services[0]) or team
        if monitor.team is not None:
            team = catalog.team_handle(monitor.team)
        if monitor.env is not None:
            chosen_env = monitor.env
    override = next((o for o in overrides if o.matches(incident)), None)
    if override is not None:
        rule = 'override'
        if override.service is not None:
            services = (override.service,)
            if override.team is None:
                team = _team_of(catalog, override.service) or team
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
        monitor=monitor,
    )


def _team_of(catalog: Catalog, service: str) -> str | None:
    """The team handle of the catalog service named `service`, when the catalog knows one."""
    known = next((s.team for s in catalog.services_named(service) if s.team), None)
    return catalog.team_handle(known) if known else None


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
