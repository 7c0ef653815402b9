# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import pytest

from datadog_checks.pagerduty_dora.common import documents
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.queue import PendingQueue, QueueBounds, QueueDocument, StoredQueue


class TestDocuments:
    """Versioned JSON documents: what is written reads back, anything else is refused whole."""

    def test_round_trip(self):
        raw = documents.encode(3, {'items': [1, 'two'], 'name': 'caf\u00e9 \ud800'})
        assert raw.isascii()
        assert documents.decode(raw, 3) == {'version': 3, 'items': [1, 'two'], 'name': 'caf\u00e9 \ud800'}

    @pytest.mark.parametrize(
        'raw',
        ['{', '[1]', '"text"', '{"version": 2}', '{"items": []}', '[' * 100000],
        ids=['truncated', 'list', 'string', 'other-version', 'no-version', 'nested-too-deeply'],
    )
    def test_refused(self, raw):
        with pytest.raises(ValueError):
            documents.decode(raw, 3)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TestPendingQueue:
    """Keyed work for later runs: newest payload wins in place, oldest leaves first, bounded."""

    def test_newest_payload_keeps_its_place(self):
        queue = PendingQueue(10, 60, Clock())
        queue.put('a', {'v': 1})
        queue.put('b', {'v': 1})
        queue.put('a', {'v': 2})
        assert queue.first() == ('a', {'v': 2})
        assert len(queue) == 2

    def test_size_bound_drops_the_oldest(self):
        queue = PendingQueue(2, 60, Clock())
        assert queue.put('a', {}) == []
        assert queue.put('b', {}) == []
        assert queue.put('c', {}) == ['a']
        assert [item[0] for item in queue.dump()] == ['b', 'c']

    def test_age_counts_from_first_arrival(self):
        clock = Clock()
        queue = PendingQueue(10, 60, clock)
        queue.put('a', {'v': 1})
        clock.now += 30
        queue.put('b', {})
        queue.put('a', {'v': 2})
        clock.now += 31
        assert queue.expire() == [('a', {'v': 2})]
        assert queue.first() == ('b', {})

    def test_dump_and_load(self):
        clock = Clock()
        queue = PendingQueue(10, 60, clock)
        queue.put('a', {'v': 1})
        queue.put('b', {'v': 2})
        again = PendingQueue(10, 60, clock)
        skipped = again.load(queue.dump() + [['c', True, {}], ['d', 1.0], 'e', [5, 1.0, {}]])
        assert skipped == 4
        assert again.dump() == queue.dump()
        again.remove('a')
        assert again.get('a') is None and again.get('b') == {'v': 2}


class Store:
    """A persistent cache, the warnings and the drops reported by one `StoredQueue`."""

    def __init__(self, **options):
        self.clock = Clock()
        self.cache = {}
        self.reads = []
        self.writes = 0
        self.warnings = []
        self.drops = []
        self.options = options

    def read(self, key):
        self.reads.append(key)
        return self.cache.get(key, '')

    def write(self, key, value):
        self.writes += 1
        self.cache[key] = value

    def queue(self, max_items=10, **options):
        services = AgentServices(
            self.read,
            self.write,
            log=None,
            warning=lambda message, *args: self.warnings.append(message % args),
            clock=self.clock,
        )
        return StoredQueue(
            QueueDocument('work', 'work state', 'work items', **dict(self.options, **options)),
            services,
            QueueBounds(max_items=max_items, max_age=60),
            on_dropped=lambda reason, count: self.drops.append((reason, count)),
        )


class TestStoredQueue:
    """A `PendingQueue` in the persistent cache: read once, damage survived, bounds reported, written when changed."""

    def test_round_trip_with_the_owner_fields(self):
        store = Store(field='pending', fields={'records': dict})
        first = store.queue()
        assert first.read() == {}
        first.put('a', {'v': 1})
        first.save({'records': {'x': 1}})
        second = store.queue()
        assert second.read() == {'records': {'x': 1}}
        assert second.first() == ('a', {'v': 1})
        assert store.warnings == []

    def test_read_once_and_lazily(self):
        store = Store()
        queue = store.queue()
        assert store.reads == []
        queue.read()
        queue.read()
        assert store.reads == ['work']

    def test_writes_only_after_a_change(self):
        store = Store()
        queue = store.queue()
        queue.read()
        queue.save()
        queue.remove('missing')
        queue.save()
        assert store.writes == 0
        queue.put('a', {})
        queue.save()
        queue.save()
        assert store.writes == 1

    def test_not_read_means_not_written(self):
        store = Store()
        queue = store.queue()
        queue.fields_changed()
        queue.save()
        assert store.writes == 0

    def test_the_owners_changed_fields_are_written(self):
        store = Store(fields={'records': dict})
        store.cache['work'] = documents.encode(1, {'items': [], 'records': {}})
        queue = store.queue()
        records = queue.read()['records']
        queue.save()
        assert store.writes == 0
        records['a'] = 1
        queue.fields_changed()
        assert queue.dirty
        queue.save()
        again = store.queue()
        assert (again.read(), store.writes) == ({'records': {'a': 1}}, 1)

    @pytest.mark.parametrize(
        'raw, options',
        [
            ('{"version": 1, "items": [', {}),
            ('{"version": 2, "items": []}', {}),
            ('{"version": 1, "items": {}}', {}),
            ('{"version": 1, "items": [], "records": []}', {'fields': {'records': dict}}),
            ('{"version": 1, "items": []}', {'fields': {'records': dict}}),
        ],
        ids=['truncated', 'other-version', 'items-not-a-list', 'field-of-another-type', 'field-missing'],
    )
    def test_damaged_document_starts_empty_with_a_warning(self, raw, options):
        store = Store(**options)
        store.cache['work'] = raw
        queue = store.queue()
        assert queue.read() == {}
        assert len(queue) == 0
        assert len(store.warnings) == 1
        assert 'The work state in the persistent cache could not be read' in store.warnings[0]
        queue.save()
        # What was written reads back as an empty queue; the owner's own fields are the owner's to write.
        reader = Store()
        reader.cache = store.cache
        again = reader.queue()
        assert (again.read(), again.keys(), reader.warnings) == ({}, [], [])

    def test_damaged_items_are_skipped_with_a_warning(self):
        store = Store()
        store.cache['work'] = documents.encode(1, {'items': [['a', 1000.0, {}], ['b'], 'c']})
        queue = store.queue()
        queue.read()
        assert len(queue) == 1
        assert store.warnings == ['Skipped 2 unreadable work items from the persistent cache']
        queue.save()
        again = store.queue()
        again.read()
        assert again.first() == ('a', {})
        assert again.keys() == ['a']
        assert len(store.warnings) == 1

    def test_size_bound_is_reported_on_save(self):
        store = Store()
        queue = store.queue(max_items=2)
        queue.read()
        assert queue.put('a', {}) == [] and queue.put('b', {}) == []
        assert queue.put('c', {}) == ['a']
        assert store.drops == []
        queue.save()
        assert store.drops == [('full', 1)]
        assert store.warnings == ['Dropped the 1 oldest work items: more than 2 were waiting']
        queue.save()
        assert store.drops == [('full', 1)]

    def test_lowered_bound_applies_to_what_was_stored(self):
        store = Store()
        first = store.queue()
        first.read()
        for key in 'abcd':
            first.put(key, {})
        first.save()
        second = store.queue(max_items=3)
        second.read()
        assert [item[0] for item in second.dump()] == ['b', 'c', 'd']
        second.report_dropped()
        assert store.drops == [('full', 1)]

    def test_expired_entries_are_reported_at_once(self):
        store = Store()
        queue = store.queue()
        queue.read()
        queue.put('a', {'v': 1})
        store.clock.now += 61
        assert queue.expire() == [('a', {'v': 1})]
        assert store.drops == [('expired', 1)]
        assert store.warnings == ['Dropped 1 work items that could not be sent within 60 seconds (max age)']
        assert queue.dirty
        assert queue.expire() == []
