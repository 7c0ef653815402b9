# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Reading back what the check sent, against the DORA and Events fakes over loopback.

The fakes answer in the shapes of the official client's models (checked here by deserialising
their answers with it), page the way the APIs do (no cursor for DORA failures, a cursor for
events) and refuse what the APIs refuse.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import pytest
from datadog_api_client import ApiClient as DatadogApiClient
from datadog_api_client import Configuration
from datadog_api_client.model_utils import model_to_dict
from datadog_api_client.v2.model.dora_failure_fetch_response import DORAFailureFetchResponse
from datadog_api_client.v2.model.dora_failures_list_response import DORAFailuresListResponse
from datadog_api_client.v2.model.dora_list_failures_request import DORAListFailuresRequest
from datadog_api_client.v2.model.events_list_request import EventsListRequest
from datadog_api_client.v2.model.events_list_response import EventsListResponse

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.collection.rebuild import EVENTS_LOOKBACK, Record, read_record
from datadog_checks.pagerduty_dora.common.errors import (
    AuthError,
    BudgetExhausted,
    ConnectionFailed,
    RequestRejected,
    TransientError,
)
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.datadog.dora import build_failure, failure_id
from datadog_checks.pagerduty_dora.datadog.events import build_event, build_live_event
from datadog_checks.pagerduty_dora.datadog.readback import (
    EVENTS_LIST_ENDPOINT,
    FAILURE_GET_ENDPOINT,
    FAILURES_LIST_ENDPOINT,
    PERMISSIONS,
    Incomplete,
    Readback,
)
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

from ..datadog.test_dora import raw_incident
from ..fakes.dora_api import DoraState
from ..fakes.events_api import MAX_EVENT_AGE, EventsState, normalize_tag
from ..fakes.server import FakeServer
from ..harness import DD_API_KEY, DD_APP_KEY, START

HOUR = 3600.0
DAY_AGO = 86400.0
NS = 10**9
MAPPED = MappingResult(rule='service_url', services=('checkout',), team='payments', env='prod', severity='SEV-1')


class Clock:
    """The fakes' wall clock, set by the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Rig:
    """DORA and Events fakes on one loopback server, and a `Readback` through a real `ApiClient` to them."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.dora = DoraState(DD_API_KEY, app_key=DD_APP_KEY)
        self.events = EventsState(DD_API_KEY, DD_APP_KEY, clock=self.clock, timeout_delay=1.0)
        self.dora.timeout_delay = 1.0
        self.server = FakeServer(self.dora.routes() + self.events.routes()).start()

    def api(self, *, max_requests: int = 1000, app_key: str = DD_APP_KEY, timeout: float = 2.0) -> ApiClient:
        api = ApiClient(
            ApiTarget('datadog', self.server.url, {'DD-API-KEY': DD_API_KEY, 'DD-APPLICATION-KEY': app_key}),
            # Well above a loopback answer on a loaded machine; a test of the fakes' held-back `timeout`
            # fault (1 s) waits less.
            RequestsWrapper({'timeout': timeout}, {}),
            RequestLimits(max_requests),
            logging.getLogger('test.readback'),
            timing=Timing(sleep=lambda seconds: None),
        )
        api.start_run(time.monotonic() + 60)
        return api

    def readback(self, **options: Any) -> Readback:
        api_options = {k: options.pop(k) for k in ('max_requests', 'app_key', 'timeout') if k in options}
        return Readback(self.api(**api_options), **options)

    def requests(self, path: str) -> list:
        return [r for r in self.server.requests if r.path == path]


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.server.stop()


def failure(number: int, started: float, finished: float | None = None, **changes: Any) -> dict:
    """The attributes the check posts for incident `P<number>`, started (and finished) at these times."""
    attributes: dict[str, Any] = {
        'id': failure_id('P{:06d}'.format(number)),
        'name': 'Incident {}'.format(number),
        'started_at': int(started * NS),
        'services': ['checkout'],
        'team': 'payments',
        'env': 'prod',
        'severity': 'SEV-1',
        'custom_tags': ['pagerduty_incident_number:{}'.format(number), 'urgency:high'],
    }
    if finished is not None:
        attributes['finished_at'] = int(finished * NS)
    attributes.update(changes)
    return attributes


def agent_event(incident_id: str, at: float, transition: str = 'triggered', **changes: Any) -> dict:
    """An Agent event as the aggregator stub records it."""
    event = {
        'timestamp': int(at),
        'event_type': 'pagerduty_dora',
        'source_type_name': 'pagerduty_dora',
        'aggregation_key': incident_id,
        'alert_type': 'error',
        'priority': 'normal',
        'msg_title': '#1 {}: Checkout errors'.format(transition),
        'msg_text': '%%% \ntext\n %%%',
        'tags': ['service:checkout', 'transition:{}'.format(transition), 'pagerduty_transition:{}'.format(at)],
    }
    event.update(changes)
    return event


def to_model(body: Any, kind: type) -> Any:
    """Deserialise a body with the official client's model, type checks on."""
    return DatadogApiClient(Configuration()).deserialize(json.dumps(body), (kind,), True)


class TestFailurePaging:
    """Every failure in the range is read once, across pages moved by start time, ties included."""

    @pytest.mark.parametrize('to_inclusive', [False, True], ids=['to-exclusive', 'to-inclusive'])
    @pytest.mark.parametrize(
        'count, spacing',
        [(95, 60.0), (100, 60.0), (7, 60.0), (0, 60.0), (40, 1.0), (40, 0.25)],
        ids=['several-pages', 'exact-pages', 'one-page', 'none', 'one-a-second', 'four-a-second'],
    )
    def test_every_failure_once(self, rig, count, spacing, to_inclusive):
        rig.dora.to_inclusive = to_inclusive
        rig.dora.preload(failure(n, START - 10 * HOUR + n * spacing) for n in range(count))

        read = list(rig.readback(page_limit=10).failures(START - DAY_AGO, START))

        assert sorted(f.incident_id for f in read) == ['P{:06d}'.format(n) for n in range(count)]
        assert [f.started_at for f in read] == sorted((f.started_at for f in read), reverse=True)

    @pytest.mark.parametrize('to_inclusive', [False, True], ids=['to-exclusive', 'to-inclusive'])
    def test_ties_across_a_page_boundary(self, rig, to_inclusive):
        """Eight failures of one second, cut by the page boundary, are all read: `to` is never moved past them."""
        rig.dora.to_inclusive = to_inclusive
        rig.dora.preload(failure(n, START - HOUR + n * 60) for n in range(6))
        rig.dora.preload(failure(100 + n, START - 2 * HOUR + 0.1 * n) for n in range(8))
        rig.dora.preload(failure(200 + n, START - 3 * HOUR + n * 60) for n in range(6))

        read = list(rig.readback(page_limit=10).failures(START - DAY_AGO, START))

        assert len(read) == 20
        assert len({f.failure_id for f in read}) == 20

    def test_more_ties_than_a_page_is_incomplete(self, rig):
        rig.dora.preload(failure(n, START - HOUR) for n in range(11))

        with pytest.raises(Incomplete, match='more than 10 DORA failures started in the second of') as raised:
            list(rig.readback(page_limit=10).failures(START - DAY_AGO, START))

        assert raised.value.endpoint == FAILURES_LIST_ENDPOINT

    def test_requests(self, rig):
        """A page after the first repeats the second it starts from: 95 failures take 1 + ceil(85 / 9) pages."""
        rig.dora.preload(failure(n, START - 10 * HOUR + n * 60) for n in range(95))

        list(rig.readback(page_limit=10).failures(START - DAY_AGO, START))

        assert len(rig.requests('/api/v2/dora/failures')) == 11

    @pytest.mark.parametrize(
        'offset, included',
        [(0.0, True), (-0.5, False), (-1.0, False), (3 * HOUR, True), (3 * HOUR + 0.5, False), (3 * HOUR + 1, False)],
        ids=['at-since', 'half-second-before', 'second-before', 'at-until', 'half-second-after', 'second-after'],
    )
    def test_range_is_inclusive_to_the_millisecond(self, rig, offset, included):
        since = START - 5 * HOUR
        rig.dora.preload([failure(1, since + offset)])

        read = list(rig.readback().failures(since, since + 3 * HOUR))

        assert len(read) == (1 if included else 0)

    def test_other_failures_are_skipped_but_paged_over(self, rig):
        rig.dora.preload(failure(n, START - HOUR - n * 60) for n in range(15))
        rig.dora.preload(failure(n, START - HOUR - n * 60 - 30, id='other-tool-{:010d}'.format(n)) for n in range(15))

        read = list(rig.readback(page_limit=10).failures(START - DAY_AGO, START))

        assert len(read) == 15
        assert sorted(f.failure_id for f in read) == ['pagerduty-incident-P{:06d}'.format(n) for n in range(15)]

    def test_query_narrows_on_datadog_side(self, rig):
        rig.dora.preload(failure(n, START - HOUR - n, env='prod' if n % 2 else 'staging') for n in range(10))

        read = list(rig.readback().failures(START - DAY_AGO, START, query='env:prod'))

        assert sorted(f.incident_id for f in read) == ['P{:06d}'.format(n) for n in (1, 3, 5, 7, 9)]
        assert json.loads(rig.requests('/api/v2/dora/failures')[0].body)['data']['attributes']['query'] == 'env:prod'

    def test_posted_and_deleted_failures_are_seen(self, rig):
        api = rig.api()
        for n in range(3):
            api.post('/api/v2/dora/failure', {'data': {'attributes': failure(n, START - HOUR + n)}})
        api.request('delete', '/api/v2/dora/failure/' + failure_id('P000001'))

        read = list(rig.readback().failures(START - DAY_AGO, START))

        assert sorted(f.incident_id for f in read) == ['P000000', 'P000002']


class TestFailureRecords:
    """A failure read back carries what was posted: ids, times to the millisecond, mapping and tags."""

    @pytest.mark.parametrize('state', ['triggered', 'resolved'], ids=['open', 'resolved'])
    def test_what_the_check_posts_comes_back(self, rig, state):
        incident = parse_incident(raw_incident(state, created_at='2026-11-20T09:15:00.123456Z'))
        posted = build_failure(incident, MAPPED)
        rig.dora.preload([posted])

        (read,) = rig.readback().failures(incident.created_at - 10, incident.created_at + 10)

        assert read.failure_id == posted['id']
        assert read.incident_id == incident.id
        assert read.exact_id is True
        assert read.name == posted['name']
        assert read.started_at == pytest.approx(incident.created_at, abs=0.001)
        assert read.started_at != incident.created_at  # milliseconds, not the microseconds posted
        if state == 'resolved':
            assert read.finished_at == incident.resolved_at
            assert read.open is False
        else:
            assert read.finished_at is None
            assert read.open is True
        assert (read.services, read.team, read.env, read.severity) == (['checkout'], 'payments', 'prod', 'SEV-1')
        assert read.custom_tags == posted['custom_tags']
        assert read.version is None

    @pytest.mark.parametrize(
        'incident_id', ['Q1/B2 C3?', 'incident é', 'Q' * 300], ids=['slash-and-space', 'non-ascii', 'too-long']
    )
    def test_hashed_ids_match_by_failure_id(self, rig, incident_id):
        rig.dora.preload([failure(1, START - HOUR, id=failure_id(incident_id))])

        (read,) = rig.readback().failures(START - DAY_AGO, START)

        assert read.failure_id == failure_id(incident_id)
        assert read.exact_id is False
        assert read.incident_id != incident_id

    def test_get_one(self, rig):
        rig.dora.preload([failure(7, START - HOUR, START - 30)])

        read = rig.readback().failure('P000007')

        assert read is not None
        assert (read.incident_id, read.started_at, read.finished_at) == ('P000007', START - HOUR, START - 30)

    def test_get_unknown_is_none(self, rig):
        assert rig.readback().failure('P404') is None


class TestEventPaging:
    """Every event of the query in the range is read once, oldest first, by cursor."""

    @pytest.mark.parametrize('count', [35, 30, 3, 0], ids=['several-pages', 'exact-pages', 'one-page', 'none'])
    def test_every_event_once_in_order(self, rig, count):
        rig.events.ingest(agent_event('P{}'.format(n % 4), START - 2 * HOUR + n) for n in range(count))

        read = list(rig.readback(page_limit=10).events('source:pagerduty_dora', START - 3 * HOUR, START))

        assert [e.timestamp for e in read] == [START - 2 * HOUR + n for n in range(count)]
        assert len({e.event_id for e in read}) == count
        # A full last page still carries a cursor: one more request finds nothing.
        assert len(rig.requests('/api/v2/events')) == count // 10 + 1

    def test_many_in_one_second(self, rig):
        rig.events.ingest(agent_event('P{}'.format(n), START - HOUR) for n in range(25))

        read = list(rig.readback(page_limit=10).events('source:pagerduty_dora', START - 3 * HOUR, START))

        assert sorted(e.incident_id for e in read) == sorted('P{}'.format(n) for n in range(25))

    @pytest.mark.parametrize(
        'offset, included',
        [(0, True), (-1, False), (HOUR, True), (HOUR + 1, False)],
        ids=['at-since', 'before', 'at-until', 'after'],
    )
    def test_range_is_inclusive(self, rig, offset, included):
        since = START - 2 * HOUR
        rig.events.ingest([agent_event('P1', since + offset)])

        read = list(rig.readback().events('source:pagerduty_dora', since, since + HOUR))

        assert len(read) == (1 if included else 0)

    def test_only_the_query_is_read(self, rig):
        rig.events.ingest([agent_event('P1', START - 60), agent_event('P2', START - 50, source_type_name='other')])
        rig.events.ingest([agent_event('P3', START - 40, tags=['env:staging', 'transition:resolved'])])

        read = list(rig.readback().events('source:pagerduty_dora -env:staging', START - HOUR, START))

        assert [e.incident_id for e in read] == ['P1']


class TestEventRecords:
    """An event read back has the incident id, time, title, alert type and tags as Datadog stores them."""

    def test_fields(self, rig):
        rig.events.ingest([agent_event('Q1B2C3', START - 60, 'acknowledged', alert_type='warning')])

        (read,) = rig.readback().events('source:pagerduty_dora', START - HOUR, START)

        assert read.incident_id == 'Q1B2C3'
        assert read.timestamp == START - 60
        assert read.title == '#1 acknowledged: Checkout errors'
        assert read.alert_type == 'warning'
        assert read.transition == 'acknowledged'
        assert read.transition_key == str(START - 60)
        assert read.tags == [
            'service:checkout',
            'transition:acknowledged',
            'pagerduty_transition:{}'.format(START - 60),
            'source:pagerduty_dora',
        ]

    def test_tags_come_back_normalised(self, rig):
        tags = ['pagerduty_service:Checkout API', 'pagerduty_transition:Q1B2C3/Resolved@17']
        rig.events.ingest([agent_event('Q1B2C3', START - 60, tags=tags)])

        (read,) = rig.readback().events('source:pagerduty_dora', START - HOUR, START)

        assert read.tags[:2] == ['pagerduty_service:checkout_api', 'pagerduty_transition:q1b2c3/resolved_17']
        assert read.transition_key == normalize_tag('Q1B2C3/Resolved@17').split(':', 1)[-1]

    def test_the_check_events_come_back(self, rig):
        """What `build_event` makes for a transition is read back with its aggregation key and time."""
        incident = parse_incident(raw_incident('resolved'))
        event = build_event(
            Transition('resolved', incident, incident.resolved_at), MAPPED, tags=['transition:resolved'], now=START
        )
        rig.clock.now = incident.resolved_at + 60
        rig.events.ingest([event])

        (read,) = rig.readback().events('source:pagerduty_dora', incident.resolved_at - 1, incident.resolved_at)

        assert (read.incident_id, read.timestamp, read.alert_type) == (incident.id, incident.resolved_at, 'success')
        assert read.title == event['msg_title']


class TestLiveEvents:
    """The live event comes back with the time it says collection went live; the record resumes from it."""

    def test_read_back(self, rig):
        event = build_live_event(START - 3 * DAY_AGO, key='pagerduty_dora_instance:abc', tags=['env:prod'], now=START)
        rig.events.ingest([event])

        (read,) = rig.readback().events('source:pagerduty_dora', START - HOUR, START)

        assert (read.live_since, read.timestamp, read.alert_type) == (START - 3 * DAY_AGO, START, 'info')
        assert read.transition_key is None and read.transition is None

    @pytest.mark.parametrize(
        'value', ['', 'soon', '-5', '1.5', '1' * 13], ids=['empty', 'a-word', 'negative', 'a-fraction', 'too-long']
    )
    def test_a_tag_that_is_no_time_is_no_live_event(self, rig, value):
        event = build_live_event(START, key='k', tags=[], now=START)
        event['tags'] = ['pagerduty_dora_live_since:' + value]
        rig.events.ingest([event])

        (read,) = rig.readback().events('source:pagerduty_dora', START - HOUR, START)

        assert read.live_since is None

    @pytest.mark.parametrize(
        'live_since, transition_at, expected',
        [
            (START - 3 * DAY_AGO, None, START - EVENTS_LOOKBACK),
            (START - HOUR, None, START - HOUR),
            (START - 3 * DAY_AGO, START - 2 * HOUR, START - 2 * HOUR),
            (None, None, None),
        ],
        ids=['quiet-for-days', 'live-within-the-lookback', 'a-transition-event', 'no-trace'],
    )
    def test_where_the_record_resumes(self, rig, live_since, transition_at, expected):
        events = [agent_event('Q1B2C3', transition_at)] if transition_at is not None else []
        if live_since is not None:
            events.append(build_live_event(live_since, key='k', tags=[], now=START - HOUR / 2))
            events.append(build_live_event(live_since - DAY_AGO, key='k', tags=[], now=START - HOUR))
        rig.events.ingest(events)

        record = read_record(rig.readback(), query='source:pagerduty_dora', now=START, history_since=START - HOUR)

        assert record.resume_at() == expected
        assert record.holds_anything == bool(events)
        assert record == Record(
            emitted=record.emitted,
            last_event_at=transition_at,
            events=len(record.emitted),
            searched_from=START - EVENTS_LOOKBACK,
            live_since=live_since,
            live_event_at=None if live_since is None else START - HOUR / 2,
        )


class TestIntake:
    """The fake's intake refuses what Datadog's refuses, and indexes with a delay when asked."""

    @pytest.mark.parametrize(
        'age, kept', [(MAX_EVENT_AGE - 1, 1), (MAX_EVENT_AGE + 1, 0)], ids=['within-18h', 'older-than-18h']
    )
    def test_events_older_than_18_hours_are_refused(self, rig, age, kept):
        assert rig.events.ingest([agent_event('P1', START - age)]) == kept
        assert rig.events.refused == 1 - kept
        assert len(rig.events.events) == kept

    def test_index_delay(self, rig):
        rig.events.index_delay = 10
        rig.events.ingest([agent_event('P1', START - 5)])
        readback = rig.readback()

        assert list(readback.events('source:pagerduty_dora', START - HOUR, START)) == []
        rig.clock.now += 10
        assert len(list(readback.events('source:pagerduty_dora', START - HOUR, START))) == 1

    def test_default_range_is_the_last_15_minutes(self, rig):
        rig.events.ingest([agent_event('P1', START - 20 * 60), agent_event('P2', START - 10 * 60)])
        api = rig.api()

        answer = api.get('/api/v2/events', params={'filter[query]': 'source:pagerduty_dora'}).data

        assert [e['attributes']['attributes']['aggregation_key'] for e in answer['data']] == ['P2']


class TestModels:
    """The fakes' answers and the readback's requests deserialise with the official client's models."""

    def test_failure_list_and_get(self, rig):
        git = {'commit_sha': 'a' * 40, 'repository_url': 'https://github.com/example/checkout'}
        rig.dora.preload([failure(1, START - HOUR, START - 60), failure(2, START - 30, version='v42', git=git)])
        list(rig.readback().failures(START - DAY_AGO, START))
        api = rig.api()

        listed = api.post('/api/v2/dora/failures', json.loads(rig.requests('/api/v2/dora/failures')[0].body)).data
        fetched = api.get('/api/v2/dora/failures/' + failure_id('P000001')).data

        request = to_model(json.loads(rig.requests('/api/v2/dora/failures')[0].body), DORAListFailuresRequest)
        assert request.data.attributes.limit == 1000
        assert len(to_model(listed, DORAFailuresListResponse).data) == 2
        model = to_model(fetched, DORAFailureFetchResponse).data
        assert (model.id, model.attributes.finished_at.timestamp()) == (failure_id('P000001'), START - 60)

    def test_event_list_and_search(self, rig):
        alert_types = ['error', 'warning', 'success', 'info']
        rig.events.ingest(agent_event('P1', START - 60 + n, alert_type=kind) for n, kind in enumerate(alert_types))
        rig.events.ingest([agent_event('P1', START - 10)])
        api = rig.api()
        listed = api.get(
            '/api/v2/events', params={'filter[query]': 'source:pagerduty_dora', 'page[limit]': 4, 'sort': 'timestamp'}
        ).data
        body = {
            'filter': {'query': 'source:pagerduty_dora', 'from': 'now-1h', 'to': 'now'},
            'page': {'limit': 4},
            'sort': 'timestamp',
        }
        wire = model_to_dict(to_model(body, EventsListRequest))
        searched = api.post('/api/v2/events/search', wire).data

        for answer in (listed, searched):
            model = to_model(answer, EventsListResponse)
            assert [str(e.attributes.attributes.status) for e in model.data] == alert_types
            assert model.meta.page.after
            assert model.data[0].attributes.attributes.aggregation_key == 'P1'
        assert 'page%5Bcursor%5D=' in listed['links']['next']


class TestErrors:
    """Errors stay typed: a 403 names the endpoint and its permission, 5xx and timeouts are transient."""

    READS = [
        pytest.param(lambda r: list(r.failures(START - HOUR, START)), FAILURES_LIST_ENDPOINT, 'dora', id='failures'),
        pytest.param(lambda r: r.failure('P1'), FAILURE_GET_ENDPOINT, 'dora', id='failure'),
        pytest.param(
            lambda r: list(r.events('source:pagerduty_dora', START - HOUR, START)),
            EVENTS_LIST_ENDPOINT,
            'events',
            id='events',
        ),
    ]

    @pytest.mark.parametrize('read, endpoint, fake', READS)
    def test_missing_permission(self, rig, read, endpoint, fake):
        getattr(rig, fake).permissions.clear()

        with pytest.raises(AuthError) as raised:
            read(rig.readback())

        assert raised.value.status == 403
        assert raised.value.endpoint == endpoint
        assert raised.value.missing_permission is True
        assert PERMISSIONS[endpoint] == {'dora': 'dora_metrics_read', 'events': 'events_read'}[fake]

    @pytest.mark.parametrize('read, endpoint, fake', READS)
    def test_wrong_application_key(self, rig, read, endpoint, fake):
        with pytest.raises(AuthError) as raised:
            read(rig.readback(app_key='wrong0123456789abcdef0123456789abcdef01'))

        assert (raised.value.status, raised.value.endpoint, raised.value.missing_permission) == (403, endpoint, False)

    @pytest.mark.parametrize('kind', ['503', 'timeout'], ids=['5xx', 'timeout'])
    @pytest.mark.parametrize('read, endpoint, fake', READS)
    def test_transient(self, rig, read, endpoint, fake, kind):
        # One more fault than the client retries.
        getattr(rig, fake).faults.fail_next(4, kind)

        with pytest.raises(TransientError) as raised:
            read(rig.readback(timeout=0.3) if kind == 'timeout' else rig.readback())

        assert raised.value.endpoint == endpoint
        if kind == 'timeout':
            assert isinstance(raised.value, ConnectionFailed) and raised.value.cause == 'timeout'

    def test_failure_half_way_raises_after_the_first_page(self, rig):
        rig.dora.preload(failure(n, START - HOUR - n * 60) for n in range(25))
        readback = rig.readback(page_limit=10)
        iterator = readback.failures(START - DAY_AGO, START)
        first = [next(iterator) for _ in range(10)]
        rig.dora.faults.fail_next(4, '500')

        with pytest.raises(TransientError):
            list(iterator)

        assert len(first) == 10

    @pytest.mark.parametrize(
        'read',
        [
            pytest.param(lambda r: list(r.failures(START - DAY_AGO, START)), id='failures'),
            pytest.param(lambda r: list(r.events('source:pagerduty_dora', START - HOUR, START)), id='events'),
        ],
    )
    def test_budget_propagates(self, rig, read):
        rig.dora.preload(failure(n, START - HOUR - n * 60) for n in range(25))
        rig.events.ingest(agent_event('P{}'.format(n), START - HOUR + n) for n in range(25))

        with pytest.raises(BudgetExhausted):
            read(rig.readback(page_limit=10, max_requests=2))

    @pytest.mark.parametrize(
        'read',
        [
            pytest.param(lambda r: list(r.failures(START - HOUR, START, query='free text')), id='failures'),
            pytest.param(lambda r: list(r.events('free text', START - HOUR, START)), id='events'),
        ],
    )
    def test_query_the_api_refuses(self, rig, read):
        with pytest.raises(RequestRejected) as raised:
            read(rig.readback())

        assert raised.value.status == 400


@pytest.mark.usefixtures('datadog_agent', 'simulated_run')
class TestWithTheCheck:
    """What the real check submits reaches the fakes, and reads back as sent."""

    def test_failures_and_events_of_a_run(self, world, services, dd_run_check, aggregator):
        world.forward_events(aggregator)
        check = world.check(datadog_app_key=DD_APP_KEY)
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Checkout errors')
        world.account.advance(30)
        world.account.resolve(incident)
        world.account.advance(30)
        dd_run_check(check)
        api = ApiClient(
            ApiTarget('datadog', world.datadog.url, {'DD-API-KEY': DD_API_KEY, 'DD-APPLICATION-KEY': DD_APP_KEY}),
            RequestsWrapper({'timeout': 5}, {}),
            RequestLimits(100),
            logging.getLogger('test.readback'),
        )
        readback = Readback(api)

        failures = list(readback.failures(START - DAY_AGO, world.account.now))
        events = list(readback.events('source:pagerduty_dora', START - HOUR, world.account.now))

        assert [(f.incident_id, f.finished_at - f.started_at) for f in failures] == [(incident, 30.0)]
        # The check's live event (it went live at START), then the events of the incident's transitions.
        live, *transitions = events
        assert (live.live_since, live.transition_key, live.alert_type) == (START, None, 'info')
        assert [(e.incident_id, e.transition) for e in transitions] == [(incident, 'triggered'), (incident, 'resolved')]
        assert len(aggregator.events) == 3
