# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Versioned JSON documents, the form every value this check keeps in the Agent's persistent cache takes.

A document is a JSON object with a `version` (its layout) beside its parts. `Layout` reads one part
by part: every layout this project released is migrated forward to the current one, a part outside
its domain is reset alone (and reported as `Damage`), and for a part read entry by entry only the
entries that are out of their domain are dropped. Only a value that is no document at all, or one
of a layout newer than this release knows, is `Unreadable` as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import json_format
from .codec import Domain, Invalid, MapOf


class Unreadable(ValueError):
    """A cache value that is no document of a known layout: nothing in it can be trusted."""


def encode(version: int, fields: dict[str, Any]) -> str:
    """A cache value holding `fields` under layout `version`."""
    return json_format.encode(dict(fields, version=version))


def parse(raw: str) -> dict[str, Any]:
    """The JSON object a cache value holds, whatever its layout; raises `Unreadable`."""
    try:
        document = json_format.decode(raw)
    except RecursionError:
        raise Unreadable('nested too deeply') from None
    except ValueError as e:
        raise Unreadable('not JSON ({})'.format(type(e).__name__)) from None
    if not isinstance(document, dict):
        raise Unreadable('not a JSON object')
    return document


def decode(raw: str, version: int) -> dict[str, Any]:
    """The document a cache value holds; raises `Unreadable` when it is not one of layout `version`.

    For documents with a single layout, read whole; `Layout` reads documents part by part.
    """
    document = parse(raw)
    if document.get('version') != version:
        raise Unreadable('unknown layout version {!r}'.format(document.get('version'))[:80])
    return document


@dataclass(frozen=True)
class Part:
    """One part of a document: its domain, the value it takes when absent or damaged, whether read entry by entry."""

    domain: Domain
    default: Callable[[], Any]
    each: bool = False


@dataclass
class Damage:
    """A part that could not be read and was reset, or (`entries`) the entries of one that were dropped."""

    part: str
    reason: str
    # Per dropped entry, why it could not be read, and what was stored (for what can still be salvaged).
    entries: dict[str, str] = field(default_factory=dict)
    stored: dict[str, Any] = field(default_factory=dict)


class Layout:
    """The current layout of one document, and how each earlier layout becomes the next.

    `upgrades[n]` turns the fields of a layout-`n` document into those of layout `n + 1`; a
    migration works on the stored form, so it stays valid whatever the code's values become.
    """

    def __init__(self, version: int, parts: dict[str, Part], upgrades: dict[int, Callable[[dict], dict]]) -> None:
        self.version = version
        self.parts = parts
        self.upgrades = upgrades

    def encode(self, values: dict[str, Any]) -> str:
        """The document of `values`; a part read entry by entry is written a piece at a time (`MapOf.text`)."""
        parts = self.parts.items()
        pieced = {name: part.domain for name, part in parts if part.each and isinstance(part.domain, MapOf)}
        whole = {name: part.domain.encode(values[name]) for name, part in parts if name not in pieced}
        text = encode(self.version, whole)
        pieces = ['{}:{}'.format(json_format.encode(key), domain.text(values[key])) for key, domain in pieced.items()]
        return '{}{}}}'.format(text[:-1], ''.join(',' + piece for piece in pieces)) if pieces else text

    def decode(self, raw: str) -> tuple[dict[str, Any], list[Damage]]:
        """The parts of a stored document at the current layout, and what of it had to be reset."""
        document = self.migrate(parse(raw))
        values: dict[str, Any] = {}
        damage: list[Damage] = []
        for name, part in self.parts.items():
            if name not in document:
                values[name] = part.default()
                continue
            try:
                if part.each:
                    assert isinstance(part.domain, MapOf)
                    values[name], bad = part.domain.decode_each(document[name])
                    if bad:
                        stored = {key: document[name].get(key) for key in bad}
                        damage.append(Damage(name, 'entries out of their domain', bad, stored))
                else:
                    values[name] = part.domain.decode(document[name])
            except (Invalid, TypeError, ValueError) as e:
                values[name] = part.default()
                damage.append(Damage(name, str(e)))
        return values, damage

    def migrate(self, document: dict[str, Any]) -> dict[str, Any]:
        return migrate(document, self.version, self.upgrades)


def migrate(document: dict[str, Any], version: int, upgrades: Mapping[int, Callable[[dict], dict]]) -> dict[str, Any]:
    """`document` brought forward to layout `version` by `upgrades` (`upgrades[n]` makes layout n + 1 of layout n).

    Raises `Unreadable` for a layout it does not know: a newer one, or an older one without a way forward.
    """
    found = document.get('version')
    if isinstance(found, bool) or not isinstance(found, int):
        raise Unreadable('no layout version')
    if found > version or (found < version and found < min(upgrades, default=version)):
        raise Unreadable('layout {} is not one this release reads'.format(found))
    while found < version:
        try:
            document = upgrades[found](document)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise Unreadable('layout {} could not be migrated ({})'.format(found, type(e).__name__)) from None
        found += 1
    return dict(document, version=version)
