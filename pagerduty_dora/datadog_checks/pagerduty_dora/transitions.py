# (C) The pagerduty_dora Authors 2026-present
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
from dataclasses import dataclass, fields, replace
from typing import Protocol, Sequence

from .incident import Incident
from .state import IncidentRecord

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


@dataclass(frozen=True)
class Transition:
    """One change of one incident, as observed by the collector.

    `at` is when it happened in PagerDuty (UTC epoch seconds); `previous` holds the value before a
    `*_changed` transition (priority name, urgency, or PagerDuty service name). `first` is False for
    an acknowledgement after an earlier one (time to acknowledge ends at the first).
    """

    kind: str
    incident: Incident
    at: float
    previous: str | None = None
    first: bool = True


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


@dataclass(frozen=True)
class Horizons:
    """Where collection stands, which decides what an incident's current state can mean."""

    live_since: float
    # The change feed has applied every log entry before this time.
    covered: float
    # A full pass over the open incidents was made since going live.
    baseline: bool
    now: float
    # How late PagerDuty may index an entry: a change older than `covered - overlap` that the feed
    # did not show was missed, not merely not read yet.
    overlap: float = 0.0


@dataclass(frozen=True)
class ReadLog:
    """The incident's own log is needed to tell what happened: from `since` on, or all of it (None)."""

    since: float | None


class _Entry(Protocol):
    """What `settle` reads of a log entry."""

    action: str
    at: float


def settle(
    replay: Replay,
    incident: Incident,
    record: IncidentRecord | None,
    horizons: Horizons,
    log: Sequence[_Entry] | None = None,
) -> list[Transition] | ReadLog:
    """Reconcile the replayed status with the incident's own, returning the transitions that explains.

    Returns `ReadLog` (and leaves `replay` as it was) when only the incident's own log can tell;
    the caller reads it and calls again with `log`.
    """
    trial = replace(replay)
    result = _settle(trial, incident, record, horizons, log)
    if not isinstance(result, ReadLog):
        for item in fields(replay):
            setattr(replay, item.name, getattr(trial, item.name))
    return result


def _settle(
    replay: Replay, incident: Incident, record: IncidentRecord | None, horizons: Horizons, log: Sequence[_Entry] | None
) -> list[Transition] | ReadLog:
    now, covered = horizons.now, horizons.covered
    changed = incident.last_status_change_at
    if replay.status == NEW:
        # Shown by the log without its trigger entry (it lies before the window being read).
        out = adopt(replay, incident, now)
        replay.status_at = max(replay.status_at, now)
        return out
    if replay.status == UNKNOWN:
        out = []
        if (
            horizons.baseline
            and record is None
            and incident.is_open
            and changed is not None
            and horizons.live_since <= changed < covered
        ):
            # Open, unknown, after the baseline: reopened, or moved into scope? A resolve in its own
            # log means reopened (PagerDuty logs no reopen); none means it was never resolved.
            if log is None:
                return ReadLog(None)
            resolves = [entry.at for entry in log if entry.action == 'resolve']
            if resolves and max(resolves) < changed:
                out = [Transition('reopened', incident, changed)]
        replay.status = incident.status
        replay.status_at = max(replay.status_at, now)
        return out
    if replay.status == incident.status:
        return []
    out = []
    reopen = reopened_unlogged(replay, incident, covered)
    if reopen is not None:
        out.append(reopen)
        if replay.status == incident.status:
            return out
    if changed is None or changed < covered - horizons.overlap:
        # The feed read past this change without showing it: the incident's own log tells.
        if log is None:
            return ReadLog(replay.status_at or None)
        for entry in log:
            out += apply_entry(replay, entry.action, entry.at, incident)
        if replay.status != incident.status:
            out += adopt(replay, incident, now)
            replay.status_at = max(replay.status_at, changed or now)
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
