# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Turns PagerDuty's log and incident lists into transitions, each emitted once, and remembers where it is.

`GET /incidents` filters on creation time only and an incident object shows only its current state,
so no list of incidents can say what happened to an old incident between two runs. Each run does,
in this order:

1. **The change feed**: the account's log entries (`GET /log_entries`) since the last run, read
   oldest first, each with its incident embedded. Status entries (trigger, acknowledge,
   unacknowledge, resolve) are replayed against what was last emitted (`transitions.py`), so several
   changes between two runs each give their own transition with their own time; any other entry
   (a priority or urgency change, a note) makes the collector compare the embedded incident with its
   record. Cost follows activity: an idle account costs one request.
2. **Reconciliation**: one page of the open incidents per run, in creation order, resumed by
   position. It finds what has no log entry (a reopen, a service move) and anything the feed
   missed; an open incident it recorded but did not meet in a whole pass is read by id (resolved,
   deleted, merged or moved out of scope). The first pass after going live reads every page at
   once: it is the baseline of what was open.
3. **The creation-time sweep**: `backfill_days` of history before going live (DORA failures only),
   in windows sized to stay under PagerDuty's 10,000-record offset cap, spread over runs at the pace
   DORA delivery allows. Incidents created since going live come from the feed.

An incident the collector has no record of is news only when created after collection went live;
an older one starts from an unknown state, so it is never reported as triggered or reopened on the
strength of a list alone: its own log is read to tell a reopen from a move into scope.

The passes page through PagerDuty (`passes.py`); what an incident's log and state mean is decided by
pure functions (`transitions.py`); this module holds the state, reads an incident's own log when a
decision asks for it, and does the output: DORA failures, events and metrics.

State lives in memory during a run and is written to the persistent cache when the run ends, even
when it ends with an error; the Agent sends a run's events only after the run, so state and events
stay in step across restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .client import MAX_WINDOW, LogEntry, PagerDutyClient
from .dora import build_failure
from .dora import fingerprint as fingerprint_of
from .http_client import BudgetExhausted, DeadlineReached, RateLimited
from .incident import Incident, MalformedIncident, parse_incident
from .mapping import Catalog, MappingResult, map_incident, passes_filters
from .outputs import Outputs, mapping_tags, open_gauges
from .passes import DAY, OVERLAP, Passes
from .settings import Settings
from .state import CollectorState, Feed, Window
from .text import digest, for_log
from .transitions import Horizons, ReadLog, Replay, Transition, apply_entry, field_changes, record_of, settle

STATE_KEY = 'collector'
# Resolved incidents are remembered this long, to recognise them in overlapping queries and reopens.
RESOLVED_RETENTION = 3 * DAY
# Marks a recorded fingerprint whose DORA failure was not sent (delivery turned off).
UNDELIVERED = '-'
# A page is read only while at most this many DORA failures wait for delivery.
MAX_QUEUED_BEFORE_SWEEP = 100
# Malformed incidents remembered as already warned about (by a hash of their id); past this the set
# starts over, so a stream of distinct bad ids costs a few warnings more, never unbounded memory.
MAX_WARNED_MALFORMED = 1000
# What a warning shows of a malformed incident's id.
MAX_LOGGED_ID = 64


class StopRun(Exception):
    """The run ends early but cleanly: its budget or deadline is spent; work resumes next run."""


@dataclass
class RunReport:
    """What one run did, for logs, the dry run and tests."""

    pages: int = 0
    skipped: int = 0
    sweep_complete: bool = False
    stopped: str = ''
    mappings: dict[str, tuple[Incident, MappingResult]] = field(default_factory=dict)


class Collector:
    """Owns the collection state; `run()` performs one collection."""

    def __init__(
        self,
        client: PagerDutyClient,
        *,
        catalog: Any,
        dora: Any | None,
        outputs: Outputs,
        attribution: Any | None = None,
        settings: Settings,
        read_cache: Callable[[str], str],
        write_cache: Callable[[str, str], None],
        log: Any,
        warning: Callable[..., None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.dora = dora
        self.attribution = attribution
        self.outputs = outputs
        self.settings = settings
        self._read_cache = read_cache
        self._write_cache = write_cache
        self.log = log
        self._warning = warning
        self._clock = clock
        self._monotonic = monotonic
        self._state: CollectorState | None = None
        self._deadline = float('inf')
        self._open_tag_sets: set[tuple[str, ...]] = set()
        self._warned_malformed: set[str] = set()
        # Catalog, clock and report of the run under way, shared by the steps the passes call.
        self._run: _Run
        # Whether state is written (a dry run writes none) and per-incident mappings are kept in
        # the run report (for the command line; a backfill would hold every incident of a run).
        self.persist = True
        self.keep_mappings = False

    # State -------------------------------------------------------------------------------------

    @property
    def state(self) -> CollectorState:
        if self._state is None:
            self._state = self._load_state()
        return self._state

    def _load_state(self) -> CollectorState:
        raw = self._read_cache(STATE_KEY)
        if not raw:
            return CollectorState()
        try:
            return CollectorState.loads(raw)
        except ValueError as e:
            # Starting over as on a first install is safe: that run only records (no event flood),
            # and DORA failures are idempotent by id, so re-sending history changes nothing.
            self._warning('Stored collection state is unreadable (%s); starting over as on a first run', e)
            return CollectorState()

    def save(self) -> None:
        if self.persist and self._state is not None:
            self._write_cache(STATE_KEY, self._state.dumps())

    # One run -----------------------------------------------------------------------------------

    def run(self, deadline: float) -> RunReport:
        """Collect once. `deadline` is the monotonic time by which the run must end."""
        self._deadline = deadline
        report = RunReport()
        catalog = self.catalog.current()
        if catalog is None:
            self._warning(
                'No catalog source has loaded yet; nothing is submitted and the collection cursor '
                'stays where it is until one does'
            )
            report.stopped = 'catalog'
            return report
        for source, entries in self.catalog.counts().items():
            self.outputs.gauge('catalog.entries', entries, ['source:{}'.format(source)])
        state = self.state
        now = self._clock()
        if state.live_since is None or state.feed is None:
            state.live_since = now
            state.feed = Feed(horizon=now)
        self._switch_delivery(now)
        self._run = _Run(catalog, now, report)
        passes = Passes(self.client, self)
        try:
            if self.dora is not None:
                self.dora.flush()
            if self.attribution is not None:
                self.attribution.flush()
            passes.read_feed(state.feed, state.live_since, now)
            passes.reconcile(state, now)
            if state.horizon is None:
                state.horizon = now - self.settings.backfill_days * DAY
            passes.sweep(state, self._sweep_target(now))
            passes.resend(state)
            report.sweep_complete = state.window is None and state.horizon >= self._sweep_target(now) - 1
        except (BudgetExhausted, RateLimited, DeadlineReached, StopRun) as e:
            report.stopped = str(e)
            self.log.info('Collection paused until the next run: %s', e)
        finally:
            report.pages = passes.pages
            self._prune(now)
            self.save()
            if self.dora is not None:
                self.dora.save()
            if self.attribution is not None:
                self.attribution.save()
        self._report_gauges(now, report)
        return report

    # Steps the passes call -------------------------------------------------------------------

    def before_request(self) -> None:
        """Stop at the run deadline, and read no further while DORA delivery is behind (its queue is bounded)."""
        self._check_deadline()
        if self.dora is not None and self.dora.pending > MAX_QUEUED_BEFORE_SWEEP:
            raise StopRun('DORA deliveries are behind; reading continues once they catch up')

    def deliver(self) -> None:
        if self.dora is not None:
            self.dora.flush()
        self._check_deadline()

    def _check_deadline(self) -> None:
        if self._monotonic() > self._deadline:
            raise StopRun('the run reached its time limit')

    def warning(self, message: str, *args: Any) -> None:
        self._warning(message, *args)

    def gone(self, key: str) -> None:
        """The incident was deleted in PagerDuty: its failure must not stay open."""
        record = self.state.incidents.pop(key)
        if not _sent(record.fingerprint) or self.dora is None:
            return
        if self.dora.can_remove:
            self.dora.remove(key)
            return
        self.outputs.count('dora.unremovable', 1, [])
        self._warning(
            'PagerDuty incident %s was deleted, but its DORA failure cannot be removed without '
            '`datadog_app_key`; it stays open in Datadog',
            key,
        )

    def _sweep_target(self, now: float) -> float:
        # What was created since going live comes from the feed, trigger entry first.
        live_since = self.state.live_since
        return min(now, live_since) if live_since is not None else now

    # One incident ------------------------------------------------------------------------------

    def parse(self, raw: Any) -> Incident | None:
        """The incident, or None (counted, warned once per incident) when a field it needs is unusable.

        The warning shows the id escaped and bounded (`for_log`); what is remembered of it is a short
        hash, in a bounded set, so a hostile id costs neither log lines nor memory.
        """
        try:
            return parse_incident(raw)
        except MalformedIncident as e:
            self._run.report.skipped += 1
            key: str = raw['id'] if isinstance(raw, dict) and isinstance(raw.get('id'), str) else '?'
            self.outputs.count('incidents.skipped', 1, ['reason:malformed'])
            seen = digest(key)
            if seen not in self._warned_malformed:
                if len(self._warned_malformed) >= MAX_WARNED_MALFORMED:
                    self._warned_malformed.clear()
                self._warned_malformed.add(seen)
                self._warning('Skipped PagerDuty incident %s: %s', for_log(key, MAX_LOGGED_ID), for_log(str(e)))
            return None

    def _map(self, incident: Incident, catalog: Catalog) -> MappingResult:
        return map_incident(
            incident,
            catalog,
            overrides=self.settings.overrides,
            env=self.settings.env,
            severity_mapping=self.settings.severity_mapping,
        )

    def _in_scope(self, incident: Incident) -> bool:
        if self.settings.service_ids and incident.service_id not in self.settings.service_ids:
            return False
        if self.settings.team_ids and not {t.id for t in incident.teams} & set(self.settings.team_ids):
            return False
        return True

    def _qualifies(self, incident: Incident, mapping: MappingResult) -> bool:
        """Whether the incident counts as a failure: filters, unmapped policy, and not merged away."""
        if not passes_filters(incident, urgencies=self.settings.urgencies, priorities=self.settings.priorities):
            return False
        if self.settings.unmapped_incidents == 'skip' and mapping.rule == 'fallback':
            return False
        # A merged incident is counted by the incident it was merged into.
        return not (incident.merged and self.dora is not None and self.dora.can_remove)

    def observe(self, incident: Incident, entries: list[LogEntry] | None = None) -> None:
        """Bring one incident's record up to date: decide (pure), read its own log if that is needed, then output."""
        state, run = self.state, self._run
        assert state.live_since is not None and state.feed is not None
        record = state.incidents.get(incident.id)
        if not self._in_scope(incident):
            self._out_of_scope(incident, record)
            return
        if record is None and entries is None:
            if incident.created_at >= max(state.feed.horizon, state.live_since):
                # Created where the feed has not read yet: the feed reports it, with its whole story.
                return
            if not incident.is_open and (incident.resolved_at or incident.created_at) < run.now - RESOLVED_RETENTION:
                self._history(incident)
                return
        # A record is forgotten only once resolved for `RESOLVED_RETENTION`: younger incidents without
        # one are news when the log shows them; a list alone never makes one news.
        news_since = max(state.live_since, run.now - RESOLVED_RETENTION) if entries is not None else None
        replay = Replay.of(record, incident, news_since)
        transitions: list[Transition] = []
        for entry in entries or []:
            transitions += apply_entry(replay, entry.action, entry.at, incident)
        horizons = Horizons(state.live_since, state.feed.horizon, state.baseline, run.now, OVERLAP)
        settled = settle(replay, incident, record, horizons)
        if isinstance(settled, ReadLog):
            settled = settle(replay, incident, record, horizons, self.client.incident_log(incident.id, settled.since))
            assert not isinstance(settled, ReadLog)
        transitions += settled
        transitions += field_changes(record, incident, run.now)
        self._commit(incident, record, replay, transitions)

    def _commit(self, incident: Incident, record: Any, replay: Replay, transitions: list[Transition]) -> None:
        """Queue the DORA failure, emit the transitions and record the incident: the output of one observation."""
        state, run = self.state, self._run
        mapping = self._map(incident, run.catalog)
        if self.keep_mappings:
            run.report.mappings[incident.id] = (incident, mapping)
        tags = mapping_tags(incident, mapping)
        wanted = self._qualifies(incident, mapping)
        fingerprint = record.fingerprint if record is not None else ''
        can_remove = self.dora is not None and self.dora.can_remove
        if wanted or (_sent(fingerprint) and not can_remove):
            # A failure already sent that no longer qualifies is followed to its resolve when it cannot be removed.
            fingerprint = self._deliver_failure(incident, mapping, tags, fingerprint, count=wanted)
        elif _sent(fingerprint) and self.dora is not None:
            self.dora.remove(incident.id)
            fingerprint = ''
        if record is None and not wanted:
            self._count_unmapped(mapping)
        self._emit(transitions, mapping, tags, wanted)

        state.incidents[incident.id] = record_of(
            incident, replay, fingerprint=fingerprint, tags=tags if wanted else [], wanted=wanted, checked_at=run.now
        )

    def _history(self, incident: Incident) -> None:
        """An incident resolved long before this look: its DORA failure only, nothing to remember or emit."""
        run = self._run
        mapping = self._map(incident, run.catalog)
        if self.keep_mappings:
            run.report.mappings[incident.id] = (incident, mapping)
        if self._qualifies(incident, mapping):
            tags = mapping_tags(incident, mapping)
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
            if self.dora is not None:
                self.dora.enqueue(incident.id, build_failure(incident, mapping))
        else:
            self._count_unmapped(mapping)

    def _count_unmapped(self, mapping: MappingResult) -> None:
        """Count an incident first left out because it reached the fallback rule under `unmapped_incidents: skip`."""
        if self.settings.unmapped_incidents == 'skip' and mapping.rule == 'fallback':
            self.outputs.count('incidents.skipped', 1, ['reason:unmapped'])

    def _out_of_scope(self, incident: Incident, record: Any) -> None:
        """An incident outside `service_ids`/`team_ids`: a failure it left behind is removed or followed.

        Its record stays (not wanted) while it is open, so that coming back into scope is not news.
        """
        if record is None:
            return
        if _sent(record.fingerprint) and self.dora is not None:
            if self.dora.can_remove:
                self.dora.remove(incident.id)
                record.fingerprint = ''
            else:
                mapping = self._map(incident, self._run.catalog)
                record.fingerprint = self._deliver_failure(incident, mapping, [], record.fingerprint, count=False)
        record.wanted, record.tags, record.checked_at = False, [], self._run.now
        if not incident.is_open:
            del self.state.incidents[incident.id]

    def _emit(self, transitions: list[Transition], mapping: MappingResult, tags: list[str], wanted: bool) -> None:
        if not transitions:
            return
        if not wanted:
            self.outputs.count('incidents.filtered', 1, tags)
            if self.attribution is not None:
                for transition in transitions:
                    self.attribution.on_transition(transition, mapping, wanted=False)
            return
        for transition in transitions:
            self.log.debug(
                'Incident #%d %s (mapping_rule=%s service=%s team=%s env=%s)',
                transition.incident.number,
                transition.kind,
                mapping.rule,
                for_log(','.join(mapping.services)),
                for_log(mapping.team),
                for_log(mapping.env),
            )
            notes = []
            if self.attribution is not None:
                line = self.attribution.on_transition(transition, mapping)
                if line:
                    notes.append(line)
            self.outputs.transition(transition, mapping, tags, self._run.now, notes)

    def redeliver(self, incident: Incident) -> None:
        """Queue the failure of a history incident for delivery only (no record, no event)."""
        if self.dora is None or not self._in_scope(incident):
            return
        mapping = self._map(incident, self._run.catalog)
        if self._qualifies(incident, mapping):
            self.dora.enqueue(incident.id, build_failure(incident, mapping))

    def _deliver_failure(
        self, incident: Incident, mapping: MappingResult, tags: list[str], fingerprint: str, *, count: bool = True
    ) -> str:
        """Queue the incident's DORA failure when its mapped state changed; return the fingerprint to record.

        With DORA delivery off the fingerprint is still recorded, marked as not delivered, so that
        turning delivery on later sends every incident seen since.
        """
        if not fingerprint and count:
            # First time this incident is mapped (fingerprints are recorded from then on).
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
        attributes = build_failure(incident, mapping)
        current = fingerprint_of(attributes)
        if self.dora is None:
            return UNDELIVERED + current
        if current != fingerprint:
            self.dora.enqueue(incident.id, attributes)
        return current

    # Bookkeeping -------------------------------------------------------------------------------

    def _switch_delivery(self, now: float) -> None:
        """Turning DORA delivery on after runs without it re-sends the history those runs kept back."""
        state = self.state
        delivering = self.dora is not None
        if delivering and not state.delivering and state.horizon is not None:
            since = now - self.settings.backfill_days * DAY
            state.resend_end = max(since + 1, min(state.horizon, now))
            state.resend = Window(since=since, until=min(state.resend_end, since + MAX_WINDOW))
        state.delivering = delivering

    def _prune(self, now: float) -> None:
        incidents = self.state.incidents
        stale = [
            key
            for key, record in incidents.items()
            if record.status == 'resolved' and (record.resolved_at or record.created_at) < now - RESOLVED_RETENTION
        ]
        for key in stale:
            del incidents[key]

    def _report_gauges(self, now: float, report: RunReport) -> None:
        state = self.state
        if state.horizon is not None:
            reached = state.feed.horizon if state.feed is not None and state.window is None else state.horizon
            self.outputs.gauge('collection.lag', max(0.0, now - min(reached, now)), [])
        if self.dora is not None:
            self.outputs.gauge('dora.pending', self.dora.pending, [])
        if not state.baseline:
            return
        counts = open_gauges(r for r in state.incidents.values() if r.wanted)
        for tags in self._open_tag_sets - set(counts):
            self.outputs.gauge('incidents.open', 0, list(tags))
        for tags, value in counts.items():
            self.outputs.gauge('incidents.open', value, list(tags))
        self._open_tag_sets = set(counts)


def _sent(fingerprint: str) -> bool:
    return bool(fingerprint) and not fingerprint.startswith(UNDELIVERED)


@dataclass
class _Run:
    """What every step of one run shares."""

    catalog: Catalog
    now: float
    report: RunReport
