# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A small typed codec for what this check keeps in the Agent's persistent cache.

Each stored value declares its domain once, as a `Domain`: the same declaration encodes the value
for the cache and validates what the cache gives back. A value that is not in its domain raises
`Invalid` naming the field, so a reader can reset that value alone. `Struct` stores a dataclass as a
positional list in the order its fields are declared; trailing fields with a default may be absent,
so a layout can grow at its end without breaking what is stored.

A map of many entries is written a piece at a time (`MapOf.text`): an entry that is `Kept` holds its
JSON text from the last write until one of its fields is set again, so a write encodes only the
entries that changed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import fields
from typing import Any, Callable, Generic, TypeVar

from . import json_format
from .times import LATEST_TIME

T = TypeVar('T')


class Invalid(ValueError):
    """A stored value outside its domain; the message names where."""


class Domain(Generic[T]):
    """The set of values a stored field may hold, with their cache form.

    `plain` says a value is its own cache form (a number, a text): encoding it costs nothing.
    """

    plain = True

    def encode(self, value: T) -> Any:
        return value

    def decode(self, raw: Any) -> T:
        raise NotImplementedError


class Number(Domain[float]):
    """A finite number in [low, high); a whole one is stored without its `.0` (PagerDuty's times are whole seconds)."""

    plain = False

    def __init__(self, low: float, high: float, what: str) -> None:
        self.low, self.high, self.what = low, high, what

    def encode(self, value: float) -> float | int:
        return int(value) if type(value) is float and value.is_integer() else value

    def decode(self, raw: Any) -> float:
        kind = type(raw)
        if kind is not float and kind is not int:
            raise Invalid('{} is not a number'.format(self.what))
        # A comparison with NaN is false, and infinities fall outside [low, high) as `low` is finite
        # and `high` is finite or infinite itself: the range test refuses what is not finite too.
        if not self.low <= raw < self.high:
            raise Invalid('{} {!r} is out of range'.format(self.what, raw)[:120])
        return float(raw)


class _Count(Domain[int]):
    """A whole number from `low` on."""

    def __init__(self, low: int) -> None:
        self.low = low

    def decode(self, raw: Any) -> int:
        if type(raw) is not int or raw < self.low:
            raise Invalid('{!r} is not a whole number from {}'.format(raw, self.low)[:120])
        return raw


class _Flag(Domain[bool]):
    """A yes or no, stored as 0 or 1."""

    plain = False

    def encode(self, value: bool) -> int:
        return int(value)

    def decode(self, raw: Any) -> bool:
        if raw not in (0, 1):  # True and False compare equal to 1 and 0
            raise Invalid('{!r} is not a flag'.format(raw)[:120])
        return bool(raw)


class _Text(Domain[str]):
    def decode(self, raw: Any) -> str:
        if type(raw) is not str:
            raise Invalid('{!r} is not text'.format(raw)[:120])
        return raw


class Choice(Domain[str]):
    """One of a fixed set of strings."""

    def __init__(self, *values: str) -> None:
        self.values = frozenset(values)

    def decode(self, raw: Any) -> str:
        if raw not in self.values:
            raise Invalid('{!r} is not one of {}'.format(raw, sorted(self.values))[:120])
        return raw


class SetOf(Domain[set[str]]):
    """A set of texts, stored as a sorted list (the same set is the same text)."""

    plain = False

    def encode(self, value: set[str]) -> list[str]:
        return sorted(value)

    def decode(self, raw: Any) -> set[str]:
        if not isinstance(raw, list):
            raise Invalid('not a list')
        return {TEXT.decode(v) for v in raw}


class Kept:
    """A stored value (a dataclass) that keeps its JSON text from the last write until a field of it is set.

    Its fields are replaced, never changed in place (a list is assigned anew), so setting one is
    what makes the kept text stale. An owner may also `mark` the value, to know later that no field
    of it was set since.
    """

    # (key, text, mark): the map key and JSON text of the last write, and the owner's mark (None: none).
    _kept: tuple[Any, Any, Any] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, '_kept', None)

    def mark(self, token: object) -> None:
        """Note `token` on the value until a field of it is set."""
        kept = self._kept or (None, None, None)
        object.__setattr__(self, '_kept', (kept[0], kept[1], token))

    def marked(self, token: object) -> bool:
        """Whether the value bears `token` (`mark`): no field of it was set since."""
        return self._kept is not None and self._kept[2] is token


class Optional(Domain['T | None']):
    """A value of `inner`, or nothing (stored as null)."""

    def __init__(self, inner: Domain[T]) -> None:
        self.inner = inner
        self.plain = inner.plain

    def encode(self, value: T | None) -> Any:
        return None if value is None else self.inner.encode(value)

    def decode(self, raw: Any) -> T | None:
        return None if raw is None else self.inner.decode(raw)


class ListOf(Domain[list[T]]):
    """A list of values of `item`, at most `limit` of them (the first ones are kept)."""

    def __init__(self, item: Domain[T], limit: int | None = None) -> None:
        self.item, self.limit = item, limit
        self.plain = item.plain

    def encode(self, value: list[T]) -> list[Any]:
        return value if self.plain else [self.item.encode(v) for v in value]

    def decode(self, raw: Any) -> list[T]:
        if not isinstance(raw, list):
            raise Invalid('not a list')
        return [self.item.decode(v) for v in raw[: self.limit]]


class MapOf(Domain[dict[str, T]]):
    """Values of `item` by text key."""

    def __init__(self, item: Domain[T]) -> None:
        self.item = item
        self.plain = item.plain

    def encode(self, value: dict[str, T]) -> dict[str, Any]:
        return value if self.plain else {key: self.item.encode(v) for key, v in value.items()}

    def decode(self, raw: Any) -> dict[str, T]:
        if not isinstance(raw, dict):
            raise Invalid('not a map')
        return {str(key): self.item.decode(v) for key, v in raw.items()}

    def text(self, value: dict[str, T]) -> str:
        """The JSON text of `value`: each `Kept` entry's text is encoded again only after a field of it was set."""
        pieces = []
        for key, item in value.items():
            kept = item._kept if isinstance(item, Kept) else None
            if kept is not None and kept[0] == key:
                pieces.append(kept[1])
                continue
            piece = '{}:{}'.format(json_format.encode(key), json_format.encode(self.item.encode(item)))
            if isinstance(item, Kept):
                object.__setattr__(item, '_kept', (key, piece, kept[2] if kept is not None else None))
            pieces.append(piece)
        return '{' + ','.join(pieces) + '}'

    def decode_each(self, raw: Any) -> tuple[dict[str, T], dict[str, str]]:
        """The entries that decode, and for each one that does not, why: damage stays with its entry."""
        if not isinstance(raw, dict):
            raise Invalid('not a map')
        kept: dict[str, T] = {}
        bad: dict[str, str] = {}
        for key, value in raw.items():
            try:
                kept[str(key)] = self.item.decode(value)
            except (Invalid, TypeError, ValueError) as e:
                bad[str(key)] = str(e)
        return kept, bad


class Pair(Domain[tuple[Any, Any]]):
    """Two values, of `first` and of `second`, stored as a list of two."""

    plain = False

    def __init__(self, first: Domain, second: Domain) -> None:
        self.first, self.second = first, second

    def encode(self, value: tuple[Any, Any]) -> list[Any]:
        return [self.first.encode(value[0]), self.second.encode(value[1])]

    def decode(self, raw: Any) -> tuple[Any, Any]:
        if not isinstance(raw, list) or len(raw) != 2:
            raise Invalid('not a pair')
        return self.first.decode(raw[0]), self.second.decode(raw[1])


class Struct(Domain[T]):
    """A dataclass stored as the list of its fields, in the order `domains` names them.

    `check` validates the decoded value as a whole (an empty window, say) and raises `Invalid`. The
    last `grown` fields were added to the layout later: a list without them takes their defaults.
    """

    def __init__(
        self, kind: type[T], check: Callable[[T], None] | None = None, grown: int = 0, /, **domains: Domain
    ) -> None:
        self.kind = kind
        self.check = check
        self.domains = list(domains.items())
        if list(domains) != [f.name for f in fields(kind)]:  # type: ignore[arg-type]
            raise TypeError('{} stores exactly its fields, in their order'.format(kind.__name__))
        self.required = len(self.domains) - grown
        # The fields in order, the place and encoder of each that is not its own stored form, and each decoder.
        names = [name for name, _ in self.domains]
        self._fields = operator.attrgetter(*names) if len(names) > 1 else (lambda value: (getattr(value, names[0]),))
        self._encoders = [(i, domain.encode) for i, (_, domain) in enumerate(self.domains) if not domain.plain]
        self._decoders = [domain.decode for _, domain in self.domains]
        # A `Kept` value read whole is made without setting its fields one by one (which would only
        # mark its kept text stale, field after field).
        self._names = names if issubclass(kind, Kept) else None

    plain = False

    def _where(self, raw: list[Any]) -> str:
        """`Kind.field` of the first value out of its field's domain (a stored value is read again to say where)."""
        for (name, domain), item in zip(self.domains, raw, strict=False):
            try:
                domain.decode(item)
            except Invalid:
                return '{}.{}'.format(self.kind.__name__, name)
        return self.kind.__name__

    def encode(self, value: T) -> list[Any]:
        stored = list(self._fields(value))
        for place, encode in self._encoders:
            stored[place] = encode(stored[place])
        return stored

    def decode(self, raw: Any) -> T:
        if type(raw) is not list or not self.required <= len(raw) <= len(self._decoders):
            raise Invalid('{} is not a list of {} values'.format(self.kind.__name__, len(self.domains)))
        try:
            values = [decode(item) for decode, item in zip(self._decoders, raw, strict=False)]
        except Invalid as e:
            raise Invalid('{}: {}'.format(self._where(raw), e)) from None
        if self._names is not None and len(values) == len(self._names):
            value = self.kind.__new__(self.kind)
            value.__dict__.update(zip(self._names, values, strict=True))
        else:
            value = self.kind(*values)
        if self.check is not None:
            self.check(value)
        return value


# The domains every stored document uses.
# A PagerDuty or Agent time in seconds: one `format_time` can render into a query, [1970, 9999).
TIME: Domain[float] = Number(0.0, LATEST_TIME, 'time')
# A non-negative finite amount (a width in seconds, a share of a page).
AMOUNT: Domain[float] = Number(0.0, math.inf, 'amount')
COUNT: Domain[int] = _Count(0)
FLAG: Domain[bool] = _Flag()
TEXT: Domain[str] = _Text()
