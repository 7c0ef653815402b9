# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the collector holds of one incident between runs, and its stored form in every layout released."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.pagerduty.monitor import KEPT_MAPPING, MonitorMapping
from datadog_checks.pagerduty_dora.pagerduty.transitions import BASE, STEP, Base, Step

STATUSES = ('triggered', 'acknowledged', 'resolved')


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


RECORD: codec.Struct[IncidentRecord] = codec.Struct(
    IncidentRecord,
    None,
    # `monitor` is new in layout 4: a record of an earlier layout has none, and is decided again.
    1,
    status=codec.Choice(*STATUSES),
    priority=codec.Optional(codec.TEXT),
    urgency=codec.TEXT,
    service_id=codec.TEXT,
    service_name=codec.TEXT,
    created_at=codec.TIME,
    resolved_at=codec.Optional(codec.TIME),
    desired=codec.TEXT,
    delivered=codec.TEXT,
    tags=codec.ListOf(codec.TEXT),
    acked=codec.FLAG,
    wanted=codec.FLAG,
    checked_at=codec.TIME,
    base=BASE,
    steps=codec.ListOf(STEP),
    emitted=codec.ListOf(codec.TEXT),
    counted=codec.FLAG,
    monitor=KEPT_MAPPING,
)


_EMITTED = [name for name, _ in RECORD.domains].index('emitted')


def reported_keys(raw: Any) -> list[str]:
    """The keys of the transitions a damaged record says were reported, where that much of it can still be read."""
    try:
        return RECORD.domains[_EMITTED][1].decode(raw[_EMITTED])
    except (codec.Invalid, TypeError, IndexError, KeyError):
        return []


# The fingerprint layouts 1 and 2 stored for a failure they kept back (DORA delivery turned off).
_KEPT_BACK = '-'


def from_layout_1(raw: Any) -> list[Any]:
    """A record of layout 1 (status, ..., fingerprint, tags, seen_at) in layout 2's form.

    Layout 1 listed every open incident each run, so `seen_at` is when its status was last read;
    it did not record acknowledgements, so an acknowledged incident counts as acknowledged before.
    """
    if len(raw) != 10:
        raise ValueError('not a record of layout 1')
    seen_at = raw[9]
    # Layout 2 appended: status_at (here seen_at), acked, wanted, checked_at (here seen_at).
    return list(raw) + [int(raw[0] == 'acknowledged'), 1, seen_at]


def from_layout_2(raw: Any) -> list[Any]:
    """A record of layout 2 (..., fingerprint, tags, status_at, acked, wanted, checked_at) in today's form.

    Layout 2 kept no story: its status, read at `status_at`, becomes the base the story starts from,
    so an entry the feed reads again from before then is taken as reflected. Its `fingerprint` is
    what it handed to delivery: what the queue still holds is delivered from the queue, which then
    reports what Datadog accepted.
    """
    if len(raw) != 13:
        raise ValueError('not a record of layout 2')
    status, resolved_at, fingerprint, status_at, acked = raw[0], raw[6], raw[7], raw[9], raw[10]
    resolved = status == 'resolved'
    sent = '' if fingerprint == _KEPT_BACK else fingerprint
    base = Base(
        status=status,
        acked=bool(acked) or status == 'acknowledged',
        resolve_key='at:{}'.format(int(resolved_at or status_at)) if resolved else '',
        resolved_at=resolved_at if resolved else None,
        at=float(status_at),
        unsure_until=float(status_at) + 1,
    )
    # status ... resolved_at as they were; the fingerprint as both desired and delivered; tags; acked,
    # wanted, checked_at as they were; the base; no steps, no keys emitted; counted (layout 2 counted an
    # incident's mapping match when it first met it).
    return list(raw[:7]) + [sent, sent, raw[8]] + list(raw[10:13]) + [BASE.encode(base), [], [], 1]
