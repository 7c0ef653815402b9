# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A simulated PagerDuty account and Datadog API on loopback, and checks that run against them."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.catalog import sources
from datadog_checks.pagerduty_dora.catalog.sources import SourceCopy
from datadog_checks.pagerduty_dora.collection.collector import STATE_KEY
from datadog_checks.pagerduty_dora.collection.state import CollectorState
from datadog_checks.pagerduty_dora.common import documents
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.times import parse_time
from datadog_checks.pagerduty_dora.datadog import dora
from datadog_checks.pagerduty_dora.datadog.events import LIVE_SINCE_TAG
from datadog_checks.pagerduty_dora.datadog.queue import QueueBounds, QueueDocument, StoredQueue

from .fakes.catalog_api import CatalogState, catalog_routes
from .fakes.deployments_api import DeploymentsState
from .fakes.dora_api import DoraState
from .fakes.events_api import EventsState
from .fakes.pagerduty import PagerDutyAccount, PagerDutySimulator
from .fakes.server import FakeServer, Request

DD_API_KEY = 'dd0123456789abcdef0123456789abcd'
DD_APP_KEY = 'app0123456789abcdef0123456789abcdef0123'
DAY = 86400.0
# 2026-11-02T12:00:00Z: far enough from any DST change in the account's zone to keep tests readable.
START = 1793620800.0


class World:
    """PagerDuty and Datadog fakes for one test, with helpers to build and run checks against them."""

    def __init__(self, account: PagerDutyAccount | None = None, **simulator_options: Any) -> None:
        self.account = account if account is not None else PagerDutyAccount(now=START)
        self.pagerduty = PagerDutySimulator(self.account, **simulator_options).start()
        self.dora = DoraState(DD_API_KEY, app_key=DD_APP_KEY)
        self.catalog = CatalogState(api_key=DD_API_KEY, app_key=DD_APP_KEY)
        self.deployments = DeploymentsState(DD_API_KEY, DD_APP_KEY)
        # The events Datadog holds, on the account's clock: fed by `ingest()` or `forward_events()`.
        self.events = EventsState(DD_API_KEY, DD_APP_KEY, clock=lambda: self.account.now)
        self._forwarding: list[Any] = []
        self.datadog = FakeServer(
            self.dora.routes() + catalog_routes(self.catalog) + self.deployments.routes() + self.events.routes()
        ).start()

    def close(self) -> None:
        for aggregator in self._forwarding:
            # Only the wrapper set by `forward_events()` is an instance attribute; the stub's method stays.
            aggregator.__dict__.pop('submit_event', None)
        self._forwarding.clear()
        self.pagerduty.stop()
        self.datadog.stop()

    def forward_events(self, aggregator: Any) -> None:
        """Deliver every event a check submits to `aggregator` from now on to the Datadog fake, as the Agent does.

        Each event is ingested when it is submitted, on the account's clock; `close()` stops it.
        """
        submit = aggregator.submit_event

        def submit_and_forward(check: Any, check_id: str, event: dict) -> None:
            submit(check, check_id, event)
            self.events.ingest([event])

        aggregator.submit_event = submit_and_forward
        self._forwarding.append(aggregator)

    def instance(self, **options: Any) -> dict[str, Any]:
        instance = {
            'pagerduty_api_url': self.pagerduty.url,
            'api_token': self.account.token,
            'datadog_api_url': self.datadog.url,
            'datadog_api_key': DD_API_KEY,
            'min_collection_interval': 60,
            'timeout': 5,
        }
        instance.update(options)
        return instance

    def check(self, **options: Any) -> PagerdutyDoraCheck:
        """A new check instance: calling this again over the same stubs is an Agent restart."""
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [self.instance(**options)])
        check.clock = lambda: self.account.now
        check.monotonic = lambda: self.account.now
        return check

    def pd_requests(self) -> int:
        return self.pagerduty.count('/')


def event_keys(aggregator: Any) -> Counter:
    """(incident id, transition) of every event of an incident submitted, counted."""
    return Counter((e['aggregation_key'], transition_of(e)) for e in incident_events(aggregator))


def incident_events(aggregator: Any) -> list[dict]:
    """The events of incident transitions submitted: every event but the live events."""
    return [e for e in aggregator.events if not is_live_event(e)]


def live_events(aggregator: Any) -> list[dict]:
    """The live events submitted: each says since when its instance reports every transition."""
    return [e for e in aggregator.events if is_live_event(e)]


def is_live_event(event: dict) -> bool:
    return any(tag.startswith(LIVE_SINCE_TAG + ':') for tag in event['tags'])


def transition_of(event: dict) -> str:
    """The transition an event reports, from its `transition:` tag."""
    found = [tag.split(':', 1)[1] for tag in event['tags'] if tag.startswith('transition:')]
    assert len(found) == 1, event['tags']
    return found[0]


# What a check keeps in the Agent's persistent cache, read back by the loaders the check itself uses,
# so that tests say what is remembered rather than how it is spelled.


def stored_state(check: Any) -> CollectorState:
    """The collector's state as `check` stored it; fails the test when it is missing or unreadable."""
    raw = check.read_persistent_cache(STATE_KEY)
    assert raw, 'no collector state stored'
    return CollectorState.loads(raw)


def went_live(check: Any) -> bool:
    """Whether `check` stored a collector state that has gone live (a run cut short may have stored none)."""
    return bool(check.read_persistent_cache(STATE_KEY)) and stored_state(check).live_since is not None


def stopped_between_windows(requests: list[Request], now: float) -> bool:
    """Whether the last list of open incidents among a run's `requests` was a creation-time window ending before `now`.

    The pass then stored a position at a window's end or within it, in a window that does not reach
    `now`: where the next check, after a restart, must resume.
    """
    listed = [r for r in requests if r.path == '/incidents' and 'triggered' in r.args('statuses')]
    until = listed[-1].arg('until') if listed else None
    return until is not None and parse_time(until) < now


def stored_queue(check: Any, key: str = dora.CACHE_KEY, version: int = dora.CACHE_VERSION) -> StoredQueue:
    """The queue `check` stored under `key` (by default the pending DORA failures), read as it reads it.

    Reading it is refused any warning (a damaged document or skipped entries fail the test) and any
    write; a queue never stored fails the test too.
    """
    return read_queue(check.read_persistent_cache, key, version)


def read_queue(
    read_cache: Callable[[str], str], key: str = dora.CACHE_KEY, version: int = dora.CACHE_VERSION
) -> StoredQueue:
    """The queue stored under `key` in the cache `read_cache` reads, read as the check reads it (see `stored_queue`)."""
    assert read_cache(key), 'no {} stored'.format(key)

    def refuse_warning(message: str, *args: Any) -> None:
        raise AssertionError(message % args)

    def refuse_write(key: str, value: str) -> None:
        raise AssertionError('reading a stored queue wrote {}'.format(key))

    services = AgentServices(read_cache, refuse_write, log=None, warning=refuse_warning, clock=lambda: 0.0)
    bounds = QueueBounds(max_items=1 << 30, max_age=float('inf'))
    queue = StoredQueue(QueueDocument(key, 'stored queue', 'entries', version=version), services, bounds)
    queue.read()
    return queue


def stored_catalog(check: Any) -> dict[str, SourceCopy]:
    """The last good copy of each catalog source `check` stored, by source name."""
    raw = check.read_persistent_cache(sources.CACHE_KEY)
    assert raw, 'no catalog stored'
    return catalog_copies(raw)


def catalog_copies(raw: str) -> dict[str, SourceCopy]:
    """The catalog copies a cache value holds, read as the catalog reads them."""
    stored = documents.decode(raw, sources.CACHE_VERSION)['sources']
    return {source: SourceCopy.from_json(source, copy) for source, copy in stored.items()}


def assert_service_check(aggregator: Any, name: str, status: int, *, count: int, tags: list[str] | None = None) -> None:
    """`count` service checks `name` with `status` and exactly `tags` beside the instance tag (which each carries)."""
    from datadog_checks.pagerduty_dora.check import INSTANCE_TAG

    found = []
    for service_check in aggregator.service_checks(name):
        instance = [t for t in service_check.tags if t.startswith(INSTANCE_TAG + ':')]
        assert len(instance) == 1, service_check.tags
        rest = sorted(t for t in service_check.tags if t not in instance)
        if service_check.status == status and (tags is None or rest == sorted(tags)):
            found.append(service_check)
    assert len(found) == count, aggregator.service_checks(name)
