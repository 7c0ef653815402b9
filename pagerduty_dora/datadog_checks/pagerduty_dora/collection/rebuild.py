# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a check that starts over an empty state takes from Datadog: what was sent before it.

The Cluster Agent moves a cluster check to another node, and the persistent cache stays behind on
the old one. With `datadog_app_key`, Datadog holds the record of what the check delivered:

- its Agent events, each tagged with the transition it reports (`pagerduty_transition:<key>`):
  which transitions were reported, and up to when;
- its live events, each saying since when the instance reported every transition (`live_since`),
  sent when it went live and after each day without another event;
- its DORA failures: what each incident's failure in Datadog says.

`read_record()` reads them and returns a `Record`. The collector then goes live where the events
end (`Record.resume_at`: re-reading PagerDuty's log from there, so every transition of the move is
reported, and none that an event shows was reported already), and compares each failure it would
send with what Datadog holds, so that only failures whose incident changed are sent again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.datadog.readback import FailureRecord, Readback

DAY = 86400.0
# How far back the events are read: the last transitions the previous node reported lie within it
# unless it ran unseen for longer, and then everything since is re-read and reported.
EVENTS_LOOKBACK = 2 * DAY


@dataclass
class Rebuild:
    """A rebuild waiting for Datadog's event search: its record is read once the Agent's clock reaches `after`."""

    after: float


REBUILD: codec.Domain[Rebuild] = codec.Struct(Rebuild, after=codec.TIME)


@dataclass
class Record:
    """What Datadog holds of this instance's output."""

    # Transition keys reported, per incident id (lowercase: Datadog lowercases tags).
    emitted: dict[str, set[str]] = field(default_factory=dict)
    # The latest transition event's time, or None when no event was found.
    last_event_at: float | None = None
    # A digest of each failure Datadog holds, per incident id (see `digest`).
    failures: dict[str, str] = field(default_factory=dict)
    events: int = 0
    # Where the event search began: the start of the lookback.
    searched_from: float = 0.0
    # The latest live event: since when it says the instance reported every transition, and its own time.
    live_since: float | None = None
    live_event_at: float | None = None

    @property
    def holds_anything(self) -> bool:
        """Whether Datadog holds anything of this instance: if not, this is a first install."""
        return bool(self.events or self.failures) or self.live_since is not None

    @property
    def latest_event_at(self) -> float | None:
        """The time of the latest event of this instance Datadog holds, of either kind."""
        times = [t for t in (self.last_event_at, self.live_event_at) if t is not None]
        return max(times) if times else None

    def resume_at(self) -> float | None:
        """Where collection goes live: after the last transition event, else where the live event shows that
        every transition since the search began was reported (none was: the account was quiet); None without
        either, as for a state an earlier release stored."""
        if self.last_event_at is not None:
            return self.last_event_at
        if self.live_since is not None:
            return max(self.live_since, self.searched_from)
        return None


def digest(started_at: float, finished_at: float | None, fields: Iterable[Any]) -> str:
    """A short hash of what a failure says, equal for a payload and the failure Datadog made of it."""
    document = [int(started_at), None if finished_at is None else int(finished_at), *fields]
    encoded = json.dumps(document, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    return hashlib.sha256(encoded.encode('utf-8')).hexdigest()[:16]


def payload_digest(attributes: dict) -> str:
    """The digest of a DORA failure payload (`dora.build_failure`)."""
    finished = attributes.get('finished_at')
    return digest(
        attributes['started_at'] / 1e9,
        None if finished is None else finished / 1e9,
        _comparable(
            attributes.get('name'),
            attributes.get('services') or [],
            attributes.get('team'),
            attributes.get('env'),
            attributes.get('severity'),
            attributes.get('custom_tags') or [],
        ),
    )


def failure_digest(failure: FailureRecord) -> str:
    """The digest of a failure as Datadog holds it."""
    return digest(
        failure.started_at,
        failure.finished_at,
        _comparable(failure.name, failure.services, failure.team, failure.env, failure.severity, failure.custom_tags),
    )


def _comparable(
    name: Any, services: Iterable[str], team: Any, env: Any, severity: Any, custom_tags: Iterable[str]
) -> list[Any]:
    return [name or '', sorted(services), team or '', env or '', severity or '', sorted(t.lower() for t in custom_tags)]


def read_record(readback: Readback, *, query: str, now: float, history_since: float) -> Record:
    """Read this instance's events of the last `EVENTS_LOOKBACK` and its failures started since `history_since`.

    Raises what the reads raise: a record read in part is no record.
    """
    record = Record(searched_from=now - EVENTS_LOOKBACK)
    for event in readback.events(query, record.searched_from, now + 3600):
        live_since = event.live_since
        if live_since is not None:
            if record.live_event_at is None or event.timestamp >= record.live_event_at:
                record.live_since, record.live_event_at = live_since, event.timestamp
            continue
        key = event.transition_key
        if key is None or not event.incident_id:
            continue
        record.events += 1
        record.emitted.setdefault(event.incident_id, set()).add(key.lower())
        if record.last_event_at is None or event.timestamp > record.last_event_at:
            record.last_event_at = event.timestamp
    for failure in readback.failures(history_since, now + 3600):
        if failure.exact_id:
            record.failures[failure.incident_id] = failure_digest(failure)
    return record
