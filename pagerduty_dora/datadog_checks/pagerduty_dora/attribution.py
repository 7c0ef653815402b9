# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution: mark the deployment that most likely caused a PagerDuty incident.

DORA Metrics computes change failure rate and failed deployment recovery time from *deployments*
marked as change failures; failures sent to `/api/v2/dora/failure` are shown beside them but do not
count. This module links an incident to a deployment through Datadog's DORA deployments API:

- when an incident is triggered (or reopened after its attribution window), the deployment of the
  same mapped service and env that finished most recently before the incident started, within
  `window` seconds, is marked `change_failure: true` (`PATCH /api/v2/dora/deployments/{id}`);
- when the incident resolves, a later deployment of the same service and env that finished before
  the resolve is recorded as its remediation: a `rollback` when its version is one that was
  deployed before the blamed deployment (Datadog's own rollback rule: a different version that was
  deployed before), a `rollforward` otherwise;
- a deployment is never blamed across services or envs (the search is filtered by both, and every
  result is checked again here), nor twice for one incident; a reopen within the window keeps the
  attribution it has.

What was done per incident lives in the persistent cache under `attribution`, with a queue of work
that met a transient error (network, 429, 5xx, request budget), retried by `flush()` on later runs.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import cache
from .api import ApiClient, AuthError, BudgetExhausted, RequestRejected, TransientError
from .events import format_duration
from .incident import format_time

if TYPE_CHECKING:
    from .incident import Transition
    from .mapping import MappingResult

DEPLOYMENTS_PATH = '/api/v2/dora/deployments'
LIST_ENDPOINT = 'dora_deployments_list'
PATCH_ENDPOINT = 'dora_deployments_patch'
LIST_TYPE = 'dora_deployments_list_request'
PATCH_TYPE = 'dora_deployment_patch_request'
CACHE_KEY = 'attribution'
CACHE_VERSION = 1
METRIC = 'attribution.results'

# Outcomes counted by `attribution.results` (tag `outcome`).
ATTRIBUTED = 'attributed'
KEPT = 'kept'
NO_DEPLOYMENT = 'no_deployment'
NO_SERVICE = 'no_service'
SEVERAL_SERVICES = 'several_services'
NO_ENV = 'no_env'
FILTERED = 'filtered'
BELOW_SEVERITY = 'below_severity'
DEFERRED = 'deferred'
FORBIDDEN = 'forbidden'
REJECTED = 'rejected'
REMEDIATED = 'remediated'
NO_REMEDIATION = 'no_remediation'
OUTCOMES = (
    ATTRIBUTED,
    KEPT,
    NO_DEPLOYMENT,
    NO_SERVICE,
    SEVERAL_SERVICES,
    NO_ENV,
    FILTERED,
    BELOW_SEVERITY,
    DEFERRED,
    FORBIDDEN,
    REJECTED,
    REMEDIATED,
    NO_REMEDIATION,
)

ROLLBACK = 'rollback'
ROLLFORWARD = 'rollforward'

# The list endpoint has no cursor: pages are walked by moving `to` back to the oldest start seen.
PAGE_LIMIT = 100
MAX_PAGES = 10
# The list's time range may apply to when deployments *started*; a deployment that started this
# much before the window and finished inside it is still found (results are filtered on finish).
START_MARGIN = 3600.0
# Versions deployed before the blamed deployment, kept to tell a rollback from a rollforward.
MAX_PREVIOUS_VERSIONS = 50
# Incident records are kept this long after their last change, and at most this many.
RETENTION = 30 * 86400.0
MAX_RECORDS = 20000

PERMISSIONS_MESSAGE = (
    'Datadog refused the DORA deployments API ({status}) for change-failure attribution: '
    '`datadog_app_key` must be set and its user or service account needs the `dora_metrics_read` '
    'permission (to search deployments) and `dora_metrics_write` (to mark them as change failures). '
    'Attribution work is kept and retried on the next run'
)

_NUMBER = re.compile(r'\d+')
_PLAIN_QUERY_VALUE = re.compile(r'[A-Za-z0-9_.\-/]+')
_FRACTION = re.compile(r'(\.\d{6})\d+')


@dataclass(frozen=True)
class Deployment:
    """A DORA deployment event, as the list endpoint returns it; times are UTC epoch seconds."""

    id: str
    service: str
    env: str | None
    version: str | None
    started_at: float
    finished_at: float

    def to_json(self) -> dict:
        return {
            'id': self.id,
            'service': self.service,
            'env': self.env,
            'version': self.version,
            'started_at': self.started_at,
            'finished_at': self.finished_at,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Deployment:
        if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not isinstance(raw.get('service'), str):
            raise ValueError('not a deployment record')
        return cls(
            id=raw['id'],
            service=raw['service'],
            env=raw.get('env') if isinstance(raw.get('env'), str) else None,
            version=raw.get('version') if isinstance(raw.get('version'), str) else None,
            started_at=float(raw['started_at']),
            finished_at=float(raw['finished_at']),
        )


def parse_api_time(value: Any) -> float | None:
    """A DORA API timestamp (RFC 3339 string, or Unix time in s, ms or ns) as epoch seconds; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value < 10**11:
            return float(value)
        if value < 10**14:
            return value / 1e3
        return value / 1e9
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    # Python reads at most microseconds; the API may render nanoseconds.
    text = _FRACTION.sub(r'\1', text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def parse_deployment(raw: Any) -> Deployment | None:
    """One element of the list response's `data`, or None when it lacks an id, a service or a finish time."""
    if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not raw['id']:
        return None
    attributes = raw.get('attributes')
    if not isinstance(attributes, dict) or not isinstance(attributes.get('service'), str):
        return None
    started = parse_api_time(attributes.get('started_at'))
    finished = parse_api_time(attributes.get('finished_at'))
    if started is None or finished is None:
        return None
    env = attributes.get('env')
    version = attributes.get('version')
    return Deployment(
        id=raw['id'],
        service=attributes['service'],
        env=env if isinstance(env, str) and env else None,
        version=version if isinstance(version, str) and version else None,
        started_at=started,
        finished_at=finished,
    )


def severity_rank(severity: str | None) -> int | None:
    """The number in a severity name (`P1` -> 1, `SEV-2` -> 2); lower is more severe; None without one."""
    if not severity:
        return None
    found = _NUMBER.search(severity)
    return int(found.group()) if found else None


def meets_severity(severity: str | None, minimum: str | None) -> bool:
    """Whether `severity` is at least as severe as `minimum`.

    Severities compare by the number in their name (`P1` and `P2` meet `P2`, `P3` does not), as in
    PagerDuty priorities and most SEV scales. A minimum without a number matches only itself
    (case-insensitively); an incident without a severity never meets a minimum.
    """
    if not minimum:
        return True
    if not severity:
        return False
    wanted = severity_rank(minimum)
    if wanted is None:
        return severity.strip().casefold() == minimum.strip().casefold()
    rank = severity_rank(severity)
    return rank is not None and rank <= wanted


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.strip().casefold() == b.strip().casefold()


def _query_value(value: str) -> str:
    if _PLAIN_QUERY_VALUE.fullmatch(value):
        return value
    return '"{}"'.format(value.replace('\\', '\\\\').replace('"', '\\"'))


def search_query(service: str, env: str) -> str:
    """The event-platform query for one service in one env."""
    return 'service:{} env:{}'.format(_query_value(service), _query_value(env))


def patch_body(deployment_id: str, remediation: dict | None = None) -> dict:
    """Body of `PATCH /api/v2/dora/deployments/{id}` marking the deployment a change failure."""
    attributes: dict[str, Any] = {'change_failure': True}
    if remediation:
        attributes['remediation'] = dict(remediation)
    return {'data': {'id': deployment_id, 'type': PATCH_TYPE, 'attributes': attributes}}


def _code(value: Any) -> str:
    text = ' '.join(str(value).split())[:100].replace('`', "'")
    return '`{}`'.format(text) if text else '(none)'


def _describe(deployment: Deployment) -> str:
    return 'deployment {} of {} in env {}, version {}, finished at {}'.format(
        _code(deployment.id),
        _code(deployment.service),
        _code(deployment.env),
        _code(deployment.version) if deployment.version else '(none)',
        format_time(deployment.finished_at),
    )


class _Deferred(Exception):
    """The API could not be used now (transient error, budget, or refused); the work waits."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


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
        self._api = api
        self.window = float(window)
        self.min_severity = min_severity.strip() if min_severity and min_severity.strip() else None
        self._read_cache = read_cache
        self._write_cache = write_cache
        self._log = log
        self._count = count
        self._warning = warning or log.warning
        self._clock = clock
        self._max_pending = max(1, max_pending)
        self._max_age = max_age
        self._records: dict[str, dict] | None = None
        self._pending: cache.PendingQueue | None = None
        self._dirty = False
        # The API client's per-run limits of the run in which the API failed or refused: no more
        # attempts until the client starts a new run.
        self._stalled_limits: Any = None
        self._warned_limits: Any = None

    # Public ------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many attribution tasks wait for a later run."""
        self._load()
        assert self._pending is not None
        return len(self._pending)

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
                self._outcome(FILTERED)
            return None
        if kind == 'resolved':
            return self._on_resolved(transition)
        return self._on_failure(transition, mapping)

    def flush(self) -> None:
        """Run queued tasks, oldest first, until done or the API says stop; persist what changed."""
        pending = self._pending_loaded()
        changed = self._expire(pending)
        try:
            while pending and self._stalled_limits is not self._api.limits:
                key, task = pending.first() or ('', {})
                try:
                    self._run(task)
                except _Deferred:
                    break
                pending.remove(key)
                changed = True
        finally:
            if changed:
                self._dirty = True
                self.save()

    def save(self) -> None:
        """Persist the state if it changed since it was last read or written."""
        if not self._dirty or self._records is None or self._pending is None:
            return
        self._prune()
        document = {'incidents': self._records, 'pending': self._pending.dump()}
        self._write_cache(CACHE_KEY, cache.encode(CACHE_VERSION, document))
        self._dirty = False

    # Failure start -----------------------------------------------------------------------------

    def _not_attributable(self, mapping: MappingResult) -> tuple[str, str] | None:
        """(outcome, reason) when the incident cannot be attributed whatever the deployments are."""
        if not meets_severity(mapping.severity, self.min_severity):
            return BELOW_SEVERITY, 'severity {} is below `attribution_min_severity` {}'.format(
                _code(mapping.severity) if mapping.severity else '(none)', _code(self.min_severity)
            )
        services = [s for s in mapping.services if s and s.strip()]
        if not services:
            return NO_SERVICE, 'the incident maps to no Datadog service, and deployments are matched by service'
        if len(services) > 1:
            return SEVERAL_SERVICES, 'the incident maps to several services ({})'.format(
                ', '.join(_code(s) for s in services[:10])
            )
        if not mapping.env:
            return NO_ENV, (
                'the incident has no env (set `env`, or `env` in `service_overrides`), and deployments are '
                'matched by env'
            )
        return None

    def _on_failure(self, transition: Transition, mapping: MappingResult) -> str:
        incident = transition.incident
        refused = self._not_attributable(mapping)
        if refused is not None:
            outcome, reason = refused
            self._log.debug('Incident %s not attributed (%s): %s', incident.id, outcome, reason)
            self._outcome(outcome)
            return '- **Change failure:** not attributed: {}'.format(reason)
        services = [s for s in mapping.services if s and s.strip()]
        service, env = services[0], mapping.env
        assert env is not None
        records = self._records_loaded()
        record = records.get(incident.id)
        # A triggered incident starts its failure when it was created; a reopened one when it reopened.
        reference = incident.created_at if transition.kind == 'triggered' else transition.at
        if record and record.get('deployment'):
            current = Deployment.from_json(record['deployment'])
            if transition.kind == 'triggered' or reference - float(record.get('since', reference)) <= self.window:
                self._log.debug('Incident %s keeps its attribution to deployment %s', incident.id, current.id)
                self._outcome(KEPT)
                return '- **Change failure:** still attributed to {}'.format(_describe(current))
        if record and record.get('waiting'):
            # A search for this incident is already queued: this transition joins it.
            return self._deferred_line()
        task = {
            'kind': 'attribute',
            'incident': incident.id,
            'service': service,
            'env': env,
            'reference': reference,
        }
        record = records.setdefault(incident.id, {})
        record['touched'] = self._clock()
        self._dirty = True
        try:
            self._ensure_flowing()
            return self._attribute(task)
        except _Deferred as e:
            record['waiting'] = True
            self._enqueue('attribute:' + incident.id, task)
            if e.outcome == FORBIDDEN:
                return '- **Change failure:** not attributed yet: {}'.format(self._forbidden_text())
            return self._deferred_line()

    def _attribute(self, task: dict) -> str:
        """Search and blame for one incident; raises `_Deferred` when the API cannot be used now."""
        incident_id, service, env = task['incident'], task['service'], task['env']
        reference = float(task['reference'])
        records = self._records_loaded()
        record = records.setdefault(incident_id, {})
        try:
            candidates = self._search(service, env, reference - self.window - START_MARGIN, reference)
        except RequestRejected as e:
            # Asking again would be refused the same way: this incident's attribution is given up.
            record.pop('waiting', None)
            record['touched'] = self._clock()
            self._dirty = True
            self._search_rejected(incident_id, service, env, e)
            return '- **Change failure:** not attributed: the DORA deployments search was rejected ({})'.format(
                e.status
            )
        blamed = pick_blamed(candidates, reference, self.window)
        record.pop('waiting', None)
        record['touched'] = self._clock()
        self._dirty = True
        if blamed is None:
            self._log.debug(
                'Incident %s not attributed: no deployment of %s in env %s finished in the %d s before %s',
                incident_id,
                service,
                env,
                int(self.window),
                format_time(reference),
            )
            self._outcome(NO_DEPLOYMENT)
            return (
                '- **Change failure:** not attributed: no deployment of {} in env {} finished in the {} '
                'before {}'.format(_code(service), _code(env), format_duration(self.window), format_time(reference))
            )
        blamed_before = set(record.get('blamed') or ())
        record['deployment'] = blamed.to_json()
        record['previous_versions'] = previous_versions(candidates, blamed)
        record['since'] = reference
        record.pop('remediation', None)
        if blamed.id in blamed_before:
            # The same deployment again (a reopen after the window): it is already marked.
            self._outcome(KEPT)
            return '- **Change failure:** still attributed to {}'.format(_describe(blamed))
        record['blamed'] = sorted(blamed_before | {blamed.id})
        self._log.info(
            'Incident %s attributed to deployment %s (service %s, env %s, version %s)',
            incident_id,
            blamed.id,
            blamed.service,
            blamed.env,
            blamed.version,
        )
        self._outcome(ATTRIBUTED)
        self._send_patch(blamed.id, patch_body(blamed.id))
        return '- **Change failure:** attributed to {}'.format(_describe(blamed))

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
            return '- **Remediation:** pending: the attribution of this incident is retried on the next run'
        if not record.get('deployment'):
            return None
        try:
            self._ensure_flowing()
            return self._remediate(task)
        except _Deferred as e:
            self._enqueue('remediate:' + incident.id, task)
            if e.outcome == FORBIDDEN:
                return '- **Remediation:** not recorded yet: {}'.format(self._forbidden_text())
            return '- **Remediation:** pending: the DORA deployments API could not be reached; retried on the next run'

    def _remediate(self, task: dict) -> str | None:
        incident_id = task['incident']
        resolved_at = float(task['resolved_at'])
        record = self._records_loaded().get(incident_id)
        if not record or not record.get('deployment'):
            return None
        blamed = Deployment.from_json(record['deployment'])
        try:
            candidates = self._search(blamed.service, blamed.env or '', blamed.finished_at, resolved_at)
        except RequestRejected as e:
            record['touched'] = self._clock()
            self._dirty = True
            self._search_rejected(incident_id, blamed.service, blamed.env or '', e)
            return '- **Remediation:** not recorded: the DORA deployments search was rejected ({})'.format(e.status)
        found = pick_fix(candidates, blamed, resolved_at, record.get('previous_versions') or ())
        record['touched'] = self._clock()
        self._dirty = True
        if found is None:
            self._log.debug(
                'Incident %s: no deployment of %s in env %s finished between deployment %s and the resolve',
                incident_id,
                blamed.service,
                blamed.env,
                blamed.id,
            )
            self._outcome(NO_REMEDIATION)
            return (
                '- **Remediation:** none recorded: no later deployment of {} in env {} finished before the '
                'resolve'.format(_code(blamed.service), _code(blamed.env))
            )
        fix, kind = found
        record['remediation'] = {'id': fix.id, 'type': kind}
        self._log.info(
            'Incident %s: deployment %s recorded as a %s of deployment %s', incident_id, fix.id, kind, blamed.id
        )
        self._outcome(REMEDIATED, ['remediation:{}'.format(kind)])
        self._send_patch(blamed.id, patch_body(blamed.id, {'id': fix.id, 'type': kind}))
        return '- **Remediation:** {} by {}'.format(kind, _describe(fix))

    # Preview -----------------------------------------------------------------------------------

    def preview(self, incident: Any, mapping: MappingResult) -> dict[str, Any]:
        """What attribution would do for an incident triggered now, reading deployments and writing nothing.

        Returns the `outcome`, the `deployment` that would be marked, the `remediation` a resolved
        incident would record, and a `note` saying why when nothing would be.
        """
        result: dict[str, Any] = {'outcome': None, 'deployment': None, 'remediation': None, 'note': ''}
        refused = self._not_attributable(mapping)
        if refused is not None:
            result['outcome'], result['note'] = refused
            return result
        service = next(s for s in mapping.services if s and s.strip())
        env = mapping.env or ''
        reference = float(incident.created_at)
        try:
            self._ensure_flowing()
            candidates = self._search(service, env, reference - self.window - START_MARGIN, reference)
            blamed = pick_blamed(candidates, reference, self.window)
            if blamed is None:
                result['outcome'] = NO_DEPLOYMENT
                result['note'] = 'no deployment of {} in env {} finished in the {} before {}'.format(
                    _code(service), _code(env), format_duration(self.window), format_time(reference)
                )
                return result
            result['outcome'], result['deployment'] = ATTRIBUTED, blamed.to_json()
            if incident.resolved_at is None:
                return result
            later = self._search(blamed.service, blamed.env or '', blamed.finished_at, float(incident.resolved_at))
            found = pick_fix(later, blamed, float(incident.resolved_at), previous_versions(candidates, blamed))
            if found is None:
                result['note'] = 'no later deployment finished before the resolve: no remediation'
            else:
                fix, kind = found
                result['remediation'] = {'type': kind, 'deployment': fix.to_json()}
        except _Deferred as e:
            result['outcome'] = e.outcome
            result['note'] = (
                self._forbidden_text()
                if e.outcome == FORBIDDEN
                else 'the DORA deployments API could not be read now (budget, timeout or error)'
            )
        except RequestRejected as e:
            result['outcome'] = REJECTED
            result['note'] = 'the DORA deployments search was rejected ({})'.format(e.status)
        return result

    # API ---------------------------------------------------------------------------------------

    def _search_rejected(self, incident_id: str, service: str, env: str, error: RequestRejected) -> None:
        self._outcome(REJECTED)
        self._log.warning(
            'The DORA deployments search for incident %s (service %s, env %s) was rejected (%s) and is not retried: %s',
            incident_id,
            service,
            env,
            error.status,
            (error.body or '')[:500],
        )

    def _search(self, service: str, env: str, since: float, until: float) -> list[Deployment]:
        """Deployments of exactly this service and env with a start in [since, until], over every page."""
        seen: dict[str, Deployment] = {}
        to = until
        for _ in range(MAX_PAGES):
            body = {
                'data': {
                    'type': LIST_TYPE,
                    'attributes': {
                        'from': format_time(since),
                        'to': _format_upper(to),
                        'query': search_query(service, env),
                        'sort': '-started_at',
                        'limit': PAGE_LIMIT,
                    },
                }
            }
            response = self._call('post', DEPLOYMENTS_PATH, body, LIST_ENDPOINT)
            data = response.data.get('data') if isinstance(response.data, dict) else None
            items = data if isinstance(data, list) else []
            new = 0
            oldest = to
            for raw in items:
                deployment = parse_deployment(raw)
                if deployment is None:
                    continue
                oldest = min(oldest, deployment.started_at)
                if deployment.id in seen:
                    continue
                new += 1
                # Checked here too: a loose query must never lead to blaming another service or env.
                if _same(deployment.service, service) and _same(deployment.env, env):
                    seen[deployment.id] = deployment
            if len(items) < PAGE_LIMIT or new == 0 or oldest <= since:
                break
            to = oldest
        else:
            self._log.debug(
                'Deployment search for %s in env %s stopped after %d pages; the latest ones are used',
                service,
                env,
                MAX_PAGES,
            )
        return list(seen.values())

    def _send_patch(self, deployment_id: str, body: dict) -> None:
        key = 'patch:' + deployment_id
        pending = self._pending_loaded()
        queued = pending.get(key)
        if queued is not None:
            # One PATCH per deployment is enough: the newest body wins, keeping a queued remediation
            # that another incident's plain blame of the same deployment would otherwise erase.
            attributes = body['data']['attributes']
            remediation = queued['body']['data']['attributes'].get('remediation')
            if remediation and 'remediation' not in attributes:
                attributes['remediation'] = remediation
        if queued is not None or self._stalled_limits is self._api.limits:
            self._enqueue(key, {'kind': 'patch', 'deployment': deployment_id, 'body': body})
            return
        try:
            self._patch({'kind': 'patch', 'deployment': deployment_id, 'body': body})
        except _Deferred:
            self._enqueue(key, {'kind': 'patch', 'deployment': deployment_id, 'body': body})

    def _patch(self, task: dict) -> None:
        try:
            self._call('patch', '{}/{}'.format(DEPLOYMENTS_PATH, task['deployment']), task['body'], PATCH_ENDPOINT)
        except RequestRejected as e:
            # Re-sending would fail the same way (the deployment is gone, or the body is refused).
            self._outcome(REJECTED)
            self._log.warning(
                'Marking DORA deployment %s as a change failure was rejected (%s) and is dropped: %s',
                task['deployment'],
                e.status,
                (e.body or '')[:500],
            )

    def _call(self, method: str, path: str, body: dict, endpoint: str) -> Any:
        try:
            return getattr(self._api, method)(path, body, endpoint=endpoint)
        except BudgetExhausted:
            self._stalled_limits = self._api.limits
            raise _Deferred(DEFERRED) from None
        except TransientError as e:
            self._stalled_limits = self._api.limits
            self._log.warning('Change-failure attribution paused until the next run: %s', e)
            raise _Deferred(DEFERRED) from None
        except AuthError as e:
            self._stalled_limits = self._api.limits
            if self._warned_limits is not self._api.limits:
                self._warned_limits = self._api.limits
                self._warning(PERMISSIONS_MESSAGE.format(status=e.status))
            self._outcome(FORBIDDEN)
            raise _Deferred(FORBIDDEN) from None

    def _ensure_flowing(self) -> None:
        if self._stalled_limits is self._api.limits:
            raise _Deferred(DEFERRED)

    def _run(self, task: dict) -> None:
        kind = task.get('kind')
        if kind == 'attribute':
            self._attribute(task)
        elif kind == 'remediate':
            self._remediate(task)
        elif kind == 'patch':
            self._patch(task)
        else:
            self._log.debug('Dropping an attribution task of unknown kind %r', kind)

    # Text and counts ---------------------------------------------------------------------------

    def _outcome(self, outcome: str, extra: list[str] | None = None) -> None:
        self._count(METRIC, 1, ['outcome:{}'.format(outcome)] + list(extra or ()))

    def _deferred_line(self) -> str:
        self._outcome(DEFERRED)
        return (
            '- **Change failure:** attribution pending: the DORA deployments API could not be reached; '
            'retried on the next run'
        )

    @staticmethod
    def _forbidden_text() -> str:
        return (
            'Datadog refused access to DORA deployments (403); `datadog_app_key` needs the `dora_metrics_read` '
            'and `dora_metrics_write` permissions'
        )

    # State -------------------------------------------------------------------------------------

    def _enqueue(self, key: str, task: dict) -> None:
        for dropped_key in self._pending_loaded().put(key, task):
            self._log.warning('Dropped the oldest attribution task %s: the queue is full', dropped_key)
        self._dirty = True

    def _expire(self, pending: cache.PendingQueue) -> bool:
        expired = pending.expire()
        for _, task in expired:
            if task.get('kind') == 'attribute':
                record = self._records_loaded().get(str(task.get('incident')))
                if record:
                    record.pop('waiting', None)
        if expired:
            self._warning(
                'Dropped %d change-failure attribution tasks that could not run within %d seconds',
                len(expired),
                int(self._max_age),
            )
        return bool(expired)

    def _prune(self) -> None:
        records = self._records_loaded()
        horizon = self._clock() - max(RETENTION, self.window * 2)
        stale = [
            key
            for key, record in records.items()
            if not record.get('waiting') and float(record.get('touched') or 0) < horizon
        ]
        for key in stale:
            del records[key]
        if len(records) > MAX_RECORDS:
            oldest = sorted(records, key=lambda key: float(records[key].get('touched') or 0))
            for key in oldest[: len(records) - MAX_RECORDS]:
                del records[key]

    def _records_loaded(self) -> dict[str, dict]:
        self._load()
        assert self._records is not None
        return self._records

    def _pending_loaded(self) -> cache.PendingQueue:
        self._load()
        assert self._pending is not None
        return self._pending

    def _load(self) -> None:
        if self._records is not None:
            return
        self._records, self._pending = {}, cache.PendingQueue(self._max_pending, self._max_age, self._clock)
        raw = self._read_cache(CACHE_KEY)
        if not raw:
            return
        try:
            document = cache.decode(raw, CACHE_VERSION)
            incidents, pending = document['incidents'], document['pending']
            if not isinstance(incidents, dict) or not isinstance(pending, list):
                raise ValueError('unknown layout')
        except (ValueError, KeyError, TypeError) as e:
            self._warning('The change-failure attribution state could not be read (%s); starting empty', e)
            self._dirty = True
            return
        for key, record in incidents.items():
            if isinstance(key, str) and isinstance(record, dict):
                if record.get('deployment') is not None:
                    try:
                        Deployment.from_json(record['deployment'])
                    except (ValueError, KeyError, TypeError):
                        continue
                self._records[key] = record
        self._pending.load(pending)


def pick_blamed(candidates: list[Deployment], reference: float, window: float) -> Deployment | None:
    """The deployment that finished last within `window` seconds before `reference`; the id breaks a tie."""
    in_window = [d for d in candidates if reference - window <= d.finished_at <= reference]
    if not in_window:
        return None
    return max(in_window, key=lambda d: (d.finished_at, d.id))


def previous_versions(candidates: list[Deployment], blamed: Deployment) -> list[str]:
    """Versions deployed before the blamed deployment: redeploying one of them is a rollback."""
    previous = sorted(
        {d.version for d in candidates if d.version and d.finished_at < blamed.finished_at and d.id != blamed.id}
    )[:MAX_PREVIOUS_VERSIONS]
    return [v for v in previous if v != blamed.version]


def pick_fix(
    candidates: list[Deployment], blamed: Deployment, resolved_at: float, previous: Any
) -> tuple[Deployment, str] | None:
    """The deployment that remediated `blamed` before the resolve, and whether it is a rollback or a rollforward."""
    later = [
        d
        for d in candidates
        if d.id != blamed.id
        and blamed.finished_at < d.finished_at <= resolved_at
        # Redeploying the blamed version again changes nothing; it is not a remediation.
        and not (d.version and d.version == blamed.version)
    ]
    if not later:
        return None
    fix = max(later, key=lambda d: (d.finished_at, d.id))
    return fix, ROLLBACK if fix.version and fix.version in set(previous) else ROLLFORWARD


def _format_upper(epoch: float) -> str:
    # `format_time` drops the fraction; rounding the upper bound up keeps its second in the range.
    return format_time(int(epoch) + (1 if epoch != int(epoch) else 0))
