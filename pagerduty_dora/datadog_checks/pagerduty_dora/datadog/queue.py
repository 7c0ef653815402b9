# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Work that waits in the Agent's persistent cache for a later run: bounded, oldest first."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

from datadog_checks.pagerduty_dora.common.documents import encode, migrate, parse


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
        horizon = self._clock() - self.max_age
        expired = [(key, entry[1]) for key, entry in self._entries.items() if entry[0] < horizon]
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


class StoredQueue(PendingQueue):
    """A `PendingQueue` kept in the persistent cache under `cache_key`, read on first use, written when changed.

    The cache value is a document of layout `version` holding the queue's `dump()` under `field`,
    beside the owner's own `fields` (each of the type `fields` names): `read()` returns them and
    `save()` writes them back with the queue. A document of an earlier layout is brought forward by
    `upgrades` (see `documents.migrate`). Damage is survived: a value that is not such a document
    is warned about and the queue starts empty; items that are not entries are warned about and
    skipped; either way the next `save()` writes a clean document.

    The bounds hold from the first read (a lowered `max_items` applies to what was stored). What
    they drop is reported: entries expired by `expire()` at once, entries dropped for room when
    `report_dropped()` or `save()` is next called, each as `on_dropped(reason, count)` (`full` or
    `expired`) and a warning. `what` names the document and `entries` its entries in the warnings.
    """

    def __init__(
        self,
        cache_key: str,
        *,
        read_cache: Callable[[str], str],
        write_cache: Callable[[str, str], None],
        warning: Callable[..., None],
        max_items: int,
        max_age: float,
        clock: Callable[[], float],
        what: str,
        entries: str,
        on_dropped: Callable[[str, int], None] | None = None,
        field: str = 'items',
        fields: Mapping[str, type] | None = None,
        version: int = 1,
        upgrades: Mapping[int, Callable[[dict], dict]] | None = None,
    ) -> None:
        super().__init__(max_items, max_age, clock)
        self.cache_key = cache_key
        self._read_cache = read_cache
        self._write_cache = write_cache
        self._warning = warning
        self._what = what
        self._entries_name = entries
        self._on_dropped = on_dropped or (lambda reason, count: None)
        self._field = field
        self._field_types = dict(fields or {})
        self._version = version
        self._upgrades = dict(upgrades or {})
        self._fields: dict[str, Any] | None = None
        self._dropped_full = 0
        # Whether the cache holds something other than this queue (and the owner's fields) now.
        self.dirty = False

    def read(self) -> dict[str, Any]:
        """Load the queue on the first call; return the owner's fields as stored (empty when none could be read)."""
        if self._fields is None:
            self._fields = self._load()
            self._count_full(self.trim())
        return self._fields

    def put(self, key: str, payload: dict) -> list[str]:
        dropped = super().put(key, payload)
        self._count_full(dropped)
        self.dirty = True
        return dropped

    def remove(self, key: str) -> None:
        if key in self._entries:
            super().remove(key)
            self.dirty = True

    def expire(self) -> list[tuple[str, dict]]:
        expired = super().expire()
        if expired:
            self.dirty = True
            self._on_dropped('expired', len(expired))
            self._warning(
                'Dropped %d %s that could not be sent within %d seconds (max age)',
                len(expired),
                self._entries_name,
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
            'Dropped the %d oldest %s: more than %d were waiting', dropped, self._entries_name, self.max_items
        )

    def save(self, fields: Mapping[str, Any] | None = None) -> None:
        """Report drops, and write the queue (with the owner's `fields`) if it was read and changed since."""
        self.report_dropped()
        if not self.dirty or self._fields is None:
            return
        if fields is not None:
            self._fields = dict(fields)
        document = dict(self._fields, **{self._field: self.dump()})
        self._write_cache(self.cache_key, encode(self._version, document))
        self.dirty = False

    def _count_full(self, dropped: list[str]) -> None:
        if dropped:
            self._dropped_full += len(dropped)
            self.dirty = True

    def _load(self) -> dict[str, Any]:
        raw = self._read_cache(self.cache_key)
        if not raw:
            return {}
        try:
            stored = parse(raw)
            layout = stored.get('version')
            document = migrate(stored, self._version, self._upgrades)
            # A document of an earlier layout is written back in the current one.
            self.dirty = layout != self._version
            items = document[self._field]
            if not isinstance(items, list) or any(
                not isinstance(document.get(name), kind) for name, kind in self._field_types.items()
            ):
                raise ValueError('unknown layout')
        except (ValueError, KeyError, TypeError) as e:
            self._warning('The %s in the persistent cache could not be read (%s); starting empty', self._what, e)
            self.dirty = True
            return {}
        skipped = self.load(items)
        if skipped:
            self._warning('Skipped %d unreadable %s from the persistent cache', skipped, self._entries_name)
            self.dirty = True
        return {name: document[name] for name in self._field_types}


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
