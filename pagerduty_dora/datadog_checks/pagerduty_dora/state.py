# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's memory between runs, and its JSON form in the Agent's persistent cache."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import cache

# Bumped when the stored shape changes; an unknown version is treated like a damaged value.
STATE_VERSION = 1


@dataclass
class IncidentRecord:
    """What was last emitted for one incident: the fields whose change is a transition."""

    status: str
    priority: str | None
    urgency: str
    service_id: str
    service_name: str
    created_at: float
    resolved_at: float | None
    # Fingerprint of the DORA failure last handed to delivery ('' when none was).
    fingerprint: str = ''
    # Mapping tags of an open incident, for the open-incident gauge.
    tags: list[str] = field(default_factory=list)
    # When this state was observed (collector clock): later log entries are news.
    seen_at: float = 0.0

    def to_list(self) -> list[Any]:
        return [
            self.status,
            self.priority,
            self.urgency,
            self.service_id,
            self.service_name,
            self.created_at,
            self.resolved_at,
            self.fingerprint,
            self.tags,
            self.seen_at,
        ]

    @classmethod
    def from_list(cls, values: list[Any]) -> IncidentRecord:
        status, priority, urgency, service_id, service_name, created_at, resolved_at, fingerprint, tags, seen_at = (
            values
        )
        return cls(
            status=str(status),
            priority=priority if priority is None else str(priority),
            urgency=str(urgency),
            service_id=str(service_id),
            service_name=str(service_name),
            created_at=_time(created_at),
            resolved_at=_optional_time(resolved_at),
            fingerprint=str(fingerprint),
            tags=[str(t) for t in tags],
            seen_at=_time(seen_at),
        )


@dataclass
class Window:
    """A creation-time window being paged through: [since, until) from `offset` on."""

    since: float
    until: float
    offset: int = 0
    total: int | None = None


@dataclass
class OpenScan:
    """A pass over the open incidents that may span runs: where it is and what it has seen."""

    started: float
    offset: int = 0
    since: float | None = None
    seen: set[str] = field(default_factory=set)


@dataclass
class CollectorState:
    # Every incident created before `horizon` has been processed (None: nothing collected yet).
    horizon: float | None = None
    # When the first complete look at the open incidents started; before it, the run only records.
    live_since: float | None = None
    window: Window | None = None
    # Width of the next creation-time window, learned from the totals PagerDuty reports.
    width: float = 0.0
    open_scan: OpenScan | None = None
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.live_since is not None

    def dumps(self) -> str:
        window, scan = self.window, self.open_scan
        return cache.encode(
            STATE_VERSION,
            {
                'horizon': self.horizon,
                'live_since': self.live_since,
                'window': None if window is None else [window.since, window.until, window.offset, window.total],
                'width': self.width,
                'open_scan': None if scan is None else [scan.started, scan.offset, scan.since, sorted(scan.seen)],
                'incidents': {key: record.to_list() for key, record in self.incidents.items()},
            },
        )

    @classmethod
    def loads(cls, text: str) -> CollectorState:
        """Decode a stored state; raises ValueError when it is damaged or of an unknown version."""
        try:
            data = cache.decode(text, STATE_VERSION)
            window = data.get('window')
            scan = data.get('open_scan')
            return cls(
                horizon=_optional_time(data.get('horizon')),
                live_since=_optional_time(data.get('live_since')),
                window=None if window is None else _window(window),
                width=_finite(data.get('width') or 0.0),
                open_scan=None
                if scan is None
                else OpenScan(_time(scan[0]), _offset(scan[1]), _optional_time(scan[2]), {str(i) for i in scan[3]}),
                incidents={str(k): IncidentRecord.from_list(v) for k, v in dict(data.get('incidents') or {}).items()},
            )
        except (TypeError, KeyError, IndexError, AttributeError) as e:
            raise ValueError('malformed state: {}'.format(type(e).__name__)) from None


# Stored times must be ones `format_time` can render into a query: [1970, 9999).
_LATEST_TIME = 253370764800.0


def _finite(value: Any) -> float:
    if isinstance(value, (bool, str)):
        raise ValueError('not a number: {!r}'.format(value)[:80])
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError('not a finite non-negative number')
    return number


def _time(value: Any) -> float:
    number = _finite(value)
    if number >= _LATEST_TIME:
        raise ValueError('time out of range')
    return number


def _optional_time(value: Any) -> float | None:
    return None if value is None else _time(value)


def _offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('offset is not a non-negative integer')
    return value


def _window(raw: Any) -> Window:
    since, until, offset, total = raw
    window = Window(_time(since), _time(until), _offset(offset), None if total is None else _offset(total))
    if window.since >= window.until:
        raise ValueError('empty window')
    return window
