# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Pure functions: what changed between what was last emitted for an incident and how it is now."""

from __future__ import annotations

from .incident import Incident, Transition
from .state import IncidentRecord


def _status_time(incident: Incident, fallback: float) -> float:
    return incident.last_status_change_at or fallback


def arrival(incident: Incident) -> list[Transition]:
    """Transitions of an incident first seen live: its trigger, then what happened since."""
    transitions = [Transition('triggered', incident, incident.created_at)]
    if incident.acknowledged_at is not None and incident.status != 'triggered':
        transitions.append(Transition('acknowledged', incident, incident.acknowledged_at))
    if incident.status == 'resolved':
        transitions.append(
            Transition('resolved', incident, incident.resolved_at or _status_time(incident, incident.created_at))
        )
    return transitions


def reopening(incident: Incident, now: float) -> list[Transition]:
    """Transitions of an incident that is open again after a resolve this collector did not keep."""
    transitions = [Transition('reopened', incident, _status_time(incident, now))]
    if incident.status == 'acknowledged':
        transitions.append(
            Transition('acknowledged', incident, incident.acknowledged_at or _status_time(incident, now))
        )
    return transitions


def changes(
    record: IncidentRecord, incident: Incident, now: float, acknowledged_at: float | None = None
) -> list[Transition]:
    """Transitions from the recorded state to the current one, in the order they happened.

    `acknowledged_at` is an acknowledgement found in the log entries of an incident that went from
    triggered to resolved between two looks (the resolved incident no longer lists it).
    """
    transitions: list[Transition] = []
    before, after = record.status, incident.status
    changed_at = incident.updated_at or now

    if before != after:
        if before == 'resolved':
            transitions.extend(reopening(incident, now))
        elif after == 'resolved':
            acked = acknowledged_at or incident.acknowledged_at
            if acked is not None and before == 'triggered':
                transitions.append(Transition('acknowledged', incident, acked))
            transitions.append(Transition('resolved', incident, incident.resolved_at or _status_time(incident, now)))
        elif after == 'acknowledged':
            transitions.append(
                Transition('acknowledged', incident, incident.acknowledged_at or _status_time(incident, now))
            )
        else:
            transitions.append(Transition('unacknowledged', incident, _status_time(incident, now)))

    if record.priority != incident.priority:
        transitions.append(Transition('priority_changed', incident, changed_at, record.priority or 'none'))
    if record.urgency != incident.urgency:
        transitions.append(Transition('urgency_changed', incident, changed_at, record.urgency))
    if record.service_id != incident.service_id:
        transitions.append(
            Transition('service_changed', incident, changed_at, record.service_name or record.service_id)
        )
    return transitions


def record_of(
    incident: Incident, fingerprint: str = '', tags: list[str] | None = None, seen_at: float = 0.0
) -> IncidentRecord:
    """The record that stands for `incident` once its transitions have been emitted."""
    return IncidentRecord(
        status=incident.status,
        priority=incident.priority,
        urgency=incident.urgency,
        service_id=incident.service_id,
        service_name=incident.service_name,
        created_at=incident.created_at,
        resolved_at=incident.resolved_at,
        fingerprint=fingerprint,
        tags=list(tags or []) if incident.is_open else [],
        seen_at=seen_at,
    )
