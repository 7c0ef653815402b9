# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Turns PagerDuty's log and incident lists into transitions, each emitted once, and remembers where it is.

`GET /incidents` filters on creation time only and an incident object shows only its current state,
so no list of incidents can say what happened to an old incident between two runs. Each run does,
in this order:

1. **The change feed**: the account's log entries (`GET /log_entries`) since the last run, each with
   its incident embedded, in windows that each fit one page (`passes.py`). Every entry is added to
   its incident's story and the story is replayed (`transitions.py`): each transition is named by
   the entry that proves it and reported once, in time order, also when PagerDuty indexed the entry
   late or several changes happened between two runs. Cost follows activity: an idle account costs
   one request.
2. **Reconciliation**: a share of the open incidents each run, paced so that a pass completes
   within about ten minutes at any open count, resumed by position. It finds what has no log entry
   (a priority change, a service move) and anything the feed missed; an open incident it recorded
   but did not meet in a whole pass is read by id (resolved, deleted, merged or moved out of scope).
   The first pass, when collection goes live, is read whole: it is the baseline of what was open.
3. **The creation-time sweep**: `backfill_days` of history before going live (DORA failures only).

**One clock.** Every time compared with PagerDuty's timestamps is PagerDuty's own: collection goes
live at the `Date` of its first answer, and each run reads the log up to the `Date` of the feed's
first answer. The Agent's clock only schedules and bounds runs, so skew between the two changes
nothing.

**Never settled on a guess.** An incident the collector holds no record of (forgotten after its
resolve, loaded as history, never in scope) is never given its current status silently once
collection is live: its own log is read and replayed, so a reopen of an incident of any age is a
reopen. Only the baseline takes incidents as they are.

**Delivery truth.** A record says which DORA failure the incident should have (`desired`) and
which one Datadog accepted (`delivered`); the queue reports what it delivered. A payload lost to
an outage, the queue's bounds or a crash is noticed at the next run and read again by id.

State lives in memory during a run and is written to the persistent cache when the run ends, even
when it ends with an error; the Agent sends a run's events only after the run, so state and events
stay in step across restarts.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult, map_incident, passes_filters
from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.common.http import (
    ApiError,
    AuthError,
    BudgetExhausted,
    DeadlineReached,
    RateLimited,
    RequestRejected,
    UnreadableResponse,
)
from datadog_checks.pagerduty_dora.common.text import digest, for_log
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.dora import REJECTED, build_failure
from datadog_checks.pagerduty_dora.datadog.dora import fingerprint as fingerprint_of
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs, mapping_tags, open_gauges
from datadog_checks.pagerduty_dora.datadog.readback import Readback
from datadog_checks.pagerduty_dora.pagerduty.client import LogEntry, PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, MalformedIncident, parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import (
    NEW,
    Base,
    Step,
    Transition,
    adopt,
    field_changes,
    fold,
    observed,
    replay,
)

from .passes import DAY, OVERLAP, RECONCILE_PERIOD, Passes
from .rebuild import payload_digest, read_record
from .settings import Settings
from .state import CollectorState, Feed, IncidentRecord, Window

STATE_KEY = 'collector'
# Digests of the DORA failures Datadog held when the state was rebuilt, kept until history is compared.
HELD_KEY = 'failures_held'
# Rebuild attempts in a row that failed for a passing reason.
REBUILD_KEY = 'rebuild_attempts'
# Runs a rebuild is retried (nothing collected meanwhile) before the check starts as on a first run.
REBUILD_ATTEMPTS = 3
# How often Datadog's open failures are compared with PagerDuty (PagerDuty time).
DRIFT_INTERVAL = DAY
# Resolved incidents are remembered this long; an older one that comes back is read from its own log.
RESOLVED_RETENTION = 3 * DAY
# A page is read only while at most this many DORA failures wait for delivery.
MAX_QUEUED_BEFORE_SWEEP = 100
# Incidents whose own log may be read in one run (those without a record that the feed or
# reconciliation meets); past it, the run stops and the next one goes on from there.
MAX_LOG_READS_PER_RUN = 30
# Incidents read again by id in one run because their DORA failure went missing.
MAX_REFETCH_PER_RUN = 20
# Longest pause between two runs taken into account when a stored horizon is repaired.
MAX_REPAIR_SPAN = 7 * DAY
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
        readback: Readback | None = None,
        record_query: str = '',
    ) -> None:
        self.client = client
        # Reads back from Datadog what this instance sent (with `datadog_app_key`): a state that
        # starts empty is rebuilt from it, and a daily drift check compares it with PagerDuty.
        self.readback = readback
        self._record_query = record_query
        # Digests of the failures Datadog holds, while a rebuilt state's history is compared with them.
        self._held: dict[str, str] | None = None
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
        self._fresh = False
        self._deadline = float('inf')
        self._warned_malformed: set[str] = set()
        # Catalog, report and feed position of the run under way, shared by the steps the passes call.
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
        self._fresh = not raw
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
        self.client.now = None
        # A dry run starts empty and stores nothing: it has nothing to rebuild.
        rebuilding = self._fresh and self.persist and self.readback is not None and state.live_since is None
        if rebuilding and not self._rebuild():
            report.stopped = 'rebuild'
            return report
        feed = state.feed
        self._run = _Run(catalog, report, read_start=feed.horizon - OVERLAP if feed is not None else float('inf'))
        passes = Passes(self.client, self)
        try:
            self._deliver()
            self._find_undelivered()
            if state.live_since is not None and state.feed is not None:
                passes.read_feed(state.feed, state.live_since)
            passes.reconcile(state, self.client.now, self._reconcile_pages())
            self._go_live()
            now = self.now()
            self._switch_delivery(now)
            if state.horizon is None:
                state.horizon = now - self.settings.backfill_days * DAY
            self._check_drift(now)
            self._refetch(passes)
            passes.sweep(state, self._sweep_target(now))
            passes.resend(state)
            # What this run found goes out in this run.
            self._deliver()
            report.sweep_complete = self._history_complete(now)
        except (BudgetExhausted, RateLimited, DeadlineReached, StopRun) as e:
            report.stopped = str(e)
            self.log.info('Collection paused until the next run: %s', e)
        finally:
            report.pages = passes.pages
            if state.live_since is not None:
                now = self.now()
                self._prune(now)
                state.last_run = (now, self._clock())
                self._forget_record(now)
            self._report_gauges(self.now(), report)
            self.save()
            if self.dora is not None:
                self.dora.save()
            if self.attribution is not None:
                self.attribution.save()
        return report

    def _rebuild(self) -> bool:
        """Rebuild an empty state from what Datadog holds; False to try again next run (nothing collected meanwhile).

        Without the record, the check starts as on a first run: history is sent again as DORA
        failures (idempotent by id) and no event is sent for what happened before it went live.
        """
        assert self.readback is not None
        state = self.state
        now = self.fallback_now()
        attempts = _count(self._read_cache(REBUILD_KEY))
        try:
            record = read_record(
                self.readback,
                query=self._record_query,
                now=now,
                history_since=now - (self.settings.backfill_days + 1) * DAY,
            )
        except (AuthError, RequestRejected) as e:
            # Refused for good (a missing permission, an API this site does not have): no retry helps.
            self._rebuild_failed('forbidden' if isinstance(e, AuthError) else 'rejected', e, final=True)
            return True
        except ApiError as e:
            attempts += 1
            final = attempts >= REBUILD_ATTEMPTS
            if self.persist:
                self._write_cache(REBUILD_KEY, '0' if final else str(attempts))
            self._rebuild_failed('error', e, final=final)
            return final
        if self.persist:
            self._write_cache(REBUILD_KEY, '0')
        # What happened after the last event Datadog holds was not reported. Without any event there is
        # no sign of when the earlier node went live: collection goes live at PagerDuty's first answer,
        # as on a first run.
        start = record.last_event_at
        if start is not None:
            state.live_since = start
            state.feed = Feed(horizon=start)
        state.rebuilt = {key: sorted(keys) for key, keys in record.emitted.items()}
        state.rebuilt_at = state.drift_at = now
        self._held = record.failures
        if self.persist:
            self._write_cache(HELD_KEY, json.dumps(record.failures, separators=(',', ':')))
        self.outputs.count('rebuild', 1, ['result:rebuilt'])
        self.log.info(
            'Rebuilt the collection state from Datadog: %d events, %d DORA failures; reading PagerDuty from %s',
            record.events,
            len(record.failures),
            format_time(start) if start is not None else 'now',
        )
        return True

    def _rebuild_failed(self, reason: str, error: ApiError, *, final: bool) -> None:
        self.outputs.count('rebuild', 1, ['result:{}'.format('fallback' if final else 'retry'), 'reason:' + reason])
        then = (
            'starting as on a first run: history is sent again as DORA failures, and nothing that happened '
            'before this run is reported as an event'
            if final
            else 'nothing is collected until it is tried again next run'
        )
        self._warning('Could not rebuild the collection state from Datadog (%s); %s', error, then)

    def _forget_record(self, now: float) -> None:
        """Drop what the rebuild read once it has served: events once the feed is past it, failures once history is."""
        state = self.state
        if not state.rebuilt_at:
            return
        if state.rebuilt and state.feed is not None and state.feed.horizon > state.rebuilt_at + DAY:
            state.rebuilt = {}
        if self._history_complete(now) and state.resend is None:
            state.rebuilt_at = 0.0
            self._held = {}
            if self.persist:
                self._write_cache(HELD_KEY, '')

    def _held_failures(self) -> dict[str, str]:
        """Digests of the failures Datadog held at the rebuild, while history is compared with them."""
        if self._held is None:
            raw = self._read_cache(HELD_KEY)
            try:
                held = json.loads(raw) if raw else {}
            except (ValueError, RecursionError):
                held = {}
            self._held = {str(k): str(v) for k, v in held.items()} if isinstance(held, dict) else {}
        return self._held

    def _check_drift(self, now: float) -> None:
        """Once a day, read Datadog's open failures and queue every one PagerDuty does not show open for repair."""
        state = self.state
        if self.readback is None or self.dora is None or not state.baseline or now - state.drift_at < DRIFT_INTERVAL:
            return
        state.drift_at = now
        found = 0
        try:
            for failure in self.readback.failures(now - self.settings.backfill_days * DAY, now + 3600):
                record = state.incidents.get(failure.incident_id)
                if failure.open and failure.exact_id and (record is None or record.status == 'resolved'):
                    if record is not None:
                        # Datadog does not hold what the record says it accepted.
                        record.delivered = ''
                    if failure.incident_id not in state.refetch:
                        state.refetch.append(failure.incident_id)
                        found += 1
        except ApiError as e:
            self._warning('The daily comparison of DORA failures with PagerDuty could not read them (%s)', e)
            return
        self.outputs.count('dora.drift', found, ['result:queued'])

    def now(self) -> float:
        """PagerDuty's time: the `Date` of its latest answer (the Agent's clock only before any answer)."""
        return self.client.now if self.client.now is not None else self.fallback_now()

    def fallback_now(self) -> float:
        """The Agent's clock, for a server that dates none of its answers."""
        return float(math.floor(self._clock()))

    def _go_live(self) -> None:
        """Collection goes live at PagerDuty's time of its first answer: what happens from then on is news."""
        state = self.state
        if state.live_since is None and self.client.now is not None:
            state.live_since = self.client.now
            state.feed = Feed(horizon=self.client.now)
            state.drift_at = self.client.now

    # Steps the passes call -------------------------------------------------------------------

    def before_request(self) -> None:
        """Stop at the run deadline."""
        self._check_deadline()

    def before_sweep_request(self) -> None:
        """Stop at the run deadline, and read no more history while DORA delivery is behind (its queue is bounded)."""
        self._check_deadline()
        if self.dora is not None and self.dora.pending > MAX_QUEUED_BEFORE_SWEEP:
            raise StopRun('DORA deliveries are behind; reading continues once they catch up')

    def deliver(self) -> None:
        self._deliver()
        self._check_deadline()

    def _deliver(self) -> None:
        """Flush the outputs' queues and record what Datadog accepted."""
        if self.dora is not None:
            self.dora.flush()
            incidents = self.state.incidents
            for key, accepted in self.dora.take_outcomes():
                record = incidents.get(key)
                if record is not None:
                    record.delivered = accepted
        if self.attribution is not None:
            self.attribution.flush()

    def _check_deadline(self) -> None:
        if self._monotonic() > self._deadline:
            raise StopRun('the run reached its time limit')

    def warning(self, message: str, *args: Any) -> None:
        self._warning(message, *args)

    def skipped_entries(self, reason: str, count: int) -> None:
        """Log entries that could not be used: counted, and warned about once per run."""
        self.outputs.count('log_entries.skipped', count, ['reason:{}'.format(reason)])
        if reason not in self._run.warned:
            self._run.warned.add(reason)
            self._warning('Skipped %d PagerDuty log entries that could not be used (%s)', count, reason)

    def horizon_ahead(self, feed: Feed, now: float) -> None:
        """The stored feed position is ahead of PagerDuty's clock: read again from where the last run really was."""
        state = self.state
        last = state.last_run
        span = min(max(self._clock() - last[1], 0.0), MAX_REPAIR_SPAN) if last is not None else DAY
        repaired = now - span - OVERLAP
        self._warning(
            "The stored position of the change feed (%s) is ahead of PagerDuty's clock (%s); reading again from %s",
            format_time(feed.horizon),
            format_time(now),
            format_time(repaired),
        )
        self.outputs.count('collection.repaired', 1, ['what:feed_horizon'])
        feed.horizon, feed.window = repaired, None
        self._run.read_start = min(self._run.read_start, repaired - OVERLAP)

    def gone(self, key: str) -> None:
        """The incident was deleted in PagerDuty: its failure must not stay open."""
        if self.attribution is not None:
            self.attribution.gone(key)
        record = self.state.incidents.get(key)
        if record is None:
            return
        if not record.delivered or record.delivered.startswith(REJECTED) or self.dora is None:
            del self.state.incidents[key]
            if self.dora is not None:
                # A failure still waiting to be sent for it never is.
                self.dora.discard(key)
            return
        if self.dora.can_remove:
            record.desired, record.status, record.wanted, record.tags = '', 'resolved', False, []
            self._want(key, record, None)
            return
        del self.state.incidents[key]
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

    def _history_complete(self, now: float) -> bool:
        state = self.state
        return state.window is None and state.horizon is not None and state.horizon >= self._sweep_target(now) - 1

    def _reconcile_pages(self) -> int:
        """Pages of open incidents this run, so that a whole pass takes about `RECONCILE_PERIOD` seconds.

        The pace is `open / 100 × interval / RECONCILE_PERIOD` pages a run, at least one: what is
        left of a page is carried to the next run, so on average an idle run costs the feed's request
        plus that share (at the default interval, 1 + open / 1000).
        """
        state = self.state
        open_records = sum(1 for record in state.incidents.values() if record.status != 'resolved')
        rate = open_records / 100 * self.settings.interval / RECONCILE_PERIOD
        due = state.reconcile_credit + rate
        pages = max(1, math.floor(due))
        state.reconcile_credit = min(max(due - pages, 0.0), 1.0)
        return pages

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

    def _wanted(self, incident: Incident, mapping: MappingResult) -> bool:
        """Whether the incident counts: in the filters, and mapped unless unmapped incidents are sent."""
        if not passes_filters(incident, urgencies=self.settings.urgencies, priorities=self.settings.priorities):
            return False
        return not (self.settings.unmapped_incidents == 'skip' and mapping.rule == 'fallback')

    def _failure_wanted(self, incident: Incident, wanted: bool) -> bool:
        """Whether the incident should have a DORA failure: wanted, and not merged away (the survivor carries it)."""
        return wanted and not (incident.merged and self.dora is not None and self.dora.can_remove)

    def observe(self, incident: Incident, entries: list[LogEntry] | None = None) -> None:
        """Bring one incident's record up to date from its object and any log entries just read."""
        self._go_live()
        state = self.state
        record = state.incidents.get(incident.id)
        if not self._in_scope(incident):
            self._out_of_scope(incident, record)
            return
        now = self.now()
        steps = [Step(e.id, e.at, e.action, e.evidence, e.kind) for e in entries or []]
        if record is None:
            story = self._first_look(incident, steps, now, from_feed=entries is not None)
            if story is None:
                return
            base, steps, emitted = story
        else:
            base, emitted = record.base, set(record.emitted)
            steps = _merged(record.steps, steps)
        transitions, end = replay(base, steps, incident)
        if end.status != incident.status and self._missed(incident):
            # The feed read past this change without showing it: the incident's own log tells, and
            # only when even that cannot explain it is the incident's own status taken.
            if record is not None:
                steps = _merged(steps, self._read_log(incident, base.at))
                transitions, end = replay(base, steps, incident)
            if end.status != incident.status:
                transitions += adopt(end, incident, now)
                base, steps = observed(incident, now), []
                base.acked = base.acked or end.acked
                end = base
        elif end.status != incident.status and record is None and end.status != NEW:
            # Its log does not explain its status yet (an entry not indexed yet): decided on a later look.
            return
        new = [t for t in transitions if t.key not in emitted]
        emitted.update(t.key for t in new)
        if record is not None and not record.wanted:
            # Coming back into scope or the filters is not news: nothing that happened meanwhile is reported.
            new = []
        if state.feed is not None:
            base, steps, folded = fold(base, steps, state.feed.horizon - OVERLAP, incident)
            emitted -= folded
        if record is not None:
            previous = (record.priority, record.urgency, record.service_id, record.service_name)
            new += field_changes(previous, incident, steps, now)
        self._commit(incident, record, end, base, steps, emitted, new)

    def _first_look(
        self, incident: Incident, steps: list[Step], now: float, *, from_feed: bool
    ) -> tuple[Base, list[Step], set[str]] | None:
        """The story of an incident without a record, and the keys of what in it is not news; None to leave it.

        During the baseline the incident is taken as it is (nothing before going live is news). After
        it, an incident whose whole life lies in what the feed reads starts from nothing; any other
        is read from its own log, and only what happened since the cut is news.
        """
        state = self.state
        live = state.live_since if state.live_since is not None else now
        read_start = self._run.read_start
        if from_feed:
            if incident.created_at >= read_start:
                transitions, _ = replay(Base(), steps, incident)
                return Base(), steps, self._not_news(incident, transitions, live)
            return self._from_log(incident, steps, max(read_start, live))
        if incident.created_at >= max(live, min(read_start, state.feed.horizon if state.feed else live)):
            # Created where the feed reads: it reports the incident, with its whole story.
            return None
        if not state.baseline:
            return observed(incident, now), [], set()
        return self._from_log(incident, steps, live if incident.created_at >= live else read_start)

    def _from_log(self, incident: Incident, steps: list[Step], cut: float) -> tuple[Base, list[Step], set[str]]:
        """The incident's whole story from its own log; what happened before `cut` is not news."""
        steps = _merged(self._read_log(incident, None), steps)
        transitions, _ = replay(Base(), steps, incident)
        return Base(), steps, self._not_news(incident, transitions, cut)

    def _not_news(self, incident: Incident, transitions: list[Transition], cut: float) -> set[str]:
        """Keys of the transitions not to report: before `cut`, or reported already as Datadog's record shows."""
        reported = self.state.rebuilt.get(incident.id, ())
        return {t.key for t in transitions if t.at < cut or t.key.lower() in reported}

    def _read_log(self, incident: Incident, since: float | None) -> list[Step]:
        run = self._run
        if run.log_reads >= MAX_LOG_READS_PER_RUN:
            raise StopRun(
                'read the logs of {} incidents this run; the rest waits for the next one'.format(run.log_reads)
            )
        run.log_reads += 1
        self._check_deadline()
        entries = self.client.incident_log(incident.id, since)
        return [Step(e.id, e.at, e.action, e.evidence, e.kind) for e in entries]

    def _missed(self, incident: Incident) -> bool:
        """Whether the incident's status change should have been shown by the feed already."""
        feed = self.state.feed
        if feed is None or not self.state.baseline:
            return False
        changed = incident.last_status_change_at
        return changed is None or changed < feed.horizon - OVERLAP

    def _commit(
        self,
        incident: Incident,
        record: IncidentRecord | None,
        end: Base,
        base: Base,
        steps: list[Step],
        emitted: set[str],
        transitions: list[Transition],
    ) -> None:
        """Record the incident, want its DORA failure, and emit its transitions: the output of one look."""
        run = self._run
        mapping = self._map(incident, run.catalog)
        if self.keep_mappings:
            run.report.mappings[incident.id] = (incident, mapping)
        tags = mapping_tags(incident, mapping)
        wanted = self._wanted(incident, mapping)
        status = end.status if end.status != NEW else incident.status
        updated = IncidentRecord(
            status=status,
            priority=incident.priority,
            urgency=incident.urgency,
            service_id=incident.service_id,
            service_name=incident.service_name,
            created_at=incident.created_at,
            resolved_at=(end.resolved_at or incident.resolved_at) if status == 'resolved' else None,
            delivered=record.delivered if record is not None else self._held_delivery(incident, mapping),
            tags=tags if wanted and status != 'resolved' else [],
            acked=end.acked,
            wanted=wanted,
            checked_at=self.now(),
            base=base,
            steps=steps,
            emitted=sorted(emitted),
            counted=record.counted if record is not None else False,
        )
        if wanted and not updated.counted:
            updated.counted = True
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
        elif record is None and not wanted:
            self._count_unmapped(mapping)
        if self._failure_wanted(incident, wanted):
            updated.desired = self._want(incident.id, updated, build_failure(incident, mapping))
        elif updated.delivered and not updated.delivered.startswith(REJECTED) and not self._can_remove():
            # A failure already sent that no longer counts is followed to its resolve when it cannot be removed.
            updated.desired = self._want(incident.id, updated, build_failure(incident, mapping))
        else:
            updated.desired = self._want(incident.id, updated, None)
        self.state.incidents[incident.id] = updated
        transitions = sorted(transitions, key=lambda t: t.at)
        notes = self.attribution.observe(incident, mapping, wanted, transitions) if self.attribution is not None else {}
        self._emit(transitions, mapping, tags, wanted, notes)

    def _held_delivery(self, incident: Incident, mapping: MappingResult) -> str:
        """For an incident first seen after a rebuild: the fingerprint of its failure if Datadog holds it as it is."""
        held = self._held_failures().get(incident.id) if self.state.rebuilt_at else None
        if held is None:
            return ''
        attributes = build_failure(incident, mapping)
        return fingerprint_of(attributes) if payload_digest(attributes) == held else ''

    def _can_remove(self) -> bool:
        return self.dora is not None and self.dora.can_remove

    def _want(self, key: str, record: IncidentRecord, attributes: dict | None) -> str:
        """Queue what the incident's failure should become unless Datadog has it already; return its fingerprint.

        None asks for no failure: a removal is queued for one Datadog holds. With DORA delivery off
        nothing is queued; the record keeps what is wanted, and turning delivery on sends it.
        """
        desired = fingerprint_of(attributes) if attributes is not None else ''
        if self.dora is None:
            return desired
        waiting = self.dora.queued(key)
        if waiting == desired:
            return desired
        if _settled(record.delivered, desired):
            if waiting is not None:
                # A change queued earlier is no longer wanted: Datadog already holds what is.
                self.dora.discard(key)
            return desired
        if attributes is not None:
            self.dora.enqueue(key, attributes)
        elif self.dora.can_remove:
            self.dora.remove(key)
        elif waiting is not None:
            self.dora.discard(key)
        return desired

    def _count_unmapped(self, mapping: MappingResult) -> None:
        """Count an incident first left out because it reached the fallback rule under `unmapped_incidents: skip`."""
        if self.settings.unmapped_incidents == 'skip' and mapping.rule == 'fallback':
            self.outputs.count('incidents.skipped', 1, ['reason:unmapped'])

    def _out_of_scope(self, incident: Incident, record: IncidentRecord | None) -> None:
        """An incident outside `service_ids`/`team_ids`: a failure it left behind is removed or followed.

        Its record stays (not wanted) while it is open, so that coming back into scope is not news.
        """
        if record is None:
            return
        if self.attribution is not None:
            self.attribution.gone(incident.id, 'out_of_scope')
        now = self.now()
        if self._can_remove() or not record.delivered:
            record.desired = self._want(incident.id, record, None)
        else:
            mapping = self._map(incident, self._run.catalog)
            record.desired = self._want(incident.id, record, build_failure(incident, mapping))
        record.wanted, record.tags, record.checked_at = False, [], now
        record.status = incident.status
        record.base, record.steps, record.emitted = observed(incident, now), [], []
        if not incident.is_open and _settled(record.delivered, record.desired):
            del self.state.incidents[incident.id]

    def _emit(
        self,
        transitions: list[Transition],
        mapping: MappingResult,
        tags: list[str],
        wanted: bool,
        notes: dict[int, str],
    ) -> None:
        """Events and metrics of the transitions of one look (oldest first); `notes[i]` is a line for the i-th event."""
        if not transitions:
            return
        if not wanted:
            self.outputs.count('incidents.filtered', 1, tags)
            return
        now = self.now()
        for index, transition in enumerate(transitions):
            self.log.debug(
                'Incident #%d %s (mapping_rule=%s service=%s team=%s env=%s)',
                transition.incident.number,
                transition.kind,
                mapping.rule,
                for_log(','.join(mapping.services)),
                for_log(mapping.team),
                for_log(mapping.env),
            )
            note = notes.get(index)
            self.outputs.transition(transition, mapping, tags, now, [note] if note else [])

    def redeliver(self, incident: Incident) -> None:
        """Queue the failure of an incident met by the re-sending of history (delivery was off)."""
        if self.dora is None or not self._in_scope(incident):
            return
        record = self.state.incidents.get(incident.id)
        if record is not None:
            self.observe(incident)
            return
        mapping = self._map(incident, self._run.catalog)
        if self._failure_wanted(incident, self._wanted(incident, mapping)):
            self.dora.enqueue(incident.id, build_failure(incident, mapping))

    def _history(self, incident: Incident) -> None:
        """An incident resolved long before this look: its DORA failure only, nothing to remember or emit."""
        run = self._run
        mapping = self._map(incident, run.catalog)
        if self.keep_mappings:
            run.report.mappings[incident.id] = (incident, mapping)
        if self._failure_wanted(incident, self._wanted(incident, mapping)):
            tags = mapping_tags(incident, mapping)
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
            if self.dora is not None:
                attributes = build_failure(incident, mapping)
                if self._held_delivery(incident, mapping) != fingerprint_of(attributes):
                    self.dora.enqueue(incident.id, attributes)
        else:
            self._count_unmapped(mapping)

    def sweep_incident(self, incident: Incident) -> None:
        """One incident of the history sweep: a resolved one without a record is history (its failure only)."""
        if not self._in_scope(incident):
            return
        if incident.id not in self.state.incidents and not incident.is_open:
            self._history(incident)
            return
        self.observe(incident)

    # Bookkeeping -------------------------------------------------------------------------------

    def _find_undelivered(self) -> None:
        """Records whose DORA failure is outstanding but no longer queued (dropped, or lost in a crash)."""
        if self.dora is None:
            return
        state = self.state
        queued = set(state.refetch)
        for key, record in state.incidents.items():
            if _settled(record.delivered, record.desired) or key in queued:
                continue
            waiting = self.dora.queued(key)
            if waiting == record.desired:
                continue
            if record.desired == '' and self.dora.can_remove:
                self.dora.remove(key)
                continue
            state.refetch.append(key)
            queued.add(key)

    def _refetch(self, passes: Passes) -> None:
        """Read again by id the incidents whose failure went missing or disagrees with Datadog, and want it again."""
        state = self.state
        done = 0
        while state.refetch and done < MAX_REFETCH_PER_RUN and self.dora is not None:
            key = state.refetch[0]
            record = state.incidents.get(key)
            if record is None or not _settled(record.delivered, record.desired):
                self.before_request()
                done += 1
                try:
                    raw = self.client.get_incident(key)
                except UnreadableResponse:
                    self.skipped_entries('unreadable_incident', 1)
                    state.refetch.pop(0)
                    continue
                passes.pages += 1
                incident = self.parse(raw) if raw is not None else None
                if raw is None and record is not None:
                    self.gone(key)
                elif raw is None and self.dora.can_remove:
                    self.dora.remove(key)
                elif incident is not None:
                    self.sweep_incident(incident)
            state.refetch.pop(0)

    def _switch_delivery(self, now: float) -> None:
        """Turning DORA delivery on after runs without it re-sends what those runs kept back.

        Incidents with a record are wanted again by `_find_undelivered`; the others (history, and
        incidents resolved and forgotten meanwhile) are re-read by creation time up to now.
        """
        state = self.state
        delivering = self.dora is not None
        if delivering and not state.delivering and state.horizon is not None:
            since = now - self.settings.backfill_days * DAY
            state.resend_end = max(since + 1, now)
            state.resend = Window(since=since, until=min(state.resend_end, since + 180 * DAY))
        state.delivering = delivering

    def _prune(self, now: float) -> None:
        incidents = self.state.incidents
        stale = [
            key
            for key, record in incidents.items()
            if record.status == 'resolved'
            and ((record.resolved_at or record.created_at) < now - RESOLVED_RETENTION or not record.wanted)
            and (self.dora is None or _settled(record.delivered, record.desired))
        ]
        for key in stale:
            del incidents[key]

    def _report_gauges(self, now: float, report: RunReport) -> None:
        state = self.state
        if state.horizon is not None:
            feed = state.feed
            reached = feed.horizon if feed is not None and self._history_complete(now) else state.horizon
            self.outputs.gauge('collection.lag', max(0.0, now - min(reached, now)), [])
        if self.dora is not None:
            self.outputs.gauge('dora.pending', self.dora.pending, [])
        if not state.baseline:
            return
        counts = open_gauges(r for r in state.incidents.values() if r.wanted)
        current = {tuple(tags) for tags in counts}
        for tags in {tuple(tags) for tags in state.gauged} - current:
            self.outputs.gauge('incidents.open', 0, list(tags))
        for tags, value in counts.items():
            self.outputs.gauge('incidents.open', value, list(tags))
        state.gauged = [list(tags) for tags in sorted(current)]


def _count(raw: str | None) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


def _settled(delivered: str, desired: str) -> bool:
    """Whether Datadog holds what is wanted (or refused it for good, so that re-sending it would fail again)."""
    return delivered == desired or delivered == REJECTED + desired


def _merged(steps: Iterable[Step], more: Iterable[Step]) -> list[Step]:
    """`steps` and the steps of `more` not among them (by entry id), in that order."""
    out = list(steps)
    known = {step.id for step in out}
    for step in more:
        if step.id not in known:
            known.add(step.id)
            out.append(step)
    return out


@dataclass
class _Run:
    """What every step of one run shares."""

    catalog: Catalog
    report: RunReport
    # Where this run's change feed reading starts: entries before it were read by earlier runs.
    read_start: float
    log_reads: int = 0
    warned: set[str] = field(default_factory=set)
