# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The simulated PagerDuty account behaves like PagerDuty's REST API v2 where the collector can trip."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Callable

import pytest
import requests

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits
from datadog_checks.pagerduty_dora.common.times import parse_time
from datadog_checks.pagerduty_dora.demo.account import API_URL
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import parse_incident

from ..fakes.pagerduty import (
    FAULT_KINDS,
    InProcessPagerDuty,
    PagerDutyAccount,
    PagerDutySimulator,
)

NOW = parse_time('2026-11-26T12:00:00Z')
DAY = 86400.0
TOKEN = 'sim-token'
HEADERS = {'Authorization': 'Token token=' + TOKEN, 'Accept': 'application/vnd.pagerduty+json;version=2'}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def account():
    account = PagerDutyAccount(subdomain='acme', token=TOKEN, time_zone='America/New_York', now=NOW)
    payments = account.add_team('Payments')
    search = account.add_team('Search')
    account.checkout = account.add_service('checkout-api', team_ids=[payments])
    account.search = account.add_service('search-api', team_ids=[search])
    account.payments_team, account.search_team = payments, search
    return account


@pytest.fixture
def simulator(account):
    with PagerDutySimulator(account) as simulator:
        yield simulator


@pytest.fixture
def get(simulator):
    session = requests.Session()
    session.headers.update(HEADERS)

    def get(path, **params):
        return session.get(simulator.url + path, params=params, timeout=10)

    yield get
    session.close()


def ids(response):
    return [incident['id'] for incident in response.json()['incidents']]


class TestCreationTimeFilter:
    """`since`/`until` select incidents by creation time, since inclusive and until exclusive."""

    def test_an_old_incident_resolved_today_is_not_in_todays_window(self, account, get):
        old = account.trigger(account.checkout, 'Old outage', created_at=NOW - 20 * DAY)
        account.resolve(old)
        fresh = account.trigger(account.checkout, 'New outage')

        response = get('/incidents', since='2026-11-26T00:00:00Z', until='2026-11-27T00:00:00Z')

        assert response.status_code == 200
        assert ids(response) == [fresh]
        assert old in ids(get('/incidents', since='2026-11-06T00:00:00Z', until='2026-11-07T00:00:00Z'))

    @pytest.mark.parametrize(
        'since, until, found',
        [
            ('2026-11-26T12:00:00Z', '2026-11-26T12:00:01Z', True),
            ('2026-11-26T11:00:00Z', '2026-11-26T12:00:00Z', False),
            ('2026-11-26T12:00:01Z', '2026-11-26T13:00:00Z', False),
        ],
        ids=['since-inclusive', 'until-exclusive', 'after'],
    )
    def test_edges(self, account, get, since, until, found):
        incident = account.trigger(account.checkout, 'Edge')
        assert (incident in ids(get('/incidents', since=since, until=until))) is found

    def test_without_since_and_until_only_the_last_30_days(self, account, get):
        account.trigger(account.checkout, 'Ancient', created_at=NOW - 31 * DAY)
        recent = account.trigger(account.checkout, 'Recent', created_at=NOW - 29 * DAY)
        assert ids(get('/incidents')) == [recent]
        assert len(ids(get('/incidents', date_range='all'))) == 2

    def test_a_range_over_six_months_is_refused(self, get):
        response = get('/incidents', since='2026-01-01T00:00:00Z', until='2026-07-02T00:00:00Z')
        assert response.status_code == 400
        assert response.json()['error']['code'] == 2001
        assert get('/incidents', since='2026-01-01T00:00:00Z', until='2026-07-01T00:00:00Z').status_code == 200


class TestTimeZones:
    """Naive timestamps are read in the account zone; answers are rendered in the account zone by default."""

    # 05:00 UTC is midnight in New York (EST, UTC-5).
    CREATED = parse_time('2026-11-20T05:00:00Z')

    @pytest.mark.parametrize(
        'since, until, found',
        [
            ('2026-11-20T00:00:00', '2026-11-20T00:00:01', True),
            ('2026-11-20T00:00:00Z', '2026-11-20T00:00:01Z', False),
            ('2026-11-20T05:00:00Z', '2026-11-20T05:00:01Z', True),
            ('2026-11-20T06:00:00+01:00', '2026-11-20T06:00:01+01:00', True),
            ('2026-11-20', '2026-11-21', True),
        ],
        ids=['naive-is-account-zone', 'naive-as-utc-misses', 'explicit-utc', 'explicit-offset', 'date-only'],
    )
    def test_since_until_reading(self, account, get, since, until, found):
        incident = account.trigger(account.checkout, 'Midnight in New York', created_at=self.CREATED)
        assert (incident in ids(get('/incidents', since=since, until=until))) is found

    @pytest.mark.parametrize(
        'params, rendered',
        [
            ({}, '2026-11-20T00:00:00-05:00'),
            ({'time_zone': 'UTC'}, '2026-11-20T05:00:00Z'),
            ({'time_zone': 'Europe/Paris'}, '2026-11-20T06:00:00+01:00'),
        ],
        ids=['account-zone', 'utc', 'paris'],
    )
    def test_rendering(self, account, get, params, rendered):
        incident = account.trigger(account.checkout, 'Rendered', created_at=self.CREATED)
        listed = get('/incidents', date_range='all', **params).json()['incidents'][0]
        single = get('/incidents/' + incident, **params).json()['incident']
        assert listed['created_at'] == single['created_at'] == rendered
        assert parse_time(rendered) == self.CREATED

    def test_an_unknown_time_zone_is_refused(self, get):
        response = get('/incidents', time_zone='Mars/Olympus')
        assert response.status_code == 400
        assert response.json()['error']['code'] == 2001


class TestPaging:
    """Classic offset paging: `limit` (25 by default, capped at 100), `offset`, `more`, `total`, the 10,000 cap."""

    @pytest.fixture
    def many(self, account):
        for n in range(230):
            account.trigger(account.checkout, 'Incident {}'.format(n), created_at=NOW - 1000 + n)
        return account

    @pytest.mark.parametrize(
        'params, count, limit, more',
        [
            ({}, 25, 25, True),
            ({'limit': '100'}, 100, 100, True),
            ({'limit': '500'}, 100, 100, True),
            ({'limit': '100', 'offset': '200'}, 30, 100, False),
            ({'limit': '100', 'offset': '300'}, 0, 100, False),
        ],
        ids=['default', 'max', 'capped', 'last-page', 'past-the-end'],
    )
    def test_pages(self, many, get, params, count, limit, more):
        body = get('/incidents', **params).json()
        assert (len(body['incidents']), body['limit'], body['more']) == (count, limit, more)
        assert body['total'] is None

    def test_total_on_request(self, many, get):
        assert get('/incidents', total='true', limit='1').json()['total'] == 230

    def test_paging_visits_every_incident_once_in_creation_order(self, many, get):
        seen, offset = [], 0
        while True:
            body = get('/incidents', limit='100', offset=str(offset)).json()
            seen += body['incidents']
            if not body['more']:
                break
            offset += body['limit']
        assert [i['incident_number'] for i in seen] == list(range(1, 231))

    @pytest.mark.parametrize(
        'offset, limit, status',
        [('9900', '100', 200), ('9901', '100', 400), ('10000', '1', 400), ('9999', '1', 200)],
        ids=['at-cap', 'past-cap', 'offset-10000', 'last-allowed'],
    )
    def test_offset_plus_limit_cap(self, get, offset, limit, status):
        response = get('/incidents', offset=offset, limit=limit)
        assert response.status_code == status
        if status == 400:
            error = response.json()['error']
            assert error['code'] == 2002
            assert error['message'] == 'Arguments Caused Error'
            assert 'Offset+limit exceeds maximum allowed value of 10000' in error['errors'][0]

    @pytest.mark.parametrize(
        'params', [{'limit': '0'}, {'offset': '-1'}, {'limit': 'x'}], ids=['zero', 'negative', 'nan']
    )
    def test_bad_paging_is_refused(self, get, params):
        assert get('/incidents', **params).status_code == 400


class TestFilters:
    """Status, service, team and urgency filters, and sorting."""

    @pytest.fixture
    def world(self, account):
        a = account.trigger(account.checkout, 'A', created_at=NOW - 300)
        b = account.trigger(account.search, 'B', urgency='low', created_at=NOW - 200)
        c = account.trigger(account.checkout, 'C', created_at=NOW - 100)
        account.acknowledge(b)
        account.resolve(c)
        return {'a': a, 'b': b, 'c': c}

    @pytest.mark.parametrize(
        'params, expected',
        [
            ({'statuses[]': ['triggered', 'acknowledged']}, 'ab'),
            ({'statuses[]': 'resolved'}, 'c'),
            ({'service_ids[]': 'search'}, 'b'),
            ({'team_ids[]': 'payments'}, 'ac'),
            ({'urgencies[]': 'low'}, 'b'),
            ({'urgencies[]': 'high', 'statuses[]': 'triggered'}, 'a'),
            ({'service_ids[]': 'PNOSUCH'}, ''),
            ({'sort_by': 'created_at:desc'}, 'cba'),
            ({'sort_by': 'incident_number:asc'}, 'abc'),
        ],
        ids=['open', 'resolved', 'service', 'team', 'urgency', 'combined', 'unknown-service', 'desc', 'by-number'],
    )
    def test_filters(self, account, world, get, params, expected):
        names = {'search': account.search, 'payments': account.payments_team}
        params = {k: names.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
        by_id = {v: k for k, v in world.items()}
        assert ''.join(by_id[i] for i in ids(get('/incidents', **params))) == expected

    @pytest.mark.parametrize(
        'params',
        [{'statuses[]': 'open'}, {'urgencies[]': 'urgent'}, {'sort_by': 'title'}],
        ids=['status', 'urgency', 'sort'],
    )
    def test_unknown_values_are_refused(self, world, get, params):
        response = get('/incidents', **params)
        assert response.status_code == 400
        assert response.json()['error']['code'] == 2001


class TestIncidentShape:
    """Incidents render like PagerDuty's JSON and parse with the product's own parser."""

    def test_get_incident(self, account, get):
        incident_id = account.trigger(account.checkout, 'Checkout errors', priority='P1')
        account.advance(120)
        account.acknowledge(incident_id)
        body = get('/incidents/' + incident_id, time_zone='UTC').json()['incident']

        assert re.fullmatch(r'P[0-9A-Z]{6}', incident_id)
        assert body['summary'] == '[#1] Checkout errors'
        assert body['service']['html_url'] == 'https://acme.pagerduty.com/service-directory/' + account.checkout
        assert body['service']['type'] == 'service_reference'
        assert [t['summary'] for t in body['teams']] == ['Payments']
        assert body['priority']['name'] == 'P1'
        assert body['acknowledgements'][0]['at'] == '2026-11-26T12:02:00Z'
        parsed = parse_incident(body)
        assert (parsed.status, parsed.priority, parsed.acknowledged_at, parsed.resolved_at) == (
            'acknowledged',
            'P1',
            NOW + 120,
            None,
        )

    def test_unknown_incident(self, get):
        response = get('/incidents/PNOSUCH')
        assert response.status_code == 404
        assert response.json() == {'error': {'message': 'Not Found', 'code': 2100}}

    def test_mutations(self, account):
        incident_id = account.trigger(account.checkout, 'Lifecycle', urgency='low')
        account.advance(60)
        account.resolve(incident_id)
        resolved = account.incident(incident_id)
        assert resolved['resolved_at'] == '2026-11-26T12:01:00Z'
        # Like PagerDuty, a resolved incident no longer lists acknowledgements or assignments.
        assert resolved['acknowledgements'] == [] and resolved['assignments'] == []

        account.advance(60)
        account.reopen(incident_id)
        account.set_priority(incident_id, 'P2')
        account.set_urgency(incident_id, 'high')
        account.move(incident_id, account.search)
        reopened = account.incident(incident_id)
        assert (reopened['status'], reopened['resolved_at'], reopened['last_status_change_at']) == (
            'triggered',
            None,
            '2026-11-26T12:02:00Z',
        )
        assert (reopened['priority']['name'], reopened['urgency'], reopened['service']['summary']) == (
            'P2',
            'high',
            'search-api',
        )
        assert [t['summary'] for t in reopened['teams']] == ['Search']
        account.set_priority(incident_id, None)
        assert account.incident(incident_id)['priority'] is None

    @pytest.mark.parametrize('action', ['unacknowledge', 'reopen'], ids=['unack-a-triggered', 'reopen-an-open'])
    def test_impossible_transitions_raise(self, account, action):
        incident_id = account.trigger(account.checkout, 'Open')
        with pytest.raises(ValueError):
            getattr(account, action)(incident_id)


class TestLogEntries:
    """Log entries: written per status and urgency change; a reopen writes only its assignment, a priority
    change nothing; newest first."""

    @pytest.fixture
    def lifecycle(self, account):
        incident_id = account.trigger(account.checkout, 'Lifecycle')
        for step in ('acknowledge', 'unacknowledge', 'acknowledge', 'resolve', 'reopen'):
            account.advance(60)
            getattr(account, step)(incident_id)
        account.advance(60)
        account.set_priority(incident_id, 'P1')
        account.set_urgency(incident_id, 'low')
        return incident_id

    EXPECTED = [
        'trigger_log_entry',
        'assign_log_entry',
        'notify_log_entry',
        'acknowledge_log_entry',
        'unacknowledge_log_entry',
        'acknowledge_log_entry',
        'resolve_log_entry',
        'assign_log_entry',
        'urgency_change_log_entry',
    ]

    @pytest.mark.parametrize('path', ['/log_entries', '/incidents/{}/log_entries'], ids=['account', 'incident'])
    def test_types_newest_first(self, lifecycle, get, path):
        body = get(path.format(lifecycle), limit='100').json()
        assert [e['type'] for e in body['log_entries']] == list(reversed(self.EXPECTED))
        times = [parse_time(e['created_at']) for e in body['log_entries']]
        assert times == sorted(times, reverse=True)

    def test_overview_leaves_out_notifications(self, lifecycle, get):
        types = [e['type'] for e in get('/log_entries', is_overview='true').json()['log_entries']]
        assert 'notify_log_entry' not in types and len(types) == len(self.EXPECTED) - 1

    def test_since_until_on_entry_time_and_account_zone(self, lifecycle, get):
        body = get('/log_entries', since='2026-11-26T12:02:00Z', until='2026-11-26T12:04:00Z').json()
        assert [(e['type'], e['created_at']) for e in body['log_entries']] == [
            ('acknowledge_log_entry', '2026-11-26T07:03:00-05:00'),
            ('unacknowledge_log_entry', '2026-11-26T07:02:00-05:00'),
        ]

    def test_include_incidents_embeds_current_state(self, lifecycle, get):
        entry = get('/log_entries', limit='3', **{'include[]': 'incidents'}).json()['log_entries'][2]
        assert entry['type'] == 'resolve_log_entry'
        # The entry is the resolve; the embedded incident is what it is now: reopened, P1.
        assert (entry['incident']['status'], entry['incident']['priority']['name']) == ('triggered', 'P1')

    def test_unknown_incident(self, get):
        assert get('/incidents/PNOSUCH/log_entries').status_code == 404


class TestUnloggedChanges:
    """A reopen logs only the assignment it makes; a priority change or a service move logs nothing."""

    def test_reopen_writes_an_assignment_at_its_time(self, account, get):
        incident_id = account.trigger(account.checkout, 'Flapping')
        account.advance(60)
        account.resolve(incident_id)
        account.advance(60)
        account.reopen(incident_id)
        body = get('/incidents/{}/log_entries'.format(incident_id), time_zone='UTC').json()
        assert [(e['type'], e['created_at']) for e in body['log_entries'][:2]] == [
            ('assign_log_entry', '2026-11-26T12:02:00Z'),
            ('resolve_log_entry', '2026-11-26T12:01:00Z'),
        ]

    @pytest.mark.parametrize('logged', [False, True], ids=['pagerduty', 'non-conforming-server'])
    def test_priority_change(self, account, get, logged):
        account.logs_priority_changes = logged
        incident_id = account.trigger(account.checkout, 'Escalated', priority='P3')
        account.advance(60)
        account.set_priority(incident_id, 'P1')
        account.move(incident_id, account.search)
        types = [e['type'] for e in get('/log_entries').json()['log_entries']]
        assert types[0] == ('priority_change_log_entry' if logged else 'notify_log_entry')
        assert len(types) == (4 if logged else 3)
        assert get('/incidents/' + incident_id).json()['incident']['priority']['name'] == 'P1'


class TestLateIndexing:
    """An entry indexed late is missing from both log lists until its delay has passed; incidents are current."""

    @pytest.mark.parametrize('path', ['/log_entries', '/incidents/{}/log_entries'], ids=['account', 'incident'])
    def test_hidden_until_indexed(self, account, get, path):
        incident_id = account.trigger(account.checkout, 'Slow index')
        account.advance(10)
        account.index_delay = 40
        account.acknowledge(incident_id)
        account.index_delay = 0
        account.advance(5)
        account.resolve(incident_id)

        def types():
            return [e['type'] for e in get(path.format(incident_id), is_overview='true').json()['log_entries']]

        assert types() == ['resolve_log_entry', 'assign_log_entry', 'trigger_log_entry']
        assert get('/incidents/' + incident_id).json()['incident']['status'] == 'resolved'
        account.advance(34)
        assert 'acknowledge_log_entry' not in types()
        account.advance(1)
        assert types() == ['resolve_log_entry', 'acknowledge_log_entry', 'assign_log_entry', 'trigger_log_entry']

    def test_delay_per_entry_type(self, account, get):
        account.index_delay = lambda kind: 30 if kind == 'resolve_log_entry' else 0
        incident_id = account.trigger(account.checkout, 'Resolve indexed late')
        account.resolve(incident_id)
        body = get('/log_entries', total='true').json()
        assert (body['total'], 'resolve_log_entry' in [e['type'] for e in body['log_entries']]) == (3, False)
        account.advance(30)
        assert get('/log_entries', total='true').json()['total'] == 4


class TestDateHeader:
    """Every answer, errors and faults included, carries a `Date` with the account's time."""

    def test_account_time(self, account, simulator, get):
        account.advance(3600)
        answers = [get('/incidents'), get('/incidents/PNOSUCH')]
        simulator.faults.fail_next(1, 503)
        answers.append(get('/incidents'))
        assert [(a.status_code, a.headers['Date']) for a in answers] == [
            (status, 'Thu, 26 Nov 2026 13:00:00 GMT') for status in (200, 404, 503)
        ]

    def test_only_one_date_header(self, simulator, get):
        response = get('/incidents')
        assert response.raw.headers.getlist('Date') == ['Thu, 26 Nov 2026 12:00:00 GMT']


class TestHistory:
    """`history` records every mutation in order, with its time and new value."""

    def test_every_mutation(self, account):
        first = account.trigger(account.checkout, 'First', priority='P2')
        second = account.trigger(account.checkout, 'Second')
        steps = [
            lambda: account.acknowledge(first),
            lambda: account.unacknowledge(first),
            lambda: account.set_priority(first, 'P1'),
            lambda: account.set_urgency(first, 'low'),
            lambda: account.move(first, account.search),
            lambda: account.resolve(first),
            lambda: account.reopen(first),
            lambda: account.merge(second, first),
            lambda: account.delete(first),
        ]
        for step in steps:
            account.advance(1)
            step()
        assert account.history == [
            (first, 'triggered', NOW, None),
            (second, 'triggered', NOW, None),
            (first, 'acknowledged', NOW + 1, None),
            (first, 'unacknowledged', NOW + 2, None),
            (first, 'priority_changed', NOW + 3, 'P1'),
            (first, 'urgency_changed', NOW + 4, 'low'),
            (first, 'service_changed', NOW + 5, account.search),
            (first, 'resolved', NOW + 6, None),
            (first, 'reopened', NOW + 7, None),
            (second, 'resolved', NOW + 8, None),
            (second, 'merged', NOW + 8, first),
            (first, 'deleted', NOW + 9, None),
        ]


class TestAuth:
    """`Authorization: Token token=…` is required; a key without read access gets 403."""

    @pytest.mark.parametrize(
        'header, status, code',
        [
            (None, 401, 2006),
            ('Token token=wrong', 401, 2006),
            ('Bearer ' + TOKEN, 401, 2006),
            ('Token token=no-read', 403, 2010),
            ('Token token=' + TOKEN, 200, None),
        ],
        ids=['missing', 'wrong', 'wrong-scheme', 'no-read-scope', 'valid'],
    )
    def test_tokens(self, account, header, status, code):
        with PagerDutySimulator(account, forbidden_tokens=['no-read']) as simulator:
            headers = {'Authorization': header} if header else {}
            response = requests.get(simulator.url + '/incidents', headers=headers, timeout=10)
        assert response.status_code == status
        if code:
            assert response.json()['error']['code'] == code

    def test_requests_are_recorded_with_their_headers(self, simulator, get):
        get('/incidents')
        get('/log_entries')
        assert simulator.count('/incidents') == 1 and simulator.count('/log_entries') == 1
        assert simulator.requests[0].headers['accept'] == 'application/vnd.pagerduty+json;version=2'


class TestRateLimits:
    """`ratelimit-*` headers on every answer; 429 once the minute's budget is spent."""

    def test_budget(self, account):
        clock = FakeClock()
        with PagerDutySimulator(account, rate_limit=3, clock=clock) as simulator:
            session = requests.Session()
            session.headers.update(HEADERS)
            answers = []
            for _ in range(4):
                answers.append(session.get(simulator.url + '/incidents', timeout=10))
                clock.now += 10
            clock.now += 30  # the window started at 1000; now 1070: a new one
            answers.append(session.get(simulator.url + '/incidents', timeout=10))

        statuses = [r.status_code for r in answers]
        remaining = [r.headers['ratelimit-remaining'] for r in answers]
        assert statuses == [200, 200, 200, 429, 200]
        assert remaining == ['2', '1', '0', '0', '2']
        assert answers[3].headers['ratelimit-reset'] == '30'
        assert answers[3].json()['error']['code'] == 2020
        assert [r.headers['ratelimit-limit'] for r in answers] == ['3'] * 5

    def test_errors_carry_the_headers_too(self, get):
        response = get('/incidents', offset='10000')
        assert response.status_code == 400 and response.headers['ratelimit-limit'] == '960'


class TestFaults:
    """Injected faults: 429 with and without headers, 5xx, slow answers, cut bodies, bad JSON."""

    @pytest.mark.parametrize(
        'kind, status, has_headers',
        [('429', 429, True), ('429_bare', 429, False), ('500', 500, False), ('502', 502, False)],
        ids=['429', '429-bare', '500', '502'],
    )
    def test_status_faults(self, simulator, get, kind, status, has_headers):
        simulator.faults.fail_next(2, kind, reset=7)
        answers = [get('/incidents') for _ in range(3)]
        assert [r.status_code for r in answers] == [status, status, 200]
        assert ('ratelimit-reset' in answers[0].headers) is has_headers
        if has_headers:
            assert answers[0].headers['ratelimit-reset'] == '7'
            assert answers[0].headers['ratelimit-remaining'] == '0'

    def test_bad_json(self, simulator, get):
        simulator.faults.fail_next(1, 'bad_json')
        response = get('/incidents')
        assert response.status_code == 200
        with pytest.raises(ValueError):
            json.loads(response.content)

    def test_truncated(self, simulator, get):
        simulator.faults.fail_next(1, 'truncated')
        with pytest.raises(requests.exceptions.RequestException):
            get('/incidents')
        assert get('/incidents').status_code == 200

    def test_timeout(self, account):
        with PagerDutySimulator(account, timeout_delay=1.0) as simulator:
            simulator.faults.fail_next(1, 'timeout')
            started = time.monotonic()
            with pytest.raises(requests.exceptions.Timeout):
                requests.get(simulator.url + '/incidents', headers=HEADERS, timeout=0.2)
            assert time.monotonic() - started < 1.0

    def test_path_prefix(self, simulator, get):
        simulator.faults.fail_next(1, '500', path_prefix='/log_entries')
        assert get('/incidents').status_code == 200
        assert get('/log_entries').status_code == 500

    def test_chaos_is_seeded(self, account):
        def run():
            with PagerDutySimulator(account) as simulator:
                simulator.faults.chaos(0.5, seed=7, kinds=['500', '429', '429_bare'])
                return [
                    requests.get(simulator.url + '/incidents', headers=HEADERS, timeout=10).status_code
                    for _ in range(20)
                ]

        first, second = run(), run()
        assert first == second
        assert 200 in first and {500, 429} <= set(first)

    def test_chaos_off(self, simulator, get):
        simulator.faults.chaos(1.0, seed=1, kinds=['500'])
        assert get('/incidents').status_code == 500
        simulator.faults.chaos(0)
        assert get('/incidents').status_code == 200

    def test_unknown_kind(self, simulator):
        with pytest.raises(ValueError):
            simulator.faults.fail_next(1, 'teapot')
        assert 'teapot' not in FAULT_KINDS


class TestBulkAccount:
    """A generated account of 100,000 incidents is quick to build and answers range queries exactly."""

    START, END, HOT = NOW - 60 * DAY, NOW, parse_time('2026-11-16T00:00:00Z')

    @pytest.fixture(scope='class')
    def built(self):
        return PagerDutyAccount.generate(
            100_000, self.START, self.END, seed=42, hot_day=self.HOT, hot_day_count=12_000, token=TOKEN
        )

    @pytest.fixture(scope='class')
    def bulk(self, built):
        with PagerDutySimulator(built) as simulator:
            session = requests.Session()
            session.headers.update(HEADERS)
            yield built, simulator, session

    def test_the_whole_account_is_built(self, built):
        assert len(built) == 100_000

    def test_generation_is_seeded(self, built):
        again = PagerDutyAccount.generate(1000, self.START, self.END, seed=42, token=TOKEN)
        twice = PagerDutyAccount.generate(1000, self.START, self.END, seed=42, token=TOKEN)
        assert again.incident(again.incident_ids()[500]) == twice.incident(twice.incident_ids()[500])

    def test_states_are_plausible(self, built, bulk):
        account, simulator, session = bulk
        window = {'since': '2026-09-27T12:00:00Z', 'until': '2026-11-26T12:00:01Z', 'total': 'true', 'limit': 1}
        totals = {
            status: session.get(
                simulator.url + '/incidents', params=dict(window, **{'statuses[]': status}), timeout=10
            ).json()['total']
            for status in ('triggered', 'acknowledged', 'resolved')
        }
        assert sum(totals.values()) == 100_000
        assert 0 < totals['triggered'] and 0 < totals['acknowledged']
        assert 0.01 < (totals['triggered'] + totals['acknowledged']) / 100_000 < 0.05
        for incident in (account.incident(i) for i in account.incident_ids()[::500]):
            created = parse_time(incident['created_at'])
            assert self.START <= created <= NOW
            if incident['resolved_at']:
                assert created < parse_time(incident['resolved_at']) <= NOW

    def test_hot_day_holds_its_incidents_and_needs_splitting(self, bulk):
        _, simulator, session = bulk
        day = {'since': '2026-11-16T00:00:00Z', 'until': '2026-11-17T00:00:00Z', 'limit': 100}
        body = session.get(simulator.url + '/incidents', params=dict(day, total='true'), timeout=10).json()
        assert body['total'] == 12_000
        past_cap = session.get(simulator.url + '/incidents', params=dict(day, offset=10_000), timeout=10)
        assert past_cap.status_code == 400 and past_cap.json()['error']['code'] == 2002

    @pytest.mark.parametrize(
        'since, until',
        [
            ('2026-10-01T00:00:00Z', '2026-10-01T06:00:00Z'),
            ('2026-11-16T11:00:00Z', '2026-11-16T12:00:00Z'),
            ('2026-09-27T00:00:00Z', '2026-09-28T00:00:00Z'),
        ],
        ids=['quiet-window', 'hot-hour', 'first-day'],
    )
    def test_range_query_is_exact(self, bulk, since, until):
        account, simulator, session = bulk
        low, high = parse_time(since), parse_time(until)
        expected = [i for i in account.incident_ids() if low <= account.created_at(i) < high]
        seen, offset = [], 0
        while True:
            params = {'since': since, 'until': until, 'limit': 100, 'offset': offset, 'time_zone': 'UTC'}
            body = session.get(simulator.url + '/incidents', params=params, timeout=10).json()
            seen += body['incidents']
            if not body['more']:
                break
            offset += 100
        assert seen, 'the window should hold incidents'
        assert all(low <= parse_time(i['created_at']) < high for i in seen)
        assert len({i['id'] for i in seen}) == len(seen)
        assert [i['id'] for i in seen] == expected


class TestInProcessClient:
    """The in-process client answers the client's reads as the API serves them to the client over HTTP."""

    def test_same_answers_as_over_http(self, account, simulator):
        resolved = account.trigger(account.checkout, 'Old outage', created_at=NOW - 3 * 3600)
        account.acknowledge(resolved)
        account.resolve(resolved)
        account.advance(60)
        open_one = account.trigger(account.search, 'Search down', priority='P2')
        account.advance(60)
        account.acknowledge(open_one)
        api = ApiClient(
            ApiTarget('pagerduty', simulator.url, {'Authorization': 'Token token=' + TOKEN}),
            RequestsWrapper({'timeout': 10}, {}),
            RequestLimits(100),
            logging.getLogger(__name__),
        )
        api.start_run(time.monotonic() + 60)
        over_http, in_process = PagerDutyClient(api), InProcessPagerDuty(account)
        since, until = NOW - DAY, account.now + 1
        reads: list[Callable[[Any], Any]] = [
            lambda client: client.log_entries(since, until, with_total=True),
            lambda client: client.list_open(),
            lambda client: client.list_open(0, since, until),
            lambda client: client.list_created(since, until, with_total=True),
            lambda client: client.get_incident(open_one),
            lambda client: client.get_incident('PNOSUCH'),
            lambda client: client.incident_log(resolved),
            lambda client: client.incident_log(open_one, NOW),
            lambda client: client.incident_log('PNOSUCH'),
        ]
        for read in reads:
            served = json.loads(json.dumps(read(over_http), default=vars).replace(simulator.url, API_URL))
            assert json.loads(json.dumps(read(in_process), default=vars)) == served
        assert in_process.now == over_http.now == account.now
        assert in_process.triggers == over_http.triggers and len(in_process.triggers) == 2
