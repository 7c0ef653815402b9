# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import pytest

from datadog_checks.pagerduty_dora import cache


class TestDocuments:
    """Versioned JSON documents: what is written reads back, anything else is refused whole."""

    def test_round_trip(self):
        raw = cache.encode(3, {'items': [1, 'two'], 'name': 'caf\u00e9 \ud800'})
        assert raw.isascii()
        assert cache.decode(raw, 3) == {'version': 3, 'items': [1, 'two'], 'name': 'caf\u00e9 \ud800'}

    @pytest.mark.parametrize(
        'raw',
        ['{', '[1]', '"text"', '{"version": 2}', '{"items": []}', '[' * 100000],
        ids=['truncated', 'list', 'string', 'other-version', 'no-version', 'nested-too-deeply'],
    )
    def test_refused(self, raw):
        with pytest.raises(ValueError):
            cache.decode(raw, 3)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TestPendingQueue:
    """Keyed work for later runs: newest payload wins in place, oldest leaves first, bounded."""

    def test_newest_payload_keeps_its_place(self):
        queue = cache.PendingQueue(10, 60, Clock())
        queue.put('a', {'v': 1})
        queue.put('b', {'v': 1})
        queue.put('a', {'v': 2})
        assert queue.first() == ('a', {'v': 2})
        assert len(queue) == 2

    def test_size_bound_drops_the_oldest(self):
        queue = cache.PendingQueue(2, 60, Clock())
        assert queue.put('a', {}) == []
        assert queue.put('b', {}) == []
        assert queue.put('c', {}) == ['a']
        assert [item[0] for item in queue.dump()] == ['b', 'c']

    def test_age_counts_from_first_arrival(self):
        clock = Clock()
        queue = cache.PendingQueue(10, 60, clock)
        queue.put('a', {'v': 1})
        clock.now += 30
        queue.put('b', {})
        queue.put('a', {'v': 2})
        clock.now += 31
        assert queue.expire() == [('a', {'v': 2})]
        assert queue.first() == ('b', {})

    def test_dump_and_load(self):
        clock = Clock()
        queue = cache.PendingQueue(10, 60, clock)
        queue.put('a', {'v': 1})
        queue.put('b', {'v': 2})
        again = cache.PendingQueue(10, 60, clock)
        skipped = again.load(queue.dump() + [['c', True, {}], ['d', 1.0], 'e', [5, 1.0, {}]])
        assert skipped == 4
        assert again.dump() == queue.dump()
        again.remove('a')
        assert again.get('a') is None and again.get('b') == {'v': 2}
