# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Incident list pages: a body read again byte for byte gives the page parsed before; any other body is read in full."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadog_checks.pagerduty_dora.common import json_format
from datadog_checks.pagerduty_dora.pagerduty.listing import IncidentPage, RepeatedPages, parse_page

from ..adversarial.test_properties import BASE_INCIDENT, incident_documents


def body(*incidents: dict, more: bool = False) -> bytes:
    return json.dumps({'incidents': list(incidents), 'more': more, 'limit': 100, 'offset': 0}).encode()


def incident(number: int, **changes: Any) -> dict:
    return dict(copy.deepcopy(BASE_INCIDENT), id='P{:05d}'.format(number), incident_number=number, **changes)


def shown(page: IncidentPage) -> tuple:
    """A page as a comparable value (an exception equals only itself)."""
    return page.incidents, page.more, page.total, page.listed, [(raw, str(e)) for raw, e in page.malformed]


def read_page(pages: RepeatedPages, content: bytes) -> IncidentPage:
    """What the PagerDuty client does with a list answer's bytes."""
    read = pages.read(content)
    if read.page is not None:
        return read.page
    page = parse_page(read.data, None)
    pages.keep(read, page)
    return page


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Bodies decoded as JSON, counted."""
    counted: Counter = Counter()
    decode = json_format.decode

    def counting(text: Any) -> Any:
        counted['decode'] += 1
        return decode(text)

    monkeypatch.setattr(json_format, 'decode', counting)
    return counted


class TestRepeatedPages:
    def test_the_same_bytes_give_the_page_parsed_before_without_decoding(self, decoded: Counter) -> None:
        pages = RepeatedPages()
        content = body(incident(1), incident(2), more=True)
        first = read_page(pages, content)
        again = read_page(pages, bytes(content))

        assert again is first and pages.repeated == 1
        assert decoded['decode'] == 1
        assert [i.id for i in first.incidents] == ['P00001', 'P00002'] and first.more and first.listed == 2

    def test_one_byte_more_or_less_is_read_in_full(self, decoded: Counter) -> None:
        pages = RepeatedPages()
        first = read_page(pages, body(incident(1, title='Checkout slow')))
        changed = read_page(pages, body(incident(1, title='Checkout slow ')))
        spaced = read_page(pages, body(incident(1, title='Checkout slow')).replace(b', ', b',  ', 1))

        assert decoded['decode'] == 3 and pages.repeated == 0
        assert changed is not first and spaced is not first and spaced == first

    def test_a_change_undone_reads_as_the_first_page(self) -> None:
        # A -> B -> A: the third body is the first again, and gives its page; what the record holds
        # (B) tells the look it changed.
        pages = RepeatedPages()
        first = read_page(pages, body(incident(1, priority={'id': 'PP2', 'summary': 'P2'})))
        changed = read_page(pages, body(incident(1, priority={'id': 'PP1', 'summary': 'P1'})))
        undone = read_page(pages, body(incident(1, priority={'id': 'PP2', 'summary': 'P2'})))

        assert (first.incidents[0].priority, changed.incidents[0].priority) == ('P2', 'P1')
        assert undone is first

    def test_a_page_with_a_malformed_incident_is_not_kept(self, decoded: Counter) -> None:
        pages = RepeatedPages()
        content = body(incident(1), dict(incident(2), id='x' * 1000 + '\n'))
        first = read_page(pages, content)
        again = read_page(pages, content)

        assert [i.id for i in first.incidents] == ['P00001'] and len(first.malformed) == 1 and first.listed == 2
        assert shown(again) == shown(first) and again is not first
        assert decoded['decode'] == 2 and len(pages) == 0

    def test_pages_and_bytes_kept_are_bounded_the_least_recently_read_first(self, decoded: Counter) -> None:
        pages = RepeatedPages(pages=3, size=10**9)
        contents = [body(incident(n)) for n in range(1, 5)]
        for content in contents[:3]:
            read_page(pages, content)
        read_page(pages, contents[0])  # read again: now the most recent
        read_page(pages, contents[3])  # the fourth page drops the least recently read, the second

        assert len(pages) == 3 and decoded['decode'] == 4
        read_page(pages, contents[0])
        read_page(pages, contents[2])
        assert decoded['decode'] == 4
        read_page(pages, contents[1])
        assert decoded['decode'] == 5

        by_size = RepeatedPages(pages=100, size=2 * len(contents[0]) + 10)
        for content in contents:
            read_page(by_size, content)
        assert len(by_size) == 2

    def test_a_body_larger_than_what_is_kept_is_not_kept(self) -> None:
        content = body(incident(1))
        pages = RepeatedPages(size=len(content) - 1)
        read_page(pages, content)
        assert len(pages) == 0

    def test_what_is_not_json_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            RepeatedPages().read(b'{"incidents": [')


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


class TestSameAsParsing:
    """A page read from a kept body is the page its bytes parse to, whatever the incidents hold."""

    @SETTINGS
    @given(st.lists(incident_documents(), max_size=6), st.lists(st.integers(0, 5), max_size=8))
    def test_reading_again_changes_nothing(self, documents: list, order: list[int]) -> None:
        pages = RepeatedPages(pages=3)
        bodies = [body(*documents[: n + 1]) for n in range(len(documents))] or [body()]
        for n in order + list(range(len(bodies))):
            content = bodies[n % len(bodies)]
            expected = parse_page(json.loads(content), None)
            page = read_page(pages, content)
            assert shown(page) == shown(expected)
            repeated = pages.repeated
            again = read_page(pages, content)
            # Read again at once: from what was kept, unless the page holds a malformed incident.
            assert (again is page, pages.repeated - repeated) == ((True, 1) if not page.malformed else (False, 0))
