# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Turns PagerDuty's log and incident lists into transitions, each emitted once, and remembers where it is.

`GET /incidents` filters on creation time only and an incident object shows only its current state,
so no list of incidents can say what happened to an old incident between two runs. Each run does,
in this order:

1. **The change feed**: the account's log entries (`GET /log_entries`) since the last run, each with
   its incident embedded, in windows read from the newest entry down (`feed.py`). Every entry is
   added to its incident's story and the story is replayed (`story.py`, `pagerduty/transitions.py`):
   each transition is named by the entry that proves it and reported once, in time order, also when
   PagerDuty indexed the entry late or several changes happened between two runs. Cost follows
   activity: an idle account costs one request.
2. **Reconciliation**: a share of the open incidents each run, paced so that a pass completes
   within about ten minutes at any open count, resumed by position. It finds what has no log entry
   (a priority change, a service move) and anything the feed missed; an open incident it recorded
   but did not meet in a whole pass is read by id (resolved, deleted, merged or moved out of scope).
   The first pass, when collection goes live, is read whole: it is the baseline of what was open
   (`reconcile.py`).
3. **The recheck**: once a day, the incidents resolved within `recheck_resolved_days`, for changes made
   after their resolve (`recheck.py`).
4. **The creation-time sweep**: `backfill_days` of history before going live (DORA failures only,
   `sweep.py`).

Each pass is a generator that owns its cursor and yields a `Page` per request; this module drives
them: before each request it checks the run's deadline, then hands what the page holds to the
`Recorder` (`recorder.py`) and delivers. A rebuild from Datadog, lost failures and daily drift are
`recovery.py`'s. What the parts of a run share (its state, PagerDuty's clock, the deadline, the
failures held at a rebuild, whether state is stored) is one `Run` (`run.py`), made once the state is
settled and handed to them; what they are handed besides is typed by what they call of it (`ports.py`).

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

import time
from typing import Callable, Iterator

from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.documents import Unreadable
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient

from .pages import DAY, OVERLAP, NextRequest, Page, PassStep
from .passes import Passes
from .ports import CatalogSource, Log
from .reconcile import pages_per_run
from .recorder import Recorder
from .recovery import MOVE_PAUSE, Recovery
from .run import NO_FEATURES, Features, Mode, Run, RunClock, RunReport, StopRun
from .settings import Settings
from .state import CollectorState, damage_warning, unreadable_warning

__all__ = ['Collector', 'RunReport', 'StopRun', 'STATE_KEY']

STATE_KEY = 'collector'
# Resolved incidents are remembered this long; an older one that comes back is read from its own log.
RESOLVED_RETENTION = 3 * DAY
# A page is read only while at most this many DORA failures wait for delivery.
MAX_QUEUED_BEFORE_SWEEP = 100


class Collector:
    """Owns the collection state; `run()` performs one collection."""

    def __init__(
        self,
        client: PagerDutyClient,
        *,
        catalog: CatalogSource,
        outputs: Outputs,
        settings: Settings,
        services: AgentServices,
        monotonic: Callable[[], float] = time.monotonic,
        features: Features = NO_FEATURES,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.dora = features.dora
        self.attribution = features.attribution
        self.outputs = outputs
        self.settings = settings
        self._read_cache = services.read_cache
        self._write_cache = services.write_cache
        self.log: Log = services.log
        self._warning = services.warning
        self._clock = services.clock
        self._monotonic = monotonic
        self._state: CollectorState | None = None
        # The state's text as the cache holds it (as last read or written).
        self._stored: str | None = None
        self._fresh = False
        self._warned: set[str] = set()  # reasons of skipped log entries already warned about this run
        self._undated_warned = False
        self._resuming = True  # the next run is this process's first: a stored state may have been overtaken
        # Reads back from Datadog what this instance sent (with `datadog_app_key`): a state that
        # starts empty is rebuilt from it, and a daily drift check compares it with PagerDuty.
        self.readback = features.readback
        self.recovery = Recovery(
            readback=features.readback,
            record_query=features.record_query,
            dora=features.dora,
            outputs=outputs,
            backfill_days=settings.backfill_days,
            services=services,
        )
        # Maps incidents Datadog monitors triggered; None with `monitor_mapping: false`.
        self.monitors = features.monitors
        self.recorder = Recorder(client, outputs=outputs, settings=settings, services=services, features=features)
        self._mode = Mode()

    def preview(self, *, persist: bool) -> None:
        """For the command line: keep every incident's mapping in the run reports; `persist=False` stores nothing."""
        self._mode = Mode(persist=persist, keep_mappings=True)

    @property
    def persist(self) -> bool:
        """Whether state is written (a dry run writes none)."""
        return self._mode.persist

    # State -------------------------------------------------------------------------------------

    @property
    def state(self) -> CollectorState:
        if self._state is None:
            self._state = self._load_state()
        return self._state

    def _load_state(self) -> CollectorState:
        raw = self._read_cache(STATE_KEY)
        self._fresh = not raw
        self._stored = raw
        if not raw:
            return CollectorState()
        try:
            state, damage = CollectorState.read(raw)
        except Unreadable as e:
            # Nothing in it can be trusted: rebuilt from Datadog as after a move, where it can be.
            self._fresh = True
            self.outputs.count('collection.repaired', 1, ['what:state'])
            self._warning(*unreadable_warning(e, rebuilt=self.readback is not None))
            return CollectorState()
        for part in damage:
            self.outputs.count('collection.repaired', 1, ['what:{}'.format(part.part)])
            self._warning(*damage_warning(part))
        return state

    def save(self) -> None:
        """Write the state, unless it is what the cache holds already."""
        if self.persist and self._state is not None:
            text = self._state.dumps()
            if text != self._stored:
                self._write_cache(STATE_KEY, text)
                self._stored = text

    # One run -----------------------------------------------------------------------------------

    def run(self, deadline: float) -> RunReport:
        """Collect once. `deadline` is the monotonic time by which the run must end."""
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
        self.client.start_run()
        clock = RunClock(self.client, self._clock, self._monotonic, deadline)
        if not self._rebuilt_where_needed(clock):
            report.stopped = 'rebuild'
            self.save()
            return report
        if self.monitors is not None:
            self.monitors.start_run()
        run = self._start(clock, catalog, report)
        passes = Passes(self.client, clock.fallback_now)
        try:
            self._collect(run, passes)
            report.sweep_complete = self._history_complete(run.now())
        except (ApiError, StopRun) as e:
            # A spent budget or an API out of time pauses the run; what failed ends it, for the check to tell.
            if isinstance(e, ApiError) and dispose(e) not in (Disposition.WAIT, Disposition.PAUSE):
                raise
            report.stopped = str(e)
            self.log.info('Collection paused until the next run: %s', e)
        finally:
            report.pages = passes.pages() + self.recovery.take_pages()
            self._end_run(run)
        return report

    def _start(self, clock: RunClock, catalog: Catalog, report: RunReport) -> Run:
        """The run's context, made once the state it collects with is settled, and handed to the recorder."""
        state = self.state
        feed = state.feed
        run = Run(
            state=state,
            catalog=self.recorder.rests.catalog(catalog),
            report=report,
            clock=clock,
            held=self.recovery.held() if state.rebuilt_at else {},
            mode=self._mode,
            read_start=feed.read_until - OVERLAP if feed is not None else float('inf'),
        )
        self._warned = set()
        self.recorder.start_run(run)
        return run

    def _rebuilt_where_needed(self, clock: RunClock) -> bool:
        """Rebuild an empty or overtaken state from Datadog (never in a dry run); False while the rebuild waits."""
        if not self.persist or self.readback is None:
            return True
        pause = self._clock() - self.state.last_run[1] if self._resuming and self.state.last_run else 0.0
        self._resuming = False
        paused = pause > MOVE_PAUSE + self.settings.interval
        self._state, ready = self.recovery.resume(
            self.state, fresh=self._fresh, paused=paused, now=clock.fallback_now()
        )
        return ready

    def _collect(self, run: Run, passes: Passes) -> None:
        """The passes of one run, in order; each stops the run by raising when its budget or deadline is spent."""
        state = run.state
        recorder = self.recorder
        self._deliver()
        self.recovery.find_undelivered(state)
        if state.live_since is not None and state.feed is not None:
            since_last_run = self._clock() - state.last_run[1] if state.last_run is not None else None
            self._drive(run, passes.feed.read(state.feed, state.live_since, since_last_run), recorder.observe)
            self._drive(run, passes.feed.second_look(state.live_since), recorder.observe)
        self._drive(
            run,
            passes.reconcile.read(state, self.client.now, pages_per_run(state, self.settings.interval)),
            recorder.observe,
        )
        state.go_live(self.client.now)
        now = run.now()
        state.switch_delivery(self.dora is not None, since=now - self.settings.backfill_days * DAY, now=now)
        if state.swept_until is None:
            state.swept_until = now - self.settings.backfill_days * DAY
        self.recovery.check_drift(state, now)
        self._drive(run, passes.recheck.read(state, now, self.settings.recheck_resolved_days), recorder.recheck)
        self._drive(run, self.recovery.refetch(self.client, state), recorder.sweep_incident)
        self._drive(run, passes.sweep.history(state, self._sweep_target(now)), recorder.sweep_incident, sweep=True)
        self._drive(run, passes.sweep.resend(state), recorder.redeliver, sweep=True)
        # What this run found goes out in this run.
        self._deliver()

    def _end_run(self, run: Run) -> None:
        """What every run does last, however it ended: prune, remember, report and save."""
        state = run.state
        persist = run.mode.persist
        if state.live_since is not None:
            now = run.now()
            state.prune(now - RESOLVED_RETENTION, delivering=self.dora is not None)
            state.last_run = (now, self._clock())
            self.recovery.forget(state, self._history_complete(now), persist=persist)
            self.recovery.trace(state, now, self.settings.env, persist=persist)
        self._report_gauges(run.now(), run.report)
        self._report_undated()
        self.save()
        if self.dora is not None:
            self.dora.save()
        if self.attribution is not None:
            self.attribution.save()

    # The loop every pass runs in ---------------------------------------------------------------

    def _drive(self, run: Run, steps: Iterator[PassStep], take: Callable[..., None], *, sweep: bool = False) -> None:
        """Run a pass: before each of its requests check the deadline; take and deliver each page it yields."""
        for step in steps:
            if isinstance(step, NextRequest):
                run.check_deadline()
                if sweep and self.dora is not None and self.dora.pending > MAX_QUEUED_BEFORE_SWEEP:
                    # Read no more history while DORA delivery is behind: its queue is bounded.
                    raise StopRun('DORA deliveries are behind; reading continues once they catch up')
                continue
            self._take(run, step, take)
            if step.deliver:
                self._deliver()

    def _take(self, run: Run, page: Page, take: Callable[..., None]) -> None:
        """Report what a page could not use, then bring every incident it holds up to date."""
        for reason, count in page.skipped:
            self._skipped_entries(reason, count)
        for warning in page.warnings:
            self._warning(*warning)
        if page.repaired:
            self.outputs.count('collection.repaired', 1, ['what:feed_position'])
        if page.reads_back_to is not None:
            run.read_back_to(page.reads_back_to)
        for raw, error in page.malformed:
            self.recorder.malformed(raw, error)
        for look in page.looks:
            if look.entries is not None:
                take(look.incident, look.entries)
            else:
                take(look.incident)
        for key in page.gone:
            self.recorder.gone(key)

    def _deliver(self) -> None:
        """Flush the outputs' queues and record what Datadog accepted."""
        if self.dora is not None:
            self.dora.flush()
            incidents = self.state.incidents
            for key, accepted in self.dora.take_outcomes(incidents):
                record = incidents.get(key)
                if record is not None:
                    record.delivered = accepted
        if self.attribution is not None:
            self.attribution.flush()

    def _skipped_entries(self, reason: str, count: int) -> None:
        """Log entries that could not be used: counted, and warned about once per run."""
        self.outputs.count('log_entries.skipped', count, ['reason:{}'.format(reason)])
        if reason not in self._warned:
            self._warned.add(reason)
            self._warning('Skipped %d PagerDuty log entries that could not be used (%s)', count, reason)

    # Clocks and positions ----------------------------------------------------------------------

    def _sweep_target(self, now: float) -> float:
        # What was created since going live comes from the feed, trigger entry first.
        live_since = self.state.live_since
        return min(now, live_since) if live_since is not None else now

    def _history_complete(self, now: float) -> bool:
        state = self.state
        return (
            state.sweep_window is None
            and state.swept_until is not None
            and state.swept_until >= self._sweep_target(now) - 1
        )

    def _report_undated(self) -> None:
        """PagerDuty answers without a `Date` were dated by the Agent's clock: counted, and warned about once."""
        undated = self.client.take_undated()
        if not undated:
            return
        self.outputs.count('api.undated', undated, ['api:pagerduty'])
        if not self._undated_warned:
            self._undated_warned = True
            self._warning(
                'PagerDuty answered without a `Date` header (a proxy may remove it): its times are compared with '
                "the Agent's clock instead, so keep the Agent host's clock in sync"
            )

    def _report_gauges(self, now: float, report: RunReport) -> None:
        state = self.state
        if state.swept_until is not None:
            feed = state.feed
            reached = feed.read_until if feed is not None and self._history_complete(now) else state.swept_until
            self.outputs.gauge('collection.lag', max(0.0, now - min(reached, now)), [])
        if self.dora is not None:
            self.outputs.gauge('dora.pending', self.dora.pending, [])
        if not state.baseline:
            return
        counts = state.open_gauges()
        current = {tuple(tags) for tags in counts}
        for tags in {tuple(tags) for tags in state.gauged} - current:
            self.outputs.gauge('incidents.open', 0, list(tags))
        for tags, value in counts.items():
            self.outputs.gauge('incidents.open', value, list(tags))
        state.gauged = [list(tags) for tags in sorted(current)]
