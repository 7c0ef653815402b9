# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The demo world: a small simulated PagerDuty account, a Datadog catalog, and the changes made between runs.

The test suite runs the same world against its stricter fakes, so what the demo shows is what the
tests prove. It is built so that every mapping rule decides at least one incident:

| PagerDuty service (team)          | catalog / option                                    | rule                   |
|-----------------------------------|-----------------------------------------------------|------------------------|
| Legacy Billing (Payments)         | `service_overrides` -> billing-api                  | override               |
| Checkout (prod) (Payments)        | checkout-api (v2.2) has its PagerDuty URL           | service_url            |
| Search Platform (Search)          | search-api (v2.2) and search-indexer (v3), same team | service_url_team       |
| login (Identity)                  | a v3 entity named login                             | service_name           |
| Nightly ETL (Data Platform)       | Datadog team "Data Platform"                        | team_name              |
| Observability (Operations)        | Datadog team "Observability"                        | service_name_as_team   |
| Marketing Website (Web)           | nothing                                             | fallback               |
| Platform On-Call (Operations)     | a Datadog Multi Alert monitor, group of the alert   | monitor_group          |
| Datadog Monitors (Operations)     | a Datadog monitor tagged with two services          | monitor_tags           |

Incidents cover every status, a reopened one, one without a priority, history older than the
collector's memory (sent as DORA failures only), and low-urgency ones that `urgencies: [high]` leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from datadog_checks.pagerduty_dora.common.times import parse_time

from .account import PagerDutyAccount
from .catalog import Catalog, monitor, v3_entity, v22_definition
from .datadog import Deployments, DoraFailures
from .pagerduty import PagerDutyApi
from .rendering import datadog_event
from .server import LoopbackServer, Route

# A fixed start keeps the demo's output the same on every machine and every day.
START = parse_time('2026-11-26T12:00:00Z')
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

# Keys of the fake Datadog API only; they open nothing anywhere else.
API_KEY = 'demo-datadog-api-key'
APP_KEY = 'demo-datadog-app-key'
ENV = 'prod'

# PagerDuty services: name -> PagerDuty team.
SERVICES = {
    'Legacy Billing': 'Payments',
    'Checkout (prod)': 'Payments',
    'Search Platform': 'Search',
    'login': 'Identity',
    'Nightly ETL': 'Data Platform',
    'Observability': 'Operations',
    'Marketing Website': 'Web',
    'Platform On-Call': 'Operations',
    'Datadog Monitors': 'Operations',
}
# Datadog monitors that page through PagerDuty: a Multi Alert one (by service, env, team) and a tagged one.
ERRORS_MONITOR = 4207311
SEARCH_MONITOR = 4207388
MONITORS = {
    SEARCH_MONITOR: monitor(
        SEARCH_MONITOR,
        'Search p99 latency above 800ms',
        'avg(last_10m):p99:trace.http.request{service:search-api} > 0.8',
        ['service:search-api', 'service:search-indexer', 'env:prod', 'team:search'],
    ),
}
# Datadog teams: (handle, display name).
DATADOG_TEAMS = [
    ('payments', 'Payments'),
    ('search', 'Search'),
    ('identity', 'Identity'),
    ('data-platform', 'Data Platform'),
    ('observability', 'Observability'),
]
SERVICE_OVERRIDES = [{'pagerduty_service': 'Legacy Billing', 'service': 'billing-api', 'team': 'payments'}]
# The rule each PagerDuty service is expected to be mapped by.
EXPECTED_RULES = {
    'Legacy Billing': 'override',
    'Checkout (prod)': 'service_url',
    'Search Platform': 'service_url_team',
    'login': 'service_name',
    'Nightly ETL': 'team_name',
    'Observability': 'service_name_as_team',
    'Marketing Website': 'fallback',
    'Platform On-Call': 'monitor_group',
    'Datadog Monitors': 'monitor_tags',
}


@dataclass
class DemoAccount:
    """The simulated account with its services and incidents by name, so changes can refer to them."""

    account: Any  # a PagerDutyAccount, or one with the same methods
    services: dict[str, str] = field(default_factory=dict)  # PagerDuty service name -> id
    incidents: dict[str, str] = field(default_factory=dict)  # incident title -> id

    def trigger(
        self, service: str, title: str, *, priority: str | None, urgency: str = 'high', event: Any = None
    ) -> str:
        """Trigger an incident; `event` is what a Datadog monitor sent, None for one made by hand."""
        service_id = self.services[service]
        incident_id = self.account.trigger(service_id, title, urgency=urgency, priority=priority, event=event)
        self.incidents[title] = incident_id
        return incident_id

    def number(self, title: str) -> int:
        return int(self.account.incident(self.incidents[title])['incident_number'])


# The account's past, in time order: (seconds before START, action). Each action runs at that moment.
def _history() -> list[tuple[float, Callable[[DemoAccount], None]]]:
    def trigger(service: str, title: str, priority: str | None, urgency: str = 'high', event: Any = None):
        return lambda demo: demo.trigger(service, title, priority=priority, urgency=urgency, event=event)

    errors = datadog_event(ERRORS_MONITOR, ['env:prod', 'service:checkout-api', 'team:payments'])
    latency = datadog_event(SEARCH_MONITOR, tags=['service:search-api', 'env:prod'])

    def act(verb: str, title: str):
        return lambda demo: getattr(demo.account, verb)(demo.incidents[title])

    return [
        (20 * DAY, trigger('Checkout (prod)', 'Card payments declined', 'P1')),
        (20 * DAY - 42 * MINUTE, act('resolve', 'Card payments declined')),
        (12 * DAY, trigger('Search Platform', 'Search results stale', 'P2')),
        (12 * DAY - 8 * MINUTE, act('acknowledge', 'Search results stale')),
        (12 * DAY - 3 * HOUR - 10 * MINUTE, act('resolve', 'Search results stale')),
        (10 * DAY, trigger('Platform On-Call', 'Checkout 5xx above 2%', 'P2', event=errors)),
        (10 * DAY - 35 * MINUTE, act('resolve', 'Checkout 5xx above 2%')),
        (9 * DAY, trigger('Nightly ETL', 'Warehouse load timed out', 'P3')),
        (9 * DAY - 90 * MINUTE, act('resolve', 'Warehouse load timed out')),
        (6 * DAY, trigger('login', 'Login page returns 502', 'P1')),
        (6 * DAY - 25 * MINUTE, act('resolve', 'Login page returns 502')),
        (5 * DAY, trigger('Datadog Monitors', 'Search p99 latency above 800ms', 'P3', event=latency)),
        (5 * DAY - 50 * MINUTE, act('resolve', 'Search p99 latency above 800ms')),
        (26 * HOUR, trigger('Legacy Billing', 'Invoices stuck in queue', 'P2')),
        (24 * HOUR, act('resolve', 'Invoices stuck in queue')),
        (4 * HOUR, trigger('Observability', 'TLS certificate expires in 20 days', 'P4', urgency='low')),
        (3 * HOUR, trigger('Nightly ETL', 'Nightly ETL job failed', 'P3')),
        (2 * HOUR, trigger('Marketing Website', 'Contact form not sending', None)),
        (60 * MINUTE, trigger('Observability', 'Alert pipeline lagging', 'P2')),
        (50 * MINUTE, act('acknowledge', 'Alert pipeline lagging')),
        (30 * MINUTE, trigger('Checkout (prod)', 'Checkout latency above SLO', 'P1')),
    ]


def build_account(start: float = START, account_class: Any = PagerDutyAccount) -> DemoAccount:
    """The demo account as it is at `start`: its services, teams, and past incidents."""
    account = account_class(subdomain='acme', now=start)
    teams: dict[str, str] = {}
    demo = DemoAccount(account)
    for service, team in SERVICES.items():
        if team not in teams:
            teams[team] = account.add_team(team)
        demo.services[service] = account.add_service(service, team_ids=[teams[team]])
    for before, action in _history():
        account.now = start - before
        action(demo)
    account.now = start
    return demo


def build_catalog(demo: DemoAccount, catalog_class: Any = Catalog) -> Any:
    """The Datadog side: service definitions (v2.2), catalog entities (v3) and teams."""
    checkout_url = demo.account.service_url(demo.services['Checkout (prod)'])
    search_url = demo.account.service_url(demo.services['Search Platform'])
    # The same service written the other way PagerDuty links it, to show URLs are compared by service id.
    search_url_other_form = 'https://acme.pagerduty.com/services/{}/'.format(demo.services['Search Platform'])
    return catalog_class(
        definitions=[
            v22_definition('checkout-api', team='payments', pagerduty_url=checkout_url),
            v22_definition('search-api', team='search', pagerduty_url=search_url),
            v22_definition('billing-api', team='payments'),
        ],
        entities=[
            v3_entity('search-indexer', owner='search', pagerduty_url=search_url_other_form),
            v3_entity('login', owner='identity'),
        ],
        teams=list(DATADOG_TEAMS),
        monitors=dict(MONITORS),
        api_key=API_KEY,
        app_key=APP_KEY,
    )


def build_deployments(start: float = START, deployments_class: Any = Deployments) -> Any:
    """The DORA deployments change-failure attribution reads: a bad `login` release and its rollback.

    `Login errors spiking` is triggered 4 minutes after the first run, 20 minutes after `login`
    v1.9.0 finished: that release is marked as the change failure. v1.8.0 is deployed again before
    the incident resolves, which is recorded as a rollback. A `checkout-api` release shortly before
    `Checkout latency above SLO` shows in the dry run's attribution preview.
    """
    deployments = deployments_class(API_KEY, APP_KEY)
    deployments.add('login', ENV, 'v1.8.0', start - 5 * HOUR, deployment_id='dep-login-v1-8-0')
    deployments.add('login', ENV, 'v1.9.0', start - 16 * MINUTE, deployment_id='dep-login-v1-9-0')
    deployments.add('login', ENV, 'v1.8.0', start + 12 * MINUTE, deployment_id='dep-login-rollback')
    deployments.add('checkout-api', ENV, 'v3.4.1', start - 45 * MINUTE, deployment_id='dep-checkout-v3-4-1')
    return deployments


@dataclass
class Change:
    """One live change made between two runs: what a person would read, and the change itself."""

    incident: str  # incident title
    description: str
    apply: Callable[[DemoAccount], Any]


def _changes() -> list[list[Change]]:
    def trigger(service: str, title: str, priority: str | None, urgency: str = 'high') -> Change:
        detail = priority or 'no priority'
        if urgency == 'low':
            detail += ', low urgency'
        what = 'triggered on {} ({})'.format(service, detail)
        return Change(title, what, lambda demo: demo.trigger(service, title, priority=priority, urgency=urgency))

    def act(verb: str, title: str, description: str) -> Change:
        return Change(title, description, lambda demo: getattr(demo.account, verb)(demo.incidents[title]))

    def priority(title: str, name: str, description: str) -> Change:
        return Change(title, description, lambda demo: demo.account.set_priority(demo.incidents[title], name))

    return [
        [
            trigger('login', 'Login errors spiking', 'P2'),
            act('acknowledge', 'Nightly ETL job failed', 'acknowledged'),
            priority('Alert pipeline lagging', 'P1', 'priority raised P2 -> P1'),
            act('reopen', 'Invoices stuck in queue', 'reopened (it was resolved yesterday)'),
        ],
        [
            act('acknowledge', 'Login errors spiking', 'acknowledged'),
            act('resolve', 'Checkout latency above SLO', 'resolved'),
            act('acknowledge', 'Contact form not sending', 'acknowledged'),
            trigger('Search Platform', 'Disk 80% full on build agents', 'P3', urgency='low'),
        ],
        [
            act('resolve', 'Login errors spiking', 'resolved'),
            act('resolve', 'Alert pipeline lagging', 'resolved'),
        ],
    ]


# Between two runs: the changes happen this long after the previous run, and the next run comes
# one check interval after the previous one.
CHANGE_DELAY = 4 * MINUTE
RUN_INTERVAL = 5 * MINUTE


class DemoWorld:
    """The demo account served as PagerDuty's API, and one Datadog API (DORA failures, catalog, deployments).

    The classes are attributes so that the tests can run the same world on their stricter fakes.
    """

    account_class: Any = PagerDutyAccount
    catalog_class: Any = Catalog
    dora_class: Any = DoraFailures
    deployments_class: Any = Deployments

    def __init__(self, start: float = START) -> None:
        self.demo = build_account(start, self.account_class)
        self.account = self.demo.account
        self.catalog = build_catalog(self.demo, self.catalog_class)
        self.dora = self.dora_class(API_KEY)
        self.deployments = build_deployments(start, self.deployments_class)
        self.pagerduty = self.serve_pagerduty(self.account)
        self.datadog = self.serve_datadog(
            self.dora.routes() + self.catalog.routes() + self.deployments.routes() + self.dora.record_routes()
        )
        self.changes = _changes()

    def serve_pagerduty(self, account: Any) -> Any:
        return PagerDutyApi(account)

    def serve_datadog(self, routes: list[Route]) -> Any:
        return LoopbackServer(routes)

    def start(self) -> 'DemoWorld':
        self.pagerduty.start()
        self.datadog.start()
        return self

    def stop(self) -> None:
        self.pagerduty.stop()
        self.datadog.stop()

    def __enter__(self) -> 'DemoWorld':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def instance(self, **options: Any) -> dict[str, Any]:
        """The check instance of the demo: both fakes, `env: prod`, high urgency only, one override."""
        instance: dict[str, Any] = {
            'pagerduty_api_url': self.pagerduty.url,
            'api_token': self.account.token,
            'datadog_api_url': self.datadog.url,
            'datadog_api_key': API_KEY,
            'datadog_app_key': APP_KEY,
            'env': ENV,
            'urgencies': ['high'],
            'backfill_days': 30,
            'service_overrides': [dict(o) for o in SERVICE_OVERRIDES],
            'attribute_change_failures': True,
            'min_collection_interval': RUN_INTERVAL,
            'timeout': 5,
            # The fakes are on loopback: a proxy from the environment must not carry the demo elsewhere.
            'skip_proxy': True,
        }
        instance.update(options)
        return instance

    def apply(self, step: int) -> list[tuple[Change, str]]:
        """Make the changes of `step` (0-based) at their moment; return each with its incident id."""
        self.account.advance(CHANGE_DELAY)
        done = []
        for change in self.changes[step]:
            change.apply(self.demo)
            done.append((change, self.demo.incidents[change.incident]))
        self.account.advance(RUN_INTERVAL - CHANGE_DELAY)
        return done
