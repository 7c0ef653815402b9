# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The part of Datadog's event-platform query syntax the fakes understand, and nothing more.

    service:checkout env:(prod OR staging) -team:payments @aggregation_key:Q1 source:pager*

Terms are `key:value` (optionally `-` negated), ANDed; a value may be quoted, end in a `*`
wildcard, or be a parenthesised `OR` list. Free text, top-level `OR` and nested groups raise
`ValueError`, so a query the fakes do not understand fails a test (a 400) instead of matching
something by accident. Values match case-insensitively, as Datadog's tag search does.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Iterable

_STOP = ' \t\n()"'


@dataclass(frozen=True)
class Term:
    key: str
    values: tuple[str, ...]
    negated: bool = False

    def matches(self, found: Iterable[str]) -> bool:
        """Whether any of `found` (the item's values for `key`) matches one of the term's values."""
        candidates = [value.casefold() for value in found]
        hit = any(_match(wanted, candidate) for wanted in self.values for candidate in candidates)
        return hit != self.negated


def _match(wanted: str, candidate: str) -> bool:
    if wanted.endswith('*'):
        return fnmatch.fnmatchcase(candidate, wanted)
    return candidate == wanted


def parse(query: str | None) -> list[Term]:
    """The terms of `query` (empty or `*`: no term, everything matches); raises ValueError."""
    text = (query or '').strip()
    if text in ('', '*'):
        return []
    terms: list[Term] = []
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        if text.startswith('AND', position) and (position + 3 == len(text) or text[position + 3].isspace()):
            position += 3
            continue
        term, position = _term(text, position)
        terms.append(term)
    return terms


def _term(text: str, position: int) -> tuple[Term, int]:
    negated = text[position] == '-'
    if negated:
        position += 1
    start = position
    while position < len(text) and text[position] not in _STOP + ':':
        position += 1
    key = text[start:position]
    if not key or position >= len(text) or text[position] != ':':
        raise ValueError('unsupported query term at {!r}'.format(text[start:][:40]))
    position += 1
    if position < len(text) and text[position] == '(':
        values, position = _group(text, position + 1)
    else:
        value, position = _value(text, position)
        values = [value]
    return Term(key.casefold(), tuple(v.casefold() for v in values), negated), position


def _group(text: str, position: int) -> tuple[list[str], int]:
    values: list[str] = []
    expect_value = True
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            raise ValueError('unclosed parenthesis in query')
        if text[position] == ')':
            if expect_value:
                raise ValueError('empty value in a query group')
            return values, position + 1
        if not expect_value:
            if not text.startswith('OR', position):
                raise ValueError('only OR lists are supported inside parentheses')
            position += 2
            expect_value = True
            continue
        value, position = _value(text, position)
        values.append(value)
        expect_value = False


def _value(text: str, position: int) -> tuple[str, int]:
    if position < len(text) and text[position] == '"':
        end = position + 1
        chars: list[str] = []
        while end < len(text) and text[end] != '"':
            if text[end] == '\\' and end + 1 < len(text):
                end += 1
            chars.append(text[end])
            end += 1
        if end >= len(text):
            raise ValueError('unclosed quote in query')
        return ''.join(chars), end + 1
    start = position
    while position < len(text) and text[position] not in _STOP:
        position += 1
    if position == start:
        raise ValueError('missing value in query')
    return text[start:position], position


def matches(terms: list[Term], values_of: Callable[[str], Iterable[str]]) -> bool:
    """Whether an item matches every term; `values_of(key)` gives the item's values for a key."""
    return all(term.matches(values_of(term.key)) for term in terms)
