# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One look at an incident, decided without I/O: its story so far, what in it is news, or which log to read first.

`look()` takes what the collector knows (the incident's record, the log entries just read, where
collection stands) and returns either a `Story` (the base and steps to keep, the transition keys
emitted, the transitions to report now), `ReadLog` (the incident's own log is needed first: call again
with it), or None (leave the incident for a later look). The caller does the reading and the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from datadog_checks.pagerduty_dora.datadog.marks import rejected
from datadog_checks.pagerduty_dora.pagerduty.client import LogEntry
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
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

from .pages import LATE_REACH, OVERLAP
from .record import IncidentRecord


@dataclass(frozen=True)
class Context:
    """Where collection stands, in PagerDuty time, for one look.

    `live_since` is when collection went live (None before), `read_start` where this run's feed
    reading starts, `feed_read_until` the feed's position (`Feed.read_until`; None before going live),
    `baseline` whether the first reconciliation pass is done, and `reported` the transition keys
    Datadog's record shows as sent for the incident (after a rebuild).
    """

    now: float
    live_since: float | None
    read_start: float
    feed_read_until: float | None
    baseline: bool
    reported: Sequence[str] = ()
    # Before it, transitions of an incident without a record were reported by records since lost.
    reported_until: float = 0.0


@dataclass(frozen=True)
class ReadLog:
    """The incident's own log is needed (from `since`, or all of it for None) before the look can be decided."""

    since: float | None


@dataclass
class Story:
    """What a look decided: the story to keep, the keys emitted, and the transitions to report now."""

    end: Base
    base: Base
    steps: list[Step]
    emitted: set[str]
    new: list[Transition] = field(default_factory=list)


def look(
    incident: Incident,
    record: IncidentRecord | None,
    steps: list[Step],
    context: Context,
    *,
    from_feed: bool,
    log: list[Step] | None = None,
) -> Story | ReadLog | None:
    """Bring one incident's story up to date from its object, the entries just read and, if asked for, its log."""
    if record is None:
        first = _first_look(incident, steps, context, from_feed=from_feed, log=log)
        if first is None or isinstance(first, ReadLog):
            return first
        base, steps, emitted = first
    else:
        base, emitted = record.base, set(record.emitted)
        steps = merged(record.steps, steps)
    transitions, end = replay(base, steps, incident)
    if end.status != incident.status and _missed(incident, context):
        # The feed read past this change without showing it: the incident's own log tells, and
        # only when even that cannot explain it is the incident's own status taken.
        if record is not None:
            if log is None:
                return ReadLog(base.at)
            steps = merged(steps, log)
            transitions, end = replay(base, steps, incident)
        if end.status != incident.status:
            transitions += adopt(end, incident, context.now)
            base, steps = observed(incident, context.now), []
            base.acked = base.acked or end.acked
            end = base
    elif end.status != incident.status and record is None and end.status != NEW:
        # Its log does not explain its status yet (an entry not indexed yet): decided on a later look.
        return None
    new = [t for t in transitions if t.key not in emitted]
    emitted.update(t.key for t in new)
    if record is not None and not record.wanted:
        # Coming back into scope or the filters is not news: nothing that happened meanwhile is reported.
        new = []
    if context.feed_read_until is not None:
        # Steps are kept as long as the feed's second look may bring an entry indexed late among them.
        base, steps, folded = fold(base, steps, context.feed_read_until - LATE_REACH, incident)
        emitted -= folded
    if record is not None:
        previous = (record.priority, record.urgency, record.service_id, record.service_name)
        new += field_changes(previous, incident, steps, context.now)
    return Story(end, base, steps, emitted, sorted(new, key=lambda t: t.at))


def _first_look(
    incident: Incident, steps: list[Step], context: Context, *, from_feed: bool, log: list[Step] | None
) -> tuple[Base, list[Step], set[str]] | ReadLog | None:
    """The story of an incident without a record, and the keys of what in it is not news; None to leave it.

    During the baseline the incident is taken as it is (nothing before going live is news). After
    it, an incident whose whole life lies in the entries just read (its trigger among them) starts
    from nothing; any other is read from its own log, and only what happened since the cut is news.
    """
    live = context.live_since if context.live_since is not None else context.now
    read_start = context.read_start
    if from_feed:
        if incident.created_at >= read_start and any(step.action == 'trigger' for step in steps):
            transitions, _ = replay(Base(), steps, incident)
            return Base(), steps, _not_news(transitions, live, context)
        # Born before this run's reading, or born within it with its trigger on an older page than
        # these entries (more than a page of them): only its own log holds the start of its story.
        return _from_log(incident, steps, max(read_start, live), context, log)
    read_until = context.feed_read_until if context.feed_read_until is not None else live
    if incident.created_at >= max(live, min(read_start, read_until)):
        # Created where the feed reads: it reports the incident, with its whole story.
        return None
    if not context.baseline:
        return observed(incident, context.now), [], set()
    return _from_log(incident, steps, live if incident.created_at >= live else read_start, context, log)


def _from_log(
    incident: Incident, steps: list[Step], cut: float, context: Context, log: list[Step] | None
) -> tuple[Base, list[Step], set[str]] | ReadLog:
    """The incident's whole story from its own log; what happened before `cut` is not news."""
    if log is None:
        return ReadLog(None)
    steps = merged(log, steps)
    transitions, _ = replay(Base(), steps, incident)
    return Base(), steps, _not_news(transitions, cut, context)


def _not_news(transitions: list[Transition], cut: float, context: Context) -> set[str]:
    """Keys of the transitions not to report: before `cut`, or reported already as Datadog's record shows."""
    cut = max(cut, context.reported_until)
    return {t.key for t in transitions if t.at < cut or t.key.lower() in context.reported}


def _missed(incident: Incident, context: Context) -> bool:
    """Whether the incident's status change should have been shown by the feed already."""
    if context.feed_read_until is None or not context.baseline:
        return False
    changed = incident.last_status_change_at
    return changed is None or changed < context.feed_read_until - OVERLAP


def merged(steps: Iterable[Step], more: Iterable[Step]) -> list[Step]:
    """`steps` and the steps of `more` not among them (by entry id), in that order."""
    out = list(steps)
    known = {step.id for step in out}
    for step in more:
        if step.id not in known:
            known.add(step.id)
            out.append(step)
    return out


def settled(delivered: str, desired: str) -> bool:
    """Whether Datadog holds what is wanted (or refused it for good, so that re-sending it would fail again)."""
    return delivered == desired or delivered == rejected(desired)


def steps_of(entries: list[LogEntry]) -> list[Step]:
    """Log entries as the steps of an incident's story."""
    return [Step(e.id, e.at, e.action, e.evidence, e.kind) for e in entries]


def recorded(
    incident: Incident, record: IncidentRecord | None, story: Story, tag_set: str, wanted: bool
) -> IncidentRecord:
    """The incident's record after a look that decided `story` (its DORA fingerprints are filled in by the caller).

    `tag_set` names the incident's mapping tags (`CollectorState.keep_tags`), kept while it is wanted and open.
    """
    end = story.end
    status = end.status if end.status != NEW else incident.status
    return IncidentRecord(
        status=status,
        priority=incident.priority,
        urgency=incident.urgency,
        service_id=incident.service_id,
        service_name=incident.service_name,
        created_at=incident.created_at,
        resolved_at=(end.resolved_at or incident.resolved_at) if status == 'resolved' else None,
        delivered=record.delivered if record is not None else '',
        tag_set=tag_set if wanted and status != 'resolved' else '',
        acked=end.acked,
        wanted=wanted,
        base=story.base,
        steps=story.steps,
        emitted=sorted(story.emitted),
        counted=record.counted if record is not None else False,
    )
