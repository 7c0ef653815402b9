# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Upgrades from every released stored layout: nothing re-sent, no transition of the stop lost.

Each case starts from a sample of what a past release stored (`tests/layouts/*.json`, made with that
release's own code by `scripts/layout-samples`) in the account it was made against, rebuilt at the
moment the sample was taken (`tests/layouts/world.py`). The sample goes into the persistent cache
under the key that release used; Datadog holds what the release sent. While the Agent is stopped for
the upgrade, PagerDuty changes: an acknowledgement, a resolve, a new incident, a reopen. Then the
current check runs, restarted before every run, and must report each change of the stop once, post
only the failures that changed or were left pending, and keep the attribution the release made.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..layouts.world import (
    BASE_OPTIONS,
    RELEASES,
    SAMPLES,
    STEPS,
    VARIANTS,
    Release,
    Scenario,
    cache_id,
    cache_key,
    load_sample,
    sample_path,
    tag_value,
)

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

CASES = [(release, variant) for release in RELEASES for variant in sorted(VARIANTS)]
IDS = ['{}-{}'.format(release.label, variant) for release, variant in CASES]
URL_OPTIONS = ('pagerduty_api_url', 'datadog_api_url')
# The tag of the events of releases from be22ef9 on that names the instance: its cache id's first 16 characters.
INSTANCE_TAG = 'pagerduty_dora_instance'
# Runs of the current check after the stop, each after a restart.
RUNS_AFTER = 3


@pytest.fixture
def scenario():
    scenario = Scenario()
    yield scenario
    scenario.close()


def _strings(value: Any) -> set[str]:
    """Every string a JSON value holds, keys included: what a document names, whatever its layout."""
    if isinstance(value, dict):
        return set(value).union(*(_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value))
    return {value} if isinstance(value, str) else set()


def reported(events: list[dict[str, Any]], name: str) -> Counter:
    """(incident id, value) of the `name:` tag (`transition`, `attribution`) of every event that has one, counted."""
    found = ((event['aggregation_key'], tag_value(event, name)) for event in events)
    return Counter((key, value) for key, value in found if value is not None)


def _without_urls(instance: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in instance.items() if key not in URL_OPTIONS}


class TestSamples:
    """Every committed sample is well-formed, names its release and holds its layouts."""

    def test_one_sample_per_release_and_instance(self):
        found = sorted(path.name for path in SAMPLES.glob('*.json'))
        assert found == sorted(sample_path(release, variant).name for release, variant in CASES)

    @pytest.mark.parametrize(('release', 'variant'), CASES, ids=IDS)
    def test_sample_names_its_release_and_layouts(self, release: Release, variant: str):
        assert sample_path(release, variant).is_file(), 'missing sample; make it with scripts/layout-samples'
        sample = load_sample(release, variant)
        assert sample['release']['commit'].startswith(release.commit) and len(sample['release']['commit']) == 40
        assert (sample['release']['label'], sample['release']['date'], sample['variant']) == (
            release.label,
            release.date,
            variant,
        )
        assert sample['command'] == 'scripts/layout-samples'
        assert sample['instance'].items() >= {**BASE_OPTIONS, **VARIANTS[variant]}.items()
        assert cache_id(release.cache_id_scheme, sample['instance']) == sample['persistent_cache_id']
        # An instance tag on the events is made from the cache id: an upgrade test rewrites it with its own.
        tags = {tag for e in sample['sent']['events'] for tag in e['event']['tags'] if tag.startswith(INSTANCE_TAG)}
        assert tags <= {INSTANCE_TAG + ':' + sample['persistent_cache_id'][:16]}
        documents = {key: json.loads(value) for key, value in sample['cache'].items() if value}
        expected = {'collector': release.collector, 'dora_pending': release.dora_pending}
        if variant == 'app-key':
            expected.update(attribution=release.attribution, catalog=release.catalog)
        assert {key: documents[key]['version'] for key in expected} == expected
        assert [run['step'] for run in sample['runs']] == [step.name for step in STEPS]
        assert [run['error'] for run in sample['runs']] == [None] * len(STEPS)

    @pytest.mark.parametrize(('release', 'variant'), CASES, ids=IDS)
    def test_sample_holds_pending_failures_and_what_was_sent(self, release: Release, variant: str):
        sample = load_sample(release, variant)
        roles = sample['roles']
        pending = json.loads(sample['cache']['dora_pending'])['items']
        assert [item[0] for item in pending] == [roles['refused'], roles['waiting']]
        sent = sample['sent']
        assert reported([e['event'] for e in sent['events']], 'attribution') == {}
        assert reported([e['event'] for e in sent['events']], 'transition') == {
            (roles['blamed'], 'triggered'): 1,
            (roles['brief'], 'triggered'): 1,
            (roles['blamed'], 'acknowledged'): 1,
            (roles['brief'], 'resolved'): 1,
            (roles['old_acked'], 'resolved'): 1,
            (roles['old_open'], 'acknowledged'): 1,
            (roles['refused'], 'triggered'): 1,
            (roles['waiting'], 'triggered'): 1,
        }
        # The history (33 incidents) on the first run, then the two triggered, then the two resolved.
        assert len(sent['dora_failures']) == 37
        posted = {f['attributes']['id'] for f in sent['dora_failures']}
        assert posted.isdisjoint({failure_id(roles['refused']), failure_id(roles['waiting'])})
        marks = [(p['deployment'], p['attributes']) for p in sent['deployment_patches']]
        if variant == 'app-key':
            # Releases before layout 3 mark the deployment again for each incident that blames it.
            assert marks == [('dep-D2', {'change_failure': True})] * (2 if release.collector < 3 else 1)
            assert {roles['blamed'], roles['waiting'], 'dep-D2'} <= _strings(json.loads(sample['cache']['attribution']))
        else:
            assert marks == []


class Upgrade:
    """One upgrade: the sample in place, the stop's changes made, and the current check's runs."""

    def __init__(self, scenario: Scenario, release: Release, variant: str, datadog_agent: Any) -> None:
        self.scenario, self.release, self.variant = scenario, release, variant
        self.sample = load_sample(release, variant)
        self.world = world = scenario.world
        scenario.replay()
        self.roles = dict(scenario.roles)
        assert scenario.account.now == self.sample['clock'], 'the rebuilt account is not the one sampled'
        assert self.roles == self.sample['roles'], 'the rebuilt account is not the one sampled'
        self.instance = scenario.instance(variant)
        assert _without_urls(self.instance) == _without_urls(self.sample['instance'])
        self.old_cache_id = cache_id(release.cache_id_scheme, self.instance)
        # The sample names the URLs of the fakes it was made with, and its events carry an instance tag
        # made from its cache id: both read as the release would have written them here.
        self.rehosted = [(self.sample['instance'][option], self.instance[option]) for option in URL_OPTIONS] + [
            (INSTANCE_TAG + ':' + self.sample['persistent_cache_id'][:16], INSTANCE_TAG + ':' + self.old_cache_id[:16])
        ]
        # What Datadog holds: the failures the release delivered, its events, the deployments it marked.
        world.dora.preload(f['attributes'] for f in self.sample['sent']['dora_failures'])
        world.events.ingest(json.loads(self.rehost(json.dumps(e['event']))) for e in self.sample['sent']['events'])
        for patch in self.sample['sent']['deployment_patches']:
            deployment = world.deployments.deployments[patch['deployment']]
            deployment.change_failure = patch['attributes'].get('change_failure', deployment.change_failure)
            deployment.remediation = patch['attributes'].get('remediation', deployment.remediation)
        # What the Agent's persistent cache holds: the sample, under the key the release used for this instance.
        check_id = world.check(**self.options).check_id
        for key, value in self.sample['cache'].items():
            datadog_agent.write_persistent_cache(cache_key(check_id, self.old_cache_id, key), self.rehost(value))
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.cache_id = ''
        self.posts = len(world.dora.posts)
        self.patches = len(world.deployments.patches)

    def rehost(self, text: str) -> str:
        for sampled, here in self.rehosted:
            text = text.replace(sampled, here)
        return text

    @property
    def options(self) -> dict[str, Any]:
        return _without_urls(self.instance)

    def stop(self) -> None:
        """What happens in PagerDuty (and in Datadog's deployments) while the Agent is stopped for the upgrade."""
        scenario, account, roles = self.scenario, self.scenario.account, self.roles
        account.advance(120)
        account.acknowledge(roles['old_quiet'])
        account.advance(10)
        # A rollback of checkout to the version it ran before the blamed deployment, then the resolve.
        scenario.deploy('D3', 'checkout', '1.0', account.now)
        account.advance(30)
        account.resolve(roles['blamed'])
        account.advance(10)
        roles['new'] = account.trigger(scenario.services['search-api'], 'Search index lagging', priority='P2')
        account.advance(10)
        account.reopen(roles['brief'])
        account.advance(60)

    def run(self, dd_run_check: Any) -> None:
        """Restart and run the current check RUNS_AFTER times; the new incident is acknowledged after the first run."""
        for number in range(RUNS_AFTER):
            check = self.scenario.world.check(**self.options)
            try:
                dd_run_check(check)
            except Exception as e:
                # Kept to be told, so that every assertion still says what the runs did.
                self.errors.append('run {}: {}'.format(number + 1, str(e).strip().splitlines()[-1]))
            self.warnings += check.warnings
            if number == 0:
                self.scenario.account.advance(20)
                self.scenario.account.acknowledge(self.roles['new'])
            self.scenario.account.advance(60)
        self.last_check = check
        self.cache_id = check.persistent_cache_id()

    def name(self, key: Any) -> str:
        """An incident id, a failure id or an (incident id, what) pair, with the incident's role in the scenario."""
        if isinstance(key, tuple):
            return '{} {}'.format(self.name(key[0]), key[1])
        for role, incident in self.roles.items():
            if key in (incident, failure_id(incident)):
                return '{} ({})'.format(key, role)
        return key

    def explain(self, what: str, got: Counter, expected: Counter) -> str:
        missing, extra = expected - got, got - expected
        lines = ['{} of the upgrade from {} ({}):'.format(what, self.release.label, self.variant)]
        if missing:
            lines.append(
                '  missing: ' + ', '.join('{} x{}'.format(self.name(k), n) for k, n in sorted(missing.items()))
            )
        if extra:
            shown = sorted(extra.items())[:8]
            more = ' and {} more'.format(len(extra) - len(shown)) if len(extra) > len(shown) else ''
            lines.append(
                '  unexpected ({} in all): '.format(sum(extra.values()))
                + ', '.join('{} x{}'.format(self.name(k), n) for k, n in shown)
                + more
            )
        return '\n'.join(lines) + self.context()

    def context(self) -> str:
        """Where the current check kept its state, and its errors and warnings: what a failure message ends with."""
        lines = ['']
        if self.cache_id != self.old_cache_id:
            lines.append(
                "  the release stored its state under cache id {}, the current check's own is {}".format(
                    self.old_cache_id, self.cache_id
                )
            )
        lines.append('  errors of the current check: {}'.format(self.errors or 'none'))
        lines.append('  warnings of the current check: {}'.format(self.warnings or 'none'))
        return '\n'.join(lines)


class TestUpgrade:
    """An upgrade from each released layout reports the stop once, re-sends nothing and keeps the queue."""

    @pytest.fixture
    def upgraded(self, scenario, request, datadog_agent, aggregator, dd_run_check):
        release, variant = request.param
        upgrade = Upgrade(scenario, release, variant, datadog_agent)
        upgrade.stop()
        upgrade.run(dd_run_check)
        upgrade.events = list(aggregator.events)
        return upgrade

    @pytest.mark.parametrize('upgraded', CASES, ids=IDS, indirect=True)
    def test_every_run_succeeds(self, upgraded):
        assert upgraded.errors == [], 'runs of the current check failed' + upgraded.context()

    @pytest.mark.parametrize('upgraded', CASES, ids=IDS, indirect=True)
    def test_every_transition_of_the_stop_is_reported_once(self, upgraded):
        roles = upgraded.roles
        expected = Counter(
            {
                (roles['old_quiet'], 'acknowledged'): 1,
                (roles['blamed'], 'resolved'): 1,
                (roles['new'], 'triggered'): 1,
                (roles['brief'], 'reopened'): 1,
                # After the first run of the current check.
                (roles['new'], 'acknowledged'): 1,
            }
        )
        got = reported(upgraded.events, 'transition')
        assert got == expected, upgraded.explain('Agent events of transitions', got, expected)

    @pytest.mark.parametrize('upgraded', CASES, ids=IDS, indirect=True)
    def test_only_changed_and_pending_failures_are_posted(self, upgraded):
        roles = upgraded.roles
        # A resolve, a new incident, a reopen (its failure loses `finished_at`), and the two failures
        # the release left pending; the acknowledgements change no failure.
        expected = Counter({failure_id(roles[role]): 1 for role in ('blamed', 'new', 'brief', 'refused', 'waiting')})
        got = Counter(a['id'] for a in upgraded.world.dora.posts[upgraded.posts :])
        assert got == expected, upgraded.explain('DORA failures posted', got, expected)

    @pytest.mark.parametrize('upgraded', CASES, ids=IDS, indirect=True)
    def test_the_pending_failures_are_delivered(self, upgraded):
        fields = ('name', 'started_at', 'env', 'severity')
        queued = json.loads(upgraded.sample['cache']['dora_pending'])['items']
        assert len(queued) == 2
        for incident, _, payload in queued:
            held = upgraded.world.dora.failures.get(failure_id(incident))
            assert held is not None, (
                'the failure of {} the release left pending (its post got a 503) never reached Datadog{}'.format(
                    upgraded.name(incident), upgraded.context()
                )
            )
            assert {key: held.get(key) for key in fields} == {key: payload.get(key) for key in fields}

    @pytest.mark.parametrize('upgraded', CASES, ids=IDS, indirect=True)
    def test_attribution_is_kept(self, upgraded):
        patches = upgraded.world.deployments.patches[upgraded.patches :]
        attributed = reported(upgraded.events, 'attribution')
        if upgraded.variant != 'app-key':
            assert (patches, attributed) == ([], Counter())
            return
        roles = upgraded.roles
        # The release marked D2, blamed by `blamed` (and by `waiting`, or that is a task still pending); the
        # resolve of `blamed` after the rollback D3 is D2's remediation, and D2 is marked for nothing else.
        assert [deployment for deployment, _ in patches] == ['dep-D2'], (
            'expected one PATCH of dep-D2 recording its remediation (the release had blamed dep-D2 for {}, '
            'resolved during the stop after the rollback dep-D3); got {}{}'.format(
                upgraded.name(roles['blamed']), patches, upgraded.context()
            )
        )
        (attributes,) = [a for _, a in patches]
        assert (attributes.get('remediation') or {}).get('id') == 'dep-D3', (
            'the one PATCH of dep-D2 after the upgrade does not record the rollback dep-D3: {}{}'.format(
                attributes, upgraded.context()
            )
        )
        stored = upgraded.last_check.read_persistent_cache('attribution')
        assert stored, 'no attribution state stored after the upgrade' + upgraded.context()
        assert {roles['blamed'], roles['waiting'], 'dep-D2'} <= _strings(json.loads(stored)), (
            'the attribution state no longer names the incidents blaming dep-D2 and the deployment: {}{}'.format(
                stored[:500], upgraded.context()
            )
        )
        # Only an attribution the release left as a pending task is news; the others were done before.
        waiting = roles['waiting'] in _strings(json.loads(upgraded.sample['cache']['attribution'])['pending'])
        expected = Counter({(roles['waiting'], 'attributed'): 1} if waiting else {})
        assert attributed == expected, upgraded.explain('Agent events of attribution', attributed, expected)
