# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""JSON the way the Agent reads and writes it: orjson where it is installed, the standard library elsewhere.

datadog-checks-base's `utils.format.json` uses orjson when it is present (the base's `json` extra pins
it, and the Agent ships it) and the standard library otherwise; a base release without that module
leaves the standard library. Every API body and every stored document goes through `encode` and
`decode` here, so the check has one JSON and its two paths are tested alike.

orjson refuses a few values the standard library takes: lone surrogates (a remote API may send them
escaped), integers beyond 64 bits, non-string keys, `NaN`. Those fall back to the standard library,
so what the check can read and write does not depend on which library is installed. orjson reads an
integer beyond 64 bits as a float without complaint: a text with a number of 20 digits or more is
read by the standard library (a linear scan, about a fifth of orjson's own time, finds them; a run of
digits inside a text value, such as a hexadecimal key, is told apart by what precedes it). orjson's
parser holds about 15 times the text while it reads, the standard library's 2 to 5 times: a text
longer than `FAST_LIMIT` (no page of 100 incidents comes near it) is read by the standard library, so
that a hostile body costs what it did. Infinities and
`NaN` are no JSON: orjson writes them as `null`; no stored domain admits them (`codec.py`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

try:
    from datadog_checks.base.utils.format import json as _agent_json
except ImportError:  # a datadog-checks-base release without it
    _agent_json = None
try:
    # The library the Agent's module uses, for bytes it would otherwise decode to text.
    from orjson import dumps as _orjson_dumps
except ImportError:
    _orjson_dumps = None


def _standard_encode(value: Any) -> str:
    # ASCII escapes keep a lone surrogate writable as UTF-8.
    return json.dumps(value, separators=(',', ':'), check_circular=False)


_fast_encode: Callable[[Any], str] = _agent_json.encode if _agent_json is not None else _standard_encode
_fast_decode: Callable[[str | bytes], Any] = _agent_json.decode if _agent_json is not None else json.loads


def implementation() -> str:
    """The library doing the work: `orjson` or `json` (the standard library)."""
    if _agent_json is None:
        return 'json'
    return 'orjson' if getattr(_agent_json.json, 'orjson', None) is not None else 'json'


def encode(value: Any) -> str:
    """Compact JSON of `value`; raises `TypeError` or `ValueError` for what JSON cannot hold."""
    try:
        return _fast_encode(value)
    except (TypeError, ValueError):
        return _standard_encode(value)


def encode_bytes(value: Any) -> bytes:
    """Compact JSON of `value` as UTF-8 bytes, for a digest: orjson's in one pass where installed, else
    `encode`'s text (also for what orjson refuses: a lone surrogate, an integer beyond 64 bits)."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(value)
        except TypeError:
            pass
    return encode(value).encode('utf-8', 'surrogatepass')


# Digits made alike, and what may precede a number in JSON (`:`, `,`, `[`) made one mark.
_MARKED = bytes.maketrans(b'123456789,[', b'000000000::')
_LONG_INTEGER = b'0' * 20
_MARK = ord(':')
_NOT_ZERO = re.compile(rb'[^0]')
# Spaces and a sign between a mark and its number are looked back over this far; further is taken as a number.
_LOOK_BACK = 64


def _long_integer(raw: bytes) -> bool:
    """Whether `raw` may hold a number of 20 digits or more (an integer beyond 64 bits, for one).

    Linear in the text: each run of digits is looked at once, from its start.
    """
    marked = raw.translate(_MARKED)
    found = marked.find(_LONG_INTEGER)
    while found >= 0:
        before = marked[max(0, found - _LOOK_BACK) : found].rstrip(b' \t\r\n-')
        if not before or before[-1] == _MARK:
            return True
        rest = _NOT_ZERO.search(marked, found + len(_LONG_INTEGER))
        if rest is None:
            return False
        found = marked.find(_LONG_INTEGER, rest.start())
    return False


# The longest text orjson reads (bytes).
FAST_LIMIT = 1 << 20


def decode(text: str | bytes) -> Any:
    """The value JSON `text` holds; raises `ValueError` (or `RecursionError`) for what is not JSON."""
    if len(text) > FAST_LIMIT:
        return json.loads(text)
    raw = text if isinstance(text, bytes) else text.encode('utf-8', 'surrogatepass')
    if _long_integer(raw):
        return json.loads(text)
    try:
        return _fast_decode(text)
    except ValueError:
        return json.loads(text)
