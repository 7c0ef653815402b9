# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Putting back what was lost: a state rebuilt from Datadog's record, failures that went missing, daily drift.

- **Rebuild**: a check that starts over an empty state (a cluster check moved to another node) takes
  from Datadog what it sent before (`rebuild.py` reads it), so nothing is reported or sent twice.
  Datadog's event search lags its intake (up to `SEARCH_LAG`): where Datadog holds anything of this
  instance, the rebuild reads it again once that lag has passed, so the last events the previous
  node sent are searchable by then. A stored state that another node overtook while this Agent was
  away (Datadog holds a later event of this instance than the state sent) is rebuilt the same way.
- **Trace**: a live state says in Datadog since when it reports every transition (a live event, at
  go-live and after each day without another event), so that a move on a quiet account resumes
  where the lookback begins, not at the new node's first run, and never before the old node went live.
- **Undelivered**: a record whose DORA failure is outstanding but no longer queued (dropped by the
  queue's bounds, lost in a crash) is read again by id and its failure wanted again.
- **Drift**: once a day, Datadog's open failures are compared with PagerDuty, and each one PagerDuty
  does not show open is read again by id.
"""

from __future__ import annotations

import json
from typing import Iterator

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.marks import Mark
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs
from datadog_checks.pagerduty_dora.datadog.readback import Readback
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient

from .feed_position import Feed
from .pages import DAY, NEXT_REQUEST, Look, Page, PassStep
from .ports import DoraQueue
from .rebuild import EVENTS_LOOKBACK, Rebuild, Record, read_record
from .state import CollectorState
from .story import settled

# Digests of the DORA failures Datadog held when the state was rebuilt, kept until history is compared.
HELD_KEY = 'failures_held'
# Rebuild attempts in a row that failed for a passing reason.
REBUILD_KEY = 'rebuild_attempts'
# Runs a rebuild is retried (nothing collected meanwhile) before the check starts as on a first run.
REBUILD_ATTEMPTS = 3
# How often Datadog's open failures are compared with PagerDuty (PagerDuty time).
DRIFT_INTERVAL = DAY
# Incidents read again by id in one run because their DORA failure went missing.
MAX_REFETCH_PER_RUN = 20
# How long Datadog's event search may lag behind its intake: the bound within which a move sends no
# event twice.
SEARCH_LAG = 600.0
# An Agent back after a pause longer than this (beyond its interval) may have been replaced by another node.
MOVE_PAUSE = 300.0
# A live event is sent again once this long passed without any event of the instance: the lookback
# (`EVENTS_LOOKBACK`, two days) then always holds one while the node runs.
LIVE_EVENT_INTERVAL = DAY


class Recovery:
    """The rebuild, the search for undelivered failures and the drift check of one collector."""

    def __init__(
        self,
        *,
        readback: Readback | None,
        record_query: str,
        dora: DoraQueue | None,
        outputs: Outputs,
        backfill_days: int,
        services: AgentServices,
    ) -> None:
        self.readback = readback
        self._record_query = record_query
        self.dora = dora
        self.outputs = outputs
        self.backfill_days = backfill_days
        self._read_cache = services.read_cache
        self._write_cache = services.write_cache
        self.log = services.log
        self._warning = services.warning
        # Incidents read again by id (requests), for the run report.
        self.pages = 0
        # Digests of the failures Datadog holds, while a rebuilt state's history is compared with them.
        self._held: dict[str, str] | None = None
        # Whether this instance may have replaced another identity (an edit): a rebuild waits to know.
        self._undecided = False
        # Whether Datadog holds events of this identity itself, as read while that was undecided: it ran
        # before (on another node), so it replaced no identity here.
        self.found_own = False

    # Rebuild ------------------------------------------------------------------------------------

    def resume(self, state: CollectorState, *, fresh: bool, paused: bool, now: float) -> tuple[CollectorState, bool]:
        """The state to collect with, and whether to collect now (False while a rebuild waits).

        An empty state is rebuilt; so is a stored one that another node overtook while this Agent was
        away (`paused`), as the events Datadog holds show.
        """
        if paused and state.live_since is not None and self.overtaken(state, now):
            state, fresh = CollectorState(), True
        if state.live_since is None and (fresh or state.rebuild is not None):
            return state, self.rebuild(state, now)
        return state, True

    def rebuild(self, state: CollectorState, now: float) -> bool:
        """Rebuild an empty state from what Datadog holds; False to try again next run (nothing collected meanwhile).

        `now` is the Agent's clock. Where Datadog holds nothing of this instance, this is a first
        install. Otherwise the record is read again once `SEARCH_LAG` has passed (`state.rebuild`
        says until when), and the state rebuilt from it. Without the record, the check starts as on
        a first run: history is sent again as DORA failures (idempotent by id) and no event is sent
        for what happened before it went live. While it is not known whether this instance replaced
        another identity (`inherit`), the record is not read for good: what that one sent is part of it.
        """
        assert self.readback is not None
        undecided = self._undecided and self.outputs.collects_events
        waiting = state.rebuild
        if waiting is not None and now < waiting.after:
            self.log.info("Waiting %d s more for Datadog's event search before rebuilding", waiting.after - now)
            return False
        if waiting is not None and undecided:
            self.log.info('Waiting to know whether this instance replaces another identity before rebuilding')
            return False
        record = self._read_record(now)
        if record is None:
            return False
        if undecided:
            # The query names no other identity yet: what it finds is this one's own.
            self.found_own = self.found_own or bool(record.events) or record.live_since is not None
        if waiting is None and self.outputs.collects_events and (record.holds_anything or undecided):
            # What the previous node sent last may not be searchable yet: read it all again later.
            state.rebuild = Rebuild(after=now + SEARCH_LAG)
            self.log.info(
                "Datadog holds what this instance sent before; the state is rebuilt in %d s, once Datadog's event "
                'search has caught up (nothing is lost meanwhile)',
                SEARCH_LAG,
            )
            return False
        state.rebuild = None
        self._apply(state, record, now)
        return True

    def inherit(self, record_query: str, *, undecided: bool) -> None:
        """Read the record with `record_query` from now on: this instance's events and those of the identities it
        replaced (an edited instance). While `undecided`, whether it replaced one is not known yet, and a
        rebuild waits."""
        self._record_query = record_query
        self._undecided = undecided

    def overtaken(self, state: CollectorState, now: float) -> bool:
        """Whether Datadog holds an event of this instance later than any the state sent (another node ran since).

        A state of an earlier layout does not know its latest event: events after its last run are not its own.
        """
        assert self.readback is not None
        sent = state.last_event_at if state.last_event_at is not None else (state.last_run or (None,))[0]
        since = sent if sent is not None else now - EVENTS_LOOKBACK
        try:
            for event in self.readback.events(self._record_query, since, now + 3600):
                if event.transition_key is not None and (sent is None or event.timestamp > sent):
                    self.log.info('Datadog holds events of this instance later than its stored state: rebuilt')
                    return True
        except ApiError as e:
            self._warning('Could not compare the stored state with what Datadog holds (%s); it is used as it is', e)
        return False

    def _read_record(self, now: float) -> Record | None:
        """What Datadog holds of this instance; None to try again next run, an empty record to go on without it."""
        assert self.readback is not None
        attempts = _count(self._read_cache(REBUILD_KEY))
        try:
            record = read_record(
                self.readback,
                query=self._record_query,
                now=now,
                history_since=now - (self.backfill_days + 1) * DAY,
            )
        except ApiError as e:
            disposition = dispose(e)
            if not disposition.resumes_next_run:
                # Refused for good (a missing permission, an API this site does not have): no retry helps.
                self._failed('forbidden' if disposition is Disposition.FIX_KEY else 'rejected', e, final=True)
                return Record()
            attempts += 1
            final = attempts >= REBUILD_ATTEMPTS
            self._write(REBUILD_KEY, '0' if final else str(attempts))
            self._failed('error', e, final=final)
            return Record() if final else None
        self._write(REBUILD_KEY, '0')
        return record

    def _apply(self, state: CollectorState, record: Record, now: float) -> None:
        """Take the record into the state: go live where the reported events end, compare history with the failures."""
        if not record.holds_anything:
            return
        # What happened after the last event Datadog holds was not reported. Without a transition event
        # nor a live event there is no sign of when the earlier node went live: collection goes live at
        # PagerDuty's first answer.
        start = record.resume_at()
        if start is not None:
            state.live_since = start
            state.feed = Feed(read_until=start)
        state.last_event_at = record.latest_event_at
        state.rebuilt = {key: sorted(keys) for key, keys in record.emitted.items()}
        state.rebuilt_at = state.drift_at = now
        self._held = record.failures
        self._write(HELD_KEY, json.dumps(record.failures, separators=(',', ':')))
        self.outputs.count('rebuild', 1, ['result:rebuilt'])
        self.log.info(
            'Rebuilt the collection state from Datadog: %d events, %d DORA failures; reading PagerDuty from %s',
            record.events,
            len(record.failures),
            format_time(start) if start is not None else 'now',
        )

    def trace(self, state: CollectorState, now: float, env: str | None, *, persist: bool) -> None:
        """Send the live event when a state goes live, and again after a day without any event of the instance.

        Only where a rebuild can read it back (`datadog_app_key`) and events are collected; `now` is PagerDuty's
        time, `env` the instance's.
        """
        if self.readback is None or not persist or state.live_since is None:
            return
        if state.last_event_at is not None and now - state.last_event_at < LIVE_EVENT_INTERVAL:
            return
        state.event_sent(self.outputs.live(state.live_since, now, env))

    def _failed(self, reason: str, error: ApiError, *, final: bool) -> None:
        self.outputs.count('rebuild', 1, ['result:{}'.format('fallback' if final else 'retry'), 'reason:' + reason])
        then = (
            'starting as on a first run: history is sent again as DORA failures, and nothing that happened '
            'before this run is reported as an event'
            if final
            else 'nothing is collected until it is tried again next run'
        )
        self._warning('Could not rebuild the collection state from Datadog (%s); %s', error, then)

    def _write(self, key: str, value: str) -> None:
        # Only a run that stores its state rebuilds it or forgets what a rebuild read.
        self._write_cache(key, value)

    def forget(self, state: CollectorState, history_complete: bool, *, persist: bool) -> None:
        """Drop what the rebuild read once it has served: events once the feed is past it, failures once history is."""
        if not state.rebuilt_at:
            return
        if state.rebuilt and state.feed is not None and state.feed.read_until > state.rebuilt_at + DAY:
            state.rebuilt = {}
        if history_complete and state.resend is None:
            state.rebuilt_at = 0.0
            self._held = {}
            if persist:
                self._write(HELD_KEY, '')

    def held(self) -> dict[str, str]:
        """Digests of the failures Datadog held at the rebuild, while history is compared with them."""
        if self._held is None:
            raw = self._read_cache(HELD_KEY)
            try:
                held = json.loads(raw) if raw else {}
            except (ValueError, RecursionError):
                held = {}
            self._held = {str(k): str(v) for k, v in held.items()} if isinstance(held, dict) else {}
        return self._held

    # Drift and undelivered failures -------------------------------------------------------------

    def check_drift(self, state: CollectorState, now: float) -> None:
        """Once a day, read Datadog's open failures and queue every one PagerDuty does not show open for repair."""
        if self.readback is None or self.dora is None or not state.baseline or now - state.drift_at < DRIFT_INTERVAL:
            return
        state.drift_at = now
        found = 0
        try:
            for failure in self.readback.failures(now - self.backfill_days * DAY, now + 3600):
                record = state.incidents.get(failure.incident_id)
                if failure.open and failure.exact_id and (record is None or record.status == 'resolved'):
                    if record is not None:
                        # Datadog does not hold what the record says it accepted, but an open failure.
                        record.delivered = Mark.DRIFTED.value
                    if failure.incident_id not in state.refetch:
                        state.refetch.append(failure.incident_id)
                        found += 1
        except ApiError as e:
            self._warning('The daily comparison of DORA failures with PagerDuty could not read them (%s)', e)
            return
        self.outputs.count('dora.drift', found, ['result:queued'])

    def find_undelivered(self, state: CollectorState) -> None:
        """Records whose DORA failure is outstanding but no longer queued (dropped, or lost in a crash)."""
        if self.dora is None:
            return
        queued = set(state.refetch)
        for key in state.undelivered():
            record = state.incidents[key]
            if key in queued:
                continue
            waiting = self.dora.queued(key)
            if waiting == record.desired:
                continue
            if record.desired == '' and self.dora.can_remove:
                self.dora.remove(key)
                continue
            state.refetch.append(key)
            queued.add(key)

    def take_pages(self) -> int:
        """Incidents read again by id (requests) since the last call, for the run report."""
        pages, self.pages = self.pages, 0
        return pages

    def refetch(self, client: PagerDutyClient, state: CollectorState) -> Iterator[PassStep]:
        """Read again by id the incidents whose failure went missing or disagrees with Datadog: one `Page` each."""
        done = 0
        while state.refetch and done < MAX_REFETCH_PER_RUN and self.dora is not None:
            key = state.refetch[0]
            record = state.incidents.get(key)
            if record is None or not settled(record.delivered, record.desired):
                done += 1
                yield NEXT_REQUEST
                yield self._read_again(client, key, record is not None)
            state.refetch.pop(0)

    def _read_again(self, client: PagerDutyClient, key: str, recorded: bool) -> Page:
        page = Page(deliver=False)
        try:
            raw = client.get_incident(key)
        except ApiError as e:
            if dispose(e) is not Disposition.UNREADABLE:
                raise
            page.skipped.append(('unreadable_incident', 1))
            return page
        self.pages += 1
        if raw is None and recorded:
            page.gone.append(key)
        elif raw is None and self.dora is not None and self.dora.can_remove:
            self.dora.remove(key)
        elif raw is not None:
            incident = page.parsed(raw)
            if incident is not None:
                page.looks.append(Look(incident))
        return page


def _count(raw: str | None) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0
