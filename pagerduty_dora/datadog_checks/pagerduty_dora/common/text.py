# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Untrusted text (titles, names, ids, error messages) made safe for where it goes.

PagerDuty text is written by anyone who can open an incident, and reaches three places that read
more into it than plain text: the Agent log (a line break forges a line), Datadog events (an
`@handle` notifies someone) and every encoder (a lone UTF-16 surrogate cannot be written as UTF-8).
Each of those has one helper here.
"""

from __future__ import annotations

import hashlib
import re
import reprlib
import unicodedata
from typing import Any

# What a log line shows of one untrusted value; an id or a name is far shorter.
LOG_LIMIT = 200
# The stand-in for `@` in event titles and texts: FULLWIDTH COMMERCIAL AT looks like `@` to a reader,
# and is not the character Datadog reads an `@handle` mention from.
MENTION_SIGN = '\uff20'

_SURROGATES = re.compile('[\ud800-\udfff]')
# Unicode categories that can end or disguise a line, or fail to encode: controls, format characters
# (bidirectional overrides, zero-width characters), surrogates, private use, unassigned, and the line
# and paragraph separators. Log lines escape them; an id holding one is not used.
UNSAFE_CATEGORIES = frozenset(('Cc', 'Cf', 'Cs', 'Co', 'Cn', 'Zl', 'Zp'))
_REPR = reprlib.Repr(maxlevel=3, maxstring=LOG_LIMIT, maxother=LOG_LIMIT, maxlong=LOG_LIMIT)


def one_line(text: Any) -> str:
    """`text` with every run of whitespace, newlines included, as one space; None is empty."""
    return ' '.join(('' if text is None else str(text)).split())


def clip(text: str, limit: int, mark: str = '…') -> str:
    """`text` cut to at most `limit` characters, the last one `mark` when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + mark


def text_or_none(value: Any) -> str | None:
    """The string stripped and `clean`, or None for a blank string or anything that is not a string."""
    return clean(value.strip()) if isinstance(value, str) and value.strip() else None


def clean(text: str) -> str:
    """`text` with each lone UTF-16 surrogate (which no UTF-8 encoder accepts) replaced by U+FFFD.

    JSON can carry `"\\ud800"`, and Python decodes it into a string that raises `UnicodeEncodeError`
    wherever it is encoded (a hash, an event, the persistent cache).
    """
    return _SURROGATES.sub('\ufffd', text)


def digest(text: str) -> str:
    """A short, stable hash of untrusted text (16 hex digits), to remember it without keeping it."""
    return hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]


def for_log(value: Any, limit: int = LOG_LIMIT) -> str:
    """`value` as one bounded line for a log message or a warning.

    At most `limit` characters of it are shown (with how long it was, when cut); control characters,
    line separators, bidirectional and zero-width characters and lone surrogates are shown as
    `\\xNN`/`\\uNNNN` escapes, so no value can end a log line, start a forged one, or fail to encode.
    Anything that is not a string is shown by a repr bounded in depth and length.
    """
    text = value if isinstance(value, str) else _REPR.repr(value)
    line = ''.join(_escaped(c) for c in text[:limit])
    if len(text) > limit:
        line += '…({} characters)'.format(len(text))
    return line


def shown(value: Any, limit: int = LOG_LIMIT) -> str:
    """`value` as a bounded repr for a message (a string quoted), escaped as `for_log` escapes it."""
    return for_log(_REPR.repr(value), limit)


def _escaped(character: str) -> str:
    if unicodedata.category(character) not in UNSAFE_CATEGORIES:
        return character
    code = ord(character)
    return '\\x{:02x}'.format(code) if code < 0x100 else '\\u{:04x}'.format(code)


def no_mentions(text: str) -> str:
    """`text` with every `@` replaced by U+FF20 (FULLWIDTH COMMERCIAL AT, `＠`), for event titles and texts.

    Datadog notifies the handle after an `@` in an event (`@here`, `@slack-<channel>`, `@<email>`); an
    incident title or a service name must never notify anyone. The full-width sign reads the same to
    people, and, unlike a zero-width space after the `@`, survives any cleaning of invisible characters.
    """
    return text.replace('@', MENTION_SIGN)
