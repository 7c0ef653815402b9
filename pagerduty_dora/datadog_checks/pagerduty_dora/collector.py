# (C) Datadog, Inc. 2026-present
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

State lives in memory during a run and is written to the persistent cache when the run ends, even
when it ends with an error; the Agent sends a run's events only after the run, so state and events
stay in step across restarts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .api import BudgetExhausted, DeadlineReached, RateLimited
from .client import MAX_WINDOW, OFFSET_CAP, PAGE_SIZE, LogEntry, PagerDutyClient, parse_log_entry
from .dora import build_failure
from .dora import fingerprint as fingerprint_of
from .incident import Incident, MalformedIncident, Transition, format_time, parse_incident
from .mapping import Catalog, MappingResult, Override, map_incident, passes_filters
from .outputs import Outputs, mapping_tags, open_gauges
from .state import CollectorState, Feed, FeedWindow, Reconciliation, Window
from .transitions import NEW, UNKNOWN, Replay, adopt, apply_entry, field_changes, record_of, reopened_unlogged

STATE_KEY = 'collector'
DAY = 86400.0
# Resolved incidents are remembered this long, to recognise them in overlapping queries and reopens.
RESOLVED_RETENTION = 3 * DAY
# How far back each query reaches before the last horizon, for records PagerDuty indexes late.
OVERLAP = 120.0
# Windows are sized for this many records, leaving room under the offset cap for growth.
WINDOW_TARGET = 8000
# Marks a recorded fingerprint whose DORA failure was not sent (delivery turned off).
UNDELIVERED = '-'
# A new sweep page is fetched only while at most this many DORA failures wait for delivery.
MAX_QUEUED_BEFORE_SWEEP = PAGE_SIZE
# Pages of open incidents read per run once the baseline pass is done.
RECONCILE_PAGES = 1


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
    unmapped_incidents: str = 'send'


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
        if state.live_since is None or state.feed is None:
            state.live_since = now
            state.feed = Feed(horizon=now)
        self._switch_delivery(now)
        try:
            if self.dora is not None:
                self.dora.flush()
            if self.attribution is not None:
                self.attribution.flush()
            self._read_feed(catalog, now, report)
            self._reconcile(catalog, now, report)
            self._sweep(catalog, now, report)
            self._resend(catalog, now, report)
            report.sweep_complete = state.window is None and (state.horizon or 0) >= self._sweep_target(now) - 1
        except (BudgetExhausted, RateLimited, DeadlineReached, StopRun) as e:
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

    def _wait_for_delivery(self) -> None:
        """Read no further while DORA delivery is behind: the queue is bounded, and what is read must be sent."""
        if self.dora is not None and self.dora.pending > MAX_QUEUED_BEFORE_SWEEP:
            raise StopRun('DORA deliveries are behind; reading continues once they catch up')

    def _deliver(self) -> None:
        if self.dora is not None:
            self.dora.flush()
        self._check_deadline()

    # 1. The change feed ------------------------------------------------------------------------

    def _read_feed(self, catalog: Catalog, now: float, report: RunReport) -> None:
        feed = self.state.feed
        assert feed is not None
        target = float(math.floor(now))
        while True:
            window = feed.window
            if window is None:
                if feed.horizon >= target:
                    return
                since = feed.horizon - OVERLAP
                width = feed.width if feed.width > 0 else MAX_WINDOW
                until = min(target, max(feed.horizon + 1, since + min(width, MAX_WINDOW)))
                page = self.client.log_entries(since, until, 0, with_total=True)
                report.pages += 1
                if page.more and page.total is None and until - since > 2 * OVERLAP:
                    # Without a total the pages cannot be read oldest first: narrow until one page holds it.
                    feed.width = max(1.0, (until - since) / 4)
                    continue
                if page.total is not None and page.total > OFFSET_CAP - PAGE_SIZE and until - feed.horizon > 1:
                    feed.width = _narrower(until - since, page.total)
                    continue
                if not page.more:
                    self._apply_entries(page.entries, catalog, now, report)
                    self._close_feed_window(feed, since, until, len(page.entries))
                    self._deliver()
                    continue
                total = page.total if page.total is not None else len(page.entries)
                last = min(OFFSET_CAP - PAGE_SIZE, ((max(total, 1) - 1) // PAGE_SIZE) * PAGE_SIZE)
                window = feed.window = FeedWindow(since, until, total, last)
                if last == 0:
                    self._apply_entries(page.entries, catalog, now, report)
                    feed.window = None
                    self._close_feed_window(feed, since, until, total)
                    self._deliver()
                    continue
            page = self.client.log_entries(window.since, window.until, window.offset)
            report.pages += 1
            self._apply_entries(page.entries, catalog, now, report)
            if window.offset <= 0:
                feed.window = None
                self._close_feed_window(feed, window.since, window.until, window.total)
            else:
                window.offset -= PAGE_SIZE
            self._deliver()

    def _close_feed_window(self, feed: Feed, since: float, until: float, entries: int) -> None:
        feed.horizon = max(feed.horizon, until)
        if entries < WINDOW_TARGET // 4:
            feed.width = min(MAX_WINDOW, max(feed.width, (until - since)) * 2)
        keep_from = feed.horizon - OVERLAP
        feed.applied = {key: at for key, at in feed.applied.items() if at >= keep_from}

    def _apply_entries(self, raw_entries: list[Any], catalog: Catalog, now: float, report: RunReport) -> None:
        """Apply one page of the feed (newest first, as PagerDuty lists it) in the order it happened."""
        state = self.state
        feed = state.feed
        assert feed is not None and state.live_since is not None
        live_second = math.floor(state.live_since)
        for raw in reversed(raw_entries):
            entry = parse_log_entry(raw)
            if entry is None or entry.id in feed.applied:
                continue
            feed.applied[entry.id] = entry.at
            if entry.at < live_second or entry.incident is None:
                continue
            incident = self._parse(entry.incident, report)
            if incident is not None:
                self._observe(incident, catalog, now, report, [entry] if entry.action else [])

    # 2. Reconciliation -------------------------------------------------------------------------

    def _reconcile(self, catalog: Catalog, now: float, report: RunReport) -> None:
        state = self.state
        scan = state.reconciliation
        if scan is None:
            scan = state.reconciliation = Reconciliation(started=now)
        pages = 0
        while scan.verify is None:
            if state.baseline and pages >= RECONCILE_PAGES:
                return
            self._check_deadline()
            self._wait_for_delivery()
            self._reconcile_page(scan, catalog, now, report)
            pages += 1
            self._deliver()
        self._verify(scan, catalog, now, report)
        report.open_list_complete = True
        if not state.baseline:
            state.baseline = True
        state.reconciliation = None

    def _reconcile_page(self, scan: Reconciliation, catalog: Catalog, now: float, report: RunReport) -> None:
        if scan.position is None:
            page = self.client.list_open(scan.skip)
            since, until = None, None
        else:
            since = scan.position[0]
            until = min(since + MAX_WINDOW, now + 60)
            page = self.client.list_open(scan.skip, since, until)
        report.pages += 1
        fresh = 0
        for raw in page.incidents:
            incident = self._parse(raw, report)
            if incident is None:
                continue
            key = (incident.created_at, incident.number)
            if scan.position is not None and key <= scan.position:
                continue
            fresh += 1
            self._observe(incident, catalog, now, report)
            if scan.position is None or key > scan.position:
                scan.position = key
        if page.more and not fresh:
            # A whole page of one second already read: step over it within that second.
            scan.skip += PAGE_SIZE
            return
        scan.skip = 0
        if page.more:
            return
        if since is not None and until is not None and until < now:
            # The list was read in a window of at most six months; the rest starts at its end.
            scan.position = (until, -1)
            return
        scan.verify = sorted(
            key
            for key, record in self.state.incidents.items()
            if record.status != 'resolved' and record.checked_at < scan.started
        )

    def _verify(self, scan: Reconciliation, catalog: Catalog, now: float, report: RunReport) -> None:
        """Read by id each recorded open incident the pass did not meet."""
        assert scan.verify is not None
        while scan.verify:
            key = scan.verify[0]
            record = self.state.incidents.get(key)
            if record is not None and record.status != 'resolved' and record.checked_at < scan.started:
                self._check_deadline()
                raw = self.client.get_incident(key)
                if raw is None:
                    self._gone(key)
                else:
                    incident = self._parse(raw, report)
                    if incident is not None:
                        self._observe(incident, catalog, now, report)
            scan.verify.pop(0)
        self._deliver()

    def _gone(self, key: str) -> None:
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

    # 3. Creation-time sweep --------------------------------------------------------------------

    def _sweep_target(self, now: float) -> float:
        # What was created since going live comes from the feed, trigger entry first.
        live_since = self.state.live_since
        return min(now, live_since) if live_since is not None else now

    def _sweep(self, catalog: Catalog, now: float, report: RunReport) -> None:
        state = self.state
        if state.horizon is None:
            state.horizon = now - self.settings.backfill_days * DAY
        target = self._sweep_target(now)
        while True:
            window = state.window or self._plan_window(state.horizon, target, state.width)
            if window is None:
                return
            state.window = window
            done, width = self._sweep_window(window, catalog, now, report, deliver_only=False)
            if width is not None:
                state.window, state.width = None, width
                continue
            if done is not None:
                state.horizon = max(state.horizon, done)
                state.window = None
                if window.offset < WINDOW_TARGET // 4:
                    state.width = min(MAX_WINDOW, max(state.width, window.until - window.since) * 2)

    def _resend(self, catalog: Catalog, now: float, report: RunReport) -> None:
        """Deliver the history that runs with DORA delivery off kept back, window by window."""
        state = self.state
        while state.resend is not None and state.resend_end is not None:
            window = state.resend
            done, width = self._sweep_window(window, catalog, now, report, deliver_only=True)
            if width is not None:
                state.resend = Window(window.since, window.since + width)
            elif done is not None and done < state.resend_end:
                state.resend = Window(done, min(state.resend_end, done + MAX_WINDOW))
            else:
                state.resend = state.resend_end = None

    def _sweep_window(
        self, window: Window, catalog: Catalog, now: float, report: RunReport, *, deliver_only: bool
    ) -> tuple[float | None, float | None]:
        """Page through one creation-time window from `window.offset` on.

        Returns (creation time up to which it is done, None) when the window is finished, or
        (None, narrower width) when its first page shows it holds more than the offset cap.
        """
        while True:
            self._check_deadline()
            self._wait_for_delivery()
            first = window.offset == 0
            page = self.client.list_created(window.since, window.until, window.offset, with_total=first)
            report.pages += 1
            if first and _over_cap(window, page.total, page.more, len(page.incidents)):
                return None, _narrower(window.until - window.since, page.total or 0)
            for raw in page.incidents:
                incident = self._parse(raw, report)
                if incident is None:
                    continue
                if deliver_only:
                    self._redeliver(incident, catalog)
                else:
                    self._observe(incident, catalog, now, report)
            self._deliver()
            # An empty page that claims more is not believed: the window ends there.
            more = page.more and bool(page.incidents)
            if more and window.offset + 2 * PAGE_SIZE <= OFFSET_CAP:
                window.offset += PAGE_SIZE
                continue
            if more:
                last = max((i.created_at for i in map(_quiet_parse, page.incidents) if i), default=None)
                if last is not None and last > window.since:
                    # The window grew past the offset cap while it was paged: go on from the last
                    # creation time seen rather than leave the rest behind.
                    window.since, window.offset = last, 0
                    continue
                self._warning(
                    'More than %d incidents were created within one second at %s; the rest of that second is skipped',
                    OFFSET_CAP,
                    format_time(window.since),
                )
            return window.until, None

    @staticmethod
    def _plan_window(horizon: float, target: float, width: float) -> Window | None:
        if horizon >= target:
            return None
        width = min(width if width > 0 else MAX_WINDOW, MAX_WINDOW)
        # Near the present, reach back for late-indexed incidents, but never so far that the window
        # ends before the horizon: the cursor only moves forward.
        since = horizon - min(OVERLAP, width / 2) if horizon > target - DAY else horizon
        until = min(target, max(since + width, horizon + 1))
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

    def _observe(
        self,
        incident: Incident,
        catalog: Catalog,
        now: float,
        report: RunReport,
        entries: list[LogEntry] | None = None,
    ) -> None:
        """Bring one incident's record up to date: replay `entries` (from the feed), then its current state."""
        state = self.state
        assert state.live_since is not None and state.feed is not None
        report.seen += 1
        record = state.incidents.get(incident.id)
        if not self._in_scope(incident):
            self._out_of_scope(incident, catalog)
            return
        # A record is forgotten only once resolved for `RESOLVED_RETENTION`: younger incidents without
        # one are news when the log shows them; a list alone never makes one news (see `_settle`).
        news_since = max(state.live_since, now - RESOLVED_RETENTION) if entries is not None else None
        replay = Replay.of(record, incident, news_since)
        if record is None and entries is None and incident.created_at >= state.feed.horizon:
            if incident.created_at >= state.live_since:
                # Created where the feed has not read yet: the feed reports it, with its whole story.
                return
        transitions: list[Transition] = []
        for entry in entries or []:
            transitions += apply_entry(replay, entry.action, entry.at, incident)
        self._settle(replay, incident, record, now, transitions)
        transitions += field_changes(record, incident, now)

        mapping = self._map(incident, catalog)
        if self.keep_mappings:
            report.mappings[incident.id] = (incident, mapping)
        tags = mapping_tags(incident, mapping)
        wanted = self._qualifies(incident, mapping)
        fingerprint = record.fingerprint if record is not None else ''
        if wanted or (_sent(fingerprint) and not (self.dora is not None and self.dora.can_remove)):
            # A failure already sent that no longer qualifies is followed to its resolve when it cannot be removed.
            fingerprint = self._deliver_failure(incident, mapping, tags, fingerprint, count=wanted)
        elif _sent(fingerprint) and self.dora is not None:
            self.dora.remove(incident.id)
            fingerprint = ''
        if record is None and not wanted and self.settings.unmapped_incidents == 'skip' and mapping.rule == 'fallback':
            self.outputs.count('incidents.skipped', 1, ['reason:unmapped'])
        self._emit(transitions, mapping, tags, wanted, now, report)

        history = record is None and not incident.is_open and not transitions
        if history and (incident.resolved_at or incident.created_at) < now - RESOLVED_RETENTION:
            return
        state.incidents[incident.id] = record_of(
            incident, replay, fingerprint=fingerprint, tags=tags if wanted else [], wanted=wanted, checked_at=now
        )

    def _settle(
        self, replay: Replay, incident: Incident, record: Any, now: float, transitions: list[Transition]
    ) -> None:
        """Reconcile the replayed status with the incident's own, adding the transitions that explains."""
        state = self.state
        assert state.feed is not None
        covered = state.feed.horizon
        changed = incident.last_status_change_at
        if replay.status == NEW:
            # Shown by the log without its trigger entry (read before the window it is in).
            transitions += adopt(replay, incident, now)
            replay.status_at = max(replay.status_at, now)
            return
        if replay.status == UNKNOWN:
            if state.baseline and incident.is_open and record is None:
                transitions += self._unknown_open(replay, incident, covered)
            replay.status = incident.status
            replay.status_at = max(replay.status_at, now)
            return
        if replay.status == incident.status:
            return
        reopen = reopened_unlogged(replay, incident, covered)
        if reopen is not None:
            transitions.append(reopen)
            if replay.status == incident.status:
                return
        if changed is None or changed < covered - OVERLAP:
            # The feed read past this change without showing it: read the incident's own log.
            for entry in self.client.incident_log(incident.id, replay.status_at or None):
                transitions += apply_entry(replay, entry.action, entry.at, incident)
            if replay.status != incident.status:
                transitions += adopt(replay, incident, now)
                replay.status_at = max(replay.status_at, changed or now)

    def _unknown_open(self, replay: Replay, incident: Incident, covered: float) -> list[Transition]:
        """An open incident met without a record after the baseline: reopened, or moved into scope?

        Only its own log tells: a resolve in it means it was reopened (PagerDuty logs no reopen);
        none means it was never resolved and has just come into scope or into the filters.
        """
        assert self.state.live_since is not None
        changed = incident.last_status_change_at
        if changed is None or changed < self.state.live_since or changed >= covered:
            return []
        resolves = [e.at for e in self.client.incident_log(incident.id) if e.action == 'resolve']
        if not resolves or max(resolves) >= changed:
            return []
        return [Transition('reopened', incident, changed)]

    def _out_of_scope(self, incident: Incident, catalog: Catalog) -> None:
        """An incident outside `service_ids`/`team_ids`: a failure it left behind is removed or followed.

        Its record stays (not wanted) while it is open, so that coming back into scope is not news.
        """
        record = self.state.incidents.get(incident.id)
        if record is None:
            return
        if _sent(record.fingerprint) and self.dora is not None:
            if self.dora.can_remove:
                self.dora.remove(incident.id)
                record.fingerprint = ''
            else:
                mapping = self._map(incident, catalog)
                record.fingerprint = self._deliver_failure(incident, mapping, [], record.fingerprint, count=False)
        record.wanted, record.tags, record.checked_at = False, [], self._clock()
        if not incident.is_open:
            del self.state.incidents[incident.id]

    def _emit(
        self,
        transitions: list[Transition],
        mapping: MappingResult,
        tags: list[str],
        wanted: bool,
        now: float,
        report: RunReport,
    ) -> None:
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

    def _redeliver(self, incident: Incident, catalog: Catalog) -> None:
        if self.dora is None or not self._in_scope(incident):
            return
        mapping = self._map(incident, catalog)
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


def _quiet_parse(raw: Any) -> Incident | None:
    try:
        return parse_incident(raw)
    except MalformedIncident:
        return None


def _over_cap(window: Window, total: int | None, more: bool, size: int) -> bool:
    """Whether a first page says its window holds more than PagerDuty lets an offset reach.

    Only a full page is taken at its word, and a window of one second cannot narrow further: a
    server that reports a huge total for everything still lets the sweep move on.
    """
    return (
        total is not None
        and total > OFFSET_CAP - PAGE_SIZE
        and more
        and size >= PAGE_SIZE
        and window.until - window.since > 1.0
    )


def _narrower(span: float, total: int) -> float:
    """A window width expected to hold `WINDOW_TARGET` records, given `total` in `span` seconds."""
    return max(1.0, span * WINDOW_TARGET / max(total, 1) * 0.9)
