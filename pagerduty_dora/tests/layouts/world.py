# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The account the stored-layout samples were made against, rebuilt the same way every time.

A sample of a released layout is what a past release stored after running a few times against this
account (`scripts/layout-samples` makes them, with each release's own code). An upgrade test rebuilds
the account as it stood when the sample was taken (`Scenario(...)` then `replay()`), puts the sample
in the persistent cache under the key the release used, changes the account during the Agent's stop,
and runs the current check over it. Everything here is fixed: times, seeds, names and deployment ids,
so the account a test rebuilds is the one the release saw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..fakes.catalog_api import v22_definition
from ..fakes.pagerduty import PagerDutyAccount
from ..harness import DAY, DD_APP_KEY, World

SAMPLES = Path(__file__).parent
# 2026-11-02T12:00:00Z, the account's clock when the release's first run starts.
BEGIN = 1793620800.0
ENV = 'prod'
# What every sample's instance sets besides the URLs and keys of the fakes.
BASE_OPTIONS: dict[str, Any] = {'env': ENV, 'backfill_days': 30}
# The two instances each release is sampled with: an API key only, and an application key as well,
# with which the release reads the catalog from Datadog and attributes change failures.
VARIANTS: dict[str, dict[str, Any]] = {
    'api-key-only': {},
    'app-key': {'datadog_app_key': DD_APP_KEY, 'attribute_change_failures': True},
}
# The persistent cache id schemes releases used (see `cache_id`).
FOUR_FIELDS = 'url, token, service_ids, team_ids'
NINE_FIELDS = FOUR_FIELDS + ', urgencies, priorities, env, unmapped_incidents, datadog_api_url'
SEVEN_FIELDS = FOUR_FIELDS + ', urgencies, priorities, datadog_api_url'


@dataclass(frozen=True)
class Release:
    """A release of this project and the layouts of the documents it stores."""

    commit: str
    date: str
    collector: int
    attribution: int
    dora_pending: int
    catalog: int
    cache_id_scheme: str

    @property
    def label(self) -> str:
        return 'layout{}-{}'.format(self.collector, self.commit[:7])


RELEASES = (
    Release(
        '4248c02', '2026-11-26', collector=1, attribution=1, dora_pending=1, catalog=1, cache_id_scheme=FOUR_FIELDS
    ),
    Release(
        '1db5e40', '2026-12-01', collector=2, attribution=1, dora_pending=1, catalog=1, cache_id_scheme=FOUR_FIELDS
    ),
    Release(
        'be22ef9', '2026-12-01', collector=3, attribution=2, dora_pending=1, catalog=1, cache_id_scheme=NINE_FIELDS
    ),
    Release(
        'c16774c', '2026-12-02', collector=3, attribution=2, dora_pending=1, catalog=1, cache_id_scheme=NINE_FIELDS
    ),
    Release(
        '7977aa9', '2026-12-07', collector=4, attribution=2, dora_pending=1, catalog=1, cache_id_scheme=SEVEN_FIELDS
    ),
    Release(
        '694aa32', '2026-12-07', collector=5, attribution=2, dora_pending=1, catalog=1, cache_id_scheme=SEVEN_FIELDS
    ),
)


def sample_path(release: Release, variant: str) -> Path:
    return SAMPLES / '{}-{}.json'.format(release.label, variant)


def load_sample(release: Release, variant: str) -> dict[str, Any]:
    return json.loads(sample_path(release, variant).read_text(encoding='utf-8'))


def _sorted_strings(value: Any) -> list[str]:
    return sorted(str(item) for item in value) if isinstance(value, (list, tuple)) else []


def cache_id(scheme: str, instance: dict[str, Any]) -> str:
    """The persistent cache id a release of `scheme` computed for `instance`, as its `persistent_cache_id` did.

    Releases up to 1db5e40 hashed the PagerDuty URL, the token's hash and the scope; the next ones five
    more options, and those from 7977aa9 on three of those five. The URLs enter the hash, so an instance
    on other ports has another id.
    """
    token = str(instance.get('api_token') or '')
    identity: dict[str, Any] = {
        'url': str(instance.get('pagerduty_api_url') or 'https://api.pagerduty.com').rstrip('/'),
        'token': hashlib.sha256(token.encode('utf-8')).hexdigest()[:16],
    }
    if scheme == FOUR_FIELDS:
        identity['service_ids'] = sorted(instance.get('service_ids') or [])
        identity['team_ids'] = sorted(instance.get('team_ids') or [])
    elif scheme == SEVEN_FIELDS:
        identity.update(
            service_ids=_sorted_strings(instance.get('service_ids')),
            team_ids=_sorted_strings(instance.get('team_ids')),
            urgencies=_sorted_strings(instance.get('urgencies')),
            priorities=_sorted_strings(instance.get('priorities')),
            datadog_api_url=str(instance.get('datadog_api_url') or '').rstrip('/'),
        )
    elif scheme == NINE_FIELDS:
        identity.update(
            service_ids=_sorted_strings(instance.get('service_ids')),
            team_ids=_sorted_strings(instance.get('team_ids')),
            urgencies=_sorted_strings(instance.get('urgencies')),
            priorities=_sorted_strings(instance.get('priorities')),
            env=str(instance.get('env') or ''),
            unmapped_incidents=str(instance.get('unmapped_incidents') or 'send'),
            datadog_api_url=str(instance.get('datadog_api_url') or '').rstrip('/'),
        )
    else:
        raise ValueError('unknown cache id scheme {!r}'.format(scheme))
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode('utf-8')).hexdigest()[:32]


def tag_value(event: dict[str, Any], name: str) -> str | None:
    """The value of the event's `name:` tag (`transition`, `attribution`), None when it has none."""
    values = [tag.split(':', 1)[1] for tag in event.get('tags') or () if tag.startswith(name + ':')]
    if len(values) > 1:
        raise ValueError('an event with {} {} tags: {}'.format(len(values), name, event.get('tags')))
    return values[0] if values else None


def cache_key(check_id: str, persistent_cache_id: str, key: str) -> str:
    """The full key `AgentCheck.write_persistent_cache(key, ...)` stores under, for a check of this id and cache id."""
    namespace = ':'.join(check_id.split(':')[:-1])
    return '{}:{}_{}'.format(namespace, persistent_cache_id, key)


@dataclass(frozen=True)
class Step:
    """One run of the release: what changes in the account first, and whether DORA posts are refused."""

    name: str
    change: Callable[[Scenario], None]
    refuse_dora_posts: bool = False


class Scenario:
    """The account, the Datadog fakes and the incidents that play a part, by role.

    Roles: `old_acked`, `old_open`, `old_quiet` are open incidents of the history (created days
    before the first run); `blamed` is triggered after deployment `D2` of `checkout`; `brief` is
    triggered then resolved while the release runs; `refused` and `waiting` are triggered in the run
    whose DORA posts are refused, so that their failures are pending when the sample is taken;
    `waiting` is on checkout too, and releases that wait for Datadog to index deployments before
    attributing it still hold that task when the sample is taken.
    """

    def __init__(self) -> None:
        account = PagerDutyAccount(now=BEGIN)
        payments, search = account.add_team('Payments'), account.add_team('Search')
        self.services = {
            'checkout': account.add_service('checkout', team_ids=[payments]),
            'search-api': account.add_service('search-api', team_ids=[search]),
            'billing': account.add_service('billing', team_ids=[payments]),
        }
        account.populate(30, BEGIN - 20 * DAY, BEGIN - 3600, seed=27, open_fraction=0.1)
        self.roles: dict[str, str] = {}
        for role, age, acknowledged in (('old_acked', 6, True), ('old_open', 4, False), ('old_quiet', 2, False)):
            account.now = BEGIN - age * DAY
            self.roles[role] = account.trigger(self.services['billing'], 'Old {} incident'.format(role), priority='P3')
            if acknowledged:
                account.advance(900)
                account.acknowledge(self.roles[role])
        account.now = BEGIN
        self.world = World(account)
        self.account = account
        self.world.catalog.definitions.extend(
            [
                v22_definition(
                    'checkout', team='payments', pagerduty_url=account.service_url(self.services['checkout'])
                ),
                v22_definition('search-api', team='search'),
            ]
        )
        self.world.catalog.teams.extend([('payments', 'Payments'), ('search', 'Search')])
        self.deploy('D1', 'checkout', '1.0', BEGIN - 5 * DAY)
        self.steps_done = 0

    def close(self) -> None:
        self.world.close()

    def deploy(self, deployment_id: str, service: str, version: str, finished_at: float) -> str:
        return self.world.deployments.add(
            service, ENV, version, finished_at, team='payments', deployment_id='dep-' + deployment_id
        )

    def instance(self, variant: str) -> dict[str, Any]:
        return self.world.instance(**BASE_OPTIONS, **VARIANTS[variant])

    def replay(self, steps: int | None = None) -> None:
        """Make the account's changes of the first `steps` runs (all by default), without running anything."""
        for step in STEPS[self.steps_done : steps]:
            step.change(self)
            self.steps_done += 1


def _first_run(scenario: Scenario) -> None:
    """Nothing changes: the first run backfills the history."""


def _deploy_and_trigger(scenario: Scenario) -> None:
    account = scenario.account
    account.advance(60)
    scenario.deploy('D2', 'checkout', '1.1', account.now)
    account.advance(60)
    scenario.roles['blamed'] = account.trigger(scenario.services['checkout'], 'Checkout errors', priority='P1')
    account.advance(5)
    scenario.roles['brief'] = account.trigger(scenario.services['search-api'], 'Search latency', urgency='low')
    account.advance(30)


def _acknowledge_and_resolve(scenario: Scenario) -> None:
    account = scenario.account
    account.advance(20)
    account.acknowledge(scenario.roles['blamed'])
    account.advance(5)
    account.resolve(scenario.roles['brief'])
    account.advance(5)
    account.resolve(scenario.roles['old_acked'])
    # Releases from be22ef9 on wait five minutes after a trigger for Datadog to index the deployments.
    account.advance(300)


def _trigger_while_refused(scenario: Scenario) -> None:
    account = scenario.account
    account.advance(20)
    scenario.roles['refused'] = account.trigger(scenario.services['billing'], 'Billing export stuck', priority='P2')
    account.advance(5)
    scenario.roles['waiting'] = account.trigger(scenario.services['checkout'], 'Checkout slow', priority='P1')
    account.advance(5)
    account.acknowledge(scenario.roles['old_open'])
    account.advance(35)


STEPS = (
    Step('first run: backfill of the history', _first_run),
    Step('a deployment of checkout, then two incidents triggered', _deploy_and_trigger),
    Step('an acknowledgement and two resolves', _acknowledge_and_resolve),
    Step('two incidents triggered while Datadog refuses DORA posts (503)', _trigger_while_refused, True),
)
