# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The rules of change-failure attribution, as plain functions: no requests, no cache, no text.

- An incident is attributable when it meets `attribution_min_severity` and maps to exactly one
  Datadog service and an env; deployments are matched by both.
- The blamed deployment is the one of that service and env that finished last within the window
  before the failure started (the incident's creation, or its reopen).
- A reopen within the window keeps the attribution the incident has.
- The remediation is the deployment that finished last between the blamed one and the resolve,
  other than a redeploy of the blamed version: a `rollback` when it deploys a version deployed before
  the blamed one (Datadog's own rollback rule), a `rollforward` otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .mapping import MappingResult
    from .transitions import Transition

# Outcomes counted by `attribution.results` (tag `outcome`).
ATTRIBUTED = 'attributed'
KEPT = 'kept'
NO_DEPLOYMENT = 'no_deployment'
NO_SERVICE = 'no_service'
SEVERAL_SERVICES = 'several_services'
NO_ENV = 'no_env'
FILTERED = 'filtered'
BELOW_SEVERITY = 'below_severity'
DEFERRED = 'deferred'
FORBIDDEN = 'forbidden'
REJECTED = 'rejected'
REMEDIATED = 'remediated'
NO_REMEDIATION = 'no_remediation'

ROLLBACK = 'rollback'
ROLLFORWARD = 'rollforward'

# The list's time range may apply to when deployments *started*; a deployment that started this
# much before the window and finished inside it is still found (results are filtered on finish).
START_MARGIN = 3600.0
# Versions deployed before the blamed deployment, kept to tell a rollback from a rollforward.
MAX_PREVIOUS_VERSIONS = 50
# What was done for an incident is kept this long after its last change, and for at most this many.
RETENTION = 30 * 86400.0
MAX_RECORDS = 20000

_NUMBER = re.compile(r'\d+')


@dataclass(frozen=True)
class Deployment:
    """A DORA deployment event, as the list endpoint returns it; times are UTC epoch seconds."""

    id: str
    service: str
    env: str | None
    version: str | None
    started_at: float
    finished_at: float

    def to_json(self) -> dict:
        return {
            'id': self.id,
            'service': self.service,
            'env': self.env,
            'version': self.version,
            'started_at': self.started_at,
            'finished_at': self.finished_at,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Deployment:
        if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not isinstance(raw.get('service'), str):
            raise ValueError('not a deployment record')
        return cls(
            id=raw['id'],
            service=raw['service'],
            env=raw.get('env') if isinstance(raw.get('env'), str) else None,
            version=raw.get('version') if isinstance(raw.get('version'), str) else None,
            started_at=float(raw['started_at']),
            finished_at=float(raw['finished_at']),
        )


def severity_rank(severity: str | None) -> int | None:
    """The number in a severity name (`P1` -> 1, `SEV-2` -> 2); lower is more severe; None without one."""
    if not severity:
        return None
    found = _NUMBER.search(severity)
    return int(found.group()) if found else None


def meets_severity(severity: str | None, minimum: str | None) -> bool:
    """Whether `severity` is at least as severe as `minimum`.

    Severities compare by the number in their name (`P1` and `P2` meet `P2`, `P3` does not), as in
    PagerDuty priorities and most SEV scales. A minimum without a number matches only itself
    (case-insensitively); an incident without a severity never meets a minimum.
    """
    if not minimum:
        return True
    if not severity:
        return False
    wanted = severity_rank(minimum)
    if wanted is None:
        return severity.strip().casefold() == minimum.strip().casefold()
    rank = severity_rank(severity)
    return rank is not None and rank <= wanted


def mapped_services(mapping: MappingResult) -> list[str]:
    """The non-blank Datadog services an incident maps to."""
    return [s for s in mapping.services if s and s.strip()]


def refusal(mapping: MappingResult, min_severity: str | None) -> str | None:
    """The outcome that keeps an incident from being attributed whatever the deployments are, or None."""
    if not meets_severity(mapping.severity, min_severity):
        return BELOW_SEVERITY
    services = mapped_services(mapping)
    if not services:
        return NO_SERVICE
    if len(services) > 1:
        return SEVERAL_SERVICES
    if not mapping.env:
        return NO_ENV
    return None


def failure_start(transition: Transition) -> float:
    """When the failure began: a triggered incident's creation, or the time it reopened."""
    return transition.incident.created_at if transition.kind == 'triggered' else transition.at


def keeps_attribution(kind: str, start: float, attributed_since: float, window: float) -> bool:
    """Whether an incident already attributed keeps its deployment: on a trigger, or a reopen within the window."""
    return kind == 'triggered' or start - attributed_since <= window


def blame_range(start: float, window: float) -> tuple[float, float]:
    """The start times to search for the deployment to blame for a failure that began at `start`."""
    return start - window - START_MARGIN, start


def pick_blamed(candidates: Iterable[Deployment], reference: float, window: float) -> Deployment | None:
    """The deployment that finished last within `window` seconds before `reference`; the id breaks a tie."""
    in_window = [d for d in candidates if reference - window <= d.finished_at <= reference]
    if not in_window:
        return None
    return max(in_window, key=lambda d: (d.finished_at, d.id))


def previous_versions(candidates: Iterable[Deployment], blamed: Deployment) -> list[str]:
    """Versions deployed before the blamed deployment: redeploying one of them is a rollback."""
    previous = sorted(
        {d.version for d in candidates if d.version and d.finished_at < blamed.finished_at and d.id != blamed.id}
    )[:MAX_PREVIOUS_VERSIONS]
    return [v for v in previous if v != blamed.version]


def pick_fix(
    candidates: Iterable[Deployment], blamed: Deployment, resolved_at: float, previous: Iterable[str]
) -> tuple[Deployment, str] | None:
    """The deployment that remediated `blamed` before the resolve, and whether it is a rollback or a rollforward."""
    later = [
        d
        for d in candidates
        if d.id != blamed.id
        and blamed.finished_at < d.finished_at <= resolved_at
        # Redeploying the blamed version again changes nothing; it is not a remediation.
        and not (d.version and d.version == blamed.version)
    ]
    if not later:
        return None
    fix = max(later, key=lambda d: (d.finished_at, d.id))
    return fix, ROLLBACK if fix.version and fix.version in set(previous) else ROLLFORWARD


def prune_records(records: dict[str, dict], now: float, window: float) -> None:
    """Forget the incidents untouched for `RETENTION` (or two windows), then the oldest beyond `MAX_RECORDS`.

    An incident whose attribution still waits in the queue (`waiting`) is kept whatever its age.
    """
    horizon = now - max(RETENTION, window * 2)
    for key in [k for k, record in records.items() if not record.get('waiting') and _touched(record) < horizon]:
        del records[key]
    if len(records) > MAX_RECORDS:
        for key in sorted(records, key=lambda k: _touched(records[k]))[: len(records) - MAX_RECORDS]:
            del records[key]


def _touched(record: dict) -> float:
    return float(record.get('touched') or 0)
