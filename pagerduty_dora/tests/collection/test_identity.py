# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""An instance's identity is what it collects: other options change without touching the collection."""

from __future__ import annotations

import json

import pytest

from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora import identity, lineage
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, DD_APP_KEY, START, World, event_keys

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

# An instance with every option that took part in a cache id, in one release or another.
INSTANCE = {
    'api_token': 'u+pdTestToken_x9Lk2QwErTy',
    'pagerduty_api_url': 'https://api.eu.pagerduty.com/',
    'service_ids': ['PB', 'PA'],
    'team_ids': ['T1'],
    'urgencies': ['high'],
    'priorities': ['P1', 'P2'],
    'env': 'prod',
    'unmapped_incidents': 'skip',
    'datadog_api_url': 'https://api.datadoghq.eu/',
}


class TestCacheIds:
    """Which options make the identity, and the ids earlier releases used."""

    @pytest.mark.parametrize(
        'option, value',
        [
            ('env', 'staging'),
            ('unmapped_incidents', 'send'),
            ('tags', ['team:sre']),
            ('timeout', 5),
            ('datadog_app_key', 'another'),
            ('service_overrides', [{'pagerduty_service': 'PA', 'service': 'x'}]),
            ('collect_events', False),
            ('submit_dora_failures', False),
        ],
        ids=lambda v: str(v)[:20],
    )
    def test_mapping_tags_keys_and_switches_keep_the_identity(self, option, value) -> None:
        assert identity.cache_id(dict(INSTANCE, **{option: value})) == identity.cache_id(INSTANCE)

    @pytest.mark.parametrize(
        'option, value',
        [
            ('api_token', 'another'),
            ('pagerduty_api_url', 'https://api.pagerduty.com'),
            ('service_ids', ['PA']),
            ('team_ids', []),
            ('urgencies', ['low']),
            ('priorities', ['P1']),
            ('datadog_api_url', 'https://api.datadoghq.com'),
        ],
        ids=lambda v: str(v)[:20],
    )
    def test_account_scope_filters_and_destination_make_it(self, option, value) -> None:
        assert identity.cache_id(dict(INSTANCE, **{option: value})) != identity.cache_id(INSTANCE)

    def test_order_and_a_trailing_slash_do_not_matter(self) -> None:
        same = dict(INSTANCE, service_ids=['PA', 'PB'], pagerduty_api_url='https://api.eu.pagerduty.com')
        assert identity.cache_id(same) == identity.cache_id(INSTANCE)

    def test_earlier_ids_are_the_ones_those_releases_computed(self) -> None:
        # Computed by the `persistent_cache_id` of the releases of 2026-12-02 and of 2026-12-01.
        assert identity.earlier_cache_ids(INSTANCE) == [
            'f04a85d75165233f93c618a437b79403',
            '9b14c1c477d44e67dae3190762dde282',
        ]
        assert identity.cache_id(INSTANCE) not in identity.earlier_cache_ids(INSTANCE)


@pytest.fixture
def world():
    account = PagerDutyAccount.generate(100, START - 10 * DAY, START - 3600, seed=5, open_fraction=0.04, now=START)
    world = World(account)
    yield world
    world.close()


def _live_then(world, dd_run_check, aggregator, **options):
    """Three runs, an incident triggered between them; returns it."""
    world.forward_events(aggregator)
    check = world.check(**options)
    dd_run_check(check)
    world.account.advance(60)
    dd_run_check(check)
    incident = world.account.trigger(world.account.services[0]['id'], 'Live')
    world.account.advance(60)
    dd_run_check(check)
    world.account.advance(60)
    return check, incident


class TestOptionChanges:
    """A changed option that is not the identity keeps the collection: nothing missed, nothing sent twice."""

    @pytest.mark.parametrize(
        'before, after',
        [({}, {'env': 'prod'}), ({'env': 'prod'}, {'env': 'production'}), ({}, {'tags': ['team:sre'], 'timeout': 5})],
        ids=['env-added', 'env-changed', 'tags-and-timeout'],
    )
    def test_transitions_around_the_change_are_reported_once(self, world, dd_run_check, aggregator, before, after):
        check, incident = _live_then(world, dd_run_check, aggregator, **before)
        world.account.acknowledge(incident)
        world.account.advance(30)
        posts = len(world.dora.posts)

        changed = world.check(**dict(before, **after))
        assert changed.persistent_cache_id() == check.persistent_cache_id()
        dd_run_check(changed)
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(changed)

        keys = event_keys(aggregator)
        assert {k: v for k, v in keys.items() if k[0] == incident} == {
            (incident, 'triggered'): 1,
            (incident, 'acknowledged'): 1,
            (incident, 'resolved'): 1,
        }
        assert set(keys.values()) == {1}
        # The live incident's failure follows its state; history is posted again only where its env changed.
        sent = {a['id'] for a in world.dora.posts[posts:]}
        if 'env' in after:
            assert failure_id(incident) in sent
        else:
            assert sent == {failure_id(incident)}
        assert not any('unreadable' in w for w in changed.warnings)


class TestEarlierKeys:
    """A state an earlier release stored under its own cache id is found there and moved to the current one."""

    @pytest.mark.parametrize('which', [0, 1], ids=['release-before', 'releases-of-layouts-1-and-2'])
    def test_found_and_moved(self, world, dd_run_check, aggregator, datadog_agent, which):
        check, incident = _live_then(world, dd_run_check, aggregator)
        current = check.persistent_cache_id()
        earlier = identity.earlier_cache_ids(check.instance)[which]
        moved = {}
        for key in [k for k in datadog_agent._cache if ':{}_'.format(current) in k]:
            moved[key.replace(':{}_'.format(current), ':{}_'.format(earlier))] = datadog_agent._cache.pop(key)
        datadog_agent._cache.update(moved)
        world.account.acknowledge(incident)
        world.account.advance(30)
        posts = len(world.dora.posts)

        upgraded = world.check()
        dd_run_check(upgraded)

        assert event_keys(aggregator)[(incident, 'acknowledged')] == 1
        assert set(event_keys(aggregator).values()) == {1}
        assert world.dora.posts[posts:] == []
        assert any(k.endswith(':{}_collector'.format(current)) for k in datadog_agent._cache)


CHANGED = 'its identity changed'


def _runs(world, dd_run_check, checks, count):
    """`count` rounds a minute apart, each running every check of `checks`."""
    for _ in range(count):
        for check in checks:
            dd_run_check(check)
        world.account.advance(60)


def _identity_warnings(*checks):
    return [w for check in checks for w in check.warnings if CHANGED in w]


class TestIdentityChanges:
    """An edited identity is warned about once; a second instance (a shard) of the account never is."""

    def test_an_edit_of_service_ids_is_warned_about_once(self, world, dd_run_check, aggregator) -> None:
        first, second = (service['id'] for service in world.account.services[:2])
        before = world.check(service_ids=[first])
        _runs(world, dd_run_check, [before], 3)

        edited = world.check(service_ids=[second, first])
        _runs(world, dd_run_check, [edited], 10)
        restarted = world.check(service_ids=[second, first])
        _runs(world, dd_run_check, [restarted], 10)

        warnings = _identity_warnings(edited, restarted)
        assert len(warnings) == 1
        assert '`service_ids` [{}] -> [{}]'.format(first, ', '.join(sorted([first, second]))) in warnings[0]
        assert 'without `datadog_app_key`, history is sent again as DORA failures' in warnings[0]
        aggregator.assert_metric('pagerduty_dora.identity.changed', count=1, tags=['option:service_ids'])
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)

    def test_a_new_key_is_named_never_shown(self, world, dd_run_check) -> None:
        before = world.check()
        _runs(world, dd_run_check, [before], 2)
        world.account.token = 'another-token-0123456789'
        edited = world.check(api_token=world.account.token)
        _runs(world, dd_run_check, [edited], 8)
        warnings = _identity_warnings(edited)
        assert len(warnings) == 1 and '`api_token` (another key)' in warnings[0]
        assert world.account.token not in warnings[0]

    @pytest.mark.parametrize('pause', [0, 3600], ids=['together', 'after-an-hour-down'])
    def test_shards_never_warn(self, world, dd_run_check, aggregator, pause) -> None:
        first, second = (service['id'] for service in world.account.services[:2])
        shard_a = world.check(service_ids=[first])
        _runs(world, dd_run_check, [shard_a], 3)
        shard_b = world.check(service_ids=[second])
        _runs(world, dd_run_check, [shard_a, shard_b], 10)
        # The Agent restarts (after a pause): each shard is new to its process, and runs in turn.
        world.account.advance(pause)
        restarted = [world.check(service_ids=[second]), world.check(service_ids=[first])]
        _runs(world, dd_run_check, restarted, 10)

        assert _identity_warnings(shard_a, shard_b, *restarted) == []
        assert aggregator.metrics('pagerduty_dora.identity.changed') == []

    @pytest.mark.parametrize(
        'options', [{}, {'submit_dora_failures': False}], ids=['failures-held', 'nothing-but-events-held']
    )
    def test_an_edit_is_rebuilt_from_what_the_previous_identity_sent(
        self, world, dd_run_check, aggregator, options
    ) -> None:
        world.forward_events(aggregator)
        first, second = (service['id'] for service in world.account.services[:2])
        before = world.check(service_ids=[first], datadog_app_key=DD_APP_KEY, **options)
        _runs(world, dd_run_check, [before], 2)
        incident = world.account.trigger(first, 'Before the edit')
        _runs(world, dd_run_check, [before], 2)
        assert event_keys(aggregator) == {(incident, 'triggered'): 1}

        world.account.acknowledge(incident)
        world.account.advance(30)
        edited = world.check(service_ids=[first, second], datadog_app_key=DD_APP_KEY, **options)
        _runs(world, dd_run_check, [edited], 20)

        assert event_keys(aggregator) == {(incident, 'triggered'): 1, (incident, 'acknowledged'): 1}
        warnings = _identity_warnings(edited)
        assert len(warnings) == 1 and 'from what the previous identity sent too' in warnings[0]


class TestSwapOfClusterChecks:
    """A cluster check that moves to an Agent as another one leaves it was not edited: no warning, no inheritance."""

    def test_a_check_moved_in_as_another_moved_out(self, world, dd_run_check, aggregator, datadog_agent) -> None:
        world.forward_events(aggregator)
        first, second = (service['id'] for service in world.account.services[:2])
        # Node 2 runs shard B; node 1 runs shard C, which reports an incident.
        leaving = world.check(service_ids=[second], datadog_app_key=DD_APP_KEY)
        _runs(world, dd_run_check, [leaving], 3)
        node_2 = dict(datadog_agent._cache)
        datadog_agent._cache.clear()
        arriving = world.check(service_ids=[first], datadog_app_key=DD_APP_KEY)
        # Datadog holds B's failures: C waits for the event search before it goes live.
        _runs(world, dd_run_check, [arriving], 12)
        incident = world.account.trigger(first, 'Before the move')
        _runs(world, dd_run_check, [arriving], 2)

        # B leaves node 2 for another node as C arrives there; C's incident is acknowledged meanwhile.
        datadog_agent._cache.clear()
        datadog_agent._cache.update(node_2)
        world.account.acknowledge(incident)
        world.account.advance(30)
        moved = world.check(service_ids=[first], datadog_app_key=DD_APP_KEY)
        _runs(world, dd_run_check, [moved], 20)

        assert _identity_warnings(moved) == []
        assert aggregator.metrics('pagerduty_dora.identity.changed') == []
        assert event_keys(aggregator) == {(incident, 'triggered'): 1, (incident, 'acknowledged'): 1}


class TestLineage:
    """The Agent's list of identities per PagerDuty API: a verdict once a candidate had the time to run again."""

    def _lineage(self, cache: dict[str, str], interval: float = 60.0, **options) -> lineage.Lineage:
        instance = dict(INSTANCE, **options)
        return lineage.Lineage(
            instance, identity.cache_id(instance), interval, lambda key: cache.get(key, ''), cache.__setitem__
        )

    def test_a_stopped_identity_is_judged_once_it_had_the_time_to_run(self) -> None:
        cache: dict[str, str] = {}
        old = self._lineage(cache)
        assert old.ran(START) == []
        new = self._lineage(cache, service_ids=['PA'], urgencies=[])
        assert new.ran(START + 30) == [] and new.undecided
        assert new.ran(START + 30 + 60 + lineage.GRACE) == [] and new.undecided
        (change,) = new.ran(START + 31 + 60 + lineage.GRACE)
        assert change.describe() == '`service_ids` [PA, PB] -> [PA]; `urgencies` [high] -> (all)'
        assert new.previous == [old.cache_id] and not new.undecided
        assert new.ran(START + DAY) == []

    def test_an_identity_stopped_more_than_a_day_before_is_no_candidate(self) -> None:
        cache: dict[str, str] = {}
        self._lineage(cache).ran(START)
        new = self._lineage(cache, service_ids=['PA'])
        assert new.ran(START + lineage.CANDIDATE_WINDOW + 1) == [] and not new.undecided
        assert new.ran(START + 2 * DAY) == []

    @pytest.mark.parametrize(
        'stored',
        [
            '{',
            '[]',
            '{"identities": [1]}',
            '{"identities": {"x": 3}}',
            '{"identities": {"x": {"last": "soon", "before": [[1]], "previous": {"a": 1}}}}',
            '{"version": 1, "identities": [1]}',
            '{"version": 1, "identities": {"x": 3}}',
            '{"version": 2, "identities": {}}',
        ],
        ids=[
            'cut-short',
            'a-list',
            'identities-a-list',
            'an-identity-a-number',
            'fields-of-other-types',
            'layout-1-identities-a-list',
            'layout-1-an-identity-a-number',
            'a-newer-layout',
        ],
    )
    def test_a_damaged_list_is_started_again(self, stored) -> None:
        cache = {lineage.registry_key(INSTANCE): stored}
        assert self._lineage(cache).ran(START) == []
        assert identity.cache_id(INSTANCE) in cache[lineage.registry_key(INSTANCE)]

    def test_a_damaged_entry_is_dropped_alone(self) -> None:
        cache: dict[str, str] = {}
        other = self._lineage(cache, service_ids=['PX'])
        other.ran(START)
        stored = json.loads(cache[lineage.registry_key(INSTANCE)])
        assert stored['version'] == lineage.LAYOUT.version and list(stored['identities']) == [other.cache_id]
        damaged = {'first': 'x', 'before': [[1], 'gone'], 'previous': 5, 'interval': True}
        stored['identities'][identity.cache_id(INSTANCE)] = damaged
        cache[lineage.registry_key(INSTANCE)] = json.dumps(stored)
        mine = self._lineage(cache)
        # Its own entry is met again as new: the identity that ran a moment before is a candidate again.
        assert mine.ran(START + 1) == [] and mine.previous == [] and mine.undecided
        kept = json.loads(cache[lineage.registry_key(INSTANCE)])['identities']
        assert sorted(kept) == sorted([other.cache_id, mine.cache_id])
        assert lineage.SEEN.decode(kept[other.cache_id]).options == lineage.options(dict(INSTANCE, service_ids=['PX']))

    def test_identities_not_seen_for_a_month_are_forgotten(self) -> None:
        cache: dict[str, str] = {}
        self._lineage(cache, service_ids=['PX']).ran(START)
        self._lineage(cache).ran(START + lineage.RETENTION + 1)
        assert identity.cache_id(dict(INSTANCE, service_ids=['PX'])) not in cache[lineage.registry_key(INSTANCE)]
