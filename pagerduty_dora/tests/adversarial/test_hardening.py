# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Bad input and hostile servers end to end: malformed incidents, huge bodies, hangs, redirects, damaged state."""

from __future__ import annotations

import logging
import socket
import threading
import time
import tracemalloc
from typing import Any, Callable

import pytest
import yaml

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora.common import http as api_module
from datadog_checks.pagerduty_dora.common.errors import TransientError
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.datadog.dora import MAX_NAME_LENGTH, failure_id
from datadog_checks.pagerduty_dora.datadog.events import TEXT_LIMIT, TITLE_LIMIT
from datadog_checks.pagerduty_dora.pagerduty.client import OFFSET_CAP, PAGE_SIZE

from ..conftest import assert_configuration_error
from ..fakes.server import FakeServer, Reply, Request
from ..harness import START, World, event_keys, stored_catalog, stored_queue, stored_state
from ..paths import INTEGRATION

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

MB = 1024 * 1024


@pytest.fixture
def service(world):
    team = world.account.add_team('Payments')
    return world.account.add_service('Checkout API', team_ids=[team])


def rewrite_incident_lists(world: World, transform: Callable[[Request, Reply], Reply]) -> None:
    """Let the simulator answer `GET /incidents`, then hand its reply to `transform` before it is sent."""
    server = world.pagerduty.server

    def fault(request: Request) -> Reply | None:
        if request.path != '/incidents':
            return None
        server.fault = None
        try:
            reply = server.dispatch(request)
        finally:
            server.fault = fault
        return transform(request, reply)

    server.fault = fault


def raw_incident(world: World, incident_id: str) -> dict:
    return world.account.incident(incident_id, api_url=world.pagerduty.url)


def cache_key(datadog_agent: Any, suffix: str) -> str:
    keys = [key for key in datadog_agent._cache if key.endswith('_' + suffix)]
    assert len(keys) == 1, sorted(datadog_agent._cache)
    return keys[0]


# Shapes PagerDuty never sends but a proxy, a bug or an API change could: each must be skipped alone.
BAD_INCIDENTS = [
    ('no-id', lambda good: {k: v for k, v in good.items() if k != 'id'}),
    ('null-status', lambda good: dict(good, id='PBAD002', status=None)),
    ('unknown-status', lambda good: dict(good, id='PBAD003', status='snoozed')),
    ('garbage-created-at', lambda good: dict(good, id='PBAD004', created_at='yesterday at noon')),
    ('service-not-object', lambda good: dict(good, id='PBAD005', service='PSVC001')),
    ('number-as-string', lambda good: dict(good, id='PBAD006', incident_number='42')),
    ('not-an-object', lambda good: ['PBAD007']),
    ('year-ten-thousand', lambda good: dict(good, id='PBAD008', created_at='9999-12-31T23:59:59-05:00')),
]


class TestMalformedIncidentsEndToEnd:
    """A bad incident is skipped, warned about once, counted; the good ones on the same page go through."""

    def test_bad_incidents_are_skipped_and_good_ones_delivered(self, world, service, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        good = world.account.trigger(service, 'Checkout latency above SLO', priority='P1')
        template = raw_incident(world, good)
        bad = [make(template) for _, make in BAD_INCIDENTS]

        def mix(request: Request, reply: Reply) -> Reply:
            if reply.status == 200 and reply.body['incidents']:
                reply.body['incidents'] = bad[:4] + reply.body['incidents'] + bad[4:]
            return reply

        rewrite_incident_lists(world, mix)
        world.account.advance(60)
        dd_run_check(check)
        world.account.advance(60)
        dd_run_check(check)
        # The stub keeps every warning of the check's life.
        warnings = list(check.warnings)

        assert failure_id(good) in world.dora.failures
        assert event_keys(aggregator) == {(good, 'triggered'): 1}
        skipped = [w for w in warnings if w.startswith('Skipped PagerDuty incident')]
        # One warning per bad incident (the id-less ones share the `?` key), however often it is listed.
        assert len(skipped) == len({b['id'] if isinstance(b, dict) and 'id' in b else '?' for b in bad})
        for text in ('PBAD003', 'snoozed', 'PBAD004', 'created_at', 'PBAD008'):
            assert any(text in w for w in skipped), (text, skipped)
        counted = sum(m.value for m in aggregator.metrics('pagerduty_dora.incidents.skipped'))
        assert counted >= 2 * len(bad)
        aggregator.assert_metric_has_tag('pagerduty_dora.incidents.skipped', 'reason:malformed')
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)


class TestHugeTitles:
    """Titles of a megabyte each: events and DORA names are bounded, and so are memory and state."""

    def test_megabyte_titles(self, world, service, dd_run_check, aggregator, datadog_agent):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        titles = ['{} {}'.format(n, 'x' * MB) for n in range(5)]
        incidents = [world.account.trigger(service, title, priority='P1') for title in titles]
        world.account.advance(60)
        tracemalloc.start()
        try:
            dd_run_check(check)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert len(aggregator.events) == len(incidents)
        for event in aggregator.events:
            assert len(event['msg_title']) <= TITLE_LIMIT + 30
            assert len(event['msg_text']) <= TEXT_LIMIT
        for incident in incidents:
            assert len(world.dora.failures[failure_id(incident)]['name']) <= MAX_NAME_LENGTH
        assert len(datadog_agent._cache[cache_key(datadog_agent, 'collector')]) < 10_000
        # A page of the change feed embeds each incident once per log entry (trigger and assignment):
        # 10 MB of titles as JSON text, bytes and parsed strings; nothing keeps more than a page.
        assert peak < 150 * MB


class TestNeverEndingResponse:
    """A server that holds its answer or never finishes a body: the run ends with a clear error."""

    def test_timeout_option_is_honoured(self, world, service, dd_run_check):
        world.pagerduty.timeout_delay = 5.0
        world.pagerduty.faults.fail_next(8, 'timeout')
        check = world.check(timeout=0.3)
        started = time.monotonic()
        with pytest.raises(Exception, match='incidents_open failed: .*Timeout.*collection resumes next run'):
            dd_run_check(check)
        # Four attempts (the first and three retries), each cut at the 0.3 s timeout, not at the 5 s delay.
        assert time.monotonic() - started < 4.5

    def test_trickled_body_stops_at_the_run_deadline(self):
        with TrickleServer() as server:
            client = ApiClient(
                ApiTarget('pagerduty', server.url, {'Authorization': 'Token token=u+pdTrickleToken_77'}),
                RequestsWrapper({'timeout': 2}, {}),
                RequestLimits(5),
                logging.getLogger(__name__),
                timing=Timing(sleep=lambda seconds: None),
            )
            client.start_run(time.monotonic() + 1.0)
            started = time.monotonic()
            with pytest.raises(TransientError, match='still arriving at the run deadline'):
                client.get('/incidents')
            assert time.monotonic() - started < 3.0
            assert server.sent > 1

    def test_body_over_the_size_cap_is_not_read(self, monkeypatch):
        monkeypatch.setattr(api_module, 'MAX_BODY_BYTES', 256 * 1024)
        body = {'incidents': [{'id': 'P{}'.format(n), 'title': 'y' * 1000} for n in range(1000)], 'more': False}
        with FakeServer([('GET', '/incidents', lambda request: Reply(200, body))]) as server:
            client = ApiClient(
                ApiTarget('pagerduty', server.url, {'Authorization': 'Token token=u+pdCapToken_99'}),
                RequestsWrapper({'timeout': 5}, {}),
                RequestLimits(5),
                logging.getLogger(__name__),
            )
            client.start_run(time.monotonic() + 30)
            with pytest.raises(TransientError, match='larger than 0 MB|larger than'):
                client.get('/incidents')
            assert client.limits.used == 1


class TrickleServer:
    """A loopback server that answers 200 with a chunked body of one byte every 50 ms, forever."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(('127.0.0.1', 0))
        self._socket.listen(4)
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return 'http://127.0.0.1:{}'.format(self._socket.getsockname()[1])

    def __enter__(self) -> 'TrickleServer':
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._socket.close()
        self._thread.join(2)

    def _serve(self) -> None:
        try:
            connection, _ = self._socket.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n'
            )
            while not self._stop.wait(0.05):
                try:
                    connection.sendall(b'1\r\n \r\n')
                except OSError:
                    return
                self.sent += 1


class TestRedirect:
    """A redirect to another host is not followed: that host receives nothing, least of all the token."""

    def test_credentials_never_follow(self, world, service, dd_run_check):
        with FakeServer([('GET', '/.*', lambda request: Reply(200, {'incidents': [], 'more': False}))]) as other:
            world.pagerduty.server.fault = lambda request: Reply(302, {}, {'Location': other.url + '/incidents'})
            check = world.check()
            with pytest.raises(Exception, match=r'redirect \(302\), which is not followed') as raised:
                dd_run_check(check)
            assert other.requests == []
        assert world.account.token not in str(raised.value)


class TestHostileListings:
    """Answers that are not an incident list end the run cleanly with a clear error, and lose nothing."""

    @pytest.mark.parametrize(
        'body',
        [[], 'incidents', {'incidents': {'PABC123': {}}}, {'incidents': None}, 42],
        ids=['list', 'string', 'incidents-object', 'incidents-null', 'number'],
    )
    def test_not_an_incident_list(self, world, service, dd_run_check, datadog_agent, body):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(service, 'Down')
        world.pagerduty.server.fault = lambda request: Reply(200, body)
        world.account.advance(60)
        with pytest.raises(Exception, match='without an? (incidents|log_entries) array; collection resumes next run'):
            dd_run_check(check)
        world.pagerduty.server.fault = None
        world.account.advance(60)
        dd_run_check(check)
        assert failure_id(incident) in world.dora.failures

    def test_deeply_nested_json(self, world, dd_run_check):
        world.pagerduty.server.fault = lambda request: Reply(200, raw=b'[' * 200_000 + b']' * 200_000)
        with pytest.raises(Exception, match='not valid JSON; collection resumes next run'):
            dd_run_check(world.check())


class TestHugeTotal:
    """A `total` of 10**12: windows narrow, no offset passes PagerDuty's cap, and collection still moves on."""

    def _serve_huge_total(self, world):
        def huge(request: Request, reply: Reply) -> Reply:
            # Only the creation-time sweep asks for a total; the open-incident list stays truthful.
            if reply.status == 200 and not request.args('statuses'):
                reply.body['total'] = 10**12
                reply.body['more'] = True
            return reply

        rewrite_incident_lists(world, huge)

    def test_no_crash_and_no_offset_past_the_cap(self, world, service, dd_run_check, datadog_agent):
        world.account.trigger(service, 'Old', created_at=START - 3600)
        self._serve_huge_total(world)
        check = world.check(max_requests_per_run=60)
        dd_run_check(check)
        listed = [r for r in world.pagerduty.requests if r.path == '/incidents']
        assert listed
        for request in listed:
            assert int(request.arg('offset', '0')) + int(request.arg('limit', str(PAGE_SIZE))) <= OFFSET_CAP
        assert stored_state(check).sweep_width >= 1.0

    def test_collection_still_moves_on(self, world, service, dd_run_check, datadog_agent):
        self._serve_huge_total(world)
        check = world.check(max_requests_per_run=60, backfill_days=1)
        feed_positions = []
        for _ in range(3):
            dd_run_check(check)
            state = stored_state(check)
            assert state.feed is not None
            feed_positions.append(state.feed.read_until)
            world.account.advance(60)
        # History is done up to where collection went live, and the change feed moves on from there.
        assert state.swept_until == state.live_since
        assert feed_positions[-1] > feed_positions[0]


class TestCorruptedCache:
    """A damaged persistent cache: a warning, no event flood, nothing delivered forgotten."""

    # The first four are no state at all; the others damage one part (or one record) of it.
    DAMAGE = [
        'not json {',
        '[1, 2, 3]',
        '{"version": 0, "incidents": {}}',
        '{"version": 99}',
        '{"version": 3, "horizon": "yesterday"}',
        '{"version": 3, "horizon": NaN}',
        '{"version": 3, "horizon": 1e300}',
        '{"version": 3, "incidents": {"PX": [1, 2]}}',
        '{"version": 3, "window": [5, 1, 0]}',
    ]
    UNREADABLE = 4
    DAMAGE_IDS = [
        'invalid-json',
        'list',
        'older-version',
        'unknown-version',
        'wrong-type',
        'nan',
        'far-future',
        'short-record',
        'empty-window',
    ]

    def _lifecycle(self, world, service, dd_run_check):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        first = world.account.trigger(service, 'First', priority='P1')
        second = world.account.trigger(service, 'Second')
        world.account.advance(60)
        dd_run_check(check)
        world.account.resolve(first)
        world.account.advance(60)
        dd_run_check(check)
        return first, second

    @pytest.mark.parametrize('damage', DAMAGE, ids=DAMAGE_IDS)
    def test_collector_state(self, world, service, dd_run_check, aggregator, datadog_agent, damage):
        first, second = self._lifecycle(world, service, dd_run_check)
        failures_before = dict(world.dora.failures)
        datadog_agent._cache[cache_key(datadog_agent, 'collector')] = damage
        aggregator.reset()

        restarted = world.check()
        world.account.advance(60)
        dd_run_check(restarted)

        expected = (
            'Stored collection state is unreadable'
            if self.DAMAGE.index(damage) < self.UNREADABLE
            else 'of the stored collection state could not be read'
        )
        assert sum(expected in w for w in restarted.warnings) == 1, restarted.warnings
        # Nothing else of the state is known: records without events, so nothing is emitted twice.
        assert aggregator.events == []
        # DORA failures are idempotent by id: a re-send converges on the same failures.
        assert world.dora.failures == failures_before
        assert second in stored_state(restarted).incidents

        # And live again from the next run.
        world.account.acknowledge(second)
        world.account.advance(60)
        dd_run_check(restarted)
        assert event_keys(aggregator) == {(second, 'acknowledged'): 1}

    @pytest.mark.parametrize(
        'damage',
        ['not json {', '{"version": 0, "items": []}', '{"version": 1, "items": {}}', '{"version": 1}'],
        ids=['invalid-json', 'older-version', 'items-not-list', 'no-items'],
    )
    def test_pending_dora_queue(self, world, service, dd_run_check, aggregator, datadog_agent, damage):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(service, 'Down')
        world.datadog.fault = lambda request: Reply(503, {'errors': ['unavailable']})
        world.account.advance(60)
        dd_run_check(check)
        key = cache_key(datadog_agent, 'dora_pending')
        assert stored_queue(check).keys() == [incident]
        datadog_agent._cache[key] = damage
        world.datadog.fault = None
        aggregator.reset()

        restarted = world.check()
        world.account.advance(60)
        dd_run_check(restarted)

        assert any('pending DORA failures' in w for w in restarted.warnings), restarted.warnings
        # The queue is lost, but the record still wants a failure Datadog never accepted: the
        # incident is read again by id and its failure sent in the same run.
        assert failure_id(incident) in world.dora.failures
        assert 'finished_at' not in world.dora.failures[failure_id(incident)]
        assert aggregator.events == []
        assert stored_queue(restarted).keys() == []
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(restarted)
        assert 'finished_at' in world.dora.failures[failure_id(incident)]

    @pytest.mark.parametrize(
        'damage',
        [
            'not json {',
            '{"version": 0, "sources": {}}',
            '{"version": 1, "sources": {"datadog_api": {"loaded_at": 1e300, "services": [], "teams": [],'
            ' "fingerprint": "x"}}}',
        ],
        ids=['invalid-json', 'older-version', 'loaded-at-out-of-range'],
    )
    def test_catalog(self, world, service, dd_run_check, aggregator, datadog_agent, caplog, damage):
        from ..harness import DD_APP_KEY

        check = world.check(datadog_app_key=DD_APP_KEY)
        dd_run_check(check)
        key = cache_key(datadog_agent, 'catalog')
        datadog_agent._cache[key] = damage
        caplog.set_level(logging.WARNING)
        world.account.advance(60)
        incident = world.account.trigger(service, 'Down')
        world.account.advance(60)

        restarted = world.check(datadog_app_key=DD_APP_KEY)
        dd_run_check(restarted)

        assert any('cached catalog' in r.getMessage() for r in caplog.records)
        # The catalog is simply read again from its source; events stay exactly-once.
        assert event_keys(aggregator) == {(incident, 'triggered'): 1}
        assert set(stored_catalog(restarted)) == {'datadog_api'}


CONFIG_SPEC = INTEGRATION / 'assets' / 'configuration' / 'spec.yaml'
# Values of the wrong type for each option type of the spec; none of them can be coerced.
WRONG_VALUES: dict[str, list[Any]] = {
    'string': [['a', 'b'], {'key': 'value'}],
    'integer': ['a few', [30], 1.5],
    'boolean': ['maybe', [True], 2],
    'array': ['P1', {'key': 'value'}, 42],
    'object': [['P1'], 'P1', 42],
}


def _spec_options() -> list[tuple[str, str]]:
    spec: Any = yaml.safe_load(CONFIG_SPEC.read_text(encoding='utf-8'))
    options = []
    for section in spec['files'][0]['options']:
        if 'instances' not in (section.get('name'), section.get('template')):
            continue
        for option in section['options']:
            if 'name' in option and isinstance(option.get('value'), dict):
                options.append((option['name'], option['value']['type']))
    return options


WRONG_TYPE_CASES = [
    (name, value) for name, kind in _spec_options() for value in WRONG_VALUES.get(kind, []) if name != 'service'
]


class TestConfigurationFuzz:
    """Every option of the spec, given a value of the wrong type, fails the first run naming the option."""

    def test_table_covers_every_option(self):
        covered = {name for name, _ in WRONG_TYPE_CASES}
        assert covered == {name for name, _ in _spec_options()} - {'service'}
        assert len(covered) >= 18

    @pytest.mark.parametrize(
        'option, value', WRONG_TYPE_CASES, ids=['{}-{}'.format(n, type(v).__name__) for n, v in WRONG_TYPE_CASES]
    )
    def test_wrong_type(self, dd_run_check, quiet_server, option, value):
        assert_configuration_error(dd_run_check, quiet_server, {option: value}, option)
