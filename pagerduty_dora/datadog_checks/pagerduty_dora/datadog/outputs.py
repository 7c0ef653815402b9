# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Agent events and metrics for incident transitions, with the tags the README lists under Data Collected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

from .dora import MAX_TAG_LENGTH
from .events import MAX_EVENT_AGE, build_event, build_live_event

STATUS_METRICS = {
    'triggered': 'incidents.triggered',
    'acknowledged': 'incidents.acknowledged',
    'unacknowledged': 'incidents.unacknowledged',
    'resolved': 'incidents.resolved',
    'reopened': 'incidents.reopened',
}
CHANGE_METRIC = 'incidents.changed'
# The aggregation key of the live event of an instance without an instance tag.
SOURCE_KEY = 'pagerduty_dora'


def mapping_tags(incident: Incident, mapping: MappingResult) -> list[str]:
    """The tags every incident metric and event carries: Datadog mapping first, then PagerDuty's own.

    A monitor may name several services: the DORA failure lists them all, events and metrics take the first.
    """
    tags = ['service:{}'.format(service) for service in mapping.services[:1]]
    if mapping.team:
        tags.append('team:{}'.format(mapping.team))
    if mapping.env:
        tags.append('env:{}'.format(mapping.env))
    if mapping.severity:
        tags.append('severity:{}'.format(mapping.severity))
    tags.append('urgency:{}'.format(incident.urgency))
    if incident.service_name:
        tags.append('pagerduty_service:{}'.format(incident.service_name))
    tags.extend('pagerduty_team:{}'.format(team.name) for team in incident.teams if team.name)
    return [tag[:MAX_TAG_LENGTH] for tag in tags]


@dataclass
class Submitters:
    """The check's submission methods, handed over so outputs never reach into the check."""

    event: Callable[[dict], None]
    count: Callable[..., None]
    gauge: Callable[..., None]
    histogram: Callable[..., None]


class Outputs:
    """Turns transitions into Agent events and metrics; `instance_tags` are added to everything.

    Counts are added up during a run and submitted once by `flush()`: a backfill makes thousands
    of requests and mappings, and one submission per tag set is enough.
    """

    def __init__(
        self,
        submit: Submitters,
        *,
        instance_tags: Sequence[str],
        collect_events: bool,
        event_tags: Sequence[str] = (),
    ) -> None:
        self._submit = submit
        self._instance_tags = list(instance_tags)
        # Tags of every event only: the instance they came from, so that they can be read back.
        self._event_tags = list(event_tags)
        self._collect_events = collect_events
        self._counts: dict[tuple[str, tuple[str, ...]], float] = {}

    def tags(self, *extra: Sequence[str]) -> list[str]:
        tags = list(self._instance_tags)
        for group in extra:
            tags.extend(group)
        return tags

    def transition(
        self,
        transition: Transition,
        mapping: MappingResult,
        incident_tags: list[str],
        now: float,
        notes: Sequence[str] = (),
    ) -> float | None:
        """Emit the event and metrics of one live transition; `notes` are extra lines for the event text.

        `now` is PagerDuty's time: a transition older than Datadog accepts for an event (18 hours) is
        dated `now`, tagged `reported_late:true` and counted as `events.late`; its text keeps its real time.
        Returns the time the event is dated (None when events are not collected).
        """
        tags = self.tags(incident_tags)
        incident = transition.incident
        kind = transition.kind
        if kind in STATUS_METRICS:
            self._add(STATUS_METRICS[kind], 1, tags)
        else:
            self._add(CHANGE_METRIC, 1, tags + ['change:{}'.format(kind.split('_')[0])])
        # A transition's time is when it happened in PagerDuty, also for an acknowledgement that a
        # resolved incident no longer lists.
        elapsed = max(0.0, transition.at - incident.created_at)
        if kind == 'resolved':
            self._submit.histogram('incidents.time_to_restore', elapsed, tags=tags)
        elif kind == 'acknowledged' and transition.first:
            # Time to acknowledge ends at the first acknowledgement, as PagerDuty's analytics measure it.
            self._submit.histogram('incidents.time_to_acknowledge', elapsed, tags=tags)
        late = transition.at < now - MAX_EVENT_AGE
        if late:
            self._add('events.late', 1, tags)
        if self._collect_events:
            # The transition tag lets monitors and the event explorer filter by what happened; the
            # identity tag names the log entry that proves it, so the event can be told from its repeats.
            event_tags = tags + self._event_tags + ['transition:{}'.format(kind)]
            if transition.key:
                event_tags.append('pagerduty_transition:{}'.format(transition.key)[:MAX_TAG_LENGTH])
            if late:
                event_tags.append('reported_late:true')
            self._submit.event(build_event(transition, mapping, tags=event_tags, now=now, notes=notes))
            # As Datadog dates the event: whole seconds.
            return float(int(now if late else transition.at))
        return None

    def live(self, live_since: float, now: float, env: str | None) -> float | None:
        """Send the event saying since when this instance reports every transition (`events.build_live_event`).

        `env` is the instance's. Returns the time the event is dated, None when events are not collected.
        """
        if not self._collect_events:
            return None
        key = ','.join(self._event_tags) or SOURCE_KEY
        tags = self.tags(['env:{}'.format(env)] if env else [], self._event_tags)
        self._submit.event(build_live_event(live_since, key=key, tags=tags, now=now))
        return float(int(now))

    @property
    def collects_events(self) -> bool:
        """Whether transitions are sent as Agent events (`collect_events`)."""
        return self._collect_events

    def count(self, name: str, value: float, *tag_groups: Sequence[str]) -> None:
        self._add(name, value, self.tags(*tag_groups))

    def _add(self, name: str, value: float, tags: list[str]) -> None:
        key = (name, tuple(tags))
        self._counts[key] = self._counts.get(key, 0) + value

    def flush(self) -> None:
        """Submit the counts added up since the last flush."""
        counts, self._counts = self._counts, {}
        for (name, tags), value in counts.items():
            self._submit.count(name, value, tags=list(tags))

    def gauge(self, name: str, value: float, *tag_groups: Sequence[str]) -> None:
        self._submit.gauge(name, value, tags=self.tags(*tag_groups))
