# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""DORA failure payloads for PagerDuty incidents, and the queue that delivers them to Datadog.

A failure's `id` is derived from the incident id, so every re-send of an incident updates the same
failure in Datadog: the queue only has to converge on each incident's latest payload, never to
deliver every intermediate one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Container, Iterator

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError
from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.permissions import dora_delivery_refusal, dora_removal_refusal
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.text import clip

from .marks import is_removal, rejected, removal, removal_of
from .queue import Digests, QueueBounds, QueueDocument, StoredQueue

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

FAILURE_PATH = '/api/v2/dora/failure'
ENDPOINT = 'dora_failure'
REMOVAL_ENDPOINT = 'dora_failure_delete'
CACHE_KEY = 'dora_pending'
CACHE_VERSION = 1

ID_PREFIX = 'pagerduty-incident-'
ID_MAX_LENGTH = 128
ID_PATTERN = re.compile(r'[A-Za-z0-9\-_.:]+')
_ID_DISALLOWED = re.compile(r'[^A-Za-z0-9\-_.:]')

MAX_CUSTOM_TAGS = 100
# Datadog keeps the first 200 characters of a tag; cutting here keeps the cut predictable and the
# stored state small. Every tag the check sends (failures, events, metrics) is cut to this.
MAX_TAG_LENGTH = 200
# A PagerDuty title can be megabytes long; the DORA page shows a one-line name.
MAX_NAME_LENGTH = 500
FINGERPRINT_LENGTH = 16

# Response bodies of rejected posts are logged; a Datadog key is 32 (API) or 40 (application)
# hex characters, so any such run is masked in case a proxy or the API ever echoes one back.
_KEY_LIKE = re.compile(r'[0-9A-Fa-f]{32,}')
LOGGED_BODY_LIMIT = 500


def failure_id(incident_id: str) -> str:
    """The DORA failure id of a PagerDuty incident: `pagerduty-incident-<id>`.

    PagerDuty ids are short alphanumerics, so the id is normally used as is. An id with characters
    the DORA API refuses, or too long to fit in 128 characters, is cleaned and suffixed with a hash of
    the original, so two such ids never collide and the result is the same on every run.
    """
    candidate = ID_PREFIX + incident_id
    if len(candidate) <= ID_MAX_LENGTH and ID_PATTERN.fullmatch(incident_id):
        return candidate
    digest = hashlib.sha256(incident_id.encode('utf-8')).hexdigest()[:16]
    room = ID_MAX_LENGTH - len(ID_PREFIX) - len(digest) - 1
    cleaned = _ID_DISALLOWED.sub('_', incident_id)[:room]
    return '{}{}.{}'.format(ID_PREFIX, cleaned, digest)


def to_nanoseconds(epoch_seconds: float) -> int:
    """Epoch seconds to integer nanoseconds, exact to the microsecond.

    Multiplying a float epoch by 1e9 directly leaves rounding noise in the last digits (a float holds
    about 16 significant digits); rounding at microseconds first keeps the result stable across runs.
    """
    return int(round(epoch_seconds * 1_000_000)) * 1_000


def _tag(key: str, value: Any) -> str | None:
    text = ' '.join(str(value).split()) if value is not None else ''
    if not text:
        return None
    return '{}:{}'.format(key, text)[:MAX_TAG_LENGTH]


def _name(incident: Incident) -> str:
    title = ' '.join(incident.title.split())
    if not title:
        return 'PagerDuty incident #{}'.format(incident.number)
    return clip(title, MAX_NAME_LENGTH)


def build_failure(incident: Incident, mapping: MappingResult) -> dict:
    """The `attributes` object of a `POST /api/v2/dora/failure` for the incident's current state.

    `finished_at` is present only while the incident is resolved, so a reopened incident is re-sent
    without it. The API needs `services` or `team`: the mapping always yields one (its fallback rule
    uses the PagerDuty service name); should it yield neither, the PagerDuty service name (or id) is
    used as the service, which is what the fallback rule would have produced.
    """
    attributes: dict[str, Any] = {
        'id': failure_id(incident.id),
        'name': _name(incident),
        'started_at': to_nanoseconds(incident.created_at),
    }
    if incident.status == 'resolved' and incident.resolved_at is not None:
        # A resolve stamped before the creation (clock skew in the source) would be refused by the API.
        attributes['finished_at'] = max(attributes['started_at'], to_nanoseconds(incident.resolved_at))
    services = [name for name in mapping.services if name]
    if services:
        attributes['services'] = services
    if mapping.team:
        attributes['team'] = mapping.team
    if not services and not mapping.team:
        attributes['services'] = [incident.service_name or incident.service_id]
    if mapping.env:
        attributes['env'] = mapping.env
    if mapping.severity:
        attributes['severity'] = mapping.severity
    tags = [
        _tag('pagerduty_incident_number', incident.number),
        _tag('pagerduty_service', incident.service_name),
        _tag('urgency', incident.urgency),
    ]
    attributes['custom_tags'] = [tag for tag in tags if tag][:MAX_CUSTOM_TAGS]
    return attributes


def fingerprint(attributes: dict) -> str:
    """A short, stable hash of a payload: equal payloads (in any key order) give equal fingerprints.

    Always the standard library's encoding, so a fingerprint stored on one Agent matches on another
    whichever JSON library each has.
    """
    encoded = json.dumps(attributes, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return hashlib.sha256(encoded.encode('utf-8')).hexdigest()[:FINGERPRINT_LENGTH]


# What the answer to one delivery means (`delivery_verdict`).
DELIVERED = 'delivered'
# Kept for the next run: the request budget is used up, or the API failed for now.
OUT_OF_BUDGET = 'out_of_budget'
PAUSED = 'paused'
# The API key is refused: every delivery waits for the next run.
KEY_REFUSED = 'key_refused'
# A removal the application key may not make: removals wait, failures still go out.
REMOVAL_REFUSED = 'removal_refused'
# Refused for good (a 4xx): dropped, and not sent again until the payload changes.
DROPPED = 'dropped'
STOPPING_VERDICTS = (OUT_OF_BUDGET, PAUSED, KEY_REFUSED)


def delivery_verdict(error: ApiError | None, *, removal: bool) -> str:
    """What the answer to one delivery means for the queue: one of the verdicts above, from its disposition."""
    if error is None:
        return DELIVERED
    disposition = dispose(error)
    if disposition is Disposition.WAIT:
        return OUT_OF_BUDGET
    if disposition.failed_for_now:
        return PAUSED
    if disposition is Disposition.FIX_KEY:
        return REMOVAL_REFUSED if removal else KEY_REFUSED
    return DROPPED


@dataclass
class _FlushRun:
    """What one `flush()` delivered and refused, for its summary and for the removals behind a refused one."""

    submitted: int = 0
    rejected: int = 0
    removals_refused: bool = False


def _masked_body(body: str) -> str:
    text = _KEY_LIKE.sub('********', body or '')
    return text[:LOGGED_BODY_LIMIT]


class DoraDelivery:
    """A persistent queue of DORA failure payloads, one per incident, delivered oldest first.

    - `enqueue()` puts an incident's latest payload in the queue; a newer payload for an incident
      already queued replaces it and keeps its place (so a busy incident is not starved).
    - `flush()` posts from the oldest and acts on each answer's disposition (`delivery_verdict`). It
      stops at the first transient error (connection failure, timeout, 429, 5xx: counted as
      `dora.transient_errors`, kept, and not tried again until the API client's next run) or when the
      run's request budget is used up. A 4xx other than 401/403 is logged with the response body,
      counted as `dora.rejected` and dropped, since re-sending it would fail the same way. A 401/403
      keeps the queue, is counted as `dora.errors` and warned about: the key refused stops delivery
      for the run, a removal refused stops removals only.
    - The queue is bounded: beyond `max_pending` the oldest payloads are dropped, and payloads queued
      for longer than `max_age` seconds (counted from their first enqueue) are dropped; both are
      counted as `dora.dropped` and warned about.
    - Persistence: the queue is a `StoredQueue` under the `dora_pending` cache key, read on first
      use. `flush()` saves what changed; the owner calls `save()` after a batch of `enqueue()` calls
      (the collector does so at the end of every run), which writes only when something changed.
    - The `dora.pending` gauge is the owner's to submit, from `pending`.

    `services` are the check's cache, log, warnings, clock and count metric (`dora.*`, without the
    integration prefix).
    """

    def __init__(
        self,
        api: ApiClient,
        services: AgentServices,
        *,
        max_pending: int = 10000,
        max_age: float = 7 * 86400,
        can_remove: bool = False,
    ) -> None:
        self._api = api
        # Deleting a failure needs the application key; without it, a failure is closed, not removed.
        self.can_remove = can_remove
        self._log = services.log
        self._warning = services.warning
        self._count = count = services.count
        # What Datadog answered: (incident id, payload, whether refused for good); fingerprinted when taken.
        self._outcomes: list[tuple[str, dict, bool]] = []
        self._fingerprints = Digests(fingerprint)
        self._queue = StoredQueue(
            QueueDocument(CACHE_KEY, 'pending DORA failures', 'DORA failures', version=CACHE_VERSION),
            services,
            QueueBounds(max_pending, max_age),
            on_dropped=lambda reason, dropped: count('dora.dropped', dropped, ['reason:' + reason]),
        )

    # Queue -------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many incidents have a payload waiting to be delivered."""
        return len(self._loaded())

    def enqueue(self, incident_id: str, attributes: dict, known: str | None = None) -> None:
        """Queue the incident's latest payload (`known`: its fingerprint), replacing any older one still waiting."""
        self._loaded().put(incident_id, attributes)
        if known is not None:
            self._fingerprints.note(incident_id, attributes, known)

    def discard(self, incident_id: str) -> None:
        """Forget whatever waits for the incident: it is no longer wanted."""
        self._loaded().remove(incident_id)

    def remove(self, incident_id: str) -> None:
        """Queue the removal of the incident's failure (it replaces any payload still waiting)."""
        self.enqueue(incident_id, removal(failure_id(incident_id)))

    def flush(self) -> None:
        """Post pending payloads, oldest first, until the queue is empty or the API says stop.

        What Datadog accepted (or refused for good) is kept for `take_outcomes()`. A refusal of the
        key stops this output for the run (warned, queue kept), never the collection; a removal the
        application key may not make stops removals only, and failures behind it still go out.
        """
        queue = self._loaded()
        queue.expire()
        run = _FlushRun()
        try:
            for incident_id, attributes in self._due(queue, run):
                error = self._deliver(attributes)
                verdict = delivery_verdict(error, removal=is_removal(attributes))
                self._settle(verdict, incident_id, attributes, error, run)
                if verdict in STOPPING_VERDICTS:
                    break
        finally:
            if run.submitted:
                self._count('dora.submitted', run.submitted, [])
            if run.rejected:
                self._warning(
                    '%d DORA failures were rejected by the Datadog API and dropped; the Agent log has the reasons',
                    run.rejected,
                )
            queue.save()

    def _due(self, queue: StoredQueue, run: _FlushRun) -> Iterator[tuple[str, dict]]:
        """What to send next, oldest first: none once the API stalled, no removal once one was refused."""
        for incident_id in queue.keys():
            if self._api.stalled(CACHE_KEY):
                return
            attributes = queue.get(incident_id)
            if attributes is None or (is_removal(attributes) and run.removals_refused):
                continue
            yield incident_id, attributes

    def _deliver(self, attributes: dict) -> ApiError | None:
        """Send one payload; the error that stopped it, or None once Datadog accepted it."""
        try:
            self._send(attributes)
        except ApiError as e:
            return e
        return None

    def _settle(self, verdict: str, incident_id: str, attributes: dict, error: ApiError | None, run: _FlushRun) -> None:
        """Act on what one delivery's answer means: the queue, the outcome, and what the user is told."""
        queue = self._queue
        status = error.status if error is not None else None
        if verdict == OUT_OF_BUDGET:
            self._log.debug('DORA delivery: request budget used up, %d failures wait for the next run', len(queue))
        elif verdict == PAUSED:
            self._api.stall(CACHE_KEY)
            self._count('dora.transient_errors', 1, [])
            self._log.warning('DORA delivery paused until the next run, %d failures pending: %s', len(queue), error)
        elif verdict == REMOVAL_REFUSED and isinstance(error, AuthError):
            run.removals_refused = True
            self._count('dora.errors', 1, ['kind:removal_refused'])
            self._warning(dora_removal_refusal(error, str(removal_of(attributes))))
        elif verdict == KEY_REFUSED and isinstance(error, AuthError):
            self._api.stall(CACHE_KEY)
            self._count('dora.errors', 1, ['kind:auth'])
            self._warning(dora_delivery_refusal(error, len(queue)))
        elif verdict == DROPPED and error is not None:
            queue.remove(incident_id)
            run.rejected += 1
            self._outcomes.append((incident_id, attributes, True))
            self._count('dora.rejected', 1, ['status:{}'.format(status or 'unknown')])
            self._log.warning(
                'DORA failure %s for incident %s was rejected (%s) and is dropped: %s',
                attributes.get('id'),
                incident_id,
                status,
                _masked_body(error.body),
            )
        else:
            queue.remove(incident_id)
            self._outcomes.append((incident_id, attributes, False))
            run.submitted += 0 if is_removal(attributes) else 1

    def take_outcomes(self, wanted: Container[str] | None = None) -> list[tuple[str, str]]:
        """(incident id, fingerprint) of each payload Datadog accepted since the last call ('' for a removal,
        `rejected(fingerprint)` for one it refused for good), oldest first; of `wanted` incidents only if given."""
        outcomes, self._outcomes = self._outcomes, []
        return [
            (key, '' if is_removal(payload) else self._delivered(key, payload, refused))
            for key, payload, refused in outcomes
            if wanted is None or key in wanted
        ]

    def _delivered(self, incident_id: str, payload: dict, refused: bool) -> str:
        fingerprint = self._fingerprints.take(incident_id, payload)
        return rejected(fingerprint) if refused else fingerprint

    def queued(self, incident_id: str) -> str | None:
        """The fingerprint of the payload waiting for the incident ('' for a removal), or None when none waits."""
        attributes = self._loaded().get(incident_id)
        if attributes is None:
            return None
        return '' if is_removal(attributes) else self._fingerprints.of(incident_id, attributes)

    def _send(self, attributes: dict) -> None:
        target = removal_of(attributes)
        if target is None:
            self._api.post(FAILURE_PATH, {'data': {'attributes': attributes}}, endpoint=ENDPOINT, expect_json=False)
            return
        try:
            self._api.request(
                'delete', '{}/{}'.format(FAILURE_PATH, target), endpoint=REMOVAL_ENDPOINT, expect_json=False
            )
        except ApiError as e:
            # A failure already gone is what the removal wanted.
            if dispose(e) is not Disposition.GONE:
                raise
        self._count('dora.removed', 1, [])

    def save(self) -> None:
        """Persist the queue if it changed since it was last read or written."""
        self._queue.save()
        self._fingerprints.keep(self._queue)

    def _loaded(self) -> StoredQueue:
        self._queue.read()
        return self._queue
