# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution: mark the deployment that most likely caused a PagerDuty incident.

DORA Metrics computes change failure rate and failed deployment recovery time from *deployments*
marked as change failures; failures sent to `/api/v2/dora/failure` are shown beside them but do not
count. `ChangeFailureAttribution` links an incident to a deployment, following the rules of
`attribution_rules` (which deployment, which remediation), through the DORA deployments API
(`deployments`), with the event text lines of `events`:

- when an incident is triggered (or reopened after its attribution window), the deployment it is
  blamed on is marked `change_failure: true` (`PATCH /api/v2/dora/deployments/{id}`);
- when the incident resolves, the later deployment that remediated it is recorded on the blamed
  deployment as a `rollback` or a `rollforward`;
- a deployment is never blamed across services or envs, nor twice for one incident; a reopen within
  the window keeps the attribution it has.

What was done per incident lives in the persistent cache under `attribution`, beside a queue of work
that met a transient error (network, 429, 5xx, request budget) or a refusal, retried by `flush()` on
later runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from . import attribution_rules as rules
from . import events
from .attribution_rules import Deployment
from .cache import StoredQueue
from .deployments import LIST_ENDPOINT, PATCH_ENDPOINT, DeploymentsClient, Unavailable, patch_body
from .http_client import ApiClient, RequestRejected
from .text import for_log
from .times import format_time

if TYPE_CHECKING:
    from .mapping import MappingResult
    from .transitions import Transition

# The check names the permissions of the deployments endpoints from these.
__all__ = ['CACHE_KEY', 'LIST_ENDPOINT', 'PATCH_ENDPOINT', 'ChangeFailureAttribution']

CACHE_KEY = 'attribution'
CACHE_VERSION = 1
METRIC = 'attribution.results'

PERMISSIONS_MESSAGE = (
    'Datadog refused the DORA deployments API ({status}) for change-failure attribution: '
    '`datadog_app_key` must be set and its user or service account needs the `dora_metrics_read` '
    'permission (to search deployments) and `dora_metrics_write` (to mark them as change failures). '
    'Attribution work is kept and retried on the next run'
)


class ChangeFailureAttribution:
    """Attributes incidents to the deployments that caused them, in Datadog DORA Metrics.

    `on_transition()` is called for each live transition, before its event is built, and returns a
    Markdown list line for the event text (or None when it has nothing to say). `flush()` retries
    work left over by transient errors; `save()` persists the state. `count(name, value, tags)`
    submits a count (name without the integration prefix); `warning(...)` is the check's warning.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        window: float,
        min_severity: str | None,
        read_cache: Callable[[str], str],
        write_cache: Callable[[str, str], None],
        log: Any,
        count: Callable[[str, float, list[str]], None],
        warning: Callable[..., None] | None = None,
        clock: Callable[[], float] = time.time,
        max_pending: int = 10000,
        max_age: float = 7 * 86400,
    ) -> None:
        self.window = float(window)
        self.min_severity = min_severity.strip() if min_severity and min_severity.strip() else None
        self._log = log
        self._count = count
        self._warning = warning or log.warning
        self._clock = clock
        self._deployments = DeploymentsClient(api, caller=CACHE_KEY, log=log, on_forbidden=self._forbidden)
        self._queue = StoredQueue(
            CACHE_KEY,
            read_cache=read_cache,
            write_cache=write_cache,
            warning=self._warning,
            max_items=max_pending,
            max_age=max_age,
            clock=clock,
            what='change-failure attribution state',
            entries='change-failure attribution tasks',
            field='pending',
            fields={'incidents': dict},
            version=CACHE_VERSION,
        )
        self._records: dict[str, dict] | None = None

    # Public ------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many attribution tasks wait for a later run."""
        return len(self._pending_loaded())

    def attribution_of(self, incident_id: str) -> Deployment | None:
        """The deployment currently blamed for an incident, if any."""
        record = self._records_loaded().get(incident_id)
        if not record or not record.get('deployment'):
            return None
        return Deployment.from_json(record['deployment'])

    def on_transition(self, transition: Transition, mapping: MappingResult, *, wanted: bool = True) -> str | None:
        """Attribute (triggered, reopened) or remediate (resolved) for one live transition.

        `wanted` is False for an incident left out by the `urgencies`/`priorities` filters: it is
        only counted (`outcome:filtered`). Returns a line for the event text, or None.
        """
        kind = transition.kind
        if kind not in ('triggered', 'reopened', 'resolved'):
            return None
        if not wanted:
            if kind != 'resolved':
                self._outcome(rules.FILTERED)
            return None
        if kind == 'resolved':
            return self._on_resolved(transition)
        return self._on_failure(transition, mapping)

    def flush(self) -> None:
        """Run queued tasks, oldest first, until done or the API says stop; persist what changed."""
        pending = self._pending_loaded()
        self._forget([key for key, _ in pending.expire()])
        try:
            while pending and not self._deployments.stalled:
                key, task = pending.first() or ('', {})
                try:
                    self._run(task)
                except Unavailable:
                    break
                pending.remove(key)
        finally:
            self.save()

    def save(self) -> None:
        """Persist the state if it changed since it was last read or written."""
        if self._records is not None and self._queue.dirty:
            rules.prune_records(self._records, self._clock(), self.window)
        self._queue.save(None if self._records is None else {'incidents': self._records})

    # Failure start -----------------------------------------------------------------------------

    def _on_failure(self, transition: Transition, mapping: MappingResult) -> str:
        incident = transition.incident
        refused = rules.refusal(mapping, self.min_severity)
        if refused is not None:
            reason = events.refusal_reason(refused, mapping, self.min_severity)
            self._log.debug('Incident %s not attributed (%s): %s', incident.id, refused, for_log(reason))
            self._outcome(refused)
            return events.not_attributed_line(reason)
        records = self._records_loaded()
        record = records.get(incident.id)
        start = rules.failure_start(transition)
        if record and record.get('deployment'):
            current = Deployment.from_json(record['deployment'])
            if rules.keeps_attribution(transition.kind, start, float(record.get('since', start)), self.window):
                self._log.debug(
                    'Incident %s keeps its attribution to deployment %s', incident.id, for_log(current.id)
                )
                self._outcome(rules.KEPT)
                return events.attribution_line(current, kept=True)
        if record and record.get('waiting'):
            # A search for this incident is already queued: this transition joins it.
            return self._deferred_line()
        task = {
            'kind': 'attribute',
            'incident': incident.id,
            'service': rules.mapped_services(mapping)[0],
            'env': mapping.env,
            'reference': start,
        }
        record = records.setdefault(incident.id, {})
        self._touch(record)
        try:
            return self._attribute(task)
        except Unavailable as e:
            record['waiting'] = True
            self._enqueue('attribute:' + incident.id, task)
            return events.attribution_pending_line(forbidden=True) if e.forbidden else self._deferred_line()

    def _attribute(self, task: dict) -> str:
        """Search and blame for one incident; raises `Unavailable` when the API cannot be used now."""
        incident_id, service, env = task['incident'], task['service'], task['env']
        start = float(task['reference'])
        record = self._records_loaded().setdefault(incident_id, {})
        try:
            candidates = self._deployments.search(service, env, *rules.blame_range(start, self.window))
        except RequestRejected as e:
            # Asking again would be refused the same way: this incident's attribution is given up.
            record.pop('waiting', None)
            self._touch(record)
            self._search_rejected(incident_id, service, env, e)
            return events.not_attributed_line(events.rejected_reason(e.status))
        blamed = rules.pick_blamed(candidates, start, self.window)
        record.pop('waiting', None)
        self._touch(record)
        if blamed is None:
            self._log.debug(
                'Incident %s not attributed: no deployment of %s in env %s finished in the %d s before %s',
                incident_id,
                for_log(service),
                for_log(env),
                int(self.window),
                format_time(start),
            )
            self._outcome(rules.NO_DEPLOYMENT)
            return events.not_attributed_line(events.no_deployment_reason(service, env, self.window, start))
        blamed_before = set(record.get('blamed') or ())
        record.update(
            deployment=blamed.to_json(), previous_versions=rules.previous_versions(candidates, blamed), since=start
        )
        record.pop('remediation', None)
        if blamed.id in blamed_before:
            # The same deployment again (a reopen after the window): it is already marked.
            self._outcome(rules.KEPT)
            return events.attribution_line(blamed, kept=True)
        record['blamed'] = sorted(blamed_before | {blamed.id})
        self._log.info(
            'Incident %s attributed to deployment %s (service %s, env %s, version %s)',
            incident_id,
            for_log(blamed.id),
            for_log(blamed.service),
            for_log(blamed.env),
            for_log(blamed.version),
        )
        self._outcome(rules.ATTRIBUTED)
        self._send_patch(blamed.id, patch_body(blamed.id))
        return events.attribution_line(blamed)

    # Resolve -----------------------------------------------------------------------------------

    def _on_resolved(self, transition: Transition) -> str | None:
        incident = transition.incident
        record = self._records_loaded().get(incident.id)
        if not record:
            return None
        resolved_at = incident.resolved_at if incident.resolved_at is not None else transition.at
        task = {'kind': 'remediate', 'incident': incident.id, 'resolved_at': resolved_at}
        if record.get('waiting'):
            # The attribution itself is still queued; the remediation follows it in order.
            self._enqueue('remediate:' + incident.id, task)
            return events.remediation_pending_line(after_attribution=True)
        if not record.get('deployment'):
            return None
        try:
            return self._remediate(task)
        except Unavailable as e:
            self._enqueue('remediate:' + incident.id, task)
            return events.remediation_pending_line(e.forbidden)

    def _remediate(self, task: dict) -> str | None:
        incident_id = task['incident']
        resolved_at = float(task['resolved_at'])
        record = self._records_loaded().get(incident_id)
        if not record or not record.get('deployment'):
            return None
        blamed = Deployment.from_json(record['deployment'])
        try:
            candidates = self._deployments.search(blamed.service, blamed.env or '', blamed.finished_at, resolved_at)
        except RequestRejected as e:
            self._touch(record)
            self._search_rejected(incident_id, blamed.service, blamed.env or '', e)
            return events.remediation_rejected_line(e.status)
        found = rules.pick_fix(candidates, blamed, resolved_at, record.get('previous_versions') or ())
        self._touch(record)
        if found is None:
            self._log.debug(
                'Incident %s: no deployment of %s in env %s finished between deployment %s and the resolve',
                incident_id,
                for_log(blamed.service),
                for_log(blamed.env),
                for_log(blamed.id),
            )
            self._outcome(rules.NO_REMEDIATION)
            return events.no_remediation_line(blamed)
        fix, kind = found
        record['remediation'] = {'id': fix.id, 'type': kind}
        self._log.info(
            'Incident %s: deployment %s recorded as a %s of deployment %s',
            incident_id,
            for_log(fix.id),
            kind,
            for_log(blamed.id),
        )
        self._outcome(rules.REMEDIATED, ['remediation:{}'.format(kind)])
        self._send_patch(blamed.id, patch_body(blamed.id, {'id': fix.id, 'type': kind}))
        return events.remediation_line(kind, fix)

    # Preview -----------------------------------------------------------------------------------

    def preview(self, incident: Any, mapping: MappingResult) -> dict[str, Any]:
        """What attribution would do for an incident triggered now, reading deployments and writing nothing.

        Returns the `outcome`, the `deployment` that would be marked, the `remediation` a resolved
        incident would record, and a `note` saying why when nothing would be.
        """
        result: dict[str, Any] = {'outcome': None, 'deployment': None, 'remediation': None, 'note': ''}
        refused = rules.refusal(mapping, self.min_severity)
        if refused is not None:
            result['outcome'], result['note'] = refused, events.refusal_reason(refused, mapping, self.min_severity)
            return result
        service, env = rules.mapped_services(mapping)[0], mapping.env or ''
        start = float(incident.created_at)
        try:
            candidates = self._deployments.search(service, env, *rules.blame_range(start, self.window))
            blamed = rules.pick_blamed(candidates, start, self.window)
            if blamed is None:
                result['outcome'] = rules.NO_DEPLOYMENT
                result['note'] = events.no_deployment_reason(service, env, self.window, start)
                return result
            result['outcome'], result['deployment'] = rules.ATTRIBUTED, blamed.to_json()
            if incident.resolved_at is None:
                return result
            resolved_at = float(incident.resolved_at)
            later = self._deployments.search(blamed.service, blamed.env or '', blamed.finished_at, resolved_at)
            found = rules.pick_fix(later, blamed, resolved_at, rules.previous_versions(candidates, blamed))
            if found is None:
                result['note'] = 'no later deployment finished before the resolve: no remediation'
            else:
                fix, kind = found
                result['remediation'] = {'type': kind, 'deployment': fix.to_json()}
        except Unavailable as e:
            result['outcome'] = rules.FORBIDDEN if e.forbidden else rules.DEFERRED
            result['note'] = (
                events.FORBIDDEN_REASON
                if e.forbidden
                else 'the DORA deployments API could not be read now (budget, timeout or error)'
            )
        except RequestRejected as e:
            result['outcome'] = rules.REJECTED
            result['note'] = events.rejected_reason(e.status)
        return result

    # Requests ----------------------------------------------------------------------------------

    def _search_rejected(self, incident_id: str, service: str, env: str, error: RequestRejected) -> None:
        self._outcome(rules.REJECTED)
        self._log.warning(
            'The DORA deployments search for incident %s (service %s, env %s) was rejected (%s) and is not retried: %s',
            incident_id,
            for_log(service),
            for_log(env),
            error.status,
            for_log(error.body or '', 500),
        )

    def _send_patch(self, deployment_id: str, body: dict) -> None:
        key = 'patch:' + deployment_id
        queued = self._pending_loaded().get(key)
        if queued is not None:
            # One PATCH per deployment is enough: the newest body wins, keeping a queued remediation
            # that another incident's plain blame of the same deployment would otherwise erase.
            attributes = body['data']['attributes']
            remediation = queued['body']['data']['attributes'].get('remediation')
            if remediation and 'remediation' not in attributes:
                attributes['remediation'] = remediation
        task = {'kind': 'patch', 'deployment': deployment_id, 'body': body}
        if queued is None:
            try:
                self._patch(task)
                return
            except Unavailable:
                pass
        self._enqueue(key, task)

    def _patch(self, task: dict) -> None:
        try:
            self._deployments.patch(task['deployment'], task['body'])
        except RequestRejected as e:
            # Re-sending would fail the same way (the deployment is gone, or the body is refused).
            self._outcome(rules.REJECTED)
            self._log.warning(
                'Marking DORA deployment %s as a change failure was rejected (%s) and is dropped: %s',
                for_log(task['deployment']),
                e.status,
                for_log(e.body or '', 500),
            )

    def _forbidden(self, status: int | None) -> None:
        # Told once per run: the deployments client makes no further request in the run.
        self._warning(PERMISSIONS_MESSAGE.format(status=status))
        self._outcome(rules.FORBIDDEN)

    def _run(self, task: dict) -> None:
        kind = task.get('kind')
        if kind == 'attribute':
            self._attribute(task)
        elif kind == 'remediate':
            self._remediate(task)
        elif kind == 'patch':
            self._patch(task)
        else:
            self._log.debug('Dropping an attribution task of unknown kind %s', for_log(kind))

    def _outcome(self, outcome: str, extra: list[str] | None = None) -> None:
        self._count(METRIC, 1, ['outcome:{}'.format(outcome)] + list(extra or ()))

    def _deferred_line(self) -> str:
        self._outcome(rules.DEFERRED)
        return events.attribution_pending_line()

    # State -------------------------------------------------------------------------------------

    def _enqueue(self, key: str, task: dict) -> None:
        self._forget(self._pending_loaded().put(key, task))

    def _forget(self, dropped: list[str]) -> None:
        """An attribution task left the queue unrun (too old, or no room): its incident waits no more."""
        for key in dropped:
            if key.startswith('attribute:'):
                record = self._records_loaded().get(key[len('attribute:') :])
                if record:
                    record.pop('waiting', None)

    def _touch(self, record: dict) -> None:
        record['touched'] = self._clock()
        self._queue.dirty = True

    def _records_loaded(self) -> dict[str, dict]:
        if self._records is None:
            self._records = {}
            for key, record in self._queue.read().get('incidents', {}).items():
                if not isinstance(record, dict):
                    continue
                if record.get('deployment') is not None:
                    try:
                        Deployment.from_json(record['deployment'])
                    except (ValueError, KeyError, TypeError):
                        continue
                self._records[key] = record
        return self._records

    def _pending_loaded(self) -> StoredQueue:
        self._records_loaded()
        return self._queue
