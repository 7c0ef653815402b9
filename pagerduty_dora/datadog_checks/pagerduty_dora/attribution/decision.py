# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What attribution does next, decided without a request: each answer is a value the task runner carries out.

- `next_step()` judges an incident once more from its qualification and its stored search: release
  what it blames, wait for the settle time, run a `BlameSearch`, blame the deployment found, or see
  to its remediation. The first search waits `SETTLE` seconds after the incident's start
  (deployments reach Datadog late) and one more runs when it resolves.
- `remedy_search()` and `patch_task()` say which searches and which PATCH a deployment needs.
- The `*_task()` functions build the work kept in the persistent queue (`key`, task), run on a later
  run when this one cannot.

A deployment is a change failure while at least one qualifying incident blames it. When the last
one stops, it is set back (`change_failure: false`) only if no one else can have marked it: Datadog
marks deployments itself (rollback detection, rollforward rules) and its deployments API does not
say so, so a deployment rolled back, or with a known remediation, stays a change failure
(`release_outcome()`, `rollback_search()`, `wanted_patch()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from datadog_checks.pagerduty_dora.common.text import clip, one_line

from .blame import blame_range, decide_blame
from .model import (
    FILTERED,
    KEPT,
    MONITOR_VERSION,
    MOVED,
    REATTRIBUTED,
    RELEASED,
    UNMARKED,
    ChangeEvent,
    Deployment,
    Facts,
    Search,
    search_of,
)

# Seconds after an incident starts before its deployment is searched: a deployment reaches Datadog
# some time after it finishes, and the one that finished just before the incident is the likeliest cause.
SETTLE = 300.0


@dataclass(frozen=True)
class Rules:
    """The instance's rules of attribution, which travel together to whatever judges an incident.

    `attribution_window`: how long before an incident's start a deployment may have finished to be blamed;
    `min_severity` (None: any) with `severity_mapping`: which incidents qualify; `settle`: how long after
    its start an incident's first search waits. A blank `min_severity` is None, padding is dropped.
    """

    attribution_window: float
    min_severity: str | None = None
    severity_mapping: Mapping[str, str] = field(default_factory=dict)
    settle: float = SETTLE

    def __post_init__(self) -> None:
        minimum = self.min_severity.strip() if self.min_severity else ''
        object.__setattr__(self, 'attribution_window', float(self.attribution_window))
        object.__setattr__(self, 'min_severity', minimum or None)
        object.__setattr__(self, 'severity_mapping', dict(self.severity_mapping))
        object.__setattr__(self, 'settle', float(self.settle))


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


@dataclass(frozen=True)
class BlameSearch:
    """A search to run: the incident's related change events, then one service's deployments in one env."""

    incident: str
    service: str
    env: str
    # The range of deployment start times searched.
    since: float
    until: float
    # Whether the incident has resolved: this search is its last one.
    final: bool


@dataclass(frozen=True)
class Step:
    """One step of judging an incident, carried out in field order: release, then wait or search or blame."""

    release: str | None = None
    wait_until: float | None = None
    search: BlameSearch | None = None
    blame: str | None = None
    remediate: bool = False


def next_step(
    incident_id: str,
    reason: str | None,
    key: tuple[str, str] | None,
    record: Mapping[str, Any],
    facts: Facts,
    *,
    now: float,
    settle: float,
    window: float,
) -> Step:
    """The next step for an incident: its `disqualification()` is `reason`, its (service, env) `key`.

    A step with a `search` is followed by another once the search result is stored in the record.
    """
    decided = plan(reason, key, record.get('blames'), search_of(record), facts, now, settle)
    if decided.search_at is None:
        return Step(release=decided.release, blame=decided.blame, remediate=decided.remediate)
    if decided.search_at > now or key is None:
        return Step(release=decided.release, wait_until=decided.search_at)
    since, until = blame_range(facts.start, window)
    search = BlameSearch(incident_id, key[0], key[1], since, until, facts.resolved_at is not None)
    return Step(release=decided.release, search=search)


def searched(
    search: BlameSearch,
    events: Sequence[ChangeEvent] | None,
    candidates: Sequence[Deployment],
    facts: Facts,
    window: float,
) -> dict:
    """The stored result of a blame search that answered: the deployment it blames and what decided it."""
    blame = decide_blame(candidates, events or [], facts.start, window, facts.pagerduty_service, facts.version)
    found = blame.deployment
    return {
        'service': search.service,
        'env': search.env,
        'deployment': found.id if found else None,
        'found': found.to_json() if found else None,
        'final': search.final,
        'signal': blame.signal,
        'basis': blame.basis,
        'version': facts.version if blame.signal == MONITOR_VERSION else None,
        'event': clip(one_line(blame.event.summary), 200) if blame.event else None,
        'related': None if events is None else len(events),
    }


def refused_search(search: BlameSearch) -> dict:
    """The stored result of a blame search Datadog rejected: it found nothing, and is not retried."""
    return {'service': search.service, 'env': search.env, 'deployment': None, 'final': search.final}


def newly_unfound(previous: Search | None, search: BlameSearch, found: str | None) -> bool:
    """Whether a search that found nothing is news: the first for this service and env, or the last one found one."""
    if found is not None:
        return False
    return (
        previous is None
        or (previous.service, previous.env) != (search.service, search.env)
        or bool(previous.deployment)
    )


# A deployment's remediation and its state in Datadog --------------------------------------------


@dataclass(frozen=True)
class RemedySearch:
    """A search to run: the deployments after `failed` up to the resolve, and the versions before it."""

    incident: str
    deployment: str
    failed: Deployment
    until: float


def remedy_due(deployment: Mapping[str, Any], resolved_at: float, queued: Mapping[str, Any] | None) -> bool:
    """Whether a remediation search must be queued for a deployment an incident resolved at `resolved_at`."""
    if not needs_remediation(deployment, resolved_at):
        return False
    return queued is None or float(queued.get('until') or 0) < resolved_at


def needs_remediation(deployment: Mapping[str, Any], resolved_at: float) -> bool:
    """Whether a remediation search is due for a failed deployment an incident resolved at `resolved_at`."""
    if deployment.get('remediation'):
        return False
    searched_until = deployment.get('remedy_until')
    return searched_until is None or resolved_at > float(searched_until)


def remedy_search(task: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> RemedySearch | None:
    """The search a queued remedy task runs, or None when the deployment needs none any more."""
    if not deployment or deployment.get('remediation') or not deployment.get('blamed_by'):
        return None
    failed = Deployment.from_json(deployment['deployment'])
    return RemedySearch(task.get('incident') or '', task['deployment'], failed, float(task['until']))


def remedy_retry(task: Mapping[str, Any], settle: float, now: float) -> dict | None:
    """The remedy task again once the settle time has passed (a fix reported late), after a first search found none."""
    retry = float(task['until']) + settle
    if task.get('attempt') == 1 and retry > now:
        return dict(task, attempt=2, due=retry)
    return None


@dataclass(frozen=True)
class Patch:
    """A PATCH to send: the attributes that bring a deployment in Datadog to what the check decided."""

    deployment: str
    attributes: dict


def patch_task(deployment_id: str, deployment: Mapping[str, Any] | None) -> Patch | None:
    """The PATCH the deployment needs, or None: it matches, or Datadog refused this very change before."""
    if not deployment:
        return None
    want = wanted_patch(deployment)
    if want is None or deployment.get('refused') == want:
        return None
    return Patch(deployment_id, want)


def wanted_patch(deployment: Mapping[str, Any]) -> dict | None:
    """The attributes the deployment must be PATCHed with to match what the check decided, or None.

    A deployment blamed by at least one incident is a change failure, with its remediation once one
    is recorded; so is one the check marked that someone else may have marked too (`kept_by_others()`).
    Any other deployment the check marked is set back once `may_set_back()` holds.
    """
    sent = deployment.get('sent') or {}
    marked = sent.get('change_failure') is True
    if deployment.get('blamed_by') or (marked and kept_by_others(deployment)):
        want: dict[str, Any] = {'change_failure': True}
        remediation = deployment.get('remediation')
        if remediation:
            want['remediation'] = {'id': remediation['id'], 'type': remediation['type']}
        if marked and sent.get('remediation') == want.get('remediation'):
            return None
        return want
    if may_set_back(deployment):
        return {'change_failure': False}
    return None


def kept_by_others(deployment: Mapping[str, Any]) -> bool:
    """Whether someone other than the check may have marked the deployment as a change failure.

    Datadog marks a deployment itself when a later one rolls it back, and when its rollforward rules
    (revert PRs, hotfix labels, custom rules) match a later one; the deployments API does not show
    either mark. So: a rollback of it was seen, or its remediation is recorded (whichever its type),
    or the search for a rollback was refused and one cannot be ruled out.
    """
    return bool(deployment.get('rolled_back') or deployment.get('remediation') or deployment.get('rollback_refused'))


def may_set_back(deployment: Mapping[str, Any]) -> bool:
    """Whether the check sets the deployment back: it marked it, no incident blames it, nothing keeps it, and
    a search made since its last blame (`rollback_until`) saw no rollback of it.

    A mark made by hand in Datadog cannot be seen: a set-back still overrides it.
    """
    return (
        (deployment.get('sent') or {}).get('change_failure') is True
        and not deployment.get('blamed_by')
        and not kept_by_others(deployment)
        and deployment.get('rollback_until') is not None
    )


def release_outcome(deployment: Mapping[str, Any]) -> str:
    """What an incident's release means for its deployment, once the incident is taken off `blamed_by`.

    `released`: others still blame it; `kept`: the check marked it and someone else may have too;
    `unmarked`: no qualifying incident blames it, and the check sets it back if it marked it.
    """
    if deployment.get('blamed_by'):
        return RELEASED
    if (deployment.get('sent') or {}).get('change_failure') is True and kept_by_others(deployment):
        return KEPT
    return UNMARKED


@dataclass(frozen=True)
class RollbackSearch:
    """A search to run before a set-back: the deployments after `failed` up to `until`, and the versions before it."""

    deployment: str
    failed: Deployment
    until: float


def rollback_search(deployment_id: str, deployment: Mapping[str, Any] | None, now: float) -> RollbackSearch | None:
    """The search for a rollback of a deployment the check marked and no incident blames, or None when none is due.

    Due once after each last blame (its result is kept in `rollback_until` until the next blame), and
    only while nothing else keeps the deployment a change failure.
    """
    if not deployment or deployment.get('blamed_by') or kept_by_others(deployment):
        return None
    if (deployment.get('sent') or {}).get('change_failure') is not True or deployment.get('rollback_until') is not None:
        return None
    return RollbackSearch(deployment_id, Deployment.from_json(deployment['deployment']), now)


# The work kept in the persistent queue ----------------------------------------------------------


def incident_task(incident_id: str, due: float) -> tuple[str, dict]:
    """Judge an incident (again) at `due`."""
    return 'incident:' + incident_id, {'kind': 'incident', 'incident': incident_id, 'due': due}


def remedy_task(deployment_id: str, incident_id: str, until: float, due: float) -> tuple[str, dict]:
    """Search the remediation of a failed deployment that an incident resolved at `until` blames."""
    task = {'kind': 'remedy', 'deployment': deployment_id, 'incident': incident_id, 'until': until, 'attempt': 1}
    return 'remedy:' + deployment_id, dict(task, due=due)


def sync_task(deployment_id: str) -> tuple[str, dict]:
    """Bring the deployment's state in Datadog to what the check decided."""
    return 'sync:' + deployment_id, {'kind': 'sync', 'deployment': deployment_id, 'due': 0}
