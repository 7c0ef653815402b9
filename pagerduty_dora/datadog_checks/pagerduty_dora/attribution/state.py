# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What change-failure attribution remembers between runs, in one persistent cache entry.

The entry holds the queue of work (`pending`) beside three records: per incident what it blames and
why, per deployment who blames it and what Datadog was sent, and the account's priority order.
Records that a damaged or older cache cannot give back are dropped when read; records untouched for
long are forgotten, which never unmarks a deployment in Datadog.

An incident's decisions that no event has told yet (`untold`) are kept in its record until an event
tells them, so that each reaches people once across restarts. The fields added to layout 2 since its
first release (`untold`; a deployment's `rolled_back`, `rollback_until`, `rollback_refused`) are
optional: a layout-2 document an earlier release wrote reads as it is, and means what it meant.
"""

from __future__ import annotations

from typing import Any, Mapping

from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.queue import QueueBounds, QueueDocument, StoredQueue

from .decision import incident_task, remedy_task, sync_task
from .model import LATEST_DEPLOYMENT, Deployment, Facts

CACHE_KEY = 'attribution'
CACHE_VERSION = 2
# What was done for an incident is kept this long after its last change, and for at most this many.
RETENTION = 30 * 86400.0
MAX_RECORDS = 20000
# Decisions kept per incident until an event tells them (a run tells them all at its end).
MAX_UNTOLD = 20


# How much work the queue keeps: this many tasks at most, each for this many seconds at most.
DEFAULT_BOUNDS = QueueBounds(max_items=10000, max_age=7 * 86400.0)


class AttributionState:
    """The records and the queue of work of change-failure attribution, read on first use.

    `services` lend the persistent cache, the warnings (a damaged entry, work dropped) and the clock.
    """

    def __init__(self, services: AgentServices, bounds: QueueBounds = DEFAULT_BOUNDS) -> None:
        self._clock = services.clock
        document = QueueDocument(
            CACHE_KEY,
            'change-failure attribution state',
            'change-failure attribution tasks',
            field='pending',
            fields={'incidents': dict, 'deployments': dict, 'priorities': dict},
            version=CACHE_VERSION,
            upgrades={1: from_layout_1},
        )
        self.queue = StoredQueue(document, services, bounds)
        self._fields: dict[str, Any] | None = None

    @property
    def read(self) -> bool:
        """Whether the cache entry was read in this process."""
        return self._fields is not None

    def fields(self) -> dict[str, Any]:
        """The stored records, read from the cache on the first call; unreadable records are dropped."""
        if self._fields is None:
            fields = self.queue.read()
            fields['incidents'] = _readable(fields.get('incidents'), 'facts', Facts)
            fields['deployments'] = _readable(fields.get('deployments'), 'deployment', Deployment)
            fields.setdefault('priorities', {})
            self._fields = fields
        return self._fields

    def incidents(self) -> dict[str, dict]:
        """Per incident id: its `facts`, what it `blames`, its `search`, `why` it does not qualify, what is `untold`."""
        return self.fields()['incidents']

    def deployments(self) -> dict[str, dict]:
        """Per deployment id: the `deployment`, who is `blamed_by`, its `remediation`, what Datadog was `sent`;
        a rollback seen (`rolled_back`) and how far one was searched since its last blame (`rollback_until`)."""
        return self.fields()['deployments']

    def keep_untold(self, incident_id: str, note: dict) -> None:
        """Keep the stored form of a note that stands alone until an event tells it."""
        record = self.incidents().get(incident_id)
        if record is None:
            return
        untold = record.setdefault('untold', [])
        if len(untold) < MAX_UNTOLD:
            untold.append(note)
        self.queue.fields_changed()

    def told(self, incident_id: str, notes: list[dict]) -> None:
        """An event of the incident carried these notes: they are no longer untold."""
        record = self.incidents().get(incident_id)
        untold = record.get('untold') if record else None
        if not record or not untold:
            return
        for note in notes:
            if note in untold:
                untold.remove(note)
        if not untold:
            del record['untold']
        self.queue.fields_changed()

    def take_untold(self) -> list[tuple[str, dict, list]]:
        """Every incident's untold notes, taken away: (incident id, its record, the notes' stored forms)."""
        taken = []
        for incident_id, record in self.incidents().items():
            untold = record.pop('untold', None)
            if isinstance(untold, list) and untold:
                taken.append((incident_id, record, untold))
        if taken:
            self.queue.fields_changed()
        return taken

    def priorities(self) -> dict:
        """The account's priority order read last: `names`, most severe first, and when (`at`)."""
        return self.fields().get('priorities') or {}

    def set_priorities(self, names: list[str], at: float) -> None:
        self.fields()['priorities'] = {'names': names, 'at': at}
        self.queue.fields_changed()

    def touch(self, record: dict) -> None:
        """Mark a record changed now: it is kept longer, and the cache is written."""
        record['touched'] = self._clock()
        self.queue.fields_changed()

    def put(self, key: str, task: dict) -> None:
        """Queue (or replace) a task."""
        self.fields()
        self.queue.put(key, task)

    def prune(self, attribution_window: float) -> None:
        """Forget old records when anything changed; work still queued keeps its records."""
        if self._fields is None or not self.queue.dirty:
            return
        busy = {key.split(':', 1)[1] for key, _, _ in self.queue.dump()}
        prune(self.incidents(), self.deployments(), self._clock(), attribution_window, busy)

    def save(self) -> None:
        """Write the queue and the records, if they were read and changed."""
        self.queue.save(self._fields)


def _readable(records: Any, field: str, kind: Any) -> dict[str, dict]:
    kept = {}
    for key, record in (records or {}).items():
        if isinstance(record, dict) and _parses(record.get(field), kind):
            kept[key] = record
    return kept


def _parses(raw: Any, kind: Any) -> bool:
    try:
        kind.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return False
    return True


def prune(
    records: dict[str, dict], deployments: dict[str, dict], now: float, attribution_window: float, busy: set[str]
) -> None:
    """Forget incidents untouched for `RETENTION` (or two attribution windows), then the oldest beyond `MAX_RECORDS`;
    then deployments no remembered incident blames and untouched as long.

    `busy` names incidents and deployments with queued work: they are kept whatever their age. A
    forgotten incident leaves its deployment as it is in Datadog: forgetting never unmarks.
    """
    forget_before = now - max(RETENTION, attribution_window * 2)
    for key in [k for k, record in records.items() if k not in busy and _touched(record) < forget_before]:
        del records[key]
    if len(records) > MAX_RECORDS:
        for key in sorted(records, key=lambda k: _touched(records[k]))[: len(records) - MAX_RECORDS]:
            del records[key]
    for key in [
        k
        for k, deployment in deployments.items()
        if k not in busy
        and _touched(deployment) < forget_before
        and not any(incident in records for incident in deployment.get('blamed_by') or ())
    ]:
        del deployments[key]


def _touched(record: Mapping[str, Any]) -> float:
    return float(record.get('touched') or 0)


def from_layout_1(document: dict) -> dict:
    """The attribution state of layout 1 (releases of 2026-11-26 and 2026-12-01) in layout 2's form.

    Layout 1 kept per incident the deployment it blamed (`deployment`, `since`, `blamed`) and the
    remediation recorded on it; its queue held searches (`attribute`), remediation searches
    (`remediate`) and PATCHes (`patch`). Each becomes what layout 2 keeps for it: the incident's
    facts as far as the blame tells them (its next look corrects the rest, and judges it again only
    if they differ), the deployment with who blames it and what Datadog was sent, and the same work
    queued. A deployment whose PATCH was still queued counts as not sent, so it is sent again.
    """
    layout2: dict[str, Any] = {'incidents': {}, 'deployments': {}, 'priorities': {}, 'pending': []}
    queued = {item[0]: item for item in document.get('pending') or [] if isinstance(item, list) and len(item) == 3}
    for incident_id, record in (document.get('incidents') or {}).items():
        if isinstance(record, dict) and record.get('deployment'):
            _blaming(incident_id, record, queued, layout2)
        elif isinstance(record, dict) and 'attribute:' + incident_id in queued:
            # Its search was still queued: judged again from what the task says of it.
            arrived, task = queued['attribute:' + incident_id][1:]
            layout2['incidents'][incident_id] = {
                'facts': _facts(float(task['reference']), str(task.get('service') or ''), task.get('env')),
                'judged': False,
                'why': None,
                'touched': float(record.get('touched') or 0),
            }
            key, judge = incident_task(incident_id, 0.0)
            layout2['pending'].append([key, arrived, judge])
    deployments = layout2['deployments']
    for key, arrived, task in queued.values():
        if key.startswith('patch:') and task.get('deployment') in deployments:
            deployments[task['deployment']]['sent'] = {}
            sync_key, sync = sync_task(task['deployment'])
            layout2['pending'].append([sync_key, arrived, sync])
    return layout2


def _blaming(incident_id: str, record: dict, queued: dict[str, list], layout2: dict[str, Any]) -> None:
    """A layout-1 incident that blamed a deployment: its record, its deployment's, its queued remediation search."""
    found = record['deployment']
    blamed = Deployment.from_json(found)
    touched = float(record.get('touched') or 0)
    layout2['incidents'][incident_id] = {
        'facts': _facts(float(record.get('since') or blamed.finished_at), blamed.service, blamed.env),
        'judged': True,
        'why': None,
        'touched': touched,
        'search': {
            'service': blamed.service,
            'env': blamed.env,
            'deployment': blamed.id,
            'found': found,
            'final': False,
            'signal': LATEST_DEPLOYMENT,
            'basis': None,
            'event': None,
            'related': None,
        },
        'blames': blamed.id,
    }
    deployment = layout2['deployments'].setdefault(
        blamed.id,
        {
            'deployment': found,
            'blamed_by': [],
            'sent': {'change_failure': True, 'remediation': None},
            'touched': touched,
        },
    )
    deployment['blamed_by'].append(incident_id)
    fix = record.get('remediation')
    if isinstance(fix, dict) and fix.get('id') and fix.get('type'):
        marked = {'id': str(fix['id']), 'type': str(fix['type'])}
        deployment['remediation'] = dict(
            marked, deployment=dict(found, id=marked['id'], version=None), incident=incident_id
        )
        deployment['sent']['remediation'] = marked
    resolve = queued.get('remediate:' + incident_id)
    if resolve is not None:
        key, task = remedy_task(blamed.id, incident_id, float(resolve[2]['resolved_at']), 0.0)
        layout2['pending'].append([key, resolve[1], task])


def _facts(start: float, service: str, env: object) -> dict:
    """Facts of a layout-1 record: what its blame tells (when, which service and env), nothing else known."""
    return Facts(
        start=start,
        services=(service,) if service else (),
        env=env if isinstance(env, str) and env else None,
        severity=None,
        priority=None,
        rule='',
        wanted=True,
        merged=False,
        pagerduty_service='',
        resolved_at=None,
    ).to_json()
