# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The deployment side of attribution's tasks: releases, remediations and each deployment's state in Datadog.

- `release()`: an incident stops blaming its deployment. When it was the last, the check sets the
  deployment back only where no one else can have marked it: before that it searches for a rollback
  of it (Datadog marks a rolled-back deployment itself), and a known remediation keeps it too;
- `remedy` tasks find a failed deployment's remediation once an incident blaming it resolved;
- `sync` tasks bring a deployment's state in Datadog to what the check decided (`PATCH`).

A request that cannot be made now raises `Unavailable` before anything is changed, so the task that
asked for it runs again on a later run.
"""

from __future__ import annotations

from typing import Callable

from .decision import (
    RollbackSearch,
    patch_task,
    release_outcome,
    remedy_due,
    remedy_retry,
    remedy_search,
    remedy_task,
    rollback_search,
    sync_task,
)
from .model import KEPT, NO_REMEDIATION, REMEDIATED, Facts
from .ports import DeploymentRequests, Log
from .remediation import choose_remediation, rollback_of
from .reporting import Reporter
from .state import AttributionState
from .texts import (
    kept_note,
    no_remediation_note,
    released_note,
    remediated_note,
    remediation_known_note,
    remedy_rejected_note,
)

# What a task answers: whether it is done (else it stays queued), and the keys of the tasks it queued.
Outcome = tuple[bool, set[str]]


class DeploymentTasks:
    """What attribution does to deployments, through `requests`, told by `report`, kept in `state`."""

    def __init__(
        self,
        state: AttributionState,
        report: Reporter,
        requests: DeploymentRequests,
        *,
        settle: float,
        clock: Callable[[], float],
        log: Log,
    ) -> None:
        self._state = state
        self._report = report
        self._calls = requests
        self.settle = settle
        self._clock = clock
        self._log = log

    # Releases ------------------------------------------------------------------------------------

    def release(self, incident_id: str, record: dict, why: str) -> set[str]:
        """The incident no longer blames its deployment (`why`): count, tell, and queue the deployment's state."""
        deployment_id = record.get('blames') or ''
        deployment = self._state.deployments().get(deployment_id)
        if deployment is not None:
            left = [i for i in deployment.get('blamed_by') or [] if i != incident_id]
            # Searched before anything changes: `Unavailable` leaves the release to a later run, whole.
            self._rollback_check(deployment_id, dict(deployment, blamed_by=left), incident_id)
            deployment['blamed_by'] = left
            self._state.touch(deployment)
        record.pop('blames', None)
        self._state.touch(record)
        if deployment is None:
            return set()
        outcome = release_outcome(deployment)
        left_count = len(deployment['blamed_by'])
        self._report.outcome(incident_id, outcome, ['reason:' + why])
        self._log.info(
            'Incident %s no longer blames deployment %s (%s); %d other(s) do, %s',
            incident_id,
            deployment_id,
            why,
            left_count,
            outcome,
        )
        if outcome == KEPT:
            self._report.note(incident_id, kept_note(deployment_id, why, deployment))
        else:
            self._report.note(incident_id, released_note(outcome, deployment_id, why, left_count))
        return self.sync(deployment_id)

    def _rollback_check(self, deployment_id: str, deployment: dict, incident_id: str = '') -> None:
        """Search for a rollback of a deployment about to be set back, and keep what it found in its record."""
        search = rollback_search(deployment_id, deployment, self._clock())
        if search is not None:
            self._state.deployments()[deployment_id].update(self._rolled_back(search, incident_id))

    def _rolled_back(self, search: RollbackSearch, incident_id: str) -> dict:
        """The fields a rollback search gives a deployment's record: how far it searched and what it found."""
        failed = search.failed
        result = self._calls.rollback_search(search)
        if result.rejected is not None:
            self._report.rejected('rollback search', incident_id, failed.service, failed.env or '', result.rejected)
            return {'rollback_until': search.until, 'rollback_refused': result.rejected.status or 400}
        found = rollback_of(result.later, result.history, failed, search.until)
        if found is None:
            return {'rollback_until': search.until}
        self._log.info('Deployment %s was rolled back by deployment %s: it is not set back', failed.id, found.id)
        return {'rollback_until': search.until, 'rolled_back': found.to_json()}

    # Remediation -----------------------------------------------------------------------------------

    def remediation_due(self, incident_id: str, record: dict, facts: Facts) -> set[str]:
        """The incident resolved and blames a deployment: queue the search of its remediation, if it needs one."""
        deployment_id = record.get('blames') or ''
        deployment = self._state.deployments().get(deployment_id)
        if deployment is None or facts.resolved_at is None:
            return set()
        remediation = deployment.get('remediation')
        if remediation:
            self._report.note(incident_id, remediation_known_note(deployment_id, remediation))
            return set()
        key, task = remedy_task(deployment_id, incident_id, facts.resolved_at, self._clock())
        if not remedy_due(deployment, facts.resolved_at, self._state.queue.get(key)):
            return set()
        self._state.put(key, task)
        return {key}

    def remedy(self, key: str, task: dict) -> Outcome:
        """Find and record the failed deployment's remediation; raises `Unavailable` to wait for a later run."""
        search = remedy_search(task, self._state.deployments().get(task['deployment']))
        if search is None:
            return True, set()
        deployment = self._state.deployments()[search.deployment]
        incident_id, failed = search.incident, search.failed
        result = self._calls.remedy_search(search)
        if result.rejected is not None:
            self._report.rejected('remediation search', incident_id, failed.service, failed.env or '', result.rejected)
            deployment['remedy_until'] = search.until
            self._report.note(incident_id, remedy_rejected_note(result.rejected.status))
            return True, set()
        self._state.touch(deployment)
        found = choose_remediation(result.later, result.history, failed, search.until)
        if found is None:
            retry = remedy_retry(task, self.settle, self._clock())
            if retry is not None:
                self._state.put(key, retry)
                return False, set()
            deployment['remedy_until'] = max(search.until, float(deployment.get('remedy_until') or 0))
            self._report.outcome(incident_id, NO_REMEDIATION)
            self._report.note(incident_id, no_remediation_note(search.deployment, failed))
            return True, set()
        fix, kind = found
        deployment['remediation'] = {'id': fix.id, 'type': kind, 'deployment': fix.to_json(), 'incident': incident_id}
        self._report.outcome(incident_id, REMEDIATED, ['remediation:' + kind])
        self._log.info('Deployment %s recorded as the %s of failed deployment %s', fix.id, kind, search.deployment)
        self._report.note(incident_id, remediated_note(fix, kind, search.deployment, failed))
        return True, self.sync(search.deployment)

    # The deployment's state in Datadog ------------------------------------------------------------

    def sync(self, deployment_id: str) -> set[str]:
        """Queue bringing the deployment's state in Datadog to what the check decided."""
        key, task = sync_task(deployment_id)
        self._state.put(key, task)
        return {key}

    def send(self, task: dict) -> Outcome:
        """Send the PATCH the deployment needs, if any; a set-back queued by an earlier release searches first."""
        deployment_id = task['deployment']
        deployment = self._state.deployments().get(deployment_id)
        if deployment is not None:
            self._rollback_check(deployment_id, deployment)
        patch = patch_task(deployment_id, deployment)
        if patch is None or deployment is None:
            return True, set()
        rejected = self._calls.patch(patch)
        if rejected is not None:
            # Sending it again would be refused the same way (the deployment is gone, or the body is).
            deployment['refused'] = patch.attributes
            self._report.rejected('PATCH', ','.join(deployment.get('blamed_by') or []), deployment_id, '', rejected)
            return True, set()
        want = patch.attributes
        deployment['sent'] = {'change_failure': want['change_failure'], 'remediation': want.get('remediation')}
        deployment.pop('refused', None)
        self._state.touch(deployment)
        return True, set()
