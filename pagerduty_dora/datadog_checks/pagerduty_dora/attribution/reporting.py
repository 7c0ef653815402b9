# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Counting and telling what change-failure attribution decided, per incident and per run.

`attribution.results` counts every decision by `outcome` (with the `signal` that decided a blame and
the `reason` a deployment was set back). The notes of a look go into that look's event; the decisions
that no event carried (notes that stand alone) are sent at the end of the run as an event of their
own, threaded with the incident's events. Until then they are kept in the stored state, so a decision
is told once: never lost to a restart between the run that took it and the end of a run, never twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from datadog_checks.pagerduty_dora.common.errors import RequestRejected
from datadog_checks.pagerduty_dora.common.permissions import deployments_refusal
from datadog_checks.pagerduty_dora.common.services import AgentServices

from .model import ATTRIBUTED, FORBIDDEN, REJECTED
from .ports import Log
from .state import AttributionState
from .texts import Note, own_event

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

METRIC = 'attribution.results'
# Transitions whose event carries what attribution decided in the same look.
NOTE_KINDS = ('triggered', 'reopened', 'resolved', 'priority_changed', 'urgency_changed', 'service_changed')


class Reporter:
    """Counts outcomes, keeps the notes of the run per incident, and sends attribution's own events.

    `services` lend the count metric, the log, the check's warning and the clock; `event(payload)`
    submits an Agent event (None: no events of its own); the notes no event told yet wait in `state`.
    """

    def __init__(self, state: AttributionState, services: AgentServices, event: Callable[[dict], None] | None) -> None:
        self._state = state
        self._count = services.count
        self._log: Log = services.log
        self.warning = services.warning
        self._event = event
        self._clock = services.clock
        # Lines decided since the last `end_run()`, per incident, and every outcome of each incident.
        self._notes: dict[str, list[Note]] = {}
        self._outcomes: dict[str, list[str]] = {}
        self._told: dict[str, list[Note]] = {}
        self._warned: set[str] = set()

    def outcome(self, incident_id: str, outcome: str, extra: Sequence[str] = ()) -> None:
        """Count one decision for the incident."""
        self._outcomes.setdefault(incident_id, []).append(outcome)
        self._count(METRIC, 1, ['outcome:' + outcome] + list(extra))

    def note(self, incident_id: str, note: Note) -> None:
        """Keep a line for the incident's next event; one that stands alone is stored until an event tells it."""
        self._notes.setdefault(incident_id, []).append(note)
        self._told.setdefault(incident_id, []).append(note)
        if note.stands_alone:
            self._state.keep_untold(incident_id, note.to_json())

    def warn_once(self, what: str, message: str) -> None:
        """Warn about `what` once per run."""
        if what not in self._warned:
            self._warned.add(what)
            self.warning(message)

    def rejected(self, what: str, incident_id: str, service: str, env: str, error: RequestRejected) -> None:
        """Count and log a request Datadog rejected; it is not retried."""
        self.outcome(incident_id, REJECTED)
        self._log.warning(
            'The DORA deployments %s for incident %s (%s %s) was rejected (%s) and is not retried: %s',
            what,
            incident_id,
            service,
            env,
            error.status,
            (error.body or '')[:500],
        )

    def forbidden(self, status: int | None) -> None:
        """Datadog refused the keys: told once per run, as the deployments client makes no further request in it."""
        self.warning(deployments_refusal(status))
        self._count(METRIC, 1, ['outcome:' + FORBIDDEN])

    def lines_for(self, incident_id: str, transitions: Sequence[Transition], wanted: bool) -> dict[int, str]:
        """This incident's lines for the look's events; with no event, those that stand alone wait for `end_run()`."""
        notes = self._notes.pop(incident_id, [])
        if not notes:
            return {}
        if not transitions or not wanted:
            # The collector emits no event for this look: a later look of this run may still tell them.
            kept = [n for n in notes if n.stands_alone]
            if kept:
                self._notes[incident_id] = kept
            return {}
        self._state.told(incident_id, [n.to_json() for n in notes if n.stands_alone])
        index = max((i for i, t in enumerate(transitions) if t.kind in NOTE_KINDS), default=len(transitions) - 1)
        return {index: '\n'.join(n.line for n in notes)}

    def end_run(self) -> None:
        """Send the decisions no event told as attribution's own events, and start the next run's notes."""
        for incident_id, record, stored in self._state.take_untold():
            notes = [note for note in map(_note, stored) if note is not None]
            if notes and self._event is not None:
                self._event(own_event(incident_id, record, notes, self._clock()))
        self._notes = {}
        self._outcomes = {}
        self._told = {}
        self._warned.discard('priorities')

    def take(self, incident_id: str) -> tuple[list[Note], list[str]]:
        """Every note told for the incident since the run started (taken away), and its outcomes."""
        self._notes.pop(incident_id, None)
        notes = self._told.pop(incident_id, [])
        return notes, [o for o in self._outcomes.get(incident_id, []) if o]


def _note(raw: Any) -> Note | None:
    try:
        return Note.from_json(raw)
    except ValueError:
        return None


def preview_result(
    record: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    notes: Sequence[Note],
    outcomes: Sequence[str],
) -> dict[str, Any]:
    """What attribution decided for one incident, for a dry run: see `ChangeFailureAttribution.preview()`."""
    search = record.get('search') or {}
    result: dict[str, Any] = {
        'outcome': None,
        'deployment': None,
        'signal': None,
        'basis': None,
        'remediation': None,
        'note': '; '.join(n.plain for n in notes if n.plain),
    }
    blamed = record.get('blames')
    if blamed:
        deployment = deployments.get(blamed) or {}
        result.update(
            outcome=ATTRIBUTED,
            deployment=deployment.get('deployment'),
            signal=search.get('signal'),
            basis=search.get('basis'),
        )
        remediation = deployment.get('remediation')
        if remediation:
            result['remediation'] = {'type': remediation['type'], 'deployment': remediation['deployment']}
    elif outcomes:
        result['outcome'] = outcomes[0]
    return result
