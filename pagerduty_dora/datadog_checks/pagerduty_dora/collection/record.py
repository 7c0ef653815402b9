# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the collector holds of one incident between runs, and its stored form in every layout released."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

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

    # The `Records` holding it and its key there (None: none), told when a field is set.
    _owner = None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        owner = self._owner
        if owner is not None:
            owner[0].changed(owner[1])


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


# What a record says for the per-run scans: open, its gauge group (status, tag set) or None, unsettled, resolved.
Facts = tuple[bool, tuple[str, str] | None, bool, bool]


class Records(dict[str, IncidentRecord]):
    """The records by incident id, and what the per-run scans ask of them, kept as records change.

    A record put, replaced or removed, or a field of one set (a record tells the `Records` holding
    it), marks its key changed; the open keys, the unsettled keys (`settled` false), the resolved
    keys and the open-incident gauge's counts are brought up to date from the changed keys only,
    when asked. The JSON text of the whole map is kept too until something changes (`text`). A
    record held twice (at two keys, or by two maps) cannot say which key changed: such a map
    counts everything again whenever it is asked.
    """

    def __init__(self, records: Iterable[tuple[str, IncidentRecord]], settled: Callable[[str, str], bool]) -> None:
        super().__init__()
        self._settled = settled
        self._changed: set[str] = set()
        self._facts: dict[str, Facts] = {}
        self._open: set[str] = set()
        self._unsettled: set[str] = set()
        self._resolved: set[str] = set()
        self._gauge: Counter[tuple[str, str]] = Counter()
        self._text: str | None = None
        self._shared = False
        for key, record in records:
            self[key] = record

    def held_twice(self) -> None:
        """A record of this map is held by another map or at another key too: count everything when asked."""
        self._shared = True

    def changed(self, key: str) -> None:
        self._changed.add(key)
        self._text = None

    def __setitem__(self, key: str, record: IncidentRecord) -> None:
        old = dict.get(self, key)
        if old is record:
            return
        if old is not None:
            self._release(old, key)
        dict.__setitem__(self, key, record)
        owner = record._owner
        if owner is not None and dict.get(owner[0], owner[1]) is record:
            # Held elsewhere already: neither map can tell its changes apart any more.
            owner[0].held_twice()
            self.held_twice()
        object.__setattr__(record, '_owner', (self, key))
        self.changed(key)

    def __delitem__(self, key: str) -> None:
        self._release(dict.__getitem__(self, key), key)
        dict.__delitem__(self, key)
        self.changed(key)

    def _release(self, record: IncidentRecord, key: str) -> None:
        owner = record._owner
        if owner is not None and owner[0] is self and owner[1] == key:
            object.__setattr__(record, '_owner', None)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            return dict.pop(self, key, *default)
        record = dict.__getitem__(self, key)
        del self[key]
        return record

    def popitem(self) -> tuple[str, IncidentRecord]:
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *others: Any, **more: IncidentRecord) -> None:
        for other in (*others, more):
            for key, record in other.items() if isinstance(other, Mapping) else other:
                self[key] = record

    def __ior__(self, other: Any) -> Records:  # type: ignore[override, misc]
        self.update(other)
        return self

    def open_keys(self) -> set[str]:
        """The keys of open records (not resolved)."""
        return self._current()._open

    def unsettled_keys(self) -> set[str]:
        """The keys of records whose DORA failure is not settled (`settled(delivered, desired)` false)."""
        return self._current()._unsettled

    def resolved_keys(self) -> set[str]:
        """The keys of resolved records."""
        return self._current()._resolved

    def gauge_counts(self) -> Counter[tuple[str, str]]:
        """Wanted open records with a tag set, counted by (status, tag set)."""
        return self._current()._gauge

    def text(self, encode: Callable[[dict[str, IncidentRecord]], str]) -> str:
        """The map's JSON text, `encode`d again only after something changed."""
        if self._text is None or self._shared:
            self._text = encode(self)
        return self._text

    def _current(self) -> Records:
        """The scans' sets and counts brought up to date with the changes since they were last asked."""
        if self._shared:
            self._facts, self._open, self._unsettled, self._resolved = {}, set(), set(), set()
            self._gauge = Counter()
            self._changed = set(self)
        changed, self._changed = self._changed, set()
        for key in changed:
            old = self._facts.pop(key, None)
            if old is not None:
                self._count(key, old, -1)
            record = dict.get(self, key)
            if record is not None:
                self._facts[key] = facts = self.facts(record)
                self._count(key, facts, 1)
        return self

    def facts(self, record: IncidentRecord) -> Facts:
        """What `record` says for the scans."""
        status = record.status
        is_open = status != 'resolved'
        group = (status, record.tag_set) if is_open and record.tag_set and record.wanted else None
        return is_open, group, not self._settled(record.delivered, record.desired), not is_open

    def _count(self, key: str, facts: Facts, sign: int) -> None:
        is_open, group, unsettled, resolved = facts
        for member, keys in ((is_open, self._open), (unsettled, self._unsettled), (resolved, self._resolved)):
            if member:
                keys.add(key) if sign > 0 else keys.discard(key)
        if group is not None:
            self._gauge[group] += sign
            if not self._gauge[group]:
                del self._gauge[group]

    def in_order(self, keys: set[str]) -> Iterator[str]:
        """The keys among `keys`, in the map's order."""
        if keys:
            yield from [key for key in self if key in keys]


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
