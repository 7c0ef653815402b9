# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Versioned JSON documents, the form every value this check keeps in the Agent's persistent cache takes."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Callable


def encode(version: int, fields: dict[str, Any]) -> str:
    """A cache value holding `fields` under layout `version`."""
    # ASCII escapes keep any lone surrogate a remote API sent writable as UTF-8.
    return json.dumps(dict(fields, version=version), separators=(',', ':'))


def decode(raw: str, version: int) -> dict[str, Any]:
    """The document a cache value holds; raises ValueError when it is not one of layout `version`.

    A value written by another layout (an older release, or a damaged write) is refused whole, so
    that every reader can start over from a known state rather than act on half of one.
    """
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValueError('nested too deeply') from None
    if not isinstance(document, dict):
        raise ValueError('not a JSON object')
    if document.get('version') != version:
        raise ValueError('unknown layout version {!r}'.format(document.get('version')))
    return document


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
