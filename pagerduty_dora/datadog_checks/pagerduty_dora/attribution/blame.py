# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which deployment an incident blames: the range searched, and the choice among what was found.

Never one that finished after the incident started (a fix attempt is never the cause). The version
the Datadog monitor that triggered the incident names (its alerted group or its `version` tag)
decides first: the deployment of that version, of the incident's service and env, within the window
(the latest, when the version was deployed more than once). Without one, a change
event that PagerDuty relates to the incident (by its `intelligent` or `related_service` correlation;
its `most_recent` one is only time, which Datadog's list of deployments tells better) and that
matches a Datadog deployment of the same service and env (by version or commit, else by time)
decides; without one, the latest deployment of that service and env that finished within the window
before the start does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from datadog_checks.pagerduty_dora.catalog.model import name_key

from .model import (
    BY_COMMIT,
    BY_TIME,
    BY_VERSION,
    CHANGE_EVENT,
    LATEST_DEPLOYMENT,
    MONITOR_VERSION,
    ChangeEvent,
    Deployment,
)

# The list's time range may apply to when deployments *started*: a rollout that started up to this long
# before the window and finished inside it is still found (results are kept on their finish time).
ROLLOUT_MARGIN = 86400.0
# A change event this close to a deployment's finish or start matches it by time.
TIME_MATCH = 300.0
# A change event's details and summary give at most this many identifiers to match on.
MAX_IDENTIFIERS = 64
MIN_COMMIT_PREFIX = 7

_TOKEN_EDGES = '()[]{}<>,;:"\'`'
_RELATION_RANK = {'intelligent': 0}
MOST_RECENT = 'most_recent'


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
    version: str | None = None,
) -> Blame:
    """The deployment to blame: the one of the monitor's `version`, else the one a related change event
    matches, else the latest in the window."""
    found = in_window(candidates, start, window)
    named = of_version(found, version)
    if named is not None:
        return Blame(named, MONITOR_VERSION, BY_VERSION)
    # PagerDuty's `most_recent` relation is a rule of time on the change events it was sent, which
    # Datadog's own list (every deployment) answers better; its other relations know more.
    for event in ranked([e for e in events if e.reason != MOST_RECENT]):
        match = match_event(event, found, pagerduty_service)
        if match is not None:
            deployment, basis = match
            return Blame(deployment, CHANGE_EVENT, basis, event)
    latest = max(found, key=lambda d: (d.finished_at, d.id)) if found else None
    return Blame(latest, LATEST_DEPLOYMENT)


def of_version(deployments: Sequence[Deployment], version: str | None) -> Deployment | None:
    """The deployment of `version` (compared as names are), the latest when it was deployed more than once."""
    wanted = name_key(version)
    if not wanted:
        return None
    same = [d for d in deployments if name_key(d.version) == wanted]
    return max(same, key=lambda d: (d.finished_at, d.id)) if same else None


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
