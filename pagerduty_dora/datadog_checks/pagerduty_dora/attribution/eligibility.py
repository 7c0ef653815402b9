# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which incidents attribution may blame a deployment for: the facts of one look, and whether they qualify it.

An incident qualifies while it is wanted by the collector (filters, scope), not merged away, mapped
by a catalog rule or an override (never the `fallback` rule), to exactly one Datadog service and an
env, at or above `attribution_min_severity` in the account's own priority order (`GET /priorities`,
most severe first). Whatever changes one of these is judged again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import severity_of
from datadog_checks.pagerduty_dora.catalog.model import name_key

from .model import (
    BELOW_SEVERITY,
    FILTERED,
    MERGED,
    NO_ENV,
    NO_SERVICE,
    SEVERAL_SERVICES,
    UNMAPPED,
    Facts,
)

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

# The account's priority order is read again after this long.
PRIORITIES_TTL = 3600.0


def facts_of(incident: Incident, mapping: MappingResult, wanted: bool) -> Facts:
    """The facts of one look at an incident, as the collector mapped and filtered it."""
    return Facts(
        start=float(incident.created_at),
        services=tuple(mapping.services),
        env=mapping.env,
        severity=mapping.severity,
        priority=incident.priority,
        rule=mapping.rule,
        wanted=bool(wanted),
        merged=incident.merged,
        pagerduty_service=incident.service_id,
        resolved_at=None if incident.is_open else (incident.resolved_at or incident.updated_at or incident.created_at),
        version=monitor_version(mapping),
    )


def monitor_version(mapping: MappingResult) -> str | None:
    """The version the Datadog monitor that triggered the incident names, if it speaks of the mapped service.

    An override may map the incident to a service the monitor does not name: its version is another
    service's, and names none of this one's deployments.
    """
    monitor = mapping.monitor
    if monitor is None or not monitor.version:
        return None
    named = {name_key(s) for s in monitor.services}
    if named and not named & {name_key(s) for s in mapping.services}:
        return None
    return monitor.version


def mapped_services(mapping: Any) -> list[str]:
    """The non-blank Datadog services an incident (or its facts) maps to."""
    return [s for s in mapping.services if s and s.strip()]


def severity_threshold(minimum: str, order: Sequence[str], severity_mapping: Mapping[str, str] | None) -> int | None:
    """The position in `order` of the least severe priority that meets `minimum`, or None when none does.

    `minimum` names a priority of the account, or a severity `severity_mapping` gives to some of them:
    then every priority at or above the least severe one mapped to it meets it.
    """
    wanted = name_key(minimum)
    for position, name in enumerate(order):
        if name_key(name) == wanted:
            return position
    mapped = [i for i, name in enumerate(order) if name_key(severity_of(name, severity_mapping)) == wanted]
    return max(mapped) if mapped else None


def meets_severity(
    priority: str | None,
    minimum: str | None,
    order: Sequence[str],
    severity_mapping: Mapping[str, str] | None = None,
) -> bool:
    """Whether an incident of this PagerDuty priority is at least as severe as `minimum`.

    Compared in the account's priority order (`order`, most severe first). An incident without a
    priority, or with one the account does not list, never meets a minimum.
    """
    if not minimum:
        return True
    if not priority:
        return False
    threshold = severity_threshold(minimum, order, severity_mapping)
    if threshold is None:
        return False
    position = next((i for i, name in enumerate(order) if name_key(name) == name_key(priority)), None)
    return position is not None and position <= threshold


def disqualification(
    facts: Facts,
    min_severity: str | None,
    order: Sequence[str],
    severity_mapping: Mapping[str, str] | None = None,
) -> str | None:
    """The outcome that keeps the incident from blaming any deployment now, or None when it qualifies."""
    if facts.gone:
        return facts.gone
    if facts.merged:
        return MERGED
    if not facts.wanted:
        return FILTERED
    if facts.rule == 'fallback':
        return UNMAPPED
    if not meets_severity(facts.priority, min_severity, order, severity_mapping):
        return BELOW_SEVERITY
    services = mapped_services(facts)
    if not services:
        return NO_SERVICE
    if len(services) > 1:
        return SEVERAL_SERVICES
    if not facts.env:
        return NO_ENV
    return None


def attribution_key(facts: Facts) -> tuple[str, str]:
    """The (service, env) whose deployments a qualifying incident is matched with."""
    return mapped_services(facts)[0].strip(), (facts.env or '').strip()


def stored_order(stored: Mapping[str, Any]) -> list[str]:
    """The priority names of the order read last (`{'names': [...], 'at': epoch}`), most severe first."""
    return [n for n in stored.get('names') or [] if isinstance(n, str)]


def order_expired(stored: Mapping[str, Any], now: float) -> bool:
    """Whether the account's priority order must be read (again): never read, or read `PRIORITIES_TTL` ago."""
    return not stored or now - float(stored.get('at') or 0) >= PRIORITIES_TTL
