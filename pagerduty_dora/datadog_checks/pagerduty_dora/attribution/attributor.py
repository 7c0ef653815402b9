# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution: the state of the deployments PagerDuty incidents blame, kept in Datadog.

DORA Metrics computes change failure rate and failed deployment recovery time from *deployments*
marked as change failures; the failures sent to `/api/v2/dora/failure` do not count. So attribution
owns one thing, each deployment's state: a change failure while at least one qualifying incident
blames it, with one remediation. It follows every incident through its life: whatever changes what
qualifies it (priority, service, filters, merge, delete, reopen, resolve) judges it again, and
whatever a judgement changes is made true in Datadog (`PATCH /api/v2/dora/deployments/{id}`, which
also sets a deployment back with `change_failure: false`).

- The collector calls `observe()` once per look at an incident, with the transitions of that look,
  and puts the returned lines in those transitions' events; `gone()` when it removes the incident's
  failure (deleted, out of scope); `flush()` at the start of a run and `save()` at its end.
- What to do is decided by the pure functions of `decision` (with `eligibility`, `blame` and
  `remediation`); every request is made by the `Executor`, for the tasks of one queue (judge an
  incident, find a deployment's remediation, bring a deployment's state to Datadog) kept in the
  persistent cache, so work interrupted by a restart, a transient error, the request budget or a
  refusal is done on a later run, once. A task can wait: an incident's first search waits `SETTLE`
  seconds after its start, for deployments that reach Datadog late.
- Decisions made with no event to carry them (a search after the settle time, a remediation found
  or not found on a later run, a deployment set back or kept) are sent as an event of their own,
  threaded with the incident's events, once: they wait in the stored state until told.
- A deployment no incident blames any more is set back only where no one else can have marked it:
  never once a rollback of it was seen or its remediation is known (`decision.kept_by_others()`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.outputs import mapping_tags
from datadog_checks.pagerduty_dora.datadog.queue import QueueBounds

from .decision import Rules
from .deployments import DeploymentsClient, PagerDutySignals
from .eligibility import facts_of
from .executor import Executor
from .model import DELETED, Deployment, Facts
from .reporting import Reporter, preview_result
from .state import CACHE_KEY, DEFAULT_BOUNDS, AttributionState
from .tasks import AttributionTasks
from .texts import REOPENED

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
    from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

# The check names the permissions of the deployments endpoints from these.

MAX_TAGS = 30


class ChangeFailureAttribution:
    """Marks the deployments that PagerDuty incidents blame as change failures, and keeps them right.

    `api` is the Datadog client, `pagerduty` the PagerDuty one (related change events, priorities);
    `rules` say which incidents blame which deployments; `services` lend the cache, log, warnings, clock
    and count metric; `event(payload)` submits an Agent event (None: no events of its own); `bounds`
    bound the queue of work. With `dry_run`, nothing is written: the PATCHes it would send are kept in
    `would_patch`, and every incident is judged as if the settle time had passed.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        pagerduty: ApiClient | None = None,
        rules: Rules,
        services: AgentServices,
        event: Callable[[dict], None] | None = None,
        bounds: QueueBounds = DEFAULT_BOUNDS,
        dry_run: bool = False,
    ) -> None:
        # A dry run judges every incident as if the settle time had passed: it has one look only.
        self.rules = replace(rules, settle=0.0) if dry_run else rules
        self.dry_run = dry_run
        self._log = log = services.log
        self._state = AttributionState(services, bounds)
        self._report = Reporter(self._state, services, event)
        signals = PagerDutySignals(pagerduty, caller=CACHE_KEY, log=log) if pagerduty is not None else None
        self._executor = Executor(DeploymentsClient(api, caller=CACHE_KEY, log=log), signals, dry_run=dry_run)
        self._tasks = AttributionTasks(
            self._state, self._report, self._executor, self.rules, clock=services.clock, log=log
        )

    @property
    def would_patch(self) -> list[tuple[str, dict]]:
        """In a dry run, every PATCH it would have sent, in order: (deployment id, body)."""
        return self._executor.would_patch

    @property
    def pending(self) -> int:
        """How many attribution tasks wait (for their time, or for a later run)."""
        self._state.fields()
        return len(self._state.queue)

    def attribution_of(self, incident_id: str) -> Deployment | None:
        """The deployment an incident blames now, if any."""
        record = self._state.incidents().get(incident_id)
        blamed = record.get('blames') if record else None
        deployment = self._state.deployments().get(blamed) if blamed else None
        return Deployment.from_json(deployment['deployment']) if deployment else None

    def deployment_state(self, deployment_id: str) -> dict | None:
        """What the check holds for a deployment: `blamed_by`, `remediation`, and what Datadog was `sent`."""
        found = self._state.deployments().get(deployment_id)
        return dict(found) if found else None

    def observe(
        self, incident: Incident, mapping: MappingResult, wanted: bool, transitions: Sequence[Transition] = ()
    ) -> dict[int, str]:
        """Judge the incident again if anything that qualifies it changed; return event lines by transition index.

        Called once per look at an incident, with the transitions found in that look (possibly none).
        `wanted` is whether the collector counts it (filters, scope, merges). An incident is followed
        from a trigger seen live: history is never attributed.
        """
        records = self._state.incidents()
        record = records.get(incident.id)
        if record is None:
            if not any(t.kind == 'triggered' for t in transitions):
                return {}
            record = records[incident.id] = {}
        facts = facts_of(incident, mapping, wanted)
        record['number'] = incident.number
        record['tags'] = mapping_tags(incident, mapping)[:MAX_TAGS]
        if record.get('facts') != facts.to_json():
            record['facts'] = facts.to_json()
            record['judged'] = False
        if not record.get('judged') and self._state.queue.get('incident:' + incident.id) is None:
            # Its facts changed, or the work on its last change was dropped from a full queue.
            self._tasks.judge_now(incident.id)
        if record.get('blames') and any(t.kind == 'reopened' for t in transitions):
            self._report.note(incident.id, REOPENED)
        return self._report.lines_for(incident.id, transitions, wanted)

    def gone(self, incident_id: str, why: str = DELETED) -> None:
        """The collector removed the incident's failure (`deleted`, or `out_of_scope`): it blames nothing now."""
        record = self._state.incidents().get(incident_id)
        if not record or not isinstance(record.get('facts'), dict):
            return
        facts = Facts.from_json(record['facts'])
        if facts.gone == why:
            return
        record['facts'] = replace(facts, gone=why).to_json()
        record['judged'] = False
        self._tasks.judge_now(incident_id)

    def flush(self) -> None:
        """Run every task that is due, oldest first, until done or the APIs say stop; persist what changed."""
        self._state.fields()
        for key, task in self._state.queue.expire():
            self._log.debug('Dropped the expired change-failure attribution task %s (%s)', key, task.get('kind'))
        try:
            self._tasks.drain(None)
        finally:
            self._persist()

    def save(self) -> None:
        """End of a run: send what was decided without an event to carry it, and persist the state."""
        self._report.end_run()
        self._state.prune(self.rules.attribution_window)
        self._persist()

    def preview(self, incident: Incident, mapping: MappingResult, wanted: bool = True) -> dict[str, Any]:
        """What attribution would decide for the incident had its trigger been seen live, with nothing written.

        For a dry run (`dry_run=True`): the same rules and searches as a run, the settle time taken as
        passed. Returns the `outcome`, the `deployment` it would mark, the `signal` and `basis` that
        decided, the `remediation` a resolved incident would record and a `note` saying why.
        """
        transitions = [_Look('triggered', incident.created_at)]
        self.observe(incident, mapping, wanted, transitions)  # type: ignore[arg-type]
        record = self._state.incidents().get(incident.id) or {}
        notes, outcomes = self._report.take(incident.id)
        return preview_result(record, self._state.deployments(), notes, outcomes)

    def _persist(self) -> None:
        if not self.dry_run:
            self._state.save()


class _Look:
    """The trigger of a previewed incident, as `observe()` reads a transition."""

    def __init__(self, kind: str, at: float) -> None:
        self.kind = kind
        self.at = at
