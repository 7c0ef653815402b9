# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Pure functions: an incident's transitions, replayed from its log entries and its current state.

PagerDuty's incident object shows only the current state (and a resolved incident lists no
acknowledgements), so the collector replays the incident's status log entries in order against what
it last emitted. A `Replay` holds that running state:

- `status` is `new` for an incident created while the collector was live that it has not seen yet
  (its trigger is news), `unknown` for an older one it has no record of (its earlier state was never
  observed, so neither a trigger nor a reopen can be claimed), else the PagerDuty status;
- `status_at` is the time of the last log entry applied, or when the status was last read from an
  incident object: entries from before that second are already reflected; entries of that very
  second may or may not be (PagerDuty's times have one-second resolution), so they are applied only
  where they move the status forward, never taken as evidence of a reopen.

PagerDuty logs no entry for a reopen: a status entry of a resolved incident means it was reopened
first (dated by that entry, the first thing known after it), and an incident whose object shows it
open again after its last logged resolve was reopened at its `last_status_change_at`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .incident import Incident, Transition
from .state import IncidentRecord

NEW = 'new'
UNKNOWN = 'unknown'
# Log entry types that change an incident's status, by the action they stand for.
STATUS_ENTRIES = {
    'trigger_log_entry': 'trigger',
    'acknowledge_log_entry': 'acknowledge',
    'unacknowledge_log_entry': 'unacknowledge',
    'resolve_log_entry': 'resolve',
}


@dataclass
class Replay:
    """The running state of one incident while its log entries are applied."""

    status: str
    acked: bool = False
    resolved_at: float | None = None
    status_at: float = 0.0

    @classmethod
    def of(cls, record: IncidentRecord | None, incident: Incident, news_since: float | None) -> Replay:
        """The starting point: the record, or what an incident without one is taken to be.

        Without a record, an incident created since `news_since` is new (None: none is); an older
        one may have been recorded and forgotten, or never been in scope, so its state is unknown.
        """
        if record is not None:
            return cls(record.status, record.acked, record.resolved_at, record.status_at)
        if news_since is not None and incident.created_at >= math.floor(news_since):
            return cls(NEW)
        return cls(UNKNOWN)

    @property
    def known(self) -> bool:
        return self.status not in (NEW, UNKNOWN)


def apply_entry(replay: Replay, action: str, at: float, incident: Incident) -> list[Transition]:
    """Apply one status log entry (`trigger`, `acknowledge`, `unacknowledge`, `resolve`) at `at`.

    Returns the transitions it reveals, in order, and advances `replay`.
    """
    seen_second = math.floor(replay.status_at)
    if at < seen_second:
        return []
    settled = at == seen_second
    out = _apply(replay, action, at, incident, settled)
    replay.status_at = max(replay.status_at, at)
    return out


def _apply(replay: Replay, action: str, at: float, incident: Incident, settled: bool) -> list[Transition]:
    out: list[Transition] = []
    status = replay.status
    if status == NEW:
        out.append(Transition('triggered', incident, min(at, incident.created_at)))
        status = replay.status = 'triggered'
        if action == 'trigger':
            return out
    if action == 'trigger':
        if status == UNKNOWN:
            replay.status = 'triggered'
        return out
    if status == 'resolved':
        if settled:
            return out
        out.append(Transition('reopened', incident, at))
        status = replay.status = 'triggered'
    if action == 'acknowledge' and status != 'acknowledged':
        # An acknowledgement of an incident first seen here may follow one made before it was seen.
        first = not replay.acked and status != UNKNOWN
        out.append(Transition('acknowledged', incident, at, first=first))
        replay.status, replay.acked = 'acknowledged', True
    elif action == 'unacknowledge' and status in ('acknowledged', UNKNOWN):
        out.append(Transition('unacknowledged', incident, at))
        replay.status = 'triggered'
    elif action == 'resolve':
        out.append(Transition('resolved', incident, at))
        replay.status, replay.resolved_at = 'resolved', at
    return out


def reopened_unlogged(replay: Replay, incident: Incident, covered_until: float) -> Transition | None:
    """A reopen that left no log entry: the incident is open again after the last resolve replayed.

    Only claimed once the log has been read past the incident's last status change
    (`covered_until`): before that, the change may be a logged one still to come.
    """
    changed = incident.last_status_change_at
    if replay.status != 'resolved' or not incident.is_open or changed is None or changed >= covered_until:
        return None
    if replay.resolved_at is not None and changed <= replay.resolved_at:
        return None
    if changed < math.floor(replay.status_at):
        return None
    replay.status = 'triggered'
    return Transition('reopened', incident, changed)


def adopt(replay: Replay, incident: Incident, now: float) -> list[Transition]:
    """Take the incident's own status where the log could not explain it (a last resort)."""
    at = incident.last_status_change_at or incident.updated_at or now
    out: list[Transition] = []
    if replay.status == NEW:
        out.append(Transition('triggered', incident, incident.created_at))
        replay.status = 'triggered'
    target = incident.status
    if replay.status == target or replay.status == UNKNOWN:
        replay.status = target
        return out
    if replay.status == 'resolved':
        out.append(Transition('reopened', incident, at))
        replay.status = 'triggered'
    if target == 'acknowledged' and replay.status != 'acknowledged':
        out.append(Transition('acknowledged', incident, incident.acknowledged_at or at, first=not replay.acked))
        replay.acked = True
    elif target == 'triggered' and replay.status == 'acknowledged':
        out.append(Transition('unacknowledged', incident, at))
    elif target == 'resolved' and replay.status != 'resolved':
        out.append(Transition('resolved', incident, incident.resolved_at or at))
        replay.resolved_at = incident.resolved_at or at
    replay.status = target
    return out


def field_changes(record: IncidentRecord | None, incident: Incident, now: float) -> list[Transition]:
    """Priority, urgency and service changes between the record and the incident's current state."""
    if record is None:
        return []
    changed_at = incident.updated_at or now
    out: list[Transition] = []
    if record.priority != incident.priority:
        out.append(Transition('priority_changed', incident, changed_at, record.priority or 'none'))
    if record.urgency != incident.urgency:
        out.append(Transition('urgency_changed', incident, changed_at, record.urgency))
    if record.service_id != incident.service_id:
        out.append(Transition('service_changed', incident, changed_at, record.service_name or record.service_id))
    return out


def arrival(incident: Incident) -> list[Transition]:
    """Transitions of a new incident known only from its current state (its log could not be read)."""
    replay = Replay(NEW)
    return adopt(replay, incident, incident.created_at)


def record_of(
    incident: Incident,
    replay: Replay,
    *,
    fingerprint: str = '',
    tags: list[str] | None = None,
    wanted: bool = True,
    checked_at: float = 0.0,
) -> IncidentRecord:
    """The record that stands for `incident` once the transitions of `replay` have been emitted."""
    status = replay.status if replay.known else incident.status
    return IncidentRecord(
        status=status,
        priority=incident.priority,
        urgency=incident.urgency,
        service_id=incident.service_id,
        service_name=incident.service_name,
        created_at=incident.created_at,
        resolved_at=(replay.resolved_at or incident.resolved_at) if status == 'resolved' else None,
        fingerprint=fingerprint,
        tags=list(tags or []) if status != 'resolved' else [],
        status_at=replay.status_at,
        acked=replay.acked,
        wanted=wanted,
        checked_at=checked_at,
    )
