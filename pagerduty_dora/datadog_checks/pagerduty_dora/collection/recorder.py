# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What one look at an incident does: its record, its DORA failure, its events and metrics.

The story is decided in `story.py` without I/O; this module reads the incident's own log when the
story asks for it, keeps the record, queues what the incident's DORA failure should become, and
hands the transitions to the outputs and to attribution.
"""

from __future__ import annotations

from typing import Any

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult, map_incident
from datadog_checks.pagerduty_dora.catalog.qualification import Qualification
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.text import digest, for_log
from datadog_checks.pagerduty_dora.datadog.dora import build_failure
from datadog_checks.pagerduty_dora.datadog.dora import fingerprint as fingerprint_of
from datadog_checks.pagerduty_dora.datadog.marks import is_rejected
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs, mapping_tags
from datadog_checks.pagerduty_dora.pagerduty.client import LogEntry, PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, MalformedIncident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Step, Transition, observed

from .ports import Log
from .rebuild import payload_digest
from .reconcile import meet
from .record import IncidentRecord
from .rest import Rests
from .run import Features, Run, StopRun
from .settings import Settings
from .state import CollectorState
from .story import Context, ReadLog, Story, look, recorded, settled, steps_of

# Incidents whose own log may be read in one run (those without a record that the feed or
# reconciliation meets); past it, the run stops and the next one goes on from there.
MAX_LOG_READS_PER_RUN = 30
# Malformed incidents remembered as already warned about (by a hash of their id); past this the set
# starts over, so a stream of distinct bad ids costs a few warnings more, never unbounded memory.
MAX_WARNED_MALFORMED = 1000
# What a warning shows of a malformed incident's id.
MAX_LOGGED_ID = 64


class Recorder:
    """Brings incidents' records up to date and does each look's output."""

    def __init__(
        self,
        client: PagerDutyClient,
        *,
        outputs: Outputs,
        settings: Settings,
        services: AgentServices,
        features: Features,
    ) -> None:
        self.client = client
        self.dora = features.dora
        self.outputs = outputs
        self.attribution = features.attribution
        self.monitors = features.monitors  # decides monitor mappings; None with `monitor_mapping: false`
        self.settings = settings
        self.qualification = Qualification(
            urgencies=settings.urgencies,
            priorities=settings.priorities,
            unmapped_incidents=settings.unmapped_incidents,
        )
        self.log: Log = services.log
        self._warning = services.warning
        self._warned_malformed: set[str] = set()
        self.rests = Rests(delivering=features.dora is not None)
        self._run: Run | None = None
        # Incidents whose own log this run read.
        self._log_reads = 0

    def start_run(self, run: Run) -> None:
        """Looks from now on belong to `run`."""
        self._run = run
        self._log_reads = 0

    @property
    def run(self) -> Run:
        """The run the looks belong to (`start_run`)."""
        if self._run is None:
            raise RuntimeError('an incident is looked at only within a run')
        return self._run

    @property
    def state(self) -> CollectorState:
        return self.run.state

    @property
    def keep_mappings(self) -> bool:
        return self.run.mode.keep_mappings

    # Reading ------------------------------------------------------------------------------------

    def malformed(self, raw: Any, error: MalformedIncident) -> None:
        """An incident a field of which is unusable: counted, and warned about once per incident.

        The warning shows the id escaped and bounded (`for_log`); what is remembered of it is a short
        hash, in a bounded set, so a hostile id costs neither log lines nor memory.
        """
        self.run.report.skipped += 1
        key: str = raw['id'] if isinstance(raw, dict) and isinstance(raw.get('id'), str) else '?'
        self.outputs.count('incidents.skipped', 1, ['reason:malformed'])
        seen = digest(key)
        if seen not in self._warned_malformed:
            if len(self._warned_malformed) >= MAX_WARNED_MALFORMED:
                self._warned_malformed.clear()
            self._warned_malformed.add(seen)
            self._warning('Skipped PagerDuty incident %s: %s', for_log(key, MAX_LOGGED_ID), for_log(str(error)))

    def _read_log(self, incident: Incident, since: float | None) -> list[Step]:
        if self._log_reads >= MAX_LOG_READS_PER_RUN:
            raise StopRun(
                'read the logs of {} incidents this run; the rest waits for the next one'.format(self._log_reads)
            )
        self._log_reads += 1
        return steps_of(self.client.incident_log(incident.id, since, before_page=self.run.check_deadline))

    # Policy -------------------------------------------------------------------------------------

    def map(self, incident: Incident, record: IncidentRecord | None = None) -> MappingResult:
        monitors = self.monitors
        monitor = record.monitor if record is not None and monitors is not None else None
        return map_incident(
            incident,
            self.run.catalog,
            overrides=self.settings.overrides,
            env=self.settings.env,
            severity_mapping=self.settings.severity_mapping,
            monitor=monitor or (monitors.decide(self.client, incident) if monitors is not None else None),
        )

    def in_scope(self, incident: Incident) -> bool:
        if self.settings.service_ids and incident.service_id not in self.settings.service_ids:
            return False
        if self.settings.team_ids and not {t.id for t in incident.teams} & set(self.settings.team_ids):
            return False
        return True

    def wanted(self, incident: Incident, mapping: MappingResult) -> bool:
        """Whether the incident counts: in the filters, and mapped unless unmapped incidents are sent."""
        return self.qualification.qualifies(incident, mapping)

    def _failure_wanted(self, incident: Incident, wanted: bool) -> bool:
        """Whether the incident should have a DORA failure: wanted, and not merged away (the survivor carries it)."""
        return wanted and not (incident.merged and self.can_remove())

    def can_remove(self) -> bool:
        return self.dora is not None and self.dora.can_remove

    def _count_unmapped(self, mapping: MappingResult) -> None:
        """Count an incident first left out because it reached the fallback rule under `unmapped_incidents: skip`."""
        if self.qualification.skips_unmapped(mapping):
            self.outputs.count('incidents.skipped', 1, ['reason:unmapped'])

    # One look -----------------------------------------------------------------------------------

    def observe(self, incident: Incident, entries: list[LogEntry] | None = None) -> None:
        """Bring one incident's record up to date from its object and any log entries just read."""
        state = self.state
        state.go_live(self.client.now)
        record = state.incidents.get(incident.id)
        if entries is None and record is not None and self._at_rest(incident, record):
            meet(state, incident.id, record)
            return
        if not self.in_scope(incident):
            self._out_of_scope(incident, record)
            return
        context = Context(
            now=self.run.now(),
            live_since=state.live_since,
            read_start=self.run.read_start,
            feed_read_until=state.feed.read_until if state.feed is not None else None,
            baseline=state.baseline,
            reported=state.rebuilt.get(incident.id, ()),
            reported_until=state.reported_until or 0.0,
        )
        steps = steps_of(entries or [])
        story = look(incident, record, steps, context, from_feed=entries is not None)
        if isinstance(story, ReadLog):
            log = self._read_log(incident, story.since)
            story = look(incident, record, steps, context, from_feed=entries is not None, log=log)
        if story is None or isinstance(story, ReadLog):
            return
        self._commit(incident, record, story)

    def _at_rest(self, incident: Incident, record: IncidentRecord) -> bool:
        """Whether the look is one at rest (`rest.py`): it only confirms the record (and lets attribution judge)."""
        rest = None if self.keep_mappings else self.rests.find(incident, record, self.run.catalog)
        if rest is None or (self.dora is not None and self.dora.queued(incident.id) is not None):
            return False
        if self.attribution is not None:
            self.attribution.observe(incident, rest.mapping, rest.wanted, [])
        return True

    def _commit(self, incident: Incident, record: IncidentRecord | None, story: Story) -> None:
        """Record the incident, want its DORA failure, and emit its transitions: the output of one look."""
        mapping = self.map(incident, record)
        if self.keep_mappings:
            self.run.report.mappings[incident.id] = (incident, mapping)
        tags = mapping_tags(incident, mapping)
        wanted = self.wanted(incident, mapping)
        updated = recorded(incident, record, story, self.state.keep_tags(tags) if wanted else '', wanted)
        updated.monitor = mapping.monitor
        if record is None:
            updated.delivered = self._held_delivery(incident, mapping)
        if wanted and not updated.counted:
            updated.counted = True
            self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
        elif record is None and not wanted:
            self._count_unmapped(mapping)
        if self._failure_wanted(incident, wanted):
            updated.desired = self.want(incident.id, updated, build_failure(incident, mapping))
        elif updated.delivered and not is_rejected(updated.delivered) and not self.can_remove():
            # A failure already sent that no longer counts is followed to its resolve when it cannot be removed.
            updated.desired = self.want(incident.id, updated, build_failure(incident, mapping))
        else:
            updated.desired = self.want(incident.id, updated, None)
        if updated == record:  # nothing changed: the record stored stays, as it was written
            updated = record
        self.state.incidents[incident.id] = updated
        meet(self.state, incident.id, updated)
        self.rests.keep(incident, updated, self.run.catalog, (mapping, wanted), self.state.incidents)
        notes = self.attribution.observe(incident, mapping, wanted, story.new) if self.attribution is not None else {}
        self._emit(story.new, mapping, tags, wanted, notes)

    def _held_delivery(self, incident: Incident, mapping: MappingResult) -> str:
        """For an incident first seen after a rebuild: the fingerprint of its failure if Datadog holds it as it is."""
        held = self.run.held.get(incident.id) if self.state.rebuilt_at else None
        if held is None:
            return ''
        attributes = build_failure(incident, mapping)
        return fingerprint_of(attributes) if payload_digest(attributes) == held else ''

    def want(self, key: str, record: IncidentRecord, attributes: dict | None) -> str:
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
        if settled(record.delivered, desired):
            if waiting is not None:
                # A change queued earlier is no longer wanted: Datadog already holds what is.
                self.dora.discard(key)
            return desired
        if attributes is not None:
            self.dora.enqueue(key, attributes, desired)
        elif self.dora.can_remove:
            self.dora.remove(key)
        elif waiting is not None:
            self.dora.discard(key)
        return desired

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
        now = self.run.now()
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
            self.state.event_sent(self.outputs.transition(transition, mapping, tags, now, [note] if note else []))

    # Other looks --------------------------------------------------------------------------------

    def gone(self, key: str) -> None:
        """The incident was deleted in PagerDuty: its failure must not stay open."""
        if self.attribution is not None:
            self.attribution.gone(key)
        record = self.state.incidents.get(key)
        if record is None:
            return
        if not record.delivered or is_rejected(record.delivered) or self.dora is None:
            del self.state.incidents[key]
            if self.dora is not None:
                # A failure still waiting to be sent for it never is.
                self.dora.discard(key)
            return
        if self.dora.can_remove:
            record.desired, record.status, record.wanted, record.tag_set = '', 'resolved', False, ''
            self.want(key, record, None)
            return
        del self.state.incidents[key]
        self.outputs.count('dora.unremovable', 1, [])
        self._warning(
            'PagerDuty incident %s was deleted, but its DORA failure cannot be removed without '
            '`datadog_app_key`; it stays open in Datadog',
            key,
        )

    def _out_of_scope(self, incident: Incident, record: IncidentRecord | None) -> None:
        """An incident outside `service_ids`/`team_ids`: a failure it left behind is removed or followed.

        Its record stays (not wanted) while it is open, so that coming back into scope is not news.
        """
        if record is None:
            return
        if self.attribution is not None:
            self.attribution.gone(incident.id, 'out_of_scope')
        now = self.run.now()
        if self.can_remove() or not record.delivered:
            record.desired = self.want(incident.id, record, None)
        else:
            record.desired = self.want(incident.id, record, build_failure(incident, self.map(incident, record)))
        record.wanted, record.tag_set = False, ''
        record.status = incident.status
        record.base, record.steps, record.emitted = observed(incident, now), [], []
        if not incident.is_open and settled(record.delivered, record.desired):
            del self.state.incidents[incident.id]
        else:
            meet(self.state, incident.id, record)

    def redeliver(self, incident: Incident) -> None:
        """Queue the failure of an incident met by the re-sending of history (delivery was off)."""
        if self.dora is None or not self.in_scope(incident):
            return
        if incident.id in self.state.incidents:
            self.observe(incident)
            return
        mapping = self.map(incident)
        if self._failure_wanted(incident, self.wanted(incident, mapping)):
            self.dora.enqueue(incident.id, build_failure(incident, mapping))

    def sweep_incident(self, incident: Incident) -> None:
        """One incident of the history sweep: a resolved one without a record is history (its failure only)."""
        if not self.in_scope(incident):
            return
        if incident.id not in self.state.incidents and not incident.is_open:
            self._history(incident)
            return
        self.observe(incident)

    def recheck(self, incident: Incident) -> None:
        """A resolved incident read again: its record brought up to date, or a forgotten one's failure sent as it is."""
        if incident.id in self.state.incidents or not self.in_scope(incident):
            self.observe(incident)
            return
        self._history(incident, again=True)

    def _history(self, incident: Incident, *, again: bool = False) -> None:
        """An incident resolved long before this look: its DORA failure only, nothing to remember or emit.

        `again` is for one already sent as history or forgotten since: counted once already, and a
        failure it no longer should have is removed.
        """
        mapping = self.map(incident)
        if self.keep_mappings:
            self.run.report.mappings[incident.id] = (incident, mapping)
        if self._failure_wanted(incident, self.wanted(incident, mapping)):
            tags = mapping_tags(incident, mapping)
            if not again:
                self.outputs.count('mapping.matches', 1, ['mapping_rule:{}'.format(mapping.rule)], tags)
            if self.dora is not None:
                attributes = build_failure(incident, mapping)
                held = self.run.held.get(incident.id) if self.state.rebuilt_at else None
                if held is None or payload_digest(attributes) != held:
                    self.dora.enqueue(incident.id, attributes)
        elif not again:
            self._count_unmapped(mapping)
        elif self.dora is not None and self.can_remove():
            self.dora.remove(incident.id)
