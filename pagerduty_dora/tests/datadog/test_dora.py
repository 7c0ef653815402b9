# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import copy
import datetime as dt
import json
import logging
import re
import time

import pytest
from datadog_api_client import ApiClient as DatadogApiClient
from datadog_api_client import Configuration
from datadog_api_client.exceptions import ApiTypeError
from datadog_api_client.v2.model.dora_failure_request import DORAFailureRequest
from datadog_api_client.v2.model.dora_failure_request_attributes import DORAFailureRequestAttributes

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.dora import (
    CACHE_KEY,
    FAILURE_PATH,
    DoraDelivery,
    build_failure,
    failure_id,
    fingerprint,
)
from datadog_checks.pagerduty_dora.datadog.marks import Mark, is_rejected, rejected
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident

from ..fakes.dora_api import DoraState, validate
from ..fakes.server import FakeServer, Reply, Request
from ..harness import read_queue
from ..paths import FIXTURES

API_KEY = '0123456789abcdef0123456789abcdef'
DAY = 86400.0
ID_RULE = re.compile(r'[A-Za-z0-9\-_.:]{16,128}')

CREATED_NS = int(dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.timezone.utc).timestamp()) * 10**9
RESOLVED_NS = int(dt.datetime(2026, 11, 20, 10, 20, tzinfo=dt.timezone.utc).timestamp()) * 10**9

MAPPED = MappingResult(rule='service_url', services=('checkout',), team='payments', env='prod', severity='SEV-1')
TEAM_ONLY = MappingResult(rule='team_name', services=(), team='payments', env=None, severity=None)
SERVICE_ONLY = MappingResult(rule='fallback', services=('Checkout API',), team=None, env='staging', severity='P1')
NOTHING = MappingResult(rule='fallback', services=(), team=None, env=None, severity=None)


def raw_incident(state='triggered', **changes):
    """The fixture incident in one of its lifecycle states, as PagerDuty's REST API renders it."""
    raw = json.loads((FIXTURES / 'incident_acknowledged.json').read_text())
    raw['urgency'] = 'high'
    if state == 'triggered':
        raw.update(status='triggered', acknowledgements=[], last_status_change_at=raw['created_at'])
    elif state == 'resolved':
        raw.update(status='resolved', resolved_at='2026-11-20T10:20:00Z', last_status_change_at='2026-11-20T10:20:00Z')
    elif state == 'reopened':
        # A reopen makes the incident triggered again; PagerDuty drops resolved_at.
        raw.update(
            status='triggered', resolved_at=None, acknowledgements=[], last_status_change_at='2026-11-20T11:00:00Z'
        )
    raw.update(changes)
    return raw


def incident(state='triggered', **changes):
    return parse_incident(raw_incident(state, **changes))


def to_model(attributes):
    """Deserialize a request body as the published client would, with type checking on."""
    client = DatadogApiClient(Configuration())
    body = json.dumps({'data': {'attributes': attributes}})
    return client.deserialize(body, (DORAFailureRequest,), True)


PAYLOADS = [
    pytest.param(lambda: build_failure(incident('triggered'), MAPPED), id='triggered'),
    pytest.param(lambda: build_failure(incident('acknowledged'), MAPPED), id='acknowledged'),
    pytest.param(lambda: build_failure(incident('resolved'), MAPPED), id='resolved'),
    pytest.param(lambda: build_failure(incident('reopened'), MAPPED), id='reopened'),
    pytest.param(lambda: build_failure(incident('resolved'), TEAM_ONLY), id='team-only'),
    pytest.param(lambda: build_failure(incident('triggered', priority=None), SERVICE_ONLY), id='service-only'),
    pytest.param(lambda: build_failure(incident('triggered', teams=[]), NOTHING), id='nothing-mapped'),
    pytest.param(lambda: build_failure(incident('triggered', title='x' * 10**6), MAPPED), id='huge-title'),
    pytest.param(lambda: build_failure(incident('triggered', id='Q1/B2 C3?'), MAPPED), id='odd-id'),
    pytest.param(
        lambda: build_failure(incident('resolved', created_at='2026-11-20T09:15:00.123456Z'), MAPPED),
        id='fractional-seconds',
    ),
]


class TestFailureId:
    """The failure id is `pagerduty-incident-<id>`, always within the API's id rules, and stable."""

    @pytest.mark.parametrize(
        'incident_id, expected',
        [
            pytest.param('Q1B2C3D4E5F6G7', 'pagerduty-incident-Q1B2C3D4E5F6G7', id='pagerduty-id'),
            pytest.param('P1', 'pagerduty-incident-P1', id='short-id'),
            pytest.param('a.b:c_d-e', 'pagerduty-incident-a.b:c_d-e', id='allowed-punctuation'),
        ],
    )
    def test_plain_ids_are_used_as_is(self, incident_id, expected):
        assert failure_id(incident_id) == expected

    @pytest.mark.parametrize(
        'incident_id',
        [
            pytest.param('Q1/B2 C3', id='slash-and-space'),
            pytest.param('incident é', id='non-ascii'),
            pytest.param('Q' * 300, id='too-long'),
            pytest.param('Q' * 110, id='one-over-the-limit'),
        ],
    )
    def test_other_ids_fit_the_rules_and_stay_stable(self, incident_id):
        value = failure_id(incident_id)
        assert ID_RULE.fullmatch(value), value
        assert value.startswith('pagerduty-incident-')
        assert failure_id(incident_id) == value

    def test_longest_plain_id_fits_exactly(self):
        assert failure_id('Q' * 109) == 'pagerduty-incident-' + 'Q' * 109
        assert len(failure_id('Q' * 109)) == 128
        assert failure_id('Q' * 110) != 'pagerduty-incident-' + 'Q' * 110

    def test_cleaned_ids_do_not_collide(self):
        assert failure_id('a/b') != failure_id('a b')
        assert failure_id('Q' * 300) != failure_id('Q' * 301)


class TestBuildFailure:
    """The payload follows the README's "DORA failures" table for each incident state and mapping outcome."""

    def test_resolved_incident_payload(self):
        assert build_failure(incident('resolved'), MAPPED) == {
            'id': 'pagerduty-incident-Q1B2C3D4E5F6G7',
            'name': 'Checkout latency above SLO',
            'started_at': CREATED_NS,
            'finished_at': RESOLVED_NS,
            'services': ['checkout'],
            'team': 'payments',
            'env': 'prod',
            'severity': 'SEV-1',
            'custom_tags': ['pagerduty_incident_number:1234', 'pagerduty_service:Checkout API', 'urgency:high'],
        }

    @pytest.mark.parametrize(
        'state', ['triggered', 'acknowledged', 'reopened'], ids=['triggered', 'acknowledged', 'reopened']
    )
    def test_open_incident_has_no_finished_at(self, state):
        attributes = build_failure(incident(state), MAPPED)
        assert 'finished_at' not in attributes
        assert attributes['started_at'] == CREATED_NS

    def test_timestamps_are_integer_nanoseconds(self):
        attributes = build_failure(incident('resolved', created_at='2026-11-20T09:15:00.123456Z'), MAPPED)
        assert type(attributes['started_at']) is int
        assert type(attributes['finished_at']) is int
        assert attributes['started_at'] == CREATED_NS + 123456000

    def test_resolve_before_creation_is_clamped(self):
        attributes = build_failure(incident('resolved', resolved_at='2026-11-20T09:00:00Z'), MAPPED)
        assert attributes['finished_at'] == attributes['started_at'] == CREATED_NS

    @pytest.mark.parametrize(
        'mapping, expected',
        [
            pytest.param(
                MAPPED, {'services': ['checkout'], 'team': 'payments', 'env': 'prod', 'severity': 'SEV-1'}, id='all'
            ),
            pytest.param(TEAM_ONLY, {'team': 'payments'}, id='team-only'),
            pytest.param(
                SERVICE_ONLY, {'services': ['Checkout API'], 'env': 'staging', 'severity': 'P1'}, id='service-only'
            ),
            pytest.param(NOTHING, {'services': ['Checkout API']}, id='nothing-falls-back-to-pagerduty-service'),
        ],
    )
    def test_mapped_fields(self, mapping, expected):
        attributes = build_failure(incident('triggered'), mapping)
        got = {key: attributes[key] for key in ('services', 'team', 'env', 'severity') if key in attributes}
        assert got == expected

    def test_unnamed_service_falls_back_to_its_id(self):
        raw = raw_incident('triggered')
        raw['service'] = {'id': 'PSVC001', 'type': 'service_reference'}
        assert build_failure(parse_incident(raw), NOTHING)['services'] == ['PSVC001']

    @pytest.mark.parametrize(
        'title, expected',
        [
            pytest.param('Disk full\non db-1', 'Disk full on db-1', id='newlines-collapsed'),
            pytest.param('', 'PagerDuty incident #1234', id='empty-title'),
        ],
    )
    def test_name(self, title, expected):
        assert build_failure(incident('triggered', title=title, summary=''), MAPPED)['name'] == expected

    def test_huge_title_is_bounded(self):
        name = build_failure(incident('triggered', title='x' * 10**6), MAPPED)['name']
        assert len(name) == 500
        assert name.endswith('…')

    def test_custom_tags_skip_empty_values(self):
        raw = raw_incident('triggered')
        raw['service'] = {'id': 'PSVC001', 'type': 'service_reference'}
        assert build_failure(parse_incident(raw), MAPPED)['custom_tags'] == [
            'pagerduty_incident_number:1234',
            'urgency:high',
        ]


class TestSchema:
    """Every payload deserializes into the published `DORAFailureRequest` model and passes the fake's rules."""

    @pytest.mark.parametrize('make', PAYLOADS)
    def test_payload_matches_published_model(self, make):
        attributes = make()
        model = to_model(attributes)
        assert isinstance(model, DORAFailureRequest)
        assert set(attributes) <= set(DORAFailureRequestAttributes.attribute_map)
        assert model.to_dict() == {'data': {'attributes': attributes}}
        assert ID_RULE.fullmatch(attributes['id'])
        assert len(attributes['custom_tags']) <= 100
        assert attributes['started_at'] > 10**18

    @pytest.mark.parametrize('make', PAYLOADS)
    def test_payload_passes_fake_validation(self, make):
        assert validate({'data': {'attributes': make()}}) == []

    @pytest.mark.parametrize(
        'broken',
        [
            pytest.param({'started_at': 1.5e18}, id='float-timestamp'),
            pytest.param({'started_at': '2026-11-20T09:15:00Z'}, id='string-timestamp'),
            pytest.param({'services': 'checkout'}, id='services-not-a-list'),
        ],
    )
    def test_model_check_catches_wrong_types(self, broken):
        attributes = dict(build_failure(incident('triggered'), MAPPED), **broken)
        with pytest.raises(ApiTypeError):
            to_model(attributes)


class TestFingerprint:
    """The fingerprint is stable for equal payloads and changes with any mapped change."""

    def test_key_order_does_not_matter(self):
        attributes = build_failure(incident('resolved'), MAPPED)
        reordered = dict(reversed(list(attributes.items())))
        assert fingerprint(reordered) == fingerprint(attributes)
        assert re.fullmatch(r'[0-9a-f]{16}', fingerprint(attributes))

    def test_value_is_pinned(self):
        # A change here re-sends every known incident once after an upgrade: make it on purpose only.
        assert fingerprint({'id': 'pagerduty-incident-P1', 'started_at': 1}) == fingerprint(
            {'started_at': 1, 'id': 'pagerduty-incident-P1'}
        )
        assert fingerprint({'id': 'pagerduty-incident-P1', 'started_at': 1}) == '3b4bfcf797e31644'

    @pytest.mark.parametrize(
        'changed',
        [
            pytest.param(lambda: build_failure(incident('resolved'), MAPPED), id='resolved'),
            pytest.param(lambda: build_failure(incident('triggered', title='New title'), MAPPED), id='title'),
            pytest.param(lambda: build_failure(incident('triggered'), TEAM_ONLY), id='mapping'),
            pytest.param(
                lambda: build_failure(
                    incident('triggered'), MappingResult('service_url', ('checkout',), 'payments', 'prod', 'SEV-2')
                ),
                id='severity',
            ),
            pytest.param(lambda: build_failure(incident('triggered', urgency='low'), MAPPED), id='urgency'),
        ],
    )
    def test_changes_change_the_fingerprint(self, changed):
        before = fingerprint(build_failure(incident('triggered'), MAPPED))
        assert fingerprint(changed()) != before

    def test_unchanged_state_keeps_the_fingerprint(self):
        first = build_failure(incident('acknowledged'), MAPPED)
        again = build_failure(incident('acknowledged', updated_at='2026-11-21T00:00:00Z'), MAPPED)
        assert fingerprint(first) == fingerprint(again)


# Delivery ----------------------------------------------------------------------------------------


class Clock:
    """Monotonic and wall clocks that move only when the code under test sleeps or a test says so."""

    def __init__(self):
        self.now = 1000.0
        self.wall = time.mktime((2026, 11, 26, 12, 0, 0, 0, 0, 0))
        self.sleeps = []

    def __call__(self):
        return self.now

    def time(self):
        return self.wall

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall += seconds


class Harness:
    """A DORA fake on loopback, a real `ApiClient` in front of it and the sinks a check would give."""

    def __init__(self, server, state, clock, key=API_KEY, timeout=2.0):
        self.server = server
        self.state = state
        self.clock = clock
        self.cache = {}
        self.writes = 0
        self.counts = []
        self.warnings = []
        self.api = ApiClient(
            ApiTarget('datadog', server.url, {'DD-API-KEY': key}),
            # Well above a loopback answer on a loaded machine; a test of the fake's held-back `timeout`
            # fault (1 s) waits less.
            RequestsWrapper({'timeout': timeout}, {}),
            RequestLimits(500),
            logging.getLogger('test.api'),
            timing=Timing(clock=clock, sleep=clock.sleep, jitter=lambda: 0.5),
        )

    def start_run(self, max_requests=500, deadline=50.0):
        self.api.request_limits = RequestLimits(max_requests)
        self.api.start_run(self.clock() + deadline)

    def write(self, key, value):
        self.writes += 1
        self.cache[key] = value

    def delivery(self, **options):
        services = AgentServices(
            read_cache=lambda key: self.cache.get(key, ''),
            write_cache=self.write,
            log=logging.getLogger('test.dora'),
            warning=lambda message, *args: self.warnings.append(message % args),
            count=lambda name, value, tags: self.counts.append((name, value, sorted(tags))),
            clock=self.clock.time,
        )
        return DoraDelivery(self.api, services, **options)

    def total(self, name, tags=()):
        return sum(value for n, value, t in self.counts if n == name and t == sorted(tags))

    def posted_ids(self):
        return [attributes['id'] for attributes in self.state.posts]


def payload(n, **changes):
    attributes = build_failure(incident('triggered', id='PINC{:010d}'.format(n), incident_number=n), MAPPED)
    attributes.update(changes)
    return attributes


def enqueue(delivery, *numbers):
    for n in numbers:
        delivery.enqueue('PINC{:010d}'.format(n), payload(n))


def ids(*numbers):
    return ['pagerduty-incident-PINC{:010d}'.format(n) for n in numbers]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def harness(clock):
    state = DoraState(API_KEY, clock=clock, timeout_delay=1.0)
    with FakeServer(state.routes()) as server:
        h = Harness(server, state, clock)
        h.start_run()
        yield h


class TestDeliveryHappyPath:
    """Queued payloads are posted oldest first, counted, and the queue is persisted."""

    @pytest.mark.parametrize('accepted', [200, 202], ids=['200', '202'])
    def test_posts_in_order(self, harness, accepted):
        harness.state.accepted_status = accepted
        delivery = harness.delivery()
        enqueue(delivery, 1, 2, 3)
        assert delivery.pending == 3
        delivery.flush()
        assert harness.posted_ids() == ids(1, 2, 3)
        assert delivery.pending == 0
        assert harness.total('dora.submitted') == 3
        assert read_queue(harness.cache.get).keys() == []
        request = harness.server.requests[0]
        assert request.path == FAILURE_PATH
        assert request.json() == {'data': {'attributes': payload(1)}}

    def test_newest_payload_wins_and_keeps_its_place(self, harness):
        delivery = harness.delivery()
        enqueue(delivery, 1, 2)
        delivery.enqueue('PINC0000000001', payload(1, finished_at=payload(1)['started_at'] + 10**9))
        assert delivery.pending == 2
        delivery.flush()
        assert harness.posted_ids() == ids(1, 2)
        assert 'finished_at' in harness.state.posts[0]
        assert harness.state.failures[ids(1)[0]]['finished_at'] > 0

    def test_empty_flush_makes_no_request_and_no_write(self, harness):
        delivery = harness.delivery()
        delivery.flush()
        delivery.save()
        assert harness.server.requests == []
        assert harness.writes == 0

    def test_save_writes_only_after_a_change(self, harness):
        delivery = harness.delivery()
        enqueue(delivery, 1)
        delivery.save()
        delivery.save()
        assert harness.writes == 1


class TestDeliveryFaults:
    """Transient errors keep payloads for the next run; rejected ones are dropped; a bad key raises."""

    @pytest.mark.parametrize('fault', [429, 500, 503, 'timeout'], ids=['429', '500', '503', 'timeout'])
    def test_transient_error_keeps_pending_and_retries_next_run_oldest_first(self, harness, fault):
        if fault == 'timeout':
            # Wait less than the fake holds the answer back.
            harness = Harness(harness.server, harness.state, harness.clock, timeout=0.3)
            harness.start_run()
        delivery = harness.delivery()
        enqueue(delivery, 1, 2, 3)
        # The client retries three times within a run (a 429's reset fits in the run here); the fault outlasts them.
        harness.state.period = 2
        harness.state.faults.fail_next(4, fault)
        delivery.flush()
        assert harness.state.posts == []
        assert delivery.pending == 3
        assert harness.total('dora.transient_errors') == 1
        assert harness.server.count('POST') == 4

        # No further attempt in the same run, even after more work is queued.
        enqueue(delivery, 4)
        delivery.flush()
        assert harness.server.count('POST') == 4

        harness.start_run()
        delivery.flush()
        assert harness.posted_ids() == ids(1, 2, 3, 4)
        assert delivery.pending == 0
        assert harness.total('dora.submitted') == 4

    def test_transient_error_midway_keeps_the_rest(self, harness):
        delivery = harness.delivery()
        enqueue(delivery, 1, 2, 3)
        server = harness.server
        server.fault = lambda request: Reply(503, {'errors': ['Unavailable']}) if server.count('POST') > 1 else None
        delivery.flush()
        assert harness.posted_ids() == ids(1)
        assert delivery.pending == 2
        assert read_queue(harness.cache.get).keys() == ['PINC0000000002', 'PINC0000000003']

    def test_rejected_payload_is_dropped_logged_and_counted(self, harness, caplog):
        caplog.set_level(logging.WARNING)
        delivery = harness.delivery()
        enqueue(delivery, 1)
        delivery.enqueue('PINC0000000002', payload(2, custom_tags=['no-value-here']))
        enqueue(delivery, 3)
        delivery.flush()
        assert harness.posted_ids() == ids(1, 3)
        assert delivery.pending == 0
        assert harness.total('dora.rejected', ['status:400']) == 1
        assert harness.total('dora.submitted') == 2
        assert 'key:value pattern' in caplog.text
        assert 'pagerduty-incident-PINC0000000002' in caplog.text
        assert API_KEY not in caplog.text
        assert len(harness.warnings) == 1 and 'rejected' in harness.warnings[0]

    def test_logged_body_never_shows_the_key(self, clock, caplog):
        caplog.set_level(logging.DEBUG)

        def echo(request):
            # A proxy that quotes the request headers back in its error page.
            return Reply(400, {'errors': ['bad request', dict(request.headers)]})

        with FakeServer([('POST', FAILURE_PATH, echo)]) as server:
            h = Harness(server, DoraState(API_KEY), clock)
            h.start_run()
            delivery = h.delivery()
            enqueue(delivery, 1)
            delivery.flush()
        assert h.total('dora.rejected', ['status:400']) == 1
        assert 'bad request' in caplog.text
        assert API_KEY not in caplog.text
        assert API_KEY not in ' '.join(h.warnings)

    def test_wrong_key_stops_delivery_for_the_run_and_keeps_pending(self, clock, caplog):
        caplog.set_level(logging.DEBUG)
        state = DoraState(API_KEY)
        wrong = 'fedcba9876543210fedcba9876543210'
        with FakeServer(state.routes()) as server:
            h = Harness(server, state, clock, key=wrong)
            h.start_run()
            delivery = h.delivery()
            enqueue(delivery, 1, 2)
            delivery.save()
            # A refused key is this output's failure: warned about, never raised into the collection.
            delivery.flush()
        assert len(h.warnings) == 1
        assert '403' in h.warnings[0] and 'datadog_api_key' in h.warnings[0]
        assert wrong not in h.warnings[0] and wrong not in caplog.text
        assert delivery.pending == 2
        assert len(read_queue(h.cache.get)) == 2
        assert state.posts == []
        assert server.count('POST') == 1
        assert delivery.take_outcomes() == []

    def test_budget_exhaustion_leaves_the_rest_for_the_next_run(self, harness):
        harness.start_run(max_requests=2)
        delivery = harness.delivery()
        enqueue(delivery, 1, 2, 3, 4, 5)
        delivery.flush()
        assert harness.posted_ids() == ids(1, 2)
        assert delivery.pending == 3
        assert harness.total('dora.transient_errors') == 0
        harness.start_run(max_requests=2)
        delivery.flush()
        assert harness.posted_ids() == ids(1, 2, 3, 4)
        assert delivery.pending == 1

    def test_rate_limit_headers_pace_posts_across_runs(self, clock):
        state = DoraState(API_KEY, rate_limit=2, period=60, clock=clock)
        with FakeServer(state.routes()) as server:
            h = Harness(server, state, clock)
            h.start_run(deadline=30.0)
            delivery = h.delivery()
            enqueue(delivery, 1, 2, 3, 4, 5)
            delivery.flush()
            # Remaining reached 0 with a reset past the run's end: no third post, no 429.
            assert h.posted_ids() == ids(1, 2)
            assert server.count('POST') == 2
            assert delivery.pending == 3
            clock.sleep(60)
            h.start_run(deadline=30.0)
            delivery.flush()
            assert h.posted_ids() == ids(1, 2, 3, 4)
            assert server.count('POST') == 4

    def test_unbudgeted_posts_take_a_share_of_the_advertised_window(self, clock):
        state = DoraState(API_KEY, rate_limit=10, period=60, clock=clock)
        with FakeServer(state.routes()) as server:
            h = Harness(server, state, clock)
            h.start_run(max_requests=None, deadline=30.0)
            delivery = h.delivery()
            enqueue(delivery, *range(1, 13))
            delivery.flush()
            # Two of the window's ten are left to the other users of the key; the rest waits, quietly.
            assert h.posted_ids() == ids(*range(1, 9))
            assert (state.limited, h.total('dora.transient_errors'), h.warnings) == (0, 0, [])
            assert delivery.pending == 4
            clock.sleep(60)
            h.start_run(max_requests=None, deadline=30.0)
            delivery.flush()
            assert h.posted_ids() == ids(*range(1, 13))
            assert state.limited == 0


class TestDeliveryPersistence:
    """The queue survives a restart; a corrupt cache is survived with a warning."""

    def test_round_trip(self, harness):
        first = harness.delivery()
        enqueue(first, 3, 1, 2)
        first.save()
        second = harness.delivery()
        assert second.pending == 3
        second.flush()
        assert harness.posted_ids() == ids(3, 1, 2)
        assert harness.state.posts[0] == payload(3)
        assert harness.warnings == []

    def test_marks_keep_the_text_earlier_releases_stored(self, harness):
        """A removal queued by an earlier release is deleted; one queued now is stored as it stored one."""
        released = [['PINC0000000001', harness.clock.time(), {'__remove__': ids(1)[0]}]]
        harness.cache[CACHE_KEY] = json.dumps({'version': 1, 'items': released})
        delivery = harness.delivery(can_remove=True)
        delivery.remove('PINC0000000002')
        delivery.save()
        stored = json.loads(harness.cache[CACHE_KEY])['items']
        assert [item[2] for item in stored] == [{'__remove__': ids(1)[0]}, {'__remove__': ids(2)[0]}]
        delivery.flush()
        # Sent as a removal (refused here, without an application key), never posted as a failure.
        sent = [(r.method, r.path) for r in harness.server.requests]
        assert sent == [('DELETE', '{}/{}'.format(FAILURE_PATH, ids(1)[0]))]
        assert (harness.posted_ids(), delivery.pending) == ([], 2)
        # What a record's `delivered` holds: the marks' text is the text stored since the first release.
        assert [mark.value for mark in Mark] == ['__remove__', '!', '?']
        assert (rejected('fp'), is_rejected('!fp'), is_rejected('fp'), is_rejected(Mark.DRIFTED.value)) == (
            '!fp',
            True,
            False,
            False,
        )

    def test_cache_is_read_lazily(self, harness):
        reads = []
        delivery = DoraDelivery(
            harness.api,
            AgentServices(
                read_cache=lambda key: reads.append(key) or '',
                write_cache=harness.write,
                log=logging.getLogger('test'),
                warning=harness.warnings.append,
            ),
        )
        assert reads == []
        assert delivery.pending == 0
        assert delivery.pending == 0
        assert reads == [CACHE_KEY]

    @pytest.mark.parametrize(
        'value, pending, warning',
        [
            pytest.param('{"version": 1, "items": [', 0, 'could not be read', id='truncated-json'),
            pytest.param('[]', 0, 'could not be read', id='wrong-type'),
            pytest.param('{"version": 99, "items": []}', 0, 'could not be read', id='unknown-version'),
            pytest.param('{"version": 1, "items": "x"}', 0, 'could not be read', id='items-not-a-list'),
            pytest.param(
                json.dumps({'version': 1, 'items': [['PINC0000000001', 1.0e9, {'id': 'x'}], ['bad'], [1, 2, {}]]}),
                1,
                'Skipped 2',
                id='some-bad-items',
            ),
        ],
    )
    def test_corrupt_cache(self, harness, value, pending, warning):
        harness.cache[CACHE_KEY] = value
        delivery = harness.delivery(max_age=100 * 365 * DAY)
        assert delivery.pending == pending
        assert len(harness.warnings) == 1 and warning in harness.warnings[0]
        delivery.save()
        assert len(read_queue(harness.cache.get)) == pending


class TestDeliveryBounds:
    """The queue is bounded in size and age; what is dropped is counted and warned about."""

    def test_size_bound_drops_oldest(self, harness):
        delivery = harness.delivery(max_pending=3)
        enqueue(delivery, 1, 2, 3, 4, 5)
        assert delivery.pending == 3
        delivery.save()
        assert harness.total('dora.dropped', ['reason:full']) == 2
        assert len(harness.warnings) == 1 and 'Dropped the 2 oldest' in harness.warnings[0]
        delivery.flush()
        assert harness.posted_ids() == ids(3, 4, 5)

    def test_update_of_a_queued_incident_does_not_count_toward_the_bound(self, harness):
        delivery = harness.delivery(max_pending=2)
        enqueue(delivery, 1, 2, 1, 2)
        delivery.save()
        assert delivery.pending == 2
        assert harness.total('dora.dropped', ['reason:full']) == 0

    def test_lowered_bound_applies_to_the_persisted_queue(self, harness):
        first = harness.delivery()
        enqueue(first, 1, 2, 3, 4)
        first.save()
        second = harness.delivery(max_pending=2)
        second.flush()
        assert harness.posted_ids() == ids(3, 4)
        assert harness.total('dora.dropped', ['reason:full']) == 2

    def test_age_bound_drops_expired(self, harness, clock):
        delivery = harness.delivery(max_age=7 * DAY)
        enqueue(delivery, 1)
        clock.wall += 5 * DAY
        enqueue(delivery, 2)
        harness.state.faults.fail_next(4, 503)
        delivery.flush()
        clock.wall += 3 * DAY
        harness.start_run()
        delivery.flush()
        assert harness.posted_ids() == ids(2)
        assert harness.total('dora.dropped', ['reason:expired']) == 1
        assert any('max age' in w for w in harness.warnings)

    def test_many_payloads_pass_through(self, harness):
        """100,000 payloads enqueued in pages of 100, each page flushed: every one posted, none left (its speed is
        `tests/benchmarks/backfill.py`'s to measure)."""

        class Accepting:
            def __init__(self):
                self.posts = 0

            def stalled(self, caller):
                return False

            def post(self, path, body, endpoint=None, expect_json=True):
                self.posts += 1

        api = Accepting()
        delivery = DoraDelivery(
            api,
            AgentServices(
                read_cache=harness.cache.get,
                write_cache=harness.write,
                log=logging.getLogger('test'),
                warning=harness.warnings.append,
            ),
        )
        for n in range(100_000):
            delivery.enqueue('P{}'.format(n), {'id': 'pagerduty-incident-P{}'.format(n), 'started_at': n})
            if n % 100 == 99:
                delivery.flush()
        assert api.posts == 100_000
        assert delivery.pending == 0


def test_payload_is_not_mutated_by_delivery(harness):
    """The caller's payload dict is posted as given and left untouched."""
    delivery = harness.delivery()
    attributes = payload(1)
    snapshot = copy.deepcopy(attributes)
    delivery.enqueue('PINC0000000001', attributes)
    delivery.flush()
    assert attributes == snapshot
    assert harness.state.posts == [snapshot]


def post(state, attributes, key=API_KEY):
    body = json.dumps({'data': {'attributes': attributes}}).encode()
    request = Request(method='POST', path=FAILURE_PATH, query={}, headers={'dd-api-key': key}, body=body)
    return state.handle(request)


class TestFakeDoraApi:
    """The fake answers like the real API: 403 on a wrong key, 400 with `errors`, 202 with the id."""

    def test_accepts_and_stores_latest(self):
        state = DoraState(API_KEY)
        first = payload(1)
        reply = post(state, first)
        assert reply.status == 202
        assert reply.body == {'data': {'id': first['id'], 'type': 'dora_failure'}}
        post(state, dict(first, finished_at=first['started_at'] + 1))
        assert len(state.posts) == 2
        assert state.failures[first['id']]['finished_at'] == first['started_at'] + 1

    @pytest.mark.parametrize('key', ['', 'ffffffffffffffffffffffffffffffff'], ids=['missing', 'wrong'])
    def test_wrong_key_is_forbidden(self, key):
        state = DoraState(API_KEY)
        reply = post(state, payload(1), key=key)
        assert (reply.status, reply.body) == (403, {'errors': ['Forbidden']})
        assert state.posts == []

    @pytest.mark.parametrize(
        'changes, error',
        [
            pytest.param({'id': 'short'}, 'id:', id='id-too-short'),
            pytest.param({'id': 'x' * 129}, 'id:', id='id-too-long'),
            pytest.param({'id': 'pagerduty incident 1'}, 'id:', id='id-bad-characters'),
            pytest.param({'started_at': None}, 'started_at:', id='no-started-at'),
            pytest.param({'started_at': 1.5}, 'started_at:', id='float-started-at'),
            pytest.param({'finished_at': 1}, 'finished_at:', id='finished-before-started'),
            pytest.param({'services': [], 'team': None}, 'services or team', id='no-services-or-team'),
            pytest.param({'custom_tags': ['a:b'] * 101}, 'custom_tags:', id='too-many-tags'),
            pytest.param({'custom_tags': ['novalue']}, 'custom_tags:', id='tag-without-value'),
            pytest.param({'env': 3}, 'env:', id='env-not-a-string'),
            pytest.param({'finishd_at': 1}, 'finishd_at: unknown', id='unknown-attribute'),
        ],
    )
    def test_invalid_payload_is_rejected(self, changes, error):
        state = DoraState(API_KEY)
        attributes = {k: v for k, v in dict(payload(1), **changes).items() if v is not None}
        reply = post(state, attributes)
        assert reply.status == 400
        assert any(message.startswith(error) for message in reply.body['errors']), reply.body
        assert state.posts == []

    def test_finished_at_compares_across_units(self):
        state = DoraState(API_KEY)
        started_s = payload(1)['started_at'] // 10**9
        assert post(state, dict(payload(1), finished_at=(started_s + 1) * 1000)).status == 202
        assert post(state, dict(payload(1), finished_at=started_s - 1)).status == 400

    def test_rate_limit_answers_429_with_headers(self, clock):
        state = DoraState(API_KEY, rate_limit=1, period=60, clock=clock)
        first = post(state, payload(1))
        assert first.headers['X-RateLimit-Remaining'] == '0'
        second = post(state, payload(2))
        assert second.status == 429
        assert second.headers['X-RateLimit-Reset'] == '60'
        assert second.headers['X-RateLimit-Period'] == '60'
        clock.now += 60
        assert post(state, payload(2)).status == 202
