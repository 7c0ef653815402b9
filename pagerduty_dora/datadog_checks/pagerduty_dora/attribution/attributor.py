# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution: the state of the deployments PagerDuty incidents blame, kept in Datadog.

DORA Metrics computes change failure rate and failed deployment recovery time from *deployments*
marked as change failures; the failures sent to `/api/v2/dora/failure` do not count. So this module
owns one thing, each deployment's state: a change failure while at least one qualifying incident
blames it, with one remediation. It follows every incident through its life: whatever changes what
qualifies it (priority, service, filters, merge, delete, reopen, resolve) judges it again, and
whatever a judgement changes is made true in Datadog (`PATCH /api/v2/dora/deployments/{id}`, which
also sets a deployment back with `change_failure: false`).

- The collector calls `observe()` once per look at an incident, with the transitions of that look,
  and puts the returned lines in those transitions' events; `gone()` when it removes the incident's
  failure (deleted, out of scope); `flush()` at the start of a run and `save()` at its end.
- What to do is decided by the pure functions of `attribution_rules`; every request is made by one
  queue of tasks (judge an incident, find a deployment's remediation, bring a deployment's state to
  Datadog), kept in the persistent cache, so work interrupted by a restart, a transient error, the
  request budget or a refusal is done on a later run, once. A task can wait: an incident's first
  search waits `SETTLE` seconds after its start, for deployments that reach Datadog late.
- Decisions made with no event to carry them (a search after the settle time, a remediation found
  on a later run) are sent as an event of their own, threaded with the incident's events.

`attribution.results` counts every decision by `outcome` (with the `signal` that decided a blame and
the `reason` a deployment was set back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from datadog_checks.pagerduty_dora.common.http import ApiClient, RequestRejected
from datadog_checks.pagerduty_dora.common.text import clip, one_line
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.events import format_duration
from datadog_checks.pagerduty_dora.datadog.outputs import mapping_tags
from datadog_checks.pagerduty_dora.datadog.queue import StoredQueue

from . import rules
from .deployments import LIST_ENDPOINT, PATCH_ENDPOINT, DeploymentsClient, PagerDutySignals, Unavailable, patch_body
from .rules import ChangeEvent, Deployment, Facts, Search

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
    from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

# The check names the permissions of the deployments endpoints from these.
__all__ = ['CACHE_KEY', 'LIST_ENDPOINT', 'PATCH_ENDPOINT', 'ChangeFailureAttribution']

CACHE_KEY = 'attribution'
CACHE_VERSION = 2
METRIC = 'attribution.results'
# The account's priority order is read again after this long.
PRIORITIES_TTL = 3600.0
MAX_TAGS = 30
EVENT_TYPE = 'pagerduty_dora'
# Transitions whose event carries what attribution decided in the same look.
NOTE_KINDS = ('triggered', 'reopened', 'resolved', 'priority_changed', 'urgency_changed', 'service_changed')

PERMISSIONS_MESSAGE = (
    'Datadog refused the DORA deployments API ({status}) for change-failure attribution: '
    '`datadog_app_key` must be set and its user or service account needs the `dora_metrics_read` '
    'permission (to search deployments) and `dora_metrics_write` (to mark them as change failures). '
    'Attribution work is kept and retried on the next run'
)
NO_PRIORITIES_MESSAGE = (
    '`attribution_min_severity` is set, but PagerDuty did not list the account\'s priorities '
    '(GET /priorities: {status}); {consequence}'
)
UNKNOWN_MINIMUM_MESSAGE = (
    '`attribution_min_severity` {minimum!r} is neither a priority of the PagerDuty account ({names}) nor a '
    'severity `severity_mapping` gives one: no incident is attributed'
)


@dataclass(frozen=True)
class Note:
    """One line for an incident's event, and whether it records a change of a deployment in Datadog."""

    outcome: str
    line: str
    plain: str
    lasting: bool = False


class ChangeFailureAttribution:
    """Marks the deployments that PagerDuty incidents blame as change failures, and keeps them right.

    `api` is the Datadog client, `pagerduty` the PagerDuty one (related change events, priorities).
    `count(name, value, tags)` submits a count (name without the integration prefix), `warning(...)`
    is the check's warning and `event(payload)` submits an Agent event (None: no events of its own).
    With `dry_run`, nothing is written: the PATCHes it would send are kept in `would_patch`.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        pagerduty: ApiClient | None = None,
        window: float,
        min_severity: str | None,
        severity_mapping: Mapping[str, str] | None = None,
        read_cache: Callable[[str], str],
        write_cache: Callable[[str, str], None],
        log: Any,
        count: Callable[[str, float, list[str]], None],
        warning: Callable[..., None] | None = None,
        event: Callable[[dict], None] | None = None,
        clock: Callable[[], float] = time.time,
        settle: float = rules.SETTLE,
        max_pending: int = 10000,
        max_age: float = 7 * 86400,
        dry_run: bool = False,
    ) -> None:
        self.window = float(window)
        self.min_severity = min_severity.strip() if min_severity and min_severity.strip() else None
        self.severity_mapping = dict(severity_mapping or {})
        # A dry run judges every incident as if the settle time had passed: it has one look only.
        self.settle = 0.0 if dry_run else float(settle)
        self.dry_run = dry_run
        self.would_patch: list[tuple[str, dict]] = []
        self._log = log
        self._count = count
        self._warning = warning or log.warning
        self._event = event
        self._clock = clock
        self._deployments = DeploymentsClient(api, caller=CACHE_KEY, log=log, on_forbidden=self._forbidden)
        self._signals = PagerDutySignals(pagerduty, caller=CACHE_KEY, log=log) if pagerduty is not None else None
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
            fields={'incidents': dict, 'deployments': dict, 'priorities': dict},
            version=CACHE_VERSION,
        )
        self._state: dict[str, dict] | None = None
        # Lines decided since the last `save()`, per incident, and every outcome of each incident.
        self._notes: dict[str, list[Note]] = {}
        self._outcomes: dict[str, list[str]] = {}
        self._told: dict[str, list[Note]] = {}
        self._warned: set[str] = set()

    # Public ------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many attribution tasks wait (for their time, or for a later run)."""
        self._loaded()
        return len(self._queue)

    def attribution_of(self, incident_id: str) -> Deployment | None:
        """The deployment an incident blames now, if any."""
        record = self._incidents().get(incident_id)
        blamed = record.get('blames') if record else None
        deployment = self._deployment_records().get(blamed) if blamed else None
        return Deployment.from_json(deployment['deployment']) if deployment else None

    def deployment_state(self, deployment_id: str) -> dict | None:
        """What the check holds for a deployment: `blamed_by`, `remediation`, and what Datadog was `sent`."""
        found = self._deployment_records().get(deployment_id)
        return dict(found) if found else None

    def observe(
        self, incident: Incident, mapping: MappingResult, wanted: bool, transitions: Sequence[Transition] = ()
    ) -> dict[int, str]:
        """Judge the incident again if anything that qualifies it changed; return event lines by transition index.

        Called once per look at an incident, with the transitions found in that look (possibly none).
        `wanted` is whether the collector counts it (filters, scope, merges). An incident is followed
        from a trigger seen live: history is never attributed.
        """
        records = self._incidents()
        record = records.get(incident.id)
        if record is None:
            if not any(t.kind == 'triggered' for t in transitions):
                return {}
            record = records[incident.id] = {}
        facts = rules.facts_of(incident, mapping, wanted)
        record['number'] = incident.number
        record['tags'] = mapping_tags(incident, mapping)[:MAX_TAGS]
        if record.get('facts') != facts.to_json():
            record['facts'] = facts.to_json()
            record['judged'] = False
        if not record.get('judged') and self._queue.get('incident:' + incident.id) is None:
            # Its facts changed, or the work on its last change was dropped from a full queue.
            self._judge_now(incident.id)
        if record.get('blames') and any(t.kind == 'reopened' for t in transitions):
            self._note(incident.id, Note('', _cf('still attributed: a reopen is the same failure'), ''))
        return self._lines_for(incident.id, transitions, wanted)

    def gone(self, incident_id: str, why: str = rules.DELETED) -> None:
        """The collector removed the incident's failure (`deleted`, or `out_of_scope`): it blames nothing now."""
        record = self._incidents().get(incident_id)
        if not record or not isinstance(record.get('facts'), dict):
            return
        facts = Facts.from_json(record['facts'])
        if facts.gone == why:
            return
        record['facts'] = replace(facts, gone=why).to_json()
        record['judged'] = False
        self._judge_now(incident_id)

    def flush(self) -> None:
        """Run every task that is due, oldest first, until done or the APIs say stop; persist what changed."""
        self._loaded()
        for key, task in self._queue.expire():
            self._log.debug('Dropped the expired change-failure attribution task %s (%s)', key, task.get('kind'))
        try:
            self._drain(None)
        finally:
            self._persist()

    def save(self) -> None:
        """End of a run: send what was decided without an event to carry it, and persist the state."""
        for incident_id, notes in self._notes.items():
            lasting = [n for n in notes if n.lasting]
            if lasting and self._event is not None:
                self._event(self._own_event(incident_id, lasting))
        self._notes = {}
        self._outcomes = {}
        self._told = {}
        self._warned.discard('priorities')
        if self._state is not None and self._queue.dirty:
            busy = {key.split(':', 1)[1] for key, _, _ in self._queue.dump()}
            rules.prune(self._incidents(), self._deployment_records(), self._clock(), self.window, busy)
        self._persist()

    def preview(self, incident: Incident, mapping: MappingResult, wanted: bool = True) -> dict[str, Any]:
        """What attribution would decide for the incident had its trigger been seen live, with nothing written.

        For a dry run (`dry_run=True`): the same rules and searches as a run, the settle time taken as
        passed. Returns the `outcome`, the `deployment` it would mark, the `signal` and `basis` that
        decided, the `remediation` a resolved incident would record and a `note` saying why.
        """
        transitions = [_Look('triggered', incident.created_at)]
        self.observe(incident, mapping, wanted, transitions)  # type: ignore[arg-type]
        record = self._incidents().get(incident.id) or {}
        self._notes.pop(incident.id, None)
        notes = self._told.pop(incident.id, [])
        search = record.get('search') or {}
        result: dict[str, Any] = {
            'outcome': None,
            'deployment': None,
            'signal': None,
            'basis': None,
            'remediation': None,
            'note': '; '.join(n.plain for n in notes if n.plain),
        }
        outcomes = [o for o in self._outcomes.get(incident.id, []) if o]
        blamed = record.get('blames')
        if blamed:
            deployment = self._deployment_records().get(blamed) or {}
            result.update(
                outcome=rules.ATTRIBUTED,
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

    # Judging -----------------------------------------------------------------------------------

    def _judge_now(self, incident_id: str) -> None:
        key = 'incident:' + incident_id
        self._put(key, {'kind': 'incident', 'incident': incident_id, 'due': self._clock()})
        self._drain({key})

    def _judge(self, key: str, task: dict) -> tuple[bool, set[str]]:
        incident_id = task['incident']
        record = self._incidents().get(incident_id)
        if not record or not isinstance(record.get('facts'), dict):
            return True, set()
        facts = Facts.from_json(record['facts'])
        reason = self._disqualification(facts)
        self._qualification(incident_id, record, facts, reason)
        target = rules.attribution_key(facts) if reason is None else None
        follow: set[str] = set()
        now = self._clock()
        for _ in range(3):
            plan = rules.plan(reason, target, record.get('blames'), _search(record), facts, now, self.settle)
            if plan.release:
                follow |= self._release(incident_id, record, plan.release)
            if plan.search_at is not None:
                if plan.search_at > now:
                    self._wait(incident_id, record, plan.search_at)
                    self._put(key, dict(task, due=plan.search_at))
                    return False, follow
                assert target is not None
                self._search(incident_id, record, facts, target)
                continue
            if plan.blame:
                follow |= self._blame(incident_id, record, plan.blame)
            if plan.remediate:
                follow |= self._remediation_due(incident_id, record, facts)
            break
        record['judged'] = True
        return True, follow

    def _disqualification(self, facts: Facts) -> str | None:
        needs_order = self.min_severity and facts.priority and not facts.gone and not facts.merged and facts.wanted
        order = self._priority_order() if needs_order else []
        return rules.disqualification(facts, self.min_severity, order, self.severity_mapping)

    def _qualification(self, incident_id: str, record: dict, facts: Facts, reason: str | None) -> None:
        """Count and tell a change of whether (and why not) the incident qualifies."""
        if 'why' in record and record['why'] == reason:
            return
        record['why'] = reason
        self._touch(record)
        if reason is None:
            return
        self._outcome(incident_id, reason)
        text = refusal_text(reason, facts, self.min_severity)
        self._log.debug('Incident %s does not blame a deployment (%s): %s', incident_id, reason, text)
        self._note(incident_id, Note(reason, _cf('not attributed: ' + text), text))

    def _wait(self, incident_id: str, record: dict, due: float) -> None:
        if record.get('waiting_until') == due:
            return
        record['waiting_until'] = due
        self._touch(record)
        text = 'judged at {} ({} after the incident started), so that deployments reported late are seen'.format(
            format_time(due), format_duration(self.settle)
        )
        self._note(incident_id, Note('', _cf(text), text))

    def _search(self, incident_id: str, record: dict, facts: Facts, target: tuple[str, str]) -> None:
        """Read the related change events and the deployments in the window; store what they decide."""
        service, env = target
        final = facts.resolved_at is not None
        events: list[ChangeEvent] | None = None
        if self._signals is not None:
            events = self._signals.related_change_events(incident_id)
        previous = _search(record)
        try:
            candidates = self._deployments.search(service, env, *rules.blame_range(facts.start, self.window))
        except RequestRejected as e:
            self._rejected('search', incident_id, service, env, e)
            record['search'] = {'service': service, 'env': env, 'deployment': None, 'final': final}
            text = 'the DORA deployments search was rejected ({})'.format(e.status)
            self._note(incident_id, Note(rules.REJECTED, _cf('not attributed: ' + text), text))
            return
        blame = rules.decide_blame(candidates, events or [], facts.start, self.window, facts.pagerduty_service)
        found = blame.deployment
        record['search'] = {
            'service': service,
            'env': env,
            'deployment': found.id if found else None,
            'found': found.to_json() if found else None,
            'final': final,
            'signal': blame.signal,
            'basis': blame.basis,
            'event': clip(one_line(blame.event.summary), 200) if blame.event else None,
            'related': None if events is None else len(events),
        }
        record.pop('waiting_until', None)
        self._touch(record)
        if found is None and (previous is None or (previous.service, previous.env) != target or previous.deployment):
            self._outcome(incident_id, rules.NO_DEPLOYMENT)
            text = 'no deployment of {} in env {} finished in the {} before {}'.format(
                _code(service), _code(env), format_duration(self.window), format_time(facts.start)
            )
            self._log.debug('Incident %s not attributed: %s', incident_id, text)
            self._note(incident_id, Note(rules.NO_DEPLOYMENT, _cf('not attributed: ' + text), text))

    def _blame(self, incident_id: str, record: dict, deployment_id: str) -> set[str]:
        search = record.get('search') or {}
        found = Deployment.from_json(search['found'])
        deployments = self._deployment_records()
        deployment = deployments.setdefault(deployment_id, {'deployment': found.to_json(), 'blamed_by': []})
        others = [i for i in deployment.get('blamed_by') or [] if i != incident_id]
        deployment['blamed_by'] = sorted(set(others) | {incident_id})
        record['blames'] = deployment_id
        self._touch(record)
        self._touch(deployment)
        signal = search.get('signal') or rules.LATEST_DEPLOYMENT
        self._outcome(incident_id, rules.ATTRIBUTED, ['signal:' + signal])
        self._log.info(
            'Incident %s blames deployment %s (service %s, env %s, version %s), decided by %s',
            incident_id,
            found.id,
            found.service,
            found.env,
            found.version,
            signal,
        )
        decided = signal_text(search, self.window)
        also = ' (already a change failure: blamed by {} other incident(s))'.format(len(others)) if others else ''
        line = _cf('{} marked as a change failure{}; {}'.format(deployment_text(found), also, decided))
        self._note(incident_id, Note(rules.ATTRIBUTED, line, decided, lasting=True))
        return self._sync(deployment_id)

    def _release(self, incident_id: str, record: dict, why: str) -> set[str]:
        deployment_id = record.pop('blames', None)
        self._touch(record)
        deployment = self._deployment_records().get(deployment_id or '')
        if deployment is None:
            return set()
        deployment['blamed_by'] = [i for i in deployment.get('blamed_by') or [] if i != incident_id]
        self._touch(deployment)
        left = len(deployment['blamed_by'])
        outcome = rules.RELEASED if left else rules.UNMARKED
        self._outcome(incident_id, outcome, ['reason:' + why])
        self._log.info(
            'Incident %s no longer blames deployment %s (%s); %d other(s) do', incident_id, deployment_id, why, left
        )
        text = 'deployment {} no longer blamed by this incident ({})'.format(_code(deployment_id), release_text(why))
        if left:
            text += '; it stays a change failure, blamed by {} other incident(s)'.format(left)
        else:
            text += '; set back (`change_failure: false`): no other qualifying incident blames it'
        self._note(incident_id, Note(outcome, _cf(text), text, lasting=True))
        return self._sync(deployment_id or '')

    def _priority_order(self) -> list[str]:
        """The account's priorities, most severe first (`GET /priorities`), read again every `PRIORITIES_TTL`."""
        fields = self._loaded()
        stored = fields.get('priorities') or {}
        names = [n for n in stored.get('names') or [] if isinstance(n, str)]
        now = self._clock()
        if stored and now - float(stored.get('at') or 0) < PRIORITIES_TTL:
            return names
        try:
            fresh = self._signals.priorities() if self._signals is not None else None
        except Unavailable:
            if not stored:
                raise
            # PagerDuty cannot answer now: the order read last still holds.
            return names
        if fresh is None:
            if 'priorities' not in self._warned:
                self._warned.add('priorities')
                status = self._signals.refused.get('priorities') if self._signals is not None else 'no client'
                consequence = (
                    'incidents are compared in the order read last'
                    if names
                    else 'no incident is attributed until they can be'
                )
                self._warning(NO_PRIORITIES_MESSAGE.format(status=status, consequence=consequence))
            return names
        fields['priorities'] = {'names': fresh, 'at': now}
        self._queue.dirty = True
        if self.min_severity and rules.severity_threshold(self.min_severity, fresh, self.severity_mapping) is None:
            self._warning(UNKNOWN_MINIMUM_MESSAGE.format(minimum=self.min_severity, names=', '.join(fresh) or 'none'))
        return fresh

    # Remediation -------------------------------------------------------------------------------

    def _remediation_due(self, incident_id: str, record: dict, facts: Facts) -> set[str]:
        deployment_id = record.get('blames') or ''
        deployment = self._deployment_records().get(deployment_id)
        if deployment is None or facts.resolved_at is None:
            return set()
        remediation = deployment.get('remediation')
        if remediation:
            fix = Deployment.from_json(remediation['deployment'])
            text = 'already recorded for deployment {}: {} by {}'.format(
                _code(deployment_id), remediation['type'], deployment_text(fix)
            )
            self._note(incident_id, Note('', _rem(text), text))
            return set()
        if not rules.needs_remediation(deployment, facts.resolved_at):
            return set()
        key = 'remedy:' + deployment_id
        queued = self._queue.get(key)
        if queued is not None and float(queued.get('until') or 0) >= facts.resolved_at:
            return set()
        self._put(
            key,
            {
                'kind': 'remedy',
                'deployment': deployment_id,
                'incident': incident_id,
                'until': facts.resolved_at,
                'attempt': 1,
                'due': self._clock(),
            },
        )
        return {key}

    def _remedy(self, key: str, task: dict) -> tuple[bool, set[str]]:
        """Find and record the failed deployment's remediation; raises `Unavailable` to wait for a later run."""
        deployment_id, incident_id = task['deployment'], task.get('incident') or ''
        deployment = self._deployment_records().get(deployment_id)
        if not deployment or deployment.get('remediation') or not deployment.get('blamed_by'):
            return True, set()
        failed = Deployment.from_json(deployment['deployment'])
        until = float(task['until'])
        env = failed.env or ''
        try:
            later = self._deployments.search(failed.service, env, failed.started_at, until)
            found = rules.pick_remediation(later, failed, until, None)
            if found is not None and found[0].version:
                history = self._deployments.search(
                    failed.service, env, failed.started_at - rules.ROLLBACK_HISTORY, failed.started_at
                )
                found = rules.pick_remediation(later, failed, until, rules.history_versions(history + later, failed))
        except RequestRejected as e:
            self._rejected('remediation search', incident_id, failed.service, env, e)
            deployment['remedy_until'] = until
            text = 'not recorded: the DORA deployments search was rejected ({})'.format(e.status)
            self._note(incident_id, Note(rules.REJECTED, _rem(text), text))
            return True, set()
        self._touch(deployment)
        if found is None:
            retry = until + self.settle
            if task.get('attempt') == 1 and retry > self._clock():
                # Looked for again once the settle time has passed, for a fix reported late.
                self._put(key, dict(task, attempt=2, due=retry))
                return False, set()
            deployment['remedy_until'] = max(until, float(deployment.get('remedy_until') or 0))
            self._outcome(incident_id, rules.NO_REMEDIATION)
            text = (
                'none recorded for deployment {}: no later deployment of {} in env {} that does not redeploy {} '
                'finished before the resolve'.format(
                    _code(deployment_id), _code(failed.service), _code(failed.env), _code(failed.version)
                )
            )
            self._note(incident_id, Note(rules.NO_REMEDIATION, _rem(text), text))
            return True, set()
        fix, kind = found
        deployment['remediation'] = {'id': fix.id, 'type': kind, 'deployment': fix.to_json(), 'incident': incident_id}
        self._outcome(incident_id, rules.REMEDIATED, ['remediation:' + kind])
        self._log.info('Deployment %s recorded as the %s of failed deployment %s', fix.id, kind, deployment_id)
        text = '{} by {}, recorded for failed deployment {} ({} after it finished)'.format(
            kind, deployment_text(fix), _code(deployment_id), format_duration(fix.finished_at - failed.finished_at)
        )
        self._note(incident_id, Note(rules.REMEDIATED, _rem(text), text, lasting=True))
        return True, self._sync(deployment_id)

    # Datadog's state of a deployment ------------------------------------------------------------

    def _sync(self, deployment_id: str) -> set[str]:
        """Queue bringing the deployment's state in Datadog to what the check decided."""
        key = 'sync:' + deployment_id
        self._put(key, {'kind': 'sync', 'deployment': deployment_id, 'due': 0})
        return {key}

    def _send(self, key: str, task: dict) -> tuple[bool, set[str]]:
        deployment_id = task['deployment']
        deployment = self._deployment_records().get(deployment_id)
        if not deployment:
            return True, set()
        want = rules.wanted_patch(deployment)
        if want is None or deployment.get('refused') == want:
            return True, set()
        body = patch_body(deployment_id, want)
        if self.dry_run:
            self.would_patch.append((deployment_id, body))
        else:
            try:
                self._deployments.patch(deployment_id, body)
            except RequestRejected as e:
                # Sending it again would be refused the same way (the deployment is gone, or the body is).
                deployment['refused'] = want
                self._rejected('PATCH', ','.join(deployment.get('blamed_by') or []), deployment_id, '', e)
                return True, set()
        deployment['sent'] = {'change_failure': want['change_failure'], 'remediation': want.get('remediation')}
        deployment.pop('refused', None)
        self._touch(deployment)
        return True, set()

    # The queue: the one place requests are made ---------------------------------------------------

    def _drain(self, only: set[str] | None) -> None:
        """Run the due tasks (all, or those of `only` and what they queue), in queue order."""
        queue = self._queue
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
                    self._deferred(key, task, e.forbidden)
                    continue
                if done and queue.get(key) is task:
                    queue.remove(key)
                if keys is not None:
                    keys |= follow
                ran = True
            if not ran:
                return

    def _run(self, key: str, task: dict) -> tuple[bool, set[str]]:
        kind = task.get('kind')
        if kind == 'incident':
            return self._judge(key, task)
        if kind == 'remedy':
            return self._remedy(key, task)
        if kind == 'sync':
            return self._send(key, task)
        self._log.debug('Dropping a change-failure attribution task of unknown kind %r', kind)
        return True, set()

    def _deferred(self, key: str, task: dict, forbidden: bool) -> None:
        if task.get('deferred'):
            return
        self._put(key, dict(task, deferred=True))
        incident_id = task.get('incident')
        if not incident_id:
            return
        if not forbidden:
            self._outcome(incident_id, rules.DEFERRED)
        text = (
            'Datadog refused access to DORA deployments (403); `datadog_app_key` needs the `dora_metrics_read` '
            'and `dora_metrics_write` permissions'
            if forbidden
            else 'an API could not be used now (budget, timeout or error); retried on the next run'
        )
        line = (_rem if task.get('kind') == 'remedy' else _cf)('pending: ' + text)
        self._note(incident_id, Note(rules.FORBIDDEN if forbidden else rules.DEFERRED, line, text))

    def _put(self, key: str, task: dict) -> None:
        self._loaded()
        self._queue.put(key, task)

    # Requests that were refused -------------------------------------------------------------------

    def _rejected(self, what: str, incident_id: str, service: str, env: str, error: RequestRejected) -> None:
        self._outcome(incident_id, rules.REJECTED)
        self._log.warning(
            'The DORA deployments %s for incident %s (%s %s) was rejected (%s) and is not retried: %s',
            what,
            incident_id,
            service,
            env,
            error.status,
            (error.body or '')[:500],
        )

    def _forbidden(self, status: int | None) -> None:
        # Told once per run: the deployments client makes no further request in the run.
        self._warning(PERMISSIONS_MESSAGE.format(status=status))
        self._count(METRIC, 1, ['outcome:' + rules.FORBIDDEN])

    # Notes, outcomes and events ----------------------------------------------------------------

    def _outcome(self, incident_id: str, outcome: str, extra: Sequence[str] = ()) -> None:
        self._outcomes.setdefault(incident_id, []).append(outcome)
        self._count(METRIC, 1, ['outcome:' + outcome] + list(extra))

    def _note(self, incident_id: str, note: Note) -> None:
        self._notes.setdefault(incident_id, []).append(note)
        self._told.setdefault(incident_id, []).append(note)

    def _lines_for(self, incident_id: str, transitions: Sequence[Transition], wanted: bool) -> dict[int, str]:
        """This incident's lines for the look's events; lines that change Datadog wait for `save()` otherwise."""
        notes = self._notes.pop(incident_id, [])
        if not notes:
            return {}
        if not transitions or not wanted:
            # The collector emits no event for this look: what changed a deployment gets its own event.
            kept = [n for n in notes if n.lasting]
            if kept:
                self._notes[incident_id] = kept
            return {}
        index = max((i for i, t in enumerate(transitions) if t.kind in NOTE_KINDS), default=len(transitions) - 1)
        return {index: '\n'.join(n.line for n in notes)}

    def _own_event(self, incident_id: str, notes: list[Note]) -> dict:
        record = self._incidents().get(incident_id) or {}
        summary = {
            rules.ATTRIBUTED: 'deployment marked as a change failure',
            rules.UNMARKED: 'deployment set back',
            rules.RELEASED: 'deployment no longer blamed by this incident',
            rules.REMEDIATED: 'remediation recorded',
        }.get(notes[-1].outcome, 'attribution changed')
        body = '\n'.join(['### PagerDuty incident #{}'.format(record.get('number', '?')), ''] + [n.line for n in notes])
        return {
            'timestamp': int(self._clock()),
            'event_type': EVENT_TYPE,
            'source_type_name': EVENT_TYPE,
            'aggregation_key': incident_id,
            'alert_type': 'info',
            'priority': 'normal',
            'msg_title': '#{} change failure: {}'.format(record.get('number', '?'), summary),
            'msg_text': '%%% \n' + clip(body, 3900) + '\n %%%',
            'tags': list(record.get('tags') or []) + ['attribution:' + notes[-1].outcome],
        }

    # State -------------------------------------------------------------------------------------

    def _loaded(self) -> dict[str, Any]:
        if self._state is None:
            fields = self._queue.read()
            incidents = {}
            for key, record in (fields.get('incidents') or {}).items():
                if isinstance(record, dict) and _readable(record.get('facts'), Facts):
                    incidents[key] = record
            deployments = {}
            for key, record in (fields.get('deployments') or {}).items():
                if isinstance(record, dict) and _readable(record.get('deployment'), Deployment):
                    deployments[key] = record
            fields['incidents'], fields['deployments'] = incidents, deployments
            fields.setdefault('priorities', {})
            self._state = fields
        return self._state

    def _incidents(self) -> dict[str, dict]:
        return self._loaded()['incidents']

    def _deployment_records(self) -> dict[str, dict]:
        return self._loaded()['deployments']

    def _touch(self, record: dict) -> None:
        record['touched'] = self._clock()
        self._queue.dirty = True

    def _persist(self) -> None:
        if self.dry_run:
            return
        self._queue.save(self._state)


class _Look:
    """The trigger of a previewed incident, as `observe()` reads a transition."""

    def __init__(self, kind: str, at: float) -> None:
        self.kind = kind
        self.at = at


def _search(record: dict) -> Search | None:
    raw = record.get('search')
    if not isinstance(raw, dict):
        return None
    return Search(str(raw.get('service')), str(raw.get('env')), raw.get('deployment'), bool(raw.get('final')))


def _readable(raw: Any, kind: Any) -> bool:
    try:
        kind.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return False
    return True


# Text -------------------------------------------------------------------------------------------


def _code(value: Any) -> str:
    """Untrusted text as one inline code span (it cannot close the span, nor run on several lines)."""
    return '`{}`'.format(clip(one_line(str(value)), 100).replace('`', "'")) if value else '(none)'


def _cf(text: str) -> str:
    return '- **Change failure:** ' + text


def _rem(text: str) -> str:
    return '- **Remediation:** ' + text


def deployment_text(deployment: Deployment) -> str:
    """A deployment named for people: id, service, env, version and finish time."""
    return 'deployment {} of {} in env {}, version {}, finished at {}'.format(
        _code(deployment.id),
        _code(deployment.service),
        _code(deployment.env),
        _code(deployment.version),
        format_time(deployment.finished_at),
    )


def signal_text(search: Mapping[str, Any], window: float) -> str:
    """Which signal decided a blame, for people."""
    if search.get('signal') == rules.CHANGE_EVENT:
        return "decided by PagerDuty's related change event {} (matched by {})".format(
            _code(search.get('event')), search.get('basis')
        )
    text = 'decided by the latest deployment of {} in env {} finished in the {} before the incident started'.format(
        _code(search.get('service')), _code(search.get('env')), format_duration(window)
    )
    related = search.get('related')
    if related:
        text += ' ({} related change event(s) matched none of them)'.format(related)
    return text


def refusal_text(outcome: str, facts: Facts, min_severity: str | None) -> str:
    """Why an incident blames no deployment now, for a `disqualification()` outcome."""
    services = rules.mapped_services(facts)
    return {
        rules.DELETED: 'the incident was deleted in PagerDuty',
        rules.OUT_OF_SCOPE: 'the incident left `service_ids`/`team_ids`',
        rules.MERGED: 'the incident was merged into another incident, which carries the failure',
        rules.FILTERED: 'the incident is left out by the `urgencies`/`priorities` filters or `unmapped_incidents`',
        rules.UNMAPPED: (
            "no catalog rule mapped the incident (its service name is PagerDuty's), and only mapped services are "
            'attributed'
        ),
        rules.BELOW_SEVERITY: "priority {} is below `attribution_min_severity` {} in the account's order".format(
            _code(facts.priority), _code(min_severity)
        ),
        rules.NO_SERVICE: 'the incident maps to no Datadog service, and deployments are matched by service',
        rules.SEVERAL_SERVICES: 'the incident maps to several services ({})'.format(
            ', '.join(_code(s) for s in services[:10])
        ),
        rules.NO_ENV: (
            'the incident has no env (set `env`, or `env` in `service_overrides`), and deployments are matched by env'
        ),
    }.get(outcome, outcome)


def release_text(why: str) -> str:
    return {
        rules.MOVED: 'it now maps to another service or env',
        rules.REATTRIBUTED: 'a deployment reported later decides now',
        rules.DELETED: 'it was deleted',
        rules.OUT_OF_SCOPE: 'it left `service_ids`/`team_ids`',
        rules.MERGED: 'it was merged into another incident',
        rules.FILTERED: 'it is left out by the filters',
        rules.UNMAPPED: 'it is no longer mapped by a catalog rule',
        rules.BELOW_SEVERITY: 'its priority is now below `attribution_min_severity`',
        rules.NO_SERVICE: 'it maps to no service now',
        rules.SEVERAL_SERVICES: 'it maps to several services now',
        rules.NO_ENV: 'it has no env now',
    }.get(why, why)
