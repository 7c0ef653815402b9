# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The values change-failure attribution reasons about, and the outcomes it counts.

Deployments, change events, the facts of one look at an incident and the stored result of a blame
search are plain frozen values with a JSON form: they are kept in the persistent cache between runs,
so `from_json` refuses what a damaged or older cache holds rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# Outcomes counted by `attribution.results` (tag `outcome`).
ATTRIBUTED = 'attributed'
UNMARKED = 'unmarked'
RELEASED = 'released'
# The last qualifying incident stopped blaming a deployment that someone else may have marked: not set back.
KEPT = 'kept'
NO_DEPLOYMENT = 'no_deployment'
NO_SERVICE = 'no_service'
SEVERAL_SERVICES = 'several_services'
NO_ENV = 'no_env'
UNMAPPED = 'unmapped'
FILTERED = 'filtered'
MERGED = 'merged'
DELETED = 'deleted'
OUT_OF_SCOPE = 'out_of_scope'
BELOW_SEVERITY = 'below_severity'
DEFERRED = 'deferred'
FORBIDDEN = 'forbidden'
REJECTED = 'rejected'
REMEDIATED = 'remediated'
NO_REMEDIATION = 'no_remediation'
# Why an incident stopped blaming a deployment while it still qualifies (tag `reason`).
MOVED = 'moved'
REATTRIBUTED = 'reattributed'

# What decided the blamed deployment (tag `signal`), and how a change event matched it (`basis`).
# `monitor_version`: the version the Datadog monitor's alert names.
MONITOR_VERSION = 'monitor_version'
CHANGE_EVENT = 'change_event'
LATEST_DEPLOYMENT = 'latest_deployment'
BY_VERSION = 'version'
BY_COMMIT = 'commit'
BY_TIME = 'time'

ROLLBACK = 'rollback'
ROLLFORWARD = 'rollforward'


@dataclass(frozen=True)
class Deployment:
    """A DORA deployment event, as the list endpoint returns it; times are UTC epoch seconds."""

    id: str
    service: str
    env: str | None
    version: str | None
    started_at: float
    finished_at: float
    commit: str | None = None

    def to_json(self) -> dict:
        raw = {
            'id': self.id,
            'service': self.service,
            'env': self.env,
            'version': self.version,
            'started_at': self.started_at,
            'finished_at': self.finished_at,
        }
        if self.commit:
            raw['commit'] = self.commit
        return raw

    @classmethod
    def from_json(cls, raw: Any) -> Deployment:
        if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not isinstance(raw.get('service'), str):
            raise ValueError('not a deployment record')
        return cls(
            id=raw['id'],
            service=raw['service'],
            env=_text(raw.get('env')),
            version=_text(raw.get('version')),
            started_at=float(raw['started_at']),
            finished_at=float(raw['finished_at']),
            commit=_text(raw.get('commit')),
        )


@dataclass(frozen=True)
class ChangeEvent:
    """A PagerDuty change event related to an incident: when, on which PagerDuty services, what it names.

    `identifiers` are the values of its custom details and the words of its summary (versions and
    commits are matched against them); `reason` is PagerDuty's `correlation_reason`.
    """

    id: str
    at: float
    summary: str
    services: tuple[str, ...]
    identifiers: tuple[str, ...]
    reason: str | None = None


@dataclass(frozen=True)
class Facts:
    """What one look at an incident tells attribution; what qualifies it is decided from these alone."""

    start: float
    services: tuple[str, ...]
    env: str | None
    severity: str | None
    priority: str | None
    rule: str
    wanted: bool
    merged: bool
    pagerduty_service: str
    resolved_at: float | None
    # Set when the collector removed the incident's failure: `deleted` or `out_of_scope`.
    gone: str | None = None
    # The version the Datadog monitor that triggered the incident names (its alerted group or its tags).
    version: str | None = None

    def to_json(self) -> dict:
        raw: dict[str, Any] = {
            'start': self.start,
            'services': list(self.services),
            'env': self.env,
            'severity': self.severity,
            'priority': self.priority,
            'rule': self.rule,
            'wanted': self.wanted,
            'merged': self.merged,
            'pagerduty_service': self.pagerduty_service,
            'resolved_at': self.resolved_at,
            'gone': self.gone,
        }
        # Only when known: the facts of an incident without one stay as stored before versions were read,
        # so an upgrade does not judge every incident again.
        if self.version:
            raw['version'] = self.version
        return raw

    @classmethod
    def from_json(cls, raw: Any) -> Facts:
        if not isinstance(raw, dict):
            raise ValueError('not a facts record')
        resolved = raw.get('resolved_at')
        return cls(
            start=float(raw['start']),
            services=tuple(str(s) for s in raw.get('services') or ()),
            env=_text(raw.get('env')),
            severity=_text(raw.get('severity')),
            priority=_text(raw.get('priority')),
            rule=str(raw.get('rule') or ''),
            wanted=bool(raw.get('wanted')),
            merged=bool(raw.get('merged')),
            pagerduty_service=str(raw.get('pagerduty_service') or ''),
            resolved_at=None if resolved is None else float(resolved),
            gone=_text(raw.get('gone')),
            # Facts stored before versions were read have none.
            version=_text(raw.get('version')),
        )


@dataclass(frozen=True)
class Search:
    """The stored result of one blame search: for which service and env, and what it found."""

    service: str
    env: str
    deployment: str | None
    # Whether this search was made once the incident resolved (its last one).
    final: bool = False


def search_of(record: Mapping[str, Any]) -> Search | None:
    """The stored blame search of an incident record, or None when it was never searched."""
    raw = record.get('search')
    if not isinstance(raw, dict):
        return None
    return Search(str(raw.get('service')), str(raw.get('env')), raw.get('deployment'), bool(raw.get('final')))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
