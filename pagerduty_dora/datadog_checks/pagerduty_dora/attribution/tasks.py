# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The work of change-failure attribution, run from the persistent queue: judge, remedy, sync.

Each task asks `decision` what to do, has the `Executor` make the requests that needs, and records
the answer: the incident's and the deployment's records, the counts and the notes. A task that
cannot be done now (`Unavailable`) stays queued for a later run, and is told once; Datadog refusing
the keys is told and counted once per run, as the requests stall at it.

- `incident`: judge an incident again (qualify it, search its deployment, blame or release it);
- `remedy`: find a failed deployment's remediation once an incident blaming it resolved;
- `sync`: bring a deployment's state in Datadog to what the check decided (`PATCH`).

The deployment side (releases, `remedy` and `sync`) is `marking.DeploymentTasks`.
"""

from __future__ import annotations

from typing import Callable

from .decision import BlameSearch, Rules, incident_task, newly_unfound, next_step, refused_search, searched
from .deployments import Unavailable
from .eligibility import attribution_key, disqualification, order_expired, severity_threshold, stored_order
from .marking import DeploymentTasks, Outcome
from .model import ATTRIBUTED, DEFERRED, LATEST_DEPLOYMENT, NO_DEPLOYMENT, Deployment, Facts, search_of
from .ports import Log, Requests
from .reporting import Reporter
from .state import AttributionState
from .texts import (
    NO_PRIORITIES_MESSAGE,
    UNKNOWN_MINIMUM_MESSAGE,
    blamed_note,
    deferred_note,
    no_deployment_note,
    refused_note,
    search_rejected_note,
    waiting_note,
)


class AttributionTasks:
    """Runs the queued tasks of `state` due now, oldest first, each through `requests`, told by `report`.

    `rules` say which incidents qualify, how far back a deployment is blamed and how long a first search waits.
    """

    def __init__(
        self,
        state: AttributionState,
        report: Reporter,
        requests: Requests,
        rules: Rules,
        *,
        clock: Callable[[], float],
        log: Log,
    ) -> None:
        self._state = state
        self._report = report
        self._requests = requests
        self._rules = rules
        self._clock = clock
        self._log = log
        self._marks = DeploymentTasks(state, report, requests, settle=rules.settle, clock=clock, log=log)

    # The queue -----------------------------------------------------------------------------------

    def judge_now(self, incident_id: str) -> None:
        """Judge the incident at once, with whatever that queues."""
        key, task = incident_task(incident_id, self._clock())
        self._state.put(key, task)
        self.drain({key})

    def drain(self, only: set[str] | None) -> None:
        """Run the due tasks (all, or those of `only` and what they queue), in queue order."""
        queue = self._state.queue
        keys = None if only is None else set(only)
        while True:
            ran = False
            for key, _, task in queue.dump():
                if keys is not None and key not in keys:
                    continue
                if not isinstance(task, dict) or queue.get(key) is not task:
                    continue
                if float(task.get('due') or 0) > self._clock():
                    continue
                try:
                    done, follow = self._run(key, task)
                except Unavailable as e:
                    if e.forbidden:
                        self._report.forbidden(e.status)
                    self._deferred(key, task, e.forbidden)
                    continue
                if done and queue.get(key) is task:
                    queue.remove(key)
                if keys is not None:
                    keys |= follow
                ran = True
            if not ran:
                return

    def _run(self, key: str, task: dict) -> Outcome:
        kind = task.get('kind')
        if kind == 'incident':
            return self._judge(key, task)
        if kind == 'remedy':
            return self._marks.remedy(key, task)
        if kind == 'sync':
            return self._marks.send(task)
        self._log.debug('Dropping a change-failure attribution task of unknown kind %r', kind)
        return True, set()

    def _deferred(self, key: str, task: dict, forbidden: bool) -> None:
        if task.get('deferred'):
            return
        self._state.put(key, dict(task, deferred=True))
        incident_id = task.get('incident')
        if not incident_id:
            return
        if not forbidden:
            self._report.outcome(incident_id, DEFERRED)
        self._report.note(incident_id, deferred_note(forbidden, task.get('kind') == 'remedy'))

    # Judging an incident -------------------------------------------------------------------------

    def _judge(self, key: str, task: dict) -> Outcome:
        incident_id = task['incident']
        record = self._state.incidents().get(incident_id)
        if not record or not isinstance(record.get('facts'), dict):
            return True, set()
        facts = Facts.from_json(record['facts'])
        reason = self._disqualification(facts)
        self._qualification(incident_id, record, facts, reason)
        target = attribution_key(facts) if reason is None else None
        follow: set[str] = set()
        now = self._clock()
        settle, window = self._rules.settle, self._rules.attribution_window
        for _ in range(3):
            step = next_step(incident_id, reason, target, record, facts, now=now, settle=settle, window=window)
            if step.release:
                follow |= self._marks.release(incident_id, record, step.release)
            if step.wait_until is not None:
                self._wait(incident_id, record, step.wait_until)
                self._state.put(key, dict(task, due=step.wait_until))
                return False, follow
            if step.search is not None:
                self._search(record, facts, step.search)
                continue
            if step.blame:
                follow |= self._blame(incident_id, record, step.blame)
            if step.remediate:
                follow |= self._marks.remediation_due(incident_id, record, facts)
            break
        record['judged'] = True
        return True, follow

    def _disqualification(self, facts: Facts) -> str | None:
        rules = self._rules
        needs_order = rules.min_severity and facts.priority and not facts.gone and not facts.merged and facts.wanted
        order = self._priority_order() if needs_order else []
        return disqualification(facts, rules.min_severity, order, rules.severity_mapping)

    def _priority_order(self) -> list[str]:
        """The account's priorities, most severe first (`GET /priorities`), read again every `PRIORITIES_TTL`."""
        stored = self._state.priorities()
        names = stored_order(stored)
        now = self._clock()
        if not order_expired(stored, now):
            return names
        try:
            told = self._requests.priorities()
        except Unavailable:
            if not stored:
                raise
            # PagerDuty cannot answer now: the order read last still holds.
            return names
        fresh = told.names
        if fresh is None:
            consequence = (
                'incidents are compared in the order read last'
                if names
                else 'no incident is attributed until they can be'
            )
            message = NO_PRIORITIES_MESSAGE.format(status=told.refusal, consequence=consequence)
            self._report.warn_once('priorities', message)
            return names
        self._state.set_priorities(fresh, now)
        minimum = self._rules.min_severity
        if minimum and severity_threshold(minimum, fresh, self._rules.severity_mapping) is None:
            names_text = ', '.join(fresh) or 'none'
            self._report.warning(UNKNOWN_MINIMUM_MESSAGE.format(minimum=minimum, names=names_text))
        return fresh

    def _qualification(self, incident_id: str, record: dict, facts: Facts, reason: str | None) -> None:
        """Count and tell a change of whether (and why not) the incident qualifies."""
        if 'why' in record and record['why'] == reason:
            return
        record['why'] = reason
        self._state.touch(record)
        if reason is None:
            return
        self._report.outcome(incident_id, reason)
        note = refused_note(reason, facts, self._rules.min_severity)
        self._log.debug('Incident %s does not blame a deployment (%s): %s', incident_id, reason, note.plain)
        self._report.note(incident_id, note)

    def _wait(self, incident_id: str, record: dict, due: float) -> None:
        if record.get('waiting_until') == due:
            return
        record['waiting_until'] = due
        self._state.touch(record)
        self._report.note(incident_id, waiting_note(due, self._rules.settle))

    def _search(self, record: dict, facts: Facts, search: BlameSearch) -> None:
        """Run the blame search and store what it decides in the incident's record."""
        incident_id = search.incident
        previous = search_of(record)
        result = self._requests.blame_search(search)
        if result.rejected is not None:
            self._report.rejected('search', incident_id, search.service, search.env, result.rejected)
            record['search'] = refused_search(search)
            self._report.note(incident_id, search_rejected_note(result.rejected.status))
            return
        record['search'] = searched(search, result.events, result.candidates, facts, self._rules.attribution_window)
        record.pop('waiting_until', None)
        self._state.touch(record)
        if newly_unfound(previous, search, record['search']['deployment']):
            self._report.outcome(incident_id, NO_DEPLOYMENT)
            note = no_deployment_note(search.service, search.env, self._rules.attribution_window, facts.start)
            self._log.debug('Incident %s not attributed: %s', incident_id, note.plain)
            self._report.note(incident_id, note)

    def _blame(self, incident_id: str, record: dict, deployment_id: str) -> set[str]:
        search = record.get('search') or {}
        found = Deployment.from_json(search['found'])
        deployments = self._state.deployments()
        deployment = deployments.setdefault(deployment_id, {'deployment': found.to_json(), 'blamed_by': []})
        others = [i for i in deployment.get('blamed_by') or [] if i != incident_id]
        deployment['blamed_by'] = sorted(set(others) | {incident_id})
        # Blamed again: a later set-back searches for a rollback again.
        deployment.pop('rollback_until', None)
        deployment.pop('rollback_refused', None)
        record['blames'] = deployment_id
        self._state.touch(record)
        self._state.touch(deployment)
        signal = search.get('signal') or LATEST_DEPLOYMENT
        self._report.outcome(incident_id, ATTRIBUTED, ['signal:' + signal])
        self._log.info(
            'Incident %s blames deployment %s (service %s, env %s, version %s), decided by %s',
            incident_id,
            found.id,
            found.service,
            found.env,
            found.version,
            signal,
        )
        self._report.note(incident_id, blamed_note(found, len(others), search, self._rules.attribution_window))
        return self._marks.sync(deployment_id)
