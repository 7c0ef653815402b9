# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The rules of change-failure attribution, as plain functions: no requests, no cache, no text.

Datadog computes change failure rate and failed deployment recovery time from deployments marked as
change failures, so every rule here answers one question about a deployment's state:

- **Which incidents count.** An incident qualifies while it is wanted by the collector (filters,
  scope), not merged away, mapped by a catalog rule or an override (never the `fallback` rule), to
  exactly one Datadog service and an env, at or above `attribution_min_severity` in the account's own
  priority order (`GET /priorities`, most severe first). Whatever changes one of these is judged again.
- **Which deployment it blames.** Never one that finished after the incident started (a fix attempt
  is never the cause), searched from the incident's start whatever reopened it, once `SETTLE` seconds
  have passed (deployments reach Datadog late) and once more when it resolves. A change event that
  PagerDuty relates to the incident (by its `intelligent` or `related_service` correlation; its
  `most_recent` one is only time, which Datadog's list of deployments tells better) and that matches a
  Datadog deployment of the same service and env (by version or commit, else by time) decides;
  without one, the latest deployment of that service and env that finished within the window
  before the start does.
- **What a deployment is.** A change failure while at least one qualifying incident blames it; set
  back (`change_failure: false`) when the last one stops. Its remediation is the first later
  deployment of the same service and env that does not redeploy the failed version and finished by
  the time an incident blaming it resolved, recorded once: a `rollback` when it deploys a version the
  service ran before the failed one, a `rollforward` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import severity_of
from datadog_checks.pagerduty_dora.catalog.model import name_key

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

# Outcomes counted by `attribution.results` (tag `outcome`).
ATTRIBUTED = 'attributed'
UNMARKED = 'unmarked'
RELEASED = 'released'
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
CHANGE_EVENT = 'change_event'
LATEST_DEPLOYMENT = 'latest_deployment'
BY_VERSION = 'version'
BY_COMMIT = 'commit'
BY_TIME = 'time'

ROLLBACK = 'rollback'
ROLLFORWARD = 'rollforward'

# Seconds after an incident starts before its deployment is searched: a deployment reaches Datadog
# some time after it finishes, and the one that finished just before the incident is the likeliest cause.
SETTLE = 300.0
# The list's time range may apply to when deployments *started*: a rollout that started up to this long
# before the window and finished inside it is still found (results are kept on their finish time).
ROLLOUT_MARGIN = 86400.0
# How far back the service's history is read to tell a rollback (a version it ran before) from a rollforward.
ROLLBACK_HISTORY = 90 * 86400.0
# A change event this close to a deployment's finish or start matches it by time.
TIME_MATCH = 300.0
# What was done for an incident is kept this long after its last change, and for at most this many.
RETENTION = 30 * 86400.0
MAX_RECORDS = 20000
# A change event's details and summary give at most this many identifiers to match on.
MAX_IDENTIFIERS = 64
MIN_COMMIT_PREFIX = 7

_TOKEN_EDGES = '()[]{}<>,;:"\'`'
_RELATION_RANK = {'intelligent': 0}
MOST_RECENT = 'most_recent'


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

    def to_json(self) -> dict:
        return {
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
        )


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
    )


# Which incidents count ------------------------------------------------------------------------


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


# What to do -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """The stored result of one blame search: for which service and env, and what it found."""

    service: str
    env: str
    deployment: str | None
    # Whether this search was made once the incident resolved (its last one).
    final: bool = False


@dataclass(frozen=True)
class Plan:
    """What to do for one incident now: every field is independent of the others."""

    # Stop blaming the deployment it blames (and why).
    release: str | None = None
    # Search its deployment at this time (now or later); the blame follows from the stored result.
    search_at: float | None = None
    # Blame this deployment (from the stored search).
    blame: str | None = None
    # It is resolved and blames a deployment: that deployment's remediation may be due.
    remediate: bool = False


def plan(
    reason: str | None,
    key: tuple[str, str] | None,
    blames: str | None,
    search: Search | None,
    facts: Facts,
    now: float,
    settle: float = SETTLE,
) -> Plan:
    """Decide, from the incident's qualification and its stored search, what attribution does next.

    `reason` is `disqualification()` (None: it qualifies for `key`); `blames` what it blames now.
    """
    if reason is not None or key is None:
        return Plan(release=reason or FILTERED) if blames else Plan()
    searched = search if search is not None and (search.service, search.env) == key else None
    if searched is None:
        # Never searched for this service and env: the first search waits for late-reported deployments.
        return Plan(release=MOVED if blames else None, search_at=max(facts.start + settle, 0.0))
    if facts.resolved_at is not None and not searched.final:
        # Checked again at the resolve, for a deployment reported later than the settle time.
        return Plan(search_at=now)
    target = searched.deployment
    release = REATTRIBUTED if blames and blames != target else None
    return Plan(
        release=release,
        blame=target if target and target != blames else None,
        remediate=facts.resolved_at is not None and target is not None,
    )


def blame_range(start: float, window: float) -> tuple[float, float]:
    """The start times to search for the deployment to blame for a failure that began at `start`."""
    return start - window - ROLLOUT_MARGIN, start


def in_window(candidates: Iterable[Deployment], start: float, window: float) -> list[Deployment]:
    """The deployments that finished within `window` seconds before `start` (never after it)."""
    return [d for d in candidates if start - window <= d.finished_at <= start]


def pick_blamed(candidates: Iterable[Deployment], start: float, window: float) -> Deployment | None:
    """The deployment that finished last within `window` seconds before `start`; the id breaks a tie."""
    found = in_window(candidates, start, window)
    return max(found, key=lambda d: (d.finished_at, d.id)) if found else None


@dataclass(frozen=True)
class Blame:
    """What a blame search decided: the deployment (or None), the signal that decided, and how."""

    deployment: Deployment | None
    signal: str
    basis: str | None = None
    event: ChangeEvent | None = None


def decide_blame(
    candidates: Iterable[Deployment],
    events: Sequence[ChangeEvent],
    start: float,
    window: float,
    pagerduty_service: str,
) -> Blame:
    """The deployment to blame: the one a related change event matches, else the latest in the window."""
    found = in_window(candidates, start, window)
    # PagerDuty's `most_recent` relation is a rule of time on the change events it was sent, which
    # Datadog's own list (every deployment) answers better; its other relations know more.
    for event in ranked([e for e in events if e.reason != MOST_RECENT]):
        match = match_event(event, found, pagerduty_service)
        if match is not None:
            deployment, basis = match
            return Blame(deployment, CHANGE_EVENT, basis, event)
    latest = max(found, key=lambda d: (d.finished_at, d.id)) if found else None
    return Blame(latest, LATEST_DEPLOYMENT)


def ranked(events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
    """Related change events in the order they are tried: PagerDuty's `intelligent` relations, then newest first."""
    return sorted(events, key=lambda e: (_RELATION_RANK.get(e.reason or '', 1), -e.at, e.id))


def match_event(
    event: ChangeEvent, deployments: Sequence[Deployment], pagerduty_service: str
) -> tuple[Deployment, str] | None:
    """The deployment a change event stands for, and how it matched: its version or commit, else its time.

    A time match needs the event to be on the incident's PagerDuty service; an exact match does not
    (the deployments are already those of the incident's Datadog service and env).
    """
    identifiers = {name_key(i) for i in event.identifiers if i}
    for basis, value in ((BY_VERSION, lambda d: d.version), (BY_COMMIT, lambda d: d.commit)):
        exact = [d for d in deployments if value(d) and _names(value(d), identifiers, basis == BY_COMMIT)]
        if exact:
            return max(exact, key=lambda d: (d.finished_at, d.id)), basis
    if event.services and pagerduty_service not in event.services:
        return None
    near = [d for d in deployments if min(abs(d.finished_at - event.at), abs(d.started_at - event.at)) <= TIME_MATCH]
    if not near:
        return None
    return min(near, key=lambda d: (min(abs(d.finished_at - event.at), abs(d.started_at - event.at)), d.id)), BY_TIME


def _names(value: str, identifiers: set[str], prefix: bool) -> bool:
    key = name_key(value)
    if key in identifiers:
        return True
    # A commit is often given shortened; a shortened one is long enough to be unambiguous.
    return prefix and any(
        len(i) >= MIN_COMMIT_PREFIX and (key.startswith(i) or i.startswith(key) and len(key) >= MIN_COMMIT_PREFIX)
        for i in identifiers
    )


def identifiers_of(summary: str, details: Any) -> tuple[str, ...]:
    """What a change event names: its custom details' values (two levels deep) and its summary's words."""
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if len(found) >= MAX_IDENTIFIERS:
            return
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (str, int, float)):
            text = str(value).strip()
            if 0 < len(text) <= 200:
                found.append(text)
        elif isinstance(value, dict) and depth < 2:
            for item in list(value.values())[:MAX_IDENTIFIERS]:
                walk(item, depth + 1)
        elif isinstance(value, list) and depth < 2:
            for item in value[:MAX_IDENTIFIERS]:
                walk(item, depth + 1)

    walk(details, 0)
    for word in (summary or '').split()[:MAX_IDENTIFIERS]:
        token = word.strip(_TOKEN_EDGES).rstrip('.')
        if token and len(found) < MAX_IDENTIFIERS:
            found.append(token)
    return tuple(found)


# Remediation ----------------------------------------------------------------------------------


def pick_remediation(
    later: Iterable[Deployment], failed: Deployment, until: float, history: Iterable[str] | None
) -> tuple[Deployment, str] | None:
    """The first deployment after `failed` that does not redeploy its version and finished by `until`.

    It is a `rollback` when it deploys a version in `history` (the versions the service ran before
    the failed deployment), a `rollforward` otherwise.
    """
    candidates = [
        d
        for d in later
        if d.id != failed.id
        and failed.finished_at < d.finished_at <= until
        # Redeploying the failed version again changes nothing; it is not a remediation.
        and not (d.version and failed.version and name_key(d.version) == name_key(failed.version))
    ]
    if not candidates:
        return None
    fix = min(candidates, key=lambda d: (d.finished_at, d.id))
    earlier = {name_key(v) for v in history or () if v}
    earlier.discard(name_key(failed.version))
    return fix, ROLLBACK if fix.version and name_key(fix.version) in earlier else ROLLFORWARD


def history_versions(deployments: Iterable[Deployment], failed: Deployment) -> list[str]:
    """The versions the service ran before the failed deployment (its own version excepted)."""
    return sorted(
        {
            d.version
            for d in deployments
            if d.version and d.id != failed.id and d.finished_at < failed.finished_at and d.version != failed.version
        }
    )


def needs_remediation(deployment: Mapping[str, Any], resolved_at: float) -> bool:
    """Whether a remediation search is due for a failed deployment an incident resolved at `resolved_at`."""
    if deployment.get('remediation'):
        return False
    searched_until = deployment.get('remedy_until')
    return searched_until is None or resolved_at > float(searched_until)


def wanted_patch(deployment: Mapping[str, Any]) -> dict | None:
    """The attributes the deployment must be PATCHed with to match what the check decided, or None.

    A deployment blamed by at least one incident is a change failure, with its remediation once one
    is recorded; one blamed by none is set back, but only if the check marked it.
    """
    sent = deployment.get('sent') or {}
    if deployment.get('blamed_by'):
        want: dict[str, Any] = {'change_failure': True}
        remediation = deployment.get('remediation')
        if remediation:
            want['remediation'] = {'id': remediation['id'], 'type': remediation['type']}
        if sent.get('change_failure') is True and sent.get('remediation') == want.get('remediation'):
            return None
        return want
    if sent.get('change_failure') is True:
        return {'change_failure': False}
    return None


# Records --------------------------------------------------------------------------------------


def prune(records: dict[str, dict], deployments: dict[str, dict], now: float, window: float, busy: set[str]) -> None:
    """Forget incidents untouched for `RETENTION` (or two windows), then the oldest beyond `MAX_RECORDS`;
    then deployments no remembered incident blames and untouched as long.

    `busy` names incidents and deployments with queued work: they are kept whatever their age. A
    forgotten incident leaves its deployment as it is in Datadog: forgetting never unmarks.
    """
    horizon = now - max(RETENTION, window * 2)
    for key in [k for k, record in records.items() if k not in busy and _touched(record) < horizon]:
        del records[key]
    if len(records) > MAX_RECORDS:
        for key in sorted(records, key=lambda k: _touched(records[k]))[: len(records) - MAX_RECORDS]:
            del records[key]
    for key in [
        k
        for k, deployment in deployments.items()
        if k not in busy
        and _touched(deployment) < horizon
        and not any(incident in records for incident in deployment.get('blamed_by') or ())
    ]:
        del deployments[key]


def _touched(record: Mapping[str, Any]) -> float:
    return float(record.get('touched') or 0)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
