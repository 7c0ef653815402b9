# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the collector holds of one incident between runs, and its stored form in every layout released."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datadog_checks.pagerduty_dora.common import codec, json_format
from datadog_checks.pagerduty_dora.common.text import digest
from datadog_checks.pagerduty_dora.pagerduty.monitor import KEPT_MAPPING, MonitorMapping
from datadog_checks.pagerduty_dora.pagerduty.transitions import BASE, STEP, Base, Step

STATUSES = ('triggered', 'acknowledged', 'resolved')


@dataclass
class IncidentRecord(codec.Kept):
    """What the collector holds of one incident between runs.

    `base` and `steps` are the incident's recent story (see `transitions.py`): `emitted` names the
    transitions of `steps` already reported, so a step that arrives late reports only itself.
    `status`, `acked` and `resolved_at` are where that story ends. `desired` is the fingerprint of
    the DORA failure the incident should have in Datadog ('' for none), `delivered` the one Datadog
    last accepted ('' for none): they differ while a delivery or removal is outstanding.

    A record is `Kept`: its fields are replaced, never changed in place, so that its stored text is
    encoded again only when one of them was set (`codec.MapOf.text`).
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
    # The mapping tags of an open incident, for the open-incident gauge: their key in the state's
    # table of tag sets (`tag_key`), '' for none. Many incidents share a set.
    tag_set: str = ''
    acked: bool = False
    # Whether the last look found it in scope and filters (events and metrics are for those only).
    wanted: bool = True
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
    tag_set=codec.TEXT,
    acked=codec.FLAG,
    wanted=codec.FLAG,
    base=BASE,
    steps=codec.ListOf(STEP),
    emitted=codec.ListOf(codec.TEXT),
    counted=codec.FLAG,
    monitor=KEPT_MAPPING,
)
# The table of the tag sets records name: key -> tags.
TAG_SETS: codec.Domain[dict[str, list[str]]] = codec.MapOf(codec.ListOf(codec.TEXT))


# Hex digits of a tag set's key: a few hundred sets are told apart with room to spare.
TAG_KEY_LENGTH = 12


def tag_key(tags: list[str]) -> str:
    """The key of a set of tags in the state's table ('' for none): a digest of the tags, the same on every Agent."""
    return digest(json_format.encode(tags))[:TAG_KEY_LENGTH] if tags else ''


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


# Where layout 4 kept a record's tags and when it was last confirmed.
_LAYOUT_4_TAGS, _LAYOUT_4_CHECKED_AT = 9, 12


def from_layout_4(raw: Any, tag_sets: dict[str, Any]) -> list[Any]:
    """A record of layout 4 (..., tags, acked, wanted, checked_at, base, ...) in today's form.

    Its tags go to the state's table `tag_sets` and the record names them by key; `checked_at` is
    dropped (see `checked_at_of` for what it said).
    """
    if not isinstance(raw, list) or len(raw) not in (17, 18):
        raise ValueError('not a record of layout 4')
    tags = raw[_LAYOUT_4_TAGS]
    key = tag_key(tags) if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags) else ''
    if key:
        tag_sets[key] = tags
    kept = raw[_LAYOUT_4_TAGS + 1 : _LAYOUT_4_CHECKED_AT]
    return raw[:_LAYOUT_4_TAGS] + [key] + kept + raw[_LAYOUT_4_CHECKED_AT + 1 :]


def checked_at_of(raw: Any) -> Any:
    """When a record of layout 4 was last confirmed (None when that cannot be read)."""
    return raw[_LAYOUT_4_CHECKED_AT] if isinstance(raw, list) and len(raw) > _LAYOUT_4_CHECKED_AT else None
