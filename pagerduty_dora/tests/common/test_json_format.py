# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One JSON for bodies and stored documents, on both paths: orjson (as the Agent ships) and the standard library."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadog_checks.base.utils.format import _json as agent_json
from datadog_checks.pagerduty_dora.common import json_format
from datadog_checks.pagerduty_dora.common.codec import TEXT
from datadog_checks.pagerduty_dora.common.documents import Layout, Part, encode

LIBRARIES = ('orjson', 'json')


def _standard_library_build(monkeypatch: pytest.MonkeyPatch) -> Any:
    """datadog-checks-base's JSON module as it loads where orjson is not installed."""
    monkeypatch.setitem(sys.modules, 'orjson', None)
    spec = importlib.util.spec_from_file_location('agent_json_without_orjson', agent_json.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == 'json':
        build = _standard_library_build(monkeypatch)
        assert getattr(build, 'orjson', None) is None
        monkeypatch.setattr(json_format, '_fast_encode', build.encode)
        monkeypatch.setattr(json_format, '_fast_decode', build.decode)
    yield request.param


def test_the_test_environment_has_orjson() -> None:
    # The Agent ships orjson (datadog-checks-base's `json` extra): the fast path is the one tested first.
    assert json_format.implementation() == 'orjson'


def test_without_the_agent_module_the_standard_library_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_format, '_agent_json', None)
    assert json_format.implementation() == 'json'


ODD = [
    '\ud800 lone surrogate',
    'caf\u00e9 \u2028 \U0001f4df',
    2**70,
    2**64 + 1,
    -(2**64) - 3,
    10**30 + 7,
    {'run of digits in a text': '123456789012345678901234', 'n': 18446744073709551615},
    {'nested': [[[1.5, None, True]]]},
    '',
    'quote " backslash \\ control \x01',
]


@pytest.mark.parametrize('value', ODD, ids=range(len(ODD)))
def test_round_trip_of_what_orjson_refuses(library: str, value: Any) -> None:
    text = json_format.encode(value)
    assert json_format.decode(text) == value
    assert json_format.decode(text.encode('utf-8')) == value
    assert json.loads(text) == value


def test_non_string_keys_are_written_as_the_standard_library_writes_them(library: str) -> None:
    assert json_format.decode(json_format.encode({1: 'a'})) == {'1': 'a'}


def test_what_only_the_standard_library_reads_is_still_read(library: str) -> None:
    assert math.isnan(json_format.decode('NaN'))
    assert json_format.decode('"\\ud800"') == '\ud800'


@pytest.mark.parametrize('text', ['', '{', '[1,]', b'"\xff"', '{"a" 1}'])
def test_what_is_not_json_raises_value_error(library: str, text: str | bytes) -> None:
    with pytest.raises(ValueError):
        json_format.decode(text)


def test_nesting_beyond_both_libraries_raises(library: str) -> None:
    with pytest.raises((ValueError, RecursionError)):
        json_format.decode('[' * 100_000 + ']' * 100_000)


def test_a_stored_document_reads_the_same_on_both_paths(library: str) -> None:
    layout = Layout(1, {'name': Part(TEXT, lambda: '')}, {})
    written = encode(1, {'name': 'caf\u00e9 \ud800'})
    read, damage = layout.decode(written)
    assert read == {'name': 'caf\u00e9 \ud800'} and damage == []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize('name', LIBRARIES)
def test_every_json_value_round_trips(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == 'json':
        build = _standard_library_build(monkeypatch)
        monkeypatch.setattr(json_format, '_fast_encode', build.encode)
        monkeypatch.setattr(json_format, '_fast_decode', build.decode)
    reached = {'nested': 0}

    @settings(max_examples=300, deadline=None)
    @given(JSON_VALUES)
    def round_trip(value: Any) -> None:
        text = json_format.encode(value)
        assert json_format.decode(text) == value
        reached['nested'] += isinstance(value, (list, dict)) and bool(value)

    round_trip()
    assert reached['nested'] >= 30, reached


@pytest.mark.parametrize(
    'text, long',
    [
        (b'{"incident_key":"0000000000000000000000009e3779b1"}', False),
        (b'{"id":"12345678901234567890123"}', False),
        (b'{"n":1234567890123456789}', False),
        (b'{"n":12345678901234567890}', True),
        (b'{"n": -12345678901234567890}', True),
        (b'[1, 123456789012345678901234]', True),
        (b'[\n  99999999999999999999\n]', True),
        (b'123456789012345678901', True),
        (b'{"title":"a:000000000000000000000"}', True),
    ],
    ids=['hex-key', 'digits-in-a-text', '19-digits', '20-digits', 'negative', 'in-a-list', 'indented', 'alone', 'text'],
)
def test_only_a_number_of_20_digits_takes_the_standard_library(text: bytes, long: bool) -> None:
    # The last case is a text that looks like a number after `:`: read by the standard library, still right.
    assert json_format._long_integer(text) is long
    assert json_format.decode(text) == json.loads(text)


def test_a_long_text_takes_the_standard_library_and_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # orjson holds about 15 times the text while it reads it: a hostile body past the limit is not given it.
    text = json.dumps({'title': 'x' * (json_format.FAST_LIMIT + 1)}).encode('utf-8')

    def refuse(_: Any) -> Any:
        raise AssertionError('the fast path read a text past FAST_LIMIT')

    monkeypatch.setattr(json_format, '_fast_decode', refuse)
    assert json_format.decode(text)['title'] == 'x' * (json_format.FAST_LIMIT + 1)


def test_a_page_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[int] = []
    fast = json_format._fast_decode

    def counted(text: str | bytes) -> Any:
        read.append(len(text))
        return fast(text)

    monkeypatch.setattr(json_format, '_fast_decode', counted)
    page = json.dumps(
        {'incidents': [{'id': 'P{}'.format(n), 'incident_key': '0' * 24 + '9e3779b1'} for n in range(100)]}
    )
    assert len(json_format.decode(page)['incidents']) == 100 and read == [len(page)]
