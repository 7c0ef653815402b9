# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import logging

import pytest

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.common.errors import (
    AuthError,
    BudgetExhausted,
    RateLimited,
    RequestRejected,
    TransientError,
    UnreadableResponse,
)
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiHooks, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing

from ..fakes.server import FakeServer, Reply

SECRET = 'u+SECRETtoken0123456789'


class Clock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(replies):
    """A route handler answering each request with the next reply of `replies` (the last one repeats)."""
    queue = list(replies)

    def handler(request):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def make_client(url, clock, max_requests=10, deadline=60.0, timeout=5, request_seconds=float('inf')):
    requests_seen = []
    client = ApiClient(
        ApiTarget('pagerduty', url, {'Authorization': 'Token token={}'.format(SECRET)}),
        RequestsWrapper({'timeout': timeout}, {}),
        RequestLimits(max_requests, request_seconds),
        logging.getLogger('test'),
        hooks=ApiHooks(on_request=lambda endpoint, klass: requests_seen.append((endpoint, klass))),
        timing=Timing(clock=clock, sleep=clock.sleep, jitter=lambda: 0.5),
    )
    client.start_run(clock() + deadline)
    client.seen = requests_seen
    return client


@pytest.fixture
def clock():
    return Clock()


def serve(*replies):
    return FakeServer([('GET', '/things', scripted(replies))]).start()


class TestRateLimits:
    """429 handling: wait as told when it fits, otherwise stop; never hammer."""

    def test_waits_for_ratelimit_reset_then_retries(self, clock):
        with serve(
            Reply(429, {}, {'ratelimit-reset': '7', 'ratelimit-remaining': '0'}), Reply(200, {'ok': 1})
        ) as server:
            client = make_client(server.url, clock)
            assert client.get('/things').data == {'ok': 1}
        assert clock.sleeps == [7.5]
        assert client.seen == [('/things', '4xx'), ('/things', '2xx')]

    def test_stops_when_the_wait_passes_the_deadline(self, clock):
        with serve(Reply(429, {}, {'ratelimit-reset': '50'})) as server:
            client = make_client(server.url, clock, deadline=20)
            with pytest.raises(RateLimited):
                client.get('/things')
        assert clock.sleeps == []
        assert server.count('GET') == 1

    def test_backs_off_exponentially_without_headers(self, clock):
        with serve(Reply(429, {})) as server:
            client = make_client(server.url, clock)
            with pytest.raises(RateLimited):
                client.get('/things')
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert server.count('GET') == 4

    def test_exhausted_quota_delays_the_next_request(self, clock):
        with serve(Reply(200, {}, {'ratelimit-remaining': '0', 'ratelimit-reset': '3'})) as server:
            client = make_client(server.url, clock)
            client.get('/things')
            client.get('/things')
        assert clock.sleeps == [3.0]

    def test_exhausted_quota_past_deadline_ends_the_run(self, clock):
        with serve(Reply(200, {}, {'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '59'})) as server:
            client = make_client(server.url, clock, deadline=10)
            client.get('/things')
            # Not an error of the API: the run's budget for it is spent, and the rest waits for the next run.
            with pytest.raises(BudgetExhausted, match='resuming next run'):
                client.get('/things')
        assert server.count('GET') == 1
        assert clock.sleeps == []

    def test_a_429_past_the_run_time_keeps_the_other_callers_away(self, clock):
        with serve(Reply(429, {}, {'ratelimit-reset': '50'})) as server:
            client = make_client(server.url, clock, deadline=20)
            with pytest.raises(RateLimited):
                client.get('/things')
            with pytest.raises(BudgetExhausted):
                client.get('/things')
        assert server.count('GET') == 1


def window(limit, reset=50, prefix='ratelimit-', **extra):
    """A route handler counting requests against a rate limit window of `limit`, as PagerDuty and Datadog
    advertise it: the requests left in every answer, and a 429 once none are."""
    used = []

    def handler(request):
        used.append(request)
        headers = {prefix + 'limit': str(limit), prefix + 'remaining': str(max(0, limit - len(used)))}
        if reset is not None:
            headers[prefix + 'reset'] = str(reset)
        headers.update(extra)
        return Reply(429 if len(used) > limit else 200, {}, headers)

    return handler


class TestPacing:
    """Without max_requests_per_run: a share of each advertised window, within the run's time for requests."""

    @pytest.mark.parametrize(
        'prefix, limit, taken',
        [('ratelimit-', 960, 768), ('X-RateLimit-', 10, 8), ('x-ratelimit-', 2, 2)],
        ids=['pagerduty-960', 'datadog-10', 'datadog-2'],
    )
    def test_takes_its_share_of_the_window_and_stops_when_it_resets_after_the_run(self, clock, prefix, limit, taken):
        with FakeServer([('GET', '/things', window(limit, prefix=prefix))]) as server:
            client = make_client(server.url, clock, max_requests=None, deadline=48, request_seconds=30)
            made = 0
            with pytest.raises(BudgetExhausted, match='advertised rate limit'):
                while True:
                    client.get('/things')
                    made += 1
        # A fifth of the window is left to the other users of the key, and no request met a 429.
        assert made == server.count('GET') == taken
        assert [klass for _, klass in client.seen] == ['2xx'] * taken
        assert clock.sleeps == []

    def test_a_cap_leaves_the_share_of_the_window_to_others_too(self, clock):
        with FakeServer([('GET', '/things', window(10))]) as server:
            client = make_client(server.url, clock, max_requests=100, deadline=30)
            with pytest.raises(BudgetExhausted, match='advertised rate limit'):
                for _ in range(100):
                    client.get('/things')
        assert server.count('GET') == 8

    def test_waits_for_a_window_that_resets_within_the_run(self, clock):
        with FakeServer([('GET', '/things', window(5, reset=4))]) as server:
            client = make_client(server.url, clock, max_requests=None, request_seconds=30)
            for _ in range(5):
                client.get('/things')
        assert server.count('GET') == 5
        assert clock.sleeps == [4.0]

    def test_a_window_without_reset_is_waited_for_by_its_period(self, clock):
        handler = window(5, reset=None, prefix='X-RateLimit-', **{'X-RateLimit-Period': '10'})
        with FakeServer([('GET', '/things', handler)]) as server:
            client = make_client(server.url, clock, max_requests=None, request_seconds=30)
            for _ in range(5):
                client.get('/things')
        assert clock.sleeps == [10.0]

    def test_stops_at_the_run_time_for_requests(self, clock):
        def slow(request):
            clock.now += 1.0
            return Reply(200, {})

        with FakeServer([('GET', '/things', slow)]) as server:
            client = make_client(server.url, clock, max_requests=None, deadline=48, request_seconds=5)
            with pytest.raises(BudgetExhausted, match="run's time"):
                for _ in range(100):
                    client.get('/things')
            assert server.count('GET') == 6
            client.start_run(clock() + 48)
            client.get('/things')

    def test_with_a_cap_only_the_run_deadline_bounds_its_time(self, clock):
        def slow(request):
            clock.now += 1.0
            return Reply(200, {})

        with FakeServer([('GET', '/things', slow)]) as server:
            client = make_client(server.url, clock, max_requests=100, deadline=60, request_seconds=5)
            for _ in range(10):
                client.get('/things')
        assert server.count('GET') == 10

    def test_never_waits_for_a_retry_past_the_run_time(self, clock):
        with serve(Reply(503, {})) as server:
            client = make_client(server.url, clock, max_requests=None, request_seconds=1.2)
            with pytest.raises(TransientError):
                client.get('/things')
        assert clock.sleeps == [1.0]
        assert server.count('GET') == 2


class TestBudget:
    """max_requests_per_run bounds every attempt, retries included."""

    def test_budget_bounds_retries(self, clock):
        with serve(Reply(503, {})) as server:
            client = make_client(server.url, clock, max_requests=2)
            with pytest.raises(BudgetExhausted):
                client.get('/things')
        assert server.count('GET') == 2

    def test_new_run_resets_budget(self, clock):
        with serve(Reply(200, {})) as server:
            client = make_client(server.url, clock, max_requests=1)
            client.get('/things')
            with pytest.raises(BudgetExhausted):
                client.get('/things')
            client.start_run(clock() + 60)
            client.get('/things')
        assert server.count('GET') == 2


class TestErrors:
    """Each failure becomes the error kind its caller acts on, and never carries the key."""

    @pytest.mark.parametrize(
        'reply, error',
        [
            (Reply(401, {'error': {'message': 'Authentication failed', 'code': 2006}}), AuthError),
            (Reply(403, {'error': {'message': 'Access Denied', 'code': 2010}}), AuthError),
            (Reply(404, {'error': {'message': 'Not Found', 'code': 2100}}), RequestRejected),
            (Reply(400, {'error': {'message': 'Invalid Input Provided', 'code': 2001}}), RequestRejected),
            (Reply(500, {}), TransientError),
            (Reply(200, raw=b'{"incidents": [{"id": '), TransientError),
            (Reply(200, {'incidents': []}, truncate=True), TransientError),
        ],
        ids=['401', '403', '404', '400', '500', 'bad-json', 'truncated-body'],
    )
    def test_error_kinds(self, clock, reply, error):
        with serve(reply) as server:
            client = make_client(server.url, clock)
            with pytest.raises(error) as caught:
                client.get('/things')
        assert SECRET not in str(caught.value)
        assert SECRET not in caught.value.body

    def test_a_reader_reads_the_body_and_its_value_error_is_an_unreadable_answer(self, clock):
        def read(content):
            if content.startswith(b'{"ok"'):
                return ('read', content)
            raise ValueError('not a page')

        with serve(Reply(200, {'ok': 1}), Reply(200, {'other': 1})) as server:
            client = make_client(server.url, clock)
            assert client.get('/things', read=read).data == ('read', b'{"ok": 1}')
            with pytest.raises(UnreadableResponse, match='not valid JSON'):
                client.get('/things', read=read)

    def test_timeout_is_transient(self, clock):
        with serve(Reply(200, {}, delay=3)) as server:
            client = make_client(server.url, clock, timeout=0.3, max_requests=1)
            with pytest.raises((TransientError, BudgetExhausted)):
                client.get('/things')

    def test_sends_the_key_only_to_its_own_host_and_never_follows_redirects(self, clock):
        with FakeServer([('GET', '/steal', lambda r: Reply(200, {}))]) as other:
            redirect = Reply(302, {}, {'Location': other.url + '/steal'})
            with serve(redirect) as server:
                client = make_client(server.url, clock)
                with pytest.raises(RequestRejected, match='redirect'):
                    client.get('/things')
                assert server.requests[0].headers['authorization'] == 'Token token={}'.format(SECRET)
        assert other.requests == []
