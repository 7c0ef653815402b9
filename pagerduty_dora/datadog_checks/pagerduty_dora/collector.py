# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Turns PagerDuty's incident lists into transitions, each emitted once, and remembers where it is.

How every transition is seen, although `GET /incidents` filters on creation time only:
- incidents created since the last run come from a creation-time sweep (`since`/`until`), which on
  the first run also walks back `backfill_days` of history, in windows sized so that no window
  holds more than PagerDuty's 10,000-record offset cap;
- every open incident, whatever its age, is listed each run (`statuses[]` open, `date_range=all`):
  acknowledgements, unacknowledgements, priority, urgency and service changes show there, and an
  old incident that is open again but not open in our records was reopened;
- an incident we hold as open that is missing from that list is fetched by id: that is its resolve;
  when it went from triggered to resolved between two runs, its log entries tell whether it was
  acknowledged in between (a resolved incident no longer lists its acknowledgements).

State is kept in memory during a run and written to the persistent cache when the run ends, even
when it ends with an error; since the Agent sends a run's events only after the run, state and
events stay in step across restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .api import BudgetExhausted, RateLimited
from .client import MAX_WINDOW, OFFSET_CAP, PAGE_SIZE, IncidentPage, PagerDutyClient
from .dora import build_failure
from .dora import fingerprint as fingerprint_of
from .incident import Incident, MalformedIncident, format_time, parse_incident
from .mapping import Catalog, MappingResult, Override, map_incident, passes_filters
from .outputs import Outputs, mapping_tags, open_gauges
from .state import CollectorState, OpenScan, Window
from .transitions import arrival, changes, record_of, reopening

STATE_KEY = 'collector'
DAY = 86400.0
# Resolved incidents are remembered this long, to recognise them in overlapping queries.
RESOLVED_RETENTION = 3 * DAY
# How far back each creation-time query reaches before the last horizon, for late-indexed incidents.
OVERLAP = 120.0
# Windows are sized for this many records, leaving room under the offset cap for growth.
WINDOW_TARGET = 8000
# Marks a recorded fingerprint whose DORA failure was not sent (delivery turned off).
UNDELIVERED = '-'
# A new sweep page is fetched only while at most this many DORA failures wait for delivery.
MAX_QUEUED_BEFORE_SWEEP = PAGE_SIZE


class StopRun(Exception):
    """The run ends early but cleanly: its budget or deadline is spent; work resumes next run."""


@dataclass
class Settings:
    """The instance options the collector acts on, as the config models validated them."""

    backfill_days: int
    env: str | None = None
    overrides: Sequence[Override] = ()
    severity_mapping: dict[str, str] | None = None
    urgencies: Sequence[str] | None = None
    priorities: Sequence[str] | None = None
    service_ids: Sequence[str] = ()
    team_ids: Sequence[str] = ()


@dataclass
class RunReport:
    """What one run did, for logs, the dry run and tests."""

    pages: int = 0
    seen: int = 0
    transitions: int = 0
    skipped: int = 0
    open_list_complete: bool = False
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
        try:
            if self.dora is not None:
                self.dora.flush()
            if self.attribution is not None:
                self.attribution.flush()
            self._poll_open(catalog, now, report)
            self._sweep(catalog, now, report)
            report.sweep_complete = state.window is None and (state.horizon or 0) >= now - OVERLAP
        except (BudgetExhausted, RateLimited, StopRun) as e:
            report.stopped = str(e)
            self.log.info('Collection paused until the next run: %s', e)
        finally:
            self._prune(now)
            self.save()
            if self.dora is not None:
                self.dora.save()
            if self.attribution is not None:
                self.attribution.save()
        self._report_gauges(now, report)
        return report

    def _check_deadline(self) -> None:
        if self._monotonic() > self._deadline:
            raise StopRun('the run reached its time limit')

    # Open incidents ----------------------------------------------------------------------------

    def _poll_open(self, catalog: Catalog, now: float, report: RunReport) -> None:
        state = self.state
        scan = state.open_scan
        if scan is None:
            scan = state.open_scan = OpenScan(started=now)
        for page, position in self.client.open_incidents(now, (scan.offset, scan.since)):
            report.pages += 1
            for raw in page:
                incident = self._parse(raw, report)
                if incident is not None and incident.id not in scan.seen:
                    scan.seen.add(incident.id)
                    self._observe(incident, catalog, now, report)
            if position is not None:
                scan.offset, scan.since = position
            self._deliver()
            if position is not None:
                self._check_deadline()
        # The pass is complete.
        state.open_scan = None
        report.open_list_complete = True
        if not state.live:
            # Everything open when the first complete pass started is now recorded: from here on,
            # an old incident that is open but not recorded was reopened.
            state.live_since = scan.started
            return
        missing = [
            key for key, record in state.incidents.items() if record.status != 'resolved' and key not in scan.seen
        ]
        for key in missing:
            self._check_deadline()
            raw = self.client.get_incident(key)
            if raw is None:
                self.log.debug('Incident %s is gone from PagerDuty; forgetting it', key)
                del state.incidents[key]
                continue
            incident = self._parse(raw, report)
            if incident is not None:
                self._observe(incident, catalog, now, report)
                if not self._in_scope(incident):
                    self.log.debug('Incident %s moved out of the configured scope; forgetting it', key)
                    state.incidents.pop(key, None)
        self._deliver()

    def _in_scope(self, incident: Incident) -> bool:
        if self.settings.service_ids and incident.service_id not in self.settings.service_ids:
            return False
        if self.settings.team_ids and not {t.id for t in incident.teams} & set(self.settings.team_ids):
            return False
        return True

    # Creation-time sweep -----------------------------------------------------------------------

    def _sweep(self, catalog: Catalog, now: float, report: RunReport) -> None:
        state = self.state
        if state.horizon is None:
            state.horizon = now - self.settings.backfill_days * DAY
        target = now
        while True:
            window = state.window or self._plan_window(state.horizon, target)
            if window is None:
                return
            self._check_deadline()
            if self.dora is not None and self.dora.pending > MAX_QUEUED_BEFORE_SWEEP:
                raise StopRun('DORA deliveries are behind; history continues once they catch up')
            first_page = window.offset == 0
            page = self.client.list_created(window.since, window.until, window.offset, with_total=first_page)
            report.pages += 1
            if first_page and self._over_cap(window, page):
                state.window = None
                state.width = _narrower(window, page.total or 0)
                self.log.debug('Window of %s incidents is over the offset cap; narrowing it', page.total)
                continue
            if first_page:
                window.total = page.total
            state.window = window
            for raw in page.incidents:
                incident = self._parse(raw, report)
                if incident is not None:
                    self._observe(incident, catalog, now, report)
            self._deliver()
            # An empty page that claims more is not believed: the window ends there.
            more = page.more and bool(page.incidents)
            if more and window.offset + 2 * PAGE_SIZE <= OFFSET_CAP:
                window.offset += PAGE_SIZE
                continue
            if more:
                # The window grew past the offset cap while it was paged: continue from the last
                # creation time seen rather than leave the rest behind.
                last = max((i.created_at for i in map(self._quiet_parse, page.incidents) if i), default=None)
                if last is not None and last > window.since:
                    state.horizon, state.window = last, None
                    continue
                self._warning(
                    'More than %d incidents were created within one second at %s; the rest of that second is skipped',
                    OFFSET_CAP,
                    format_time(window.since),
                )
            # The window is done: everything created before its end has been processed.
            state.horizon = window.until
            state.window = None
            # Widen after a light window, judged by what was seen rather than by the reported total.
            if window.offset + len(page.incidents) < WINDOW_TARGET // 4:
                state.width = min(MAX_WINDOW, (window.until - window.since) * 2)

    @staticmethod
    def _over_cap(window: Window, page: IncidentPage) -> bool:
        """Whether a first page says its window holds more than PagerDuty lets an offset reach.

        Only a full page is taken at its word, and a window of one second cannot narrow further:
        a server that reports a huge total for everything still lets the sweep move on.
        """
        return (
            page.total is not None
            and page.total > OFFSET_CAP - PAGE_SIZE
            and page.more
            and len(page.incidents) >= PAGE_SIZE
            and window.until - window.since > 1.0
        )

    def _plan_window(self, horizon: float, target: float) -> Window | None:
        if horizon >= target:
            return None
        state = self.state
        since = horizon - OVERLAP if horizon > target - DAY else horizon
        width = state.width if state.width > 0 else MAX_WINDOW
        until = min(target, since + min(width, MAX_WINDOW))
        return Window(since=since, until=max(until, since + 1))

    # One incident ------------------------------------------------------------------------------

    def _parse(self, raw: Any, report: RunReport) -> Incident | None:
        try:
            return parse_incident(raw)
        except MalformedIncident as e:
            report.skipped += 1
            key: str = raw['id'] if isinstance(raw, dict) and isinstance(raw.get('id'), str) else '?'
            self.outputs.count('incidents.skipped', 1, ['reason:malformed'])
            if key not in self._warned_malformed:
                self._warned_malformed.add(key)
                self._warning('Skipped PagerDuty incident %s: %s', key, e)
            return None

    @staticmethod
    def _quiet_parse(raw: Any) -> Incident | None:
        try:
            return parse_incident(raw)
        except MalformedIncident:
            return None

    def _map(self, incident: Incident, catalog: Catalog) -> MappingResult:
        return map_incident(
            incident,
            catalog,
            overrides=self.settings.overrides,
            env=self.settings.env,
            severity_mapping=self.settings.severity_mapping,
        )

    def _observe(self, incident: Incident, catalog: Catalog, now: float, report: RunReport) -> None:
        """Compare one incident with its record, emit what changed, and record it."""
        state = self.state
        report.seen += 1
        record = state.incidents.get(incident.id)
        mapping = self._map(incident, catalog)
        if self.keep_mappings:
            report.mappings[incident.id] = (incident, mapping)
        tags = mapping_tags(incident, mapping)
        wanted = passes_filters(incident, urgencies=self.settings.urgencies, priorities=self.settings.priorities)

        if record is None:
            if state.live:
                # Created where the sweep already passed: it was seen then, and forgotten once resolved.
                swept = state.horizon is not None and incident.created_at < state.horizon - OVERLAP
                if not swept and incident.created_at >= (state.live_since or now):
                    transitions = arrival(incident)
                elif incident.is_open:
                    # Not new, open, and not among the open incidents recorded: it was resolved and reopened.
                    transitions = reopening(incident, now)
                else:
                    transitions = []
            elif state.open_scan is not None and state.open_scan.started <= incident.created_at <= now:
                # Created while the first look at the open incidents was under way: live news. The
                # upper bound keeps a PagerDuty clock ahead of ours from passing history off as news.
                transitions = arrival(incident)
            else:
                transitions = []
            if not incident.is_open and not transitions and incident.resolved_at is not None:
                if incident.resolved_at < now - RESOLVED_RETENTION:
                    # History: delivered to DORA, not worth remembering.
                    self._deliver_failure(incident, mapping, tags, '', wanted)
                    return
        else:
            acknowledged_at = None
            if record.status == 'triggered' and incident.status == 'resolved' and incident.acknowledged_at is None:
                found = self.client.acknowledgements(incident.id, record.seen_at, now + OVERLAP)
                acknowledged_at = found[-1] if found else None
            transitions = changes(record, incident, now, acknowledged_at)

        fingerprint = record.fingerprint if record is not None else ''
        fingerprint = self._deliver_failure(incident, mapping, tags, fingerprint, wanted)
        if wanted:
            for transition in transitions:
                self.log.debug(
                    'Incident #%d %s (mapping_rule=%s service=%s team=%s env=%s)',
                    incident.number,
                    transition.kind,
                    mapping.rule,
                    ','.join(mapping.services),
                    mapping.team,
                    mapping.env,
                )
                notes = []
                if self.attribution is not None:
                    line = self.attribution.on_transition(transition, mapping)
                    if line:
                        notes.append(line)
                self.outputs.transition(transition, mapping, tags, now, notes)
            report.transitions += len(transitions)
        elif transitions:
            self.outputs.count('incidents.filtered', 1, tags)
            if self.attribution is not None:
                for transition in transitions:
                    self.attribution.on_transition(transition, mapping, wanted=False)
        state.incidents[incident.id] = record_of(incident, fingerprint, tags if wanted else [], now)

    def _deliver_failure(
        self, incident: Incident, mapping: MappingResult, tags: list[str], fingerprint: str, wanted: bool
    ) -> str:
        """Queue the incident's DORA failure when its mapped state changed; return the fingerprint to record.

        With DORA delivery off the fingerprint is still recorded, marked as not delivered, so that
        turning delivery on later sends every incident seen since.
        """
        if not wanted:
            return fingerprint
        if not fingerprint:
            # First time this incident is mapped (fingerprints are recorded from then on).
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
        attributes = build_failure(incident, mapping)
        current = fingerprint_of(attributes)
        if self.dora is None:
            return UNDELIVERED + current
        if current != fingerprint:
            self.dora.enqueue(incident.id, attributes)
        return current

    def _deliver(self) -> None:
        if self.dora is not None:
            self.dora.flush()

    # Bookkeeping -------------------------------------------------------------------------------

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
            self.outputs.gauge('collection.lag', max(0.0, now - state.horizon), [])
        if self.dora is not None:
            self.outputs.gauge('dora.pending', self.dora.pending, [])
        if not report.open_list_complete:
            return
        counts = open_gauges(state.incidents.values())
        for tags in self._open_tag_sets - set(counts):
            self.outputs.gauge('incidents.open', 0, list(tags))
        for tags, value in counts.items():
            self.outputs.gauge('incidents.open', value, list(tags))
        self._open_tag_sets = set(counts)


def _narrower(window: Window, total: int) -> float:
    """A window width expected to hold `WINDOW_TARGET` records, given `total` in `window`."""
    span = window.until - window.since
    return max(1.0, span * WINDOW_TARGET / max(total, 1) * 0.9)
