# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Pure functions: an incident's transitions, each identified by the log entry that proves it.

PagerDuty's incident object shows only the current state, and PagerDuty indexes log entries a
little late, so an entry can arrive after later ones were applied. The collector therefore keeps,
per incident, a `Base` (the state before a point in time) and the `Step`s (log entries) after it,
and `replay` derives every transition from them in time order, whatever order they arrived in.
Each transition has a `key` that names what proves it, so re-deriving never repeats one:

- `trigger` for the trigger (one per incident, dated by the incident's creation);
- the entry id for an acknowledgement, unacknowledgement or resolve;
- `reopen:<key of the resolve>` for a reopen, which PagerDuty does not log: the first entry that
  shows the incident open after a resolve (an assignment, an acknowledgement...) proves it and dates it;
- `adopt:...` for a change that only the incident object shows (the last resort, see `adopt`).

`fold` moves steps older than the change feed's overlap into the base, so what is kept per
incident stays small: a late entry can only arrive within that overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from datadog_checks.pagerduty_dora.common import codec

from .incident import Incident

TRANSITION_KINDS = (
    'triggered',
    'acknowledged',
    'unacknowledged',
    'resolved',
    'reopened',
    'priority_changed',
    'urgency_changed',
    'service_changed',
)
STATUS_KINDS = frozenset(TRANSITION_KINDS[:5])

NEW = 'new'
OPEN = ('triggered', 'acknowledged')
TRIGGER_KEY = 'trigger'
# The order of the entries of one second (see `replay`).
_RANK = {'trigger': 0, '': 1, 'acknowledge': 2, 'unacknowledge': 3, 'resolve': 4}


@dataclass(frozen=True)
class Transition:
    """One change of one incident, as observed by the collector.

    `at` is when it happened in PagerDuty (UTC epoch seconds); `previous` holds the value before a
    `*_changed` transition (priority name, urgency, or PagerDuty service name). `first` is False for
    an acknowledgement after an earlier one (time to acknowledge ends at the first). `key` names what
    proves it (see the module docstring).
    """

    kind: str
    incident: Incident
    at: float
    previous: str | None = None
    first: bool = True
    key: str = ''


@dataclass(frozen=True)
class Step:
    """One log entry as the replay reads it: `action` is trigger, acknowledge, unacknowledge, resolve
    or '' (any other entry); `evidence` says whether it shows the incident open (not a note or a field edit)."""

    id: str
    at: float
    action: str = ''
    evidence: bool = True
    kind: str = ''


@dataclass
class Base:
    """An incident's state before its steps: what was folded, or what its object showed when read.

    Entries dated before `at` are reflected in it. Entries before `unsure_until` may or may not be
    (an incident object read in second S may or may not show an entry of second S): those only move
    the status forward and never prove a reopen.
    """

    status: str = NEW
    acked: bool = False
    resolve_key: str = ''
    resolved_at: float | None = None
    at: float = 0.0
    unsure_until: float = 0.0


# How a step and a base are stored (in an incident's record, see `collection/record.py`).
ACTIONS = tuple(_RANK)
STEP: codec.Domain[Step] = codec.Struct(
    Step, id=codec.TEXT, at=codec.TIME, action=codec.Choice(*ACTIONS), evidence=codec.FLAG, kind=codec.TEXT
)
BASE: codec.Domain[Base] = codec.Struct(
    Base,
    status=codec.Choice(NEW, 'triggered', 'acknowledged', 'resolved'),
    acked=codec.FLAG,
    resolve_key=codec.TEXT,
    resolved_at=codec.Optional(codec.TIME),
    at=codec.TIME,
    unsure_until=codec.TIME,
)


def observed(incident: Incident, at: float) -> Base:
    """The base an incident object read at PagerDuty time `at` stands for.

    An object does not say whether the incident was acknowledged before (PagerDuty lists only the
    current acknowledgements), so an acknowledgement after it is never taken for the first: time to
    acknowledge is measured only for incidents whose whole story the check read.
    """
    second = float(math.floor(at))
    return Base(
        status=incident.status,
        acked=True,
        resolve_key='at:{}'.format(int(incident.resolved_at or second)) if incident.status == 'resolved' else '',
        resolved_at=incident.resolved_at if incident.status == 'resolved' else None,
        at=second,
        unsure_until=second + 1,
    )


def replay(base: Base, steps: Iterable[Step], incident: Incident) -> tuple[list[Transition], Base]:
    """Every transition the steps show after `base`, oldest first, and the state they end in.

    Steps are taken in time order. PagerDuty's times have one-second resolution and entries of one
    second may arrive on different pages, so within a second they go in lifecycle order (trigger,
    other entries, acknowledge, unacknowledge, resolve): a resolve and a reopen in the same second
    are left to reconciliation rather than a trigger and its resolve taken for a reopen. A step dated
    before `base.at` is already reflected and is skipped.
    """
    state = replace(base)
    out: list[Transition] = []
    for step in sorted(steps, key=lambda s: (s.at, _RANK.get(s.action, 1))):
        if step.at < base.at:
            continue
        unsure = step.at < base.unsure_until
        if state.status == NEW:
            out.append(Transition('triggered', incident, min(incident.created_at, step.at), key=TRIGGER_KEY))
            state.status = 'triggered'
        if state.status == 'resolved':
            if unsure or not step.evidence:
                continue
            out.append(Transition('reopened', incident, step.at, key='reopen:' + state.resolve_key))
            state.status = 'triggered'
        action = step.action
        if action == 'acknowledge' and state.status == 'triggered':
            out.append(Transition('acknowledged', incident, step.at, first=not state.acked, key=step.id))
            state.status, state.acked = 'acknowledged', True
        elif action == 'unacknowledge' and state.status == 'acknowledged':
            out.append(Transition('unacknowledged', incident, step.at, key=step.id))
            state.status = 'triggered'
        elif action == 'resolve' and state.status in OPEN:
            out.append(Transition('resolved', incident, step.at, key=step.id))
            state.status, state.resolve_key, state.resolved_at = 'resolved', step.id, step.at
    return out, state


def fold(base: Base, steps: Sequence[Step], point: float, incident: Incident) -> tuple[Base, list[Step], set[str]]:
    """Move the steps dated before `point` into the base: (new base, steps kept, keys of the transitions folded)."""
    old = [step for step in steps if step.at < point]
    if not old:
        return base, list(steps), set()
    transitions, state = replay(base, old, incident)
    state.at = max(base.at, point)
    state.unsure_until = max(base.unsure_until, state.at) if base.unsure_until > point else state.at
    return state, [step for step in steps if step.at >= point], {t.key for t in transitions}


def adopt(state: Base, incident: Incident, at: float) -> list[Transition]:
    """What takes `state` to the incident's own status when no log entry explains the change (the last resort).

    Dated by the incident's `last_status_change_at` (or `at`, PagerDuty's time now); keyed by that time,
    so the same unexplained change is never adopted twice.
    """
    changed = incident.last_status_change_at or incident.updated_at or at
    out: list[Transition] = []
    status = state.status
    if status == NEW:
        out.append(Transition('triggered', incident, incident.created_at, key=TRIGGER_KEY))
        status = 'triggered'
    target = incident.status
    if status == 'resolved' and target in OPEN:
        out.append(Transition('reopened', incident, changed, key='reopen:' + state.resolve_key))
        status = 'triggered'
    stamp = int(changed)
    if target == 'acknowledged' and status == 'triggered':
        acked_at = incident.acknowledged_at or changed
        out.append(
            Transition('acknowledged', incident, acked_at, first=not state.acked, key='adopt:ack:{}'.format(stamp))
        )
    elif target == 'triggered' and status == 'acknowledged':
        out.append(Transition('unacknowledged', incident, changed, key='adopt:unack:{}'.format(stamp)))
    elif target == 'resolved' and status in OPEN:
        resolved_at = incident.resolved_at or changed
        out.append(Transition('resolved', incident, resolved_at, key='adopt:resolve:{}'.format(int(resolved_at))))
    return out


def field_changes(
    previous: tuple[str | None, str, str, str], incident: Incident, steps: Sequence[Step], now: float
) -> list[Transition]:
    """Priority, urgency and service changes from `previous` (priority, urgency, service id, service name).

    An urgency change is dated by its own log entry; PagerDuty logs no priority change nor service
    move, so those are dated by the incident's last update, never later than `now`.
    """
    priority, urgency, service_id, service_name = previous
    updated = min(incident.updated_at or now, now)
    out: list[Transition] = []
    if priority != incident.priority:
        key = 'priority:{}:{}'.format(incident.priority or 'none', int(updated))
        out.append(Transition('priority_changed', incident, updated, priority or 'none', key=key))
    if urgency != incident.urgency:
        logged = [step.at for step in steps if step.kind == 'urgency_change']
        at = max(logged) if logged else updated
        out.append(
            Transition('urgency_changed', incident, at, urgency, key='urgency:{}:{}'.format(incident.urgency, int(at)))
        )
    if service_id != incident.service_id:
        key = 'service:{}:{}'.format(incident.service_id, int(updated))
        out.append(Transition('service_changed', incident, updated, service_name or service_id, key=key))
    return out
