# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Work that waits in the Agent's persistent cache for a later run: bounded, oldest first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from datadog_checks.pagerduty_dora.common.documents import encode, migrate, parse
from datadog_checks.pagerduty_dora.common.services import AgentServices


class PendingQueue:
    """Work that waits for a later run: one entry per key, oldest first, bounded in size and age.

    A newer payload for a waiting key replaces the old one and keeps its place (and its age), so a
    busy key is not starved. Entries leave from the front; `dump()`/`load()` give its cache form.
    """

    def __init__(self, max_items: int, max_age: float, clock: Callable[[], float]) -> None:
        self.max_items = max(1, max_items)
        self.max_age = max_age
        self._clock = clock
        # key -> [first arrival time, payload]; insertion order is the order entries leave in.
        self._entries: OrderedDict[str, list] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: str, payload: dict) -> list[str]:
        """Queue `payload` under `key`; return the keys of the oldest entries dropped to make room."""
        entry = self._entries.get(key)
        if entry is not None:
            entry[1] = payload
            return []
        self._entries[key] = [self._clock(), payload]
        return self.trim()

    def keys(self) -> list[str]:
        """The keys waiting, in the order they leave in (a copy: the queue may change meanwhile)."""
        return list(self._entries)

    def first(self) -> tuple[str, dict] | None:
        """The entry that leaves next, without removing it."""
        for key, entry in self._entries.items():
            return key, entry[1]
        return None

    def remove(self, key: str) -> None:
        self._entries.pop(key, None)

    def trim(self) -> list[str]:
        """Drop the oldest entries beyond `max_items`; return their keys."""
        dropped = []
        while len(self._entries) > self.max_items:
            dropped.append(self._entries.popitem(last=False)[0])
        return dropped

    def expire(self) -> list[tuple[str, dict]]:
        """Remove and return the entries that arrived more than `max_age` seconds ago."""
        expire_before = self._clock() - self.max_age
        expired = [(key, entry[1]) for key, entry in self._entries.items() if entry[0] < expire_before]
        for key, _ in expired:
            del self._entries[key]
        return expired

    def dump(self) -> list[list[Any]]:
        return [[key, entry[0], entry[1]] for key, entry in self._entries.items()]

    def load(self, items: list[Any]) -> int:
        """Add the entries of a `dump()`; return how many items were not entries and were skipped."""
        skipped = 0
        for item in items:
            if (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and isinstance(item[1], (int, float))
                and not isinstance(item[1], bool)
                and isinstance(item[2], dict)
            ):
                self._entries[item[0]] = [float(item[1]), item[2]]
            else:
                skipped += 1
        return skipped


@dataclass(frozen=True)
class QueueBounds:
    """How much a queue keeps: `max_items` entries at most, each for `max_age` seconds at most.

    The bounds of every stored queue: DORA failures waiting for delivery, change-failure attribution's tasks.
    """

    max_items: int
    max_age: float


@dataclass(frozen=True)
class QueueDocument:
    """The cache entry a `StoredQueue` is kept in, and the words its warnings use.

    The entry under `key` is a document of layout `version`, holding the queue's `dump()` under
    `field` beside the owner's own `fields` (each of the type named); `upgrades` bring a document of
    an earlier layout forward (see `documents.migrate`). `what` names the document and `entries` its
    entries in the warnings.
    """

    key: str
    what: str
    entries: str
    field: str = 'items'
    fields: Mapping[str, type] = MappingProxyType({})
    version: int = 1
    upgrades: Mapping[int, Callable[[dict], dict]] = MappingProxyType({})


class StoredQueue(PendingQueue):
    """A `PendingQueue` kept in the persistent cache as `document`, read on first use, written when changed.

    `read()` returns the owner's fields as stored and `save()` writes them back with the queue. A
    document of an earlier layout is brought forward by the document's `upgrades`. Damage is
    survived: a value that is not such a document is warned about and the queue starts empty; items
    that are not entries are warned about and skipped; either way the next `save()` writes a clean
    document. `services` lend the persistent cache, the warnings and the clock entries are aged by.

    The `bounds` hold from the first read (a lowered `max_items` applies to what was stored). What
    they drop is reported: entries expired by `expire()` at once, entries dropped for room when
    `report_dropped()` or `save()` is next called, each as `on_dropped(reason, count)` (`full` or
    `expired`) and a warning.
    """

    def __init__(
        self,
        document: QueueDocument,
        services: AgentServices,
        bounds: QueueBounds,
        on_dropped: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(bounds.max_items, bounds.max_age, services.clock)
        self.cache_key = document.key
        self._document = document
        self._read_cache = services.read_cache
        self._write_cache = services.write_cache
        self._warning = services.warning
        self._on_dropped = on_dropped or (lambda reason, count: None)
        self._fields: dict[str, Any] | None = None
        self._dropped_full = 0
        # Whether the cache holds something other than this queue (and the owner's fields) now.
        self._dirty = False

    @property
    def dirty(self) -> bool:
        """Whether the cache holds something other than this queue and the owner's fields now."""
        return self._dirty

    def fields_changed(self) -> None:
        """The owner changed its fields (those `read()` returned): the next `save()` writes them."""
        self._dirty = True

    def read(self) -> dict[str, Any]:
        """Load the queue on the first call; return the owner's fields as stored (empty when none could be read)."""
        if self._fields is None:
            self._fields = self._load()
            self._count_full(self.trim())
        return self._fields

    def put(self, key: str, payload: dict) -> list[str]:
        dropped = super().put(key, payload)
        self._count_full(dropped)
        self._dirty = True
        return dropped

    def remove(self, key: str) -> None:
        if key in self._entries:
            super().remove(key)
            self._dirty = True

    def expire(self) -> list[tuple[str, dict]]:
        expired = super().expire()
        if expired:
            self._dirty = True
            self._on_dropped('expired', len(expired))
            self._warning(
                'Dropped %d %s that could not be sent within %d seconds (max age)',
                len(expired),
                self._document.entries,
                int(self.max_age),
            )
        return expired

    def report_dropped(self) -> None:
        """Report the entries dropped for room since the last report."""
        if not self._dropped_full:
            return
        dropped, self._dropped_full = self._dropped_full, 0
        self._on_dropped('full', dropped)
        self._warning(
            'Dropped the %d oldest %s: more than %d were waiting', dropped, self._document.entries, self.max_items
        )

    def save(self, fields: Mapping[str, Any] | None = None) -> None:
        """Report drops, and write the queue (with the owner's `fields`) if it was read and changed since."""
        self.report_dropped()
        if not self._dirty or self._fields is None:
            return
        if fields is not None:
            self._fields = dict(fields)
        layout = self._document
        document = dict(self._fields, **{layout.field: self.dump()})
        self._write_cache(self.cache_key, encode(layout.version, document))
        self._dirty = False

    def _count_full(self, dropped: list[str]) -> None:
        if dropped:
            self._dropped_full += len(dropped)
            self._dirty = True

    def _load(self) -> dict[str, Any]:
        raw = self._read_cache(self.cache_key)
        if not raw:
            return {}
        expected = self._document
        try:
            stored = parse(raw)
            layout = stored.get('version')
            document = migrate(stored, expected.version, expected.upgrades)
            # A document of an earlier layout is written back in the current one.
            self._dirty = layout != expected.version
            items = document[expected.field]
            if not isinstance(items, list) or any(
                not isinstance(document.get(name), kind) for name, kind in expected.fields.items()
            ):
                raise ValueError('unknown layout')
        except (ValueError, KeyError, TypeError) as e:
            self._warning('The %s in the persistent cache could not be read (%s); starting empty', expected.what, e)
            self._dirty = True
            return {}
        skipped = self.load(items)
        if skipped:
            self._warning('Skipped %d unreadable %s from the persistent cache', skipped, expected.entries)
            self._dirty = True
        return {name: document[name] for name in expected.fields}


class Digests:
    """A digest of each queued payload, computed once per payload (the object queued, which is never changed)."""

    def __init__(self, digest: Callable[[dict], str]) -> None:
        self._digest = digest
        self._by_key: dict[str, tuple[dict, str]] = {}

    def note(self, key: str, payload: dict, digest: str) -> None:
        """`digest` is the digest of `payload`, queued under `key`: a caller that has it already."""
        self._by_key[key] = (payload, digest)

    def of(self, key: str, payload: dict) -> str:
        """The digest of `payload`, queued under `key`."""
        kept = self._by_key.get(key)
        if kept is None or kept[0] is not payload:
            kept = self._by_key[key] = (payload, self._digest(payload))
        return kept[1]

    def take(self, key: str, payload: dict) -> str:
        """The digest of `payload`, which left the queue: forgotten."""
        digest = self.of(key, payload)
        del self._by_key[key]
        return digest

    def keep(self, queue: PendingQueue) -> None:
        """Forget the digests of payloads no longer queued (dropped, discarded, or never asked for once answered)."""
        if len(self._by_key) > len(queue):
            self._by_key = {key: kept for key, kept in self._by_key.items() if queue.get(key) is kept[0]}
