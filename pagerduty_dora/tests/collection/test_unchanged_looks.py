# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""An incident read again as it was costs nothing: no record encoded, no DORA payload built or fingerprinted.

Reconciliation reads every open incident every few minutes and almost all of them are as they were.
These tests run the check against the fakes and count, over idle runs, the calls that a look which
changes something makes: parsing the incident, the record's encoding, `build_failure` and the payload's
fingerprint, and what a run asks of every record.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable

import pytest

from datadog_checks.pagerduty_dora.collection import recorder
from datadog_checks.pagerduty_dora.collection.collector import STATE_KEY
from datadog_checks.pagerduty_dora.collection.pages import LATE_REACH
from datadog_checks.pagerduty_dora.collection.record import RECORD, Records
from datadog_checks.pagerduty_dora.common import codec, json_format
from datadog_checks.pagerduty_dora.datadog import dora
from datadog_checks.pagerduty_dora.pagerduty import incident as parsing
from datadog_checks.pagerduty_dora.pagerduty.listing import RepeatedPages

from ..harness import World, stored_state

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

OPEN = 30


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Calls of what a look that changes something costs, by name."""
    counted: Counter = Counter()

    def counting(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return call(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(RECORD, 'encode', counting('encode', RECORD.encode))
    monkeypatch.setattr(recorder, 'build_failure', counting('build_failure', dora.build_failure))
    monkeypatch.setattr(recorder, 'fingerprint_of', counting('fingerprint', dora.fingerprint))
    monkeypatch.setattr(dora, 'fingerprint', counting('fingerprint', dora.fingerprint))
    monkeypatch.setattr(parsing, '_parse', counting('parse', parsing._parse))
    # A list page read again byte for byte is neither decoded nor parsed (`RepeatedPages`).
    monkeypatch.setattr(RepeatedPages, 'keep', counting('parse_page', RepeatedPages.keep))
    # What a run asks of all the records is kept as they change: an idle run counts none again, and
    # the records' text is joined again only when one changed.
    monkeypatch.setattr(Records, 'facts', counting('record_facts', Records.facts))
    joined = counting('records_text', codec.MapOf.text)
    text = codec.MapOf.text
    monkeypatch.setattr(
        codec.MapOf, 'text', lambda domain, value: (joined if type(value) is Records else text)(domain, value)
    )
    return counted


def open_incidents(world: World, services: dict[str, str]) -> list[str]:
    opened = [
        world.account.trigger(services['checkout' if n % 2 else 'billing'], 'Incident {}'.format(n), priority='P2')
        for n in range(OPEN)
    ]
    world.account.advance(60)
    return opened


def settle(world: World, check: Any, dd_run_check: Any) -> None:
    """Runs until what the incidents brought is delivered and their log entries are folded into their records.

    The feed's second look reaches `LATE_REACH` back: until then a record keeps its steps apart.
    """
    for _ in range(int(LATE_REACH // 300) + 4):
        dd_run_check(check)
        world.account.advance(300)


def settled_check(world: World, services: dict[str, str], dd_run_check: Any) -> tuple[Any, list[str]]:
    """A check live on an account with `OPEN` incidents opened and settled; the check and the incidents."""
    check = world.check()
    dd_run_check(check)
    world.account.advance(60)
    opened = open_incidents(world, services)
    settle(world, check, dd_run_check)
    return check, opened


def open_gauges(aggregator: Any) -> dict[tuple[str, ...], float]:
    return {tuple(sorted(m.tags)): m.value for m in aggregator.metrics('pagerduty_dora.incidents.open')}


class TestUnchangedIncident:
    """Looks at incidents as they were encode nothing, build and fingerprint no payload, and send the same."""

    def test_an_idle_run_costs_no_encode_and_no_payload(
        self, world, services, dd_run_check, aggregator, costs: Counter
    ) -> None:
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        open_incidents(world, services)
        settle(world, check, dd_run_check)
        assert set(world.dora.failures) and world.dora.posts
        gauges = open_gauges(aggregator)
        posts = len(world.dora.posts)
        aggregator.reset()
        costs.clear()
        before = world.pagerduty.count('/incidents')

        dd_run_check(check)

        # The run read the open incidents again (reconciliation), and each was as it was.
        assert world.pagerduty.count('/incidents') > before
        assert costs == Counter()
        assert open_gauges(aggregator) == gauges
        assert aggregator.events == [] and len(world.dora.posts) == posts

    def test_without_dora_delivery_too(self, world, services, dd_run_check, aggregator, costs: Counter) -> None:
        check = world.check(submit_dora_failures=False)
        dd_run_check(check)
        world.account.advance(60)
        open_incidents(world, services)
        settle(world, check, dd_run_check)
        gauges = open_gauges(aggregator)
        aggregator.reset()
        costs.clear()

        dd_run_check(check)

        assert costs == Counter()
        assert open_gauges(aggregator) == gauges and sum(gauges.values()) == OPEN

    def test_a_changed_incident_costs_only_its_own(
        self, world, services, dd_run_check, aggregator, costs: Counter
    ) -> None:
        check, opened = settled_check(world, services, dd_run_check)
        aggregator.reset()
        costs.clear()
        # PagerDuty logs no priority change: reconciliation finds it.
        world.account.set_priority(opened[7], 'P1')
        world.account.advance(60)

        dd_run_check(check)

        assert [e['aggregation_key'] for e in aggregator.events] == [opened[7]]
        # Only the page that holds it is read in full.
        assert costs['parse_page'] == 1
        assert costs['build_failure'] == 1
        # The record is encoded once, after its new failure was delivered.
        assert costs['encode'] == 1
        # The new payload is fingerprinted once, and not again when Datadog accepts it.
        assert costs['fingerprint'] == 1
        assert stored_state(check).incidents[opened[7]].priority == 'P1'

    def test_a_change_undone_is_seen(self, world, services, dd_run_check, aggregator) -> None:
        check, opened = settled_check(world, services, dd_run_check)
        aggregator.reset()
        changes = []
        # P2 -> P1 -> P2, unlogged: each is a change from what the record holds (`test_listing.py` reads the
        # same bytes again).
        for priority in ('P1', 'P2'):
            world.account.set_priority(opened[7], priority)
            world.account.advance(60)
            dd_run_check(check)
            changes += [
                (e['aggregation_key'], priority)
                for e in aggregator.events
                if 'transition:priority_changed' in e['tags']
            ]
            aggregator.reset()
            assert stored_state(check).incidents[opened[7]].priority == priority

        assert changes == [(opened[7], 'P1'), (opened[7], 'P2')]

    def test_the_stored_state_is_the_same_document_after_a_restart(self, world, services, dd_run_check) -> None:
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        open_incidents(world, services)
        settle(world, check, dd_run_check)
        before = json.loads(check.read_persistent_cache(STATE_KEY))

        restarted = world.check()
        dd_run_check(restarted)

        after = json.loads(restarted.read_persistent_cache(STATE_KEY))
        assert after['incidents'] == before['incidents']
        assert after['tag_sets'] == before['tag_sets']


class TestWrites:
    """The state is written when it changed, and only then."""

    def test_a_document_the_cache_holds_is_not_written_again(
        self, world, services, dd_run_check, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        check = world.check()
        dd_run_check(check)
        collector = check.collector
        writes: list[str] = []
        write = collector._write_cache

        def written(key: str, value: str) -> None:
            writes.append(key)
            write(key, value)

        monkeypatch.setattr(collector, '_write_cache', written)
        collector.save()
        assert writes == []
        collector.state.refetch = ['PGONE']
        collector.save()
        assert writes == [STATE_KEY]
        assert stored_state(check).refetch == ['PGONE']


class TestGaugeFromTheTable:
    """The open-incident gauge takes its tags from the table records name, and follows a mapping that changed."""

    def test_a_moved_incident_is_gauged_under_its_new_tags(self, world, services, dd_run_check, aggregator) -> None:
        check, opened = settled_check(world, services, dd_run_check)
        assert sum(open_gauges(aggregator).values()) == OPEN
        aggregator.reset()
        other = world.account.add_service('Search', team_ids=[world.account.add_team('Discovery')])
        world.account.move(opened[0], other)
        world.account.advance(60)

        dd_run_check(check)

        gauges = open_gauges(aggregator)
        assert sum(gauges.values()) == OPEN
        moved = [tags for tags, value in gauges.items() if 'pagerduty_service:Search' in tags]
        assert [gauges[tags] for tags in moved] == [1]
        assert 'pagerduty_team:Discovery' in moved[0]
        # Only the sets records name are kept.
        state = stored_state(check)
        assert set(state.tag_sets) == {record.tag_set for record in state.incidents.values() if record.tag_set}


class TestSignature:
    """An open incident is recognised by a digest of its JSON: the same document is not parsed again, any change is.

    orjson writes the JSON where it is installed; a value it refuses (a lone surrogate, an integer beyond
    64 bits), or its absence, leaves the JSON `json_format` writes.
    """

    @pytest.fixture(params=['orjson', 'json_format'])
    def writer(self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        if request.param == 'json_format':
            monkeypatch.setattr(json_format, '_orjson_dumps', None)
        else:
            assert json_format._orjson_dumps is not None
        monkeypatch.setattr(parsing, '_remembered', {})
        return request.param

    @pytest.mark.parametrize(
        'change',
        [
            {'title': 'Checkout is down'},
            {'assigned_via': 'direct_assignment'},  # a field no output uses is a change all the same
            {'service': {'id': 'PSVC2', 'summary': 'billing'}},
            {'teams': []},
            {'title': 'Checkout \ud800 down'},
            {'alert_counts': {'all': 2**70}},
        ],
    )
    def test_any_change_is_parsed_again(self, writer: str, costs: Counter, change: dict) -> None:
        document = {'id': 'PABC123', 'status': 'triggered', 'incident_number': 7, 'title': 'Checkout slow'}
        document.update(created_at='2026-12-01T10:00:00Z', service={'id': 'PSVC1', 'summary': 'checkout'})
        first = parsing.parse_incident(json.loads(json.dumps(document)))
        again = parsing.parse_incident(json.loads(json.dumps(document)))
        changed = parsing.parse_incident(dict(json.loads(json.dumps(document)), **change))
        same_again = parsing.parse_incident(dict(json.loads(json.dumps(document)), **change))

        assert again is first
        assert changed is not first and same_again is changed
        assert costs['parse'] == 2
