# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's memory between runs, and its JSON form in the Agent's persistent cache."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.common import documents
from datadog_checks.pagerduty_dora.common.times import LATEST_TIME
from datadog_checks.pagerduty_dora.pagerduty.monitor import MonitorMapping
from datadog_checks.pagerduty_dora.pagerduty.transitions import NEW, Base, Step

# Bumped when the stored shape changes; an unknown version is treated like a damaged value.
STATE_VERSION = 3


@dataclass
class IncidentRecord:
    """What the collector holds of one incident between runs.

    `base` and `steps` are the incident's recent story (see `transitions.py`): `emitted` names the
    transitions of `steps` already reported, so a step that arrives late reports only itself.
    `status`, `acked` and `resolved_at` are where that story ends. `desired` is the fingerprint of
    the DORA failure the incident should have in Datadog ('' for none), `delivered` the one Datadog
    last accepted ('' for none): they differ while a delivery or removal is outstanding.
    """

    status: str
    priority: str | None
    urgency: str
    service_id: str
    service_name: str
    created_at: float
    resolved_at: float | None
    desired: str = ''
    delivered: str = ''
    # Mapping tags of an open incident, for the open-incident gauge.
    tags: list[str] = field(default_factory=list)
    acked: bool = False
    # Whether the last look found it in scope and filters (events and metrics are for those only).
    wanted: bool = True
    # When (PagerDuty time) the collector last confirmed this state (a log entry, a list or a read by id).
    checked_at: float = 0.0
    base: Base = field(default_factory=Base)
    steps: list[Step] = field(default_factory=list)
    emitted: list[str] = field(default_factory=list)
    # Whether `mapping.matches` has counted this incident (once, the first time it is wanted).
    counted: bool = False
    # What the Datadog monitor that triggered it maps it to, decided at its first trigger (None: not yet).
    monitor: MonitorMapping | None = None

    def to_list(self) -> list[Any]:
        return [
            self.status,
            self.priority,
            self.urgency,
            self.service_id,
            self.service_name,
            self.created_at,
            self.resolved_at,
            self.desired,
            self.delivered,
            self.tags,
            int(self.acked),
            int(self.wanted),
            self.checked_at,
            self.base.to_list(),
            [[step.id, step.at, step.action, int(step.evidence), step.kind] for step in self.steps],
            self.emitted,
            int(self.counted),
            None if self.monitor is None else self.monitor.to_json(),
        ]

    @classmethod
    def from_list(cls, values: list[Any]) -> IncidentRecord:
        (
            status,
            priority,
            urgency,
            service_id,
            service_name,
            created_at,
            resolved_at,
            desired,
            delivered,
            tags,
            acked,
            wanted,
            checked_at,
            base,
            steps,
            emitted,
            counted,
        ) = values[:17]
        if len(values) > 18:
            raise ValueError('too many fields')
        # Records stored before the monitor mapping have no 18th value.
        monitor = values[17] if len(values) > 17 else None
        if status not in ('triggered', 'acknowledged', 'resolved'):
            raise ValueError('unknown status')
        return cls(
            status=str(status),
            priority=priority if priority is None else str(priority),
            urgency=str(urgency),
            service_id=str(service_id),
            service_name=str(service_name),
            created_at=_time(created_at),
            resolved_at=_optional_time(resolved_at),
            desired=str(desired),
            delivered=str(delivered),
            tags=[str(t) for t in tags],
            acked=bool(acked),
            wanted=bool(wanted),
            checked_at=_time(checked_at),
            base=_base(base),
            steps=[_step(step) for step in steps],
            emitted=[str(key) for key in emitted],
            counted=bool(counted),
            monitor=_monitor(monitor),
        )


@dataclass
class Window:
    """A creation-time window being paged through: [since, until) from `offset` on."""

    since: float
    until: float
    offset: int = 0


@dataclass
class FeedWindow:
    """A window of the account's log being paged: [since, until), from `offset` on, newest first.

    New entries (and entries PagerDuty indexes late) only push older ones to higher offsets, so
    paging from the newest down loses none; consecutive pages overlap by a few entries and `tail`
    holds the ids the next page must repeat, so an entry that disappears (its incident deleted) is
    noticed and the page read again. `end` is where the feed's horizon moves once it is read.
    """

    since: float
    until: float
    offset: int
    end: float
    tail: list[str] = field(default_factory=list)


@dataclass
class Feed:
    """The account-wide log, read as a change feed: every entry before `horizon` (PagerDuty time) was applied.

    `window` is the window being paged, should a run stop in the middle of one; `width` is the span
    of the next window, learned from how many entries the last ones held.
    """

    horizon: float
    window: FeedWindow | None = None
    width: float = 0.0
    # Runs in a row whose feed page could not be read (see `FeedPass._request`).
    failures: int = 0


@dataclass
class Reconciliation:
    """A pass over the open incidents, in creation order, that may span runs.

    `position` is the (creation time, incident number) of the last incident read; the next page
    starts at that creation time and skips what is not past it, so incidents that resolve meanwhile
    cannot shift the pass. `skip` counts incidents of that very second already read, for a second
    holding more than a page. `verify` lists open records the pass did not meet: each is read by id.
    """

    started: float
    position: tuple[float, int] | None = None
    skip: int = 0
    verify: list[str] | None = None


@dataclass
class CollectorState:
    # When collection went live (the first run): incidents created since are news.
    live_since: float | None = None
    # Whether a complete pass over the open incidents was made since going live: before it, an
    # open incident without a record may simply not have been met yet.
    baseline: bool = False
    # Every incident created before `horizon` has been processed (None: nothing collected yet).
    horizon: float | None = None
    window: Window | None = None
    # Width of the next creation-time window, learned from the totals PagerDuty reports.
    width: float = 0.0
    feed: Feed | None = None
    reconciliation: Reconciliation | None = None
    # While DORA delivery catches up on history it missed (it was turned off): the creation time
    # up to which history was re-sent, and where that re-sending ends.
    resend: Window | None = None
    resend_end: float | None = None
    # Whether the last run had DORA delivery on.
    delivering: bool = True
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    # PagerDuty's time and the Agent's at the end of the last run: how much time passed between two
    # runs, should a stored horizon turn out ahead of PagerDuty's clock.
    last_run: tuple[float, float] | None = None
    # Incidents to read again by id: their DORA failure is outstanding but no longer queued.
    refetch: list[str] = field(default_factory=list)
    # Tag sets of the open-incident gauge last submitted, so that one that empties is sent as 0 once.
    gauged: list[list[str]] = field(default_factory=list)
    # After a rebuild from Datadog: the transition keys its events show reported, per incident
    # (until the feed is well past the rebuild), and when it was made (0 once history is compared).
    rebuilt: dict[str, list[str]] = field(default_factory=dict)
    rebuilt_at: float = 0.0
    # When (PagerDuty time) Datadog's open failures were last compared with PagerDuty.
    drift_at: float = 0.0
    # The share of a reconciliation page carried to the next run (see `reconcile.pages_per_run`).
    reconcile_credit: float = 0.0

    def go_live(self, now: float | None) -> None:
        """Collection goes live at PagerDuty's time of its first answer: what happens from then on is news."""
        if self.live_since is None and now is not None:
            self.live_since = now
            self.feed = Feed(horizon=now)
            self.drift_at = now

    def dumps(self) -> str:
        feed, scan, resend = self.feed, self.reconciliation, self.resend
        return documents.encode(
            STATE_VERSION,
            {
                'live_since': self.live_since,
                'baseline': self.baseline,
                'horizon': self.horizon,
                'window': None if self.window is None else [self.window.since, self.window.until, self.window.offset],
                'width': self.width,
                'feed': None
                if feed is None
                else [
                    feed.horizon,
                    None
                    if feed.window is None
                    else [feed.window.since, feed.window.until, feed.window.offset, feed.window.end, feed.window.tail],
                    feed.width,
                    feed.failures,
                ],
                'reconciliation': None
                if scan is None
                else [scan.started, None if scan.position is None else list(scan.position), scan.skip, scan.verify],
                'resend': None if resend is None else [resend.since, resend.until, resend.offset],
                'resend_end': self.resend_end,
                'delivering': self.delivering,
                'incidents': {key: record.to_list() for key, record in self.incidents.items()},
                'last_run': None if self.last_run is None else list(self.last_run),
                'refetch': self.refetch,
                'gauged': self.gauged,
                'rebuilt': self.rebuilt,
                'rebuilt_at': self.rebuilt_at,
                'drift_at': self.drift_at,
                'reconcile_credit': self.reconcile_credit,
            },
        )

    @classmethod
    def loads(cls, text: str) -> CollectorState:
        """Decode a stored state; raises ValueError when it is damaged or of an unknown version."""
        try:
            data = documents.decode(text, STATE_VERSION)
            window, feed, scan, resend = (
                data.get('window'),
                data.get('feed'),
                data.get('reconciliation'),
                data.get('resend'),
            )
            return cls(
                live_since=_optional_time(data.get('live_since')),
                baseline=bool(data.get('baseline')),
                horizon=_optional_time(data.get('horizon')),
                window=None if window is None else _window(window),
                width=_finite(data.get('width') or 0.0),
                feed=None if feed is None else _feed(feed),
                reconciliation=None if scan is None else _reconciliation(scan),
                resend=None if resend is None else _window(resend),
                resend_end=_optional_time(data.get('resend_end')),
                delivering=bool(data.get('delivering', True)),
                incidents={str(k): IncidentRecord.from_list(v) for k, v in dict(data.get('incidents') or {}).items()},
                last_run=_last_run(data.get('last_run')),
                refetch=[str(key) for key in data.get('refetch') or []],
                gauged=[[str(tag) for tag in tags] for tags in data.get('gauged') or []],
                rebuilt={str(k): [str(key) for key in v] for k, v in dict(data.get('rebuilt') or {}).items()},
                rebuilt_at=_finite(data.get('rebuilt_at') or 0.0),
                drift_at=_finite(data.get('drift_at') or 0.0),
                reconcile_credit=min(_finite(data.get('reconcile_credit') or 0.0), 1.0),
            )
        except (TypeError, KeyError, IndexError, AttributeError) as e:
            raise ValueError('malformed state: {}'.format(type(e).__name__)) from None


def _monitor(raw: Any) -> MonitorMapping | None:
    """A kept monitor mapping; one that cannot be read is decided again from the incident's alerts."""
    try:
        return None if raw is None else MonitorMapping.from_json(raw)
    except ValueError:
        return None


def _finite(value: Any) -> float:
    if isinstance(value, (bool, str)):
        raise ValueError('not a number: {!r}'.format(value)[:80])
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError('not a finite non-negative number')
    return number


def _time(value: Any) -> float:
    number = _finite(value)
    # Stored times must be ones `format_time` can render into a query: [1970, 9999).
    if number >= LATEST_TIME:
        raise ValueError('time out of range')
    return number


def _optional_time(value: Any) -> float | None:
    return None if value is None else _time(value)


def _offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('offset is not a non-negative integer')
    return value


def _window(raw: Any) -> Window:
    since, until, offset = raw
    window = Window(_time(since), _time(until), _offset(offset))
    if window.since >= window.until:
        raise ValueError('empty window')
    return window


def _feed(raw: Any) -> Feed:
    horizon, window, width, failures = raw
    feed = Feed(_time(horizon), width=_finite(width or 0.0), failures=_offset(failures))
    if window is not None:
        since, until, offset, end, tail = window
        feed.window = FeedWindow(_time(since), _time(until), _offset(offset), _time(end), [str(t) for t in tail][:10])
        if feed.window.since >= feed.window.until:
            raise ValueError('empty window')
    return feed


def _reconciliation(raw: Any) -> Reconciliation:
    started, position, skip, verify = raw
    return Reconciliation(
        started=-1.0 if started == -1 else _time(started),
        position=None if position is None else (_time(position[0]), _offset(position[1])),
        skip=_offset(skip),
        verify=None if verify is None else [str(key) for key in verify],
    )


def _base(raw: Any) -> Base:
    status, acked, resolve_key, resolved_at, at, unsure_until = raw
    if status not in (NEW, 'triggered', 'acknowledged', 'resolved'):
        raise ValueError('unknown status')
    return Base(str(status), bool(acked), str(resolve_key), _optional_time(resolved_at), _time(at), _time(unsure_until))


def _step(raw: Any) -> Step:
    entry_id, at, action, evidence, kind = raw
    return Step(str(entry_id), _time(at), str(action), bool(evidence), str(kind))


def _last_run(raw: Any) -> tuple[float, float] | None:
    if raw is None:
        return None
    pagerduty, agent = raw
    return _time(pagerduty), _time(agent)
