# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The environment read once: each request goes out as it did when `requests` read it every time."""

import logging
import os

import certifi
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from requests.utils import select_proxy

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.common.environment import read_environment_once
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits

from ..fakes.server import FakeServer, Reply

PAGERDUTY = 'https://api.pagerduty.com'
DATADOG = 'https://api.datadoghq.com'
LOOPBACK = 'http://127.0.0.1:8126'
PROXY = 'http://proxy.example:3128'
BUNDLE = certifi.where()
# What `requests` reads from the environment (its proxy variables in either case, and its CA bundles).
READ = ('HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'NETRC')
TOKEN = 'Token token=u+SECRETtoken0123456789'


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch):
    """No proxy, CA bundle or netrc variable, whatever the machine running the tests sets."""
    for name in list(os.environ):
        if name.upper() in READ or name.lower().endswith('_proxy'):
            monkeypatch.delenv(name)


def wrapper(instance=None):
    return RequestsWrapper(dict({'timeout': 5}, **(instance or {})), {}, logger=logging.getLogger('test'))


def used(http, urls, monkeypatch):
    """The proxy and (for https) the CA bundle each request to `urls` goes out with, through the HTTP wrapper."""
    seen = []

    def send(adapter, request, **options):
        https = request.url.startswith('https:')
        seen.append((select_proxy(request.url, options['proxies']), options['verify'] if https else None))
        answer = requests.Response()
        answer.status_code, answer.url, answer.raw = 200, request.url, None
        return answer

    with monkeypatch.context() as patched:
        patched.setattr(requests.adapters.HTTPAdapter, 'send', send)
        for url in urls:
            http.get(url + '/incidents', persist=True)
    # Every request reached the adapter: the comparisons made of `seen` compare requests sent.
    assert len(seen) == len(urls)
    return seen


CASES = [
    # (environment, the Agent's options, URLs, whether the environment is then read once)
    pytest.param({}, {}, [PAGERDUTY, DATADOG], True, id='nothing set'),
    pytest.param({'NO_PROXY': 'internal.example'}, {}, [PAGERDUTY, DATADOG], True, id='NO_PROXY alone'),
    pytest.param({'HTTPS_PROXY': PROXY}, {}, [PAGERDUTY, DATADOG], True, id='HTTPS_PROXY'),
    pytest.param({'https_proxy': PROXY}, {}, [PAGERDUTY, DATADOG], True, id='https_proxy'),
    pytest.param({'ALL_PROXY': PROXY}, {}, [PAGERDUTY, DATADOG], True, id='ALL_PROXY'),
    pytest.param({'HTTP_PROXY': PROXY}, {}, [PAGERDUTY, DATADOG], True, id='HTTP_PROXY, https APIs'),
    pytest.param({'HTTP_PROXY': PROXY}, {}, [LOOPBACK], True, id='HTTP_PROXY, http API'),
    pytest.param(
        {'HTTP_PROXY': PROXY, 'NO_PROXY': '127.0.0.1'}, {}, [PAGERDUTY, LOOPBACK], True, id='skipped for the http API'
    ),
    pytest.param(
        {'HTTPS_PROXY': PROXY, 'NO_PROXY': 'api.pagerduty.com,datadoghq.com'},
        {},
        [PAGERDUTY, DATADOG],
        True,
        id='proxy skipped for both APIs',
    ),
    pytest.param(
        {'HTTPS_PROXY': PROXY, 'NO_PROXY': 'api.pagerduty.com'}, {}, [PAGERDUTY, DATADOG], False, id='for one API'
    ),
    pytest.param({'REQUESTS_CA_BUNDLE': BUNDLE}, {}, [PAGERDUTY, DATADOG], False, id='REQUESTS_CA_BUNDLE'),
    pytest.param({'CURL_CA_BUNDLE': BUNDLE}, {}, [PAGERDUTY], False, id='CURL_CA_BUNDLE'),
    pytest.param({'REQUESTS_CA_BUNDLE': BUNDLE}, {}, [LOOPBACK], True, id='a CA bundle, http API'),
    pytest.param(
        {'REQUESTS_CA_BUNDLE': BUNDLE}, {'tls_ca_cert': BUNDLE}, [PAGERDUTY], True, id='a CA bundle and tls_ca_cert'
    ),
    pytest.param({'REQUESTS_CA_BUNDLE': BUNDLE}, {'tls_verify': False}, [PAGERDUTY], True, id='tls_verify off'),
    pytest.param({}, {'proxy': {'https': PROXY}}, [PAGERDUTY, DATADOG], True, id='the Agent proxy'),
    pytest.param(
        {'HTTPS_PROXY': 'http://other.example:8080'},
        {'proxy': {'https': PROXY}},
        [PAGERDUTY, DATADOG],
        True,
        id='the Agent proxy and HTTPS_PROXY',
    ),
    pytest.param(
        {'ALL_PROXY': 'http://other.example:8080'},
        {'proxy': {'https': PROXY, 'no_proxy': ['api.datadoghq.com']}},
        [PAGERDUTY, DATADOG],
        True,
        id='the Agent skips its proxy for one API, ALL_PROXY comes after',
    ),
    pytest.param(
        {'HTTP_PROXY': 'http://other.example:8080'},
        {'proxy': {'https': PROXY}},
        [PAGERDUTY, LOOPBACK],
        True,
        id='the Agent proxy for https, HTTP_PROXY for the http API',
    ),
    pytest.param(
        {'ALL_PROXY': PROXY, 'NO_PROXY': 'api.datadoghq.com'},
        {'proxy': {'https': 'http://other.example:8080'}},
        [PAGERDUTY, DATADOG],
        True,
        id='the Agent proxy ahead of ALL_PROXY skipped for one API',
    ),
    pytest.param(
        {'ALL_PROXY': PROXY, 'NO_PROXY': 'api.datadoghq.com'},
        {'proxy': {'http': 'http://other.example:8080'}},
        [PAGERDUTY, DATADOG],
        False,
        id='an Agent proxy for http, ALL_PROXY skipped for one API',
    ),
]


class TestReadOnce:
    @pytest.mark.parametrize('environment, instance, urls, once', CASES)
    def test_turned_off_only_where_requests_send_the_same(self, monkeypatch, environment, instance, urls, once):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        before = used(wrapper(instance), urls, monkeypatch)
        http = wrapper(instance)
        assert read_environment_once(http, urls) is once
        assert http.session.trust_env is not once
        assert used(http, urls, monkeypatch) == before

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        environment=st.dictionaries(
            st.sampled_from(['HTTPS_PROXY', 'http_proxy', 'ALL_PROXY', 'NO_PROXY', 'REQUESTS_CA_BUNDLE']),
            st.sampled_from([PROXY, BUNDLE, 'api.pagerduty.com', '127.0.0.1,.datadoghq.com', '*', '']),
        ),
        instance=st.sampled_from(
            [
                {},
                {'proxy': {'https': PROXY}},
                {'proxy': {'http': PROXY, 'no_proxy': ['api.pagerduty.com']}},
                {'skip_proxy': True},
                {'tls_verify': False},
            ]
        ),
        urls=st.lists(st.sampled_from([PAGERDUTY, DATADOG, LOOPBACK]), min_size=1, max_size=3),
    )
    @example(environment={}, instance={}, urls=[PAGERDUTY]).via('read once')
    @example(environment={'HTTPS_PROXY': PROXY}, instance={}, urls=[PAGERDUTY]).via('a proxy read once')
    @example(
        environment={'HTTPS_PROXY': PROXY, 'NO_PROXY': 'api.pagerduty.com'}, instance={}, urls=[PAGERDUTY, DATADOG]
    ).via('read at every request')
    def test_whatever_the_environment_requests_send_the_same(self, monkeypatch, environment, instance, urls):
        with monkeypatch.context() as patched:
            for name, value in environment.items():
                patched.setenv(name, value)
            before = used(wrapper(instance), urls, monkeypatch)
            http = wrapper(instance)
            once = read_environment_once(http, urls)
            assert http.session.trust_env is not once
            assert used(http, urls, monkeypatch) == before

    def test_a_netrc_entry_no_longer_replaces_the_key(self, monkeypatch, tmp_path):
        netrc = tmp_path / 'netrc'
        netrc.write_text('machine 127.0.0.1 login someone password elsewhere\n')
        monkeypatch.setenv('NETRC', str(netrc))
        with FakeServer([('GET', '/things', lambda request: Reply(200, {}))]).start() as server:
            # As `requests` reads the environment, the netrc login goes in place of the key...
            every_time = wrapper()
            every_time.get(server.url + '/things', extra_headers={'Authorization': TOKEN}, persist=True)
            assert server.requests[-1].headers['authorization'].startswith('Basic ')
            # ...and not once the check has read the environment itself.
            http = wrapper()
            assert read_environment_once(http, [server.url])
            client = ApiClient(
                ApiTarget('pagerduty', server.url, {'Authorization': TOKEN}),
                http,
                RequestLimits(10, float('inf')),
                logging.getLogger('test'),
            )
            client.start_run(float('inf'))
            client.get('/things')
            assert server.requests[-1].headers['authorization'] == TOKEN

    def test_a_session_that_cannot_be_made_is_left_to_the_first_request(self):
        http = wrapper({'tls_ciphers': ['NO-SUCH-CIPHER']})
        assert read_environment_once(http, [PAGERDUTY]) is False
        with pytest.raises(OSError):
            http.get(PAGERDUTY + '/incidents')

    def test_a_stand_in_for_the_wrapper_is_left_alone(self):
        class StandIn:
            pass

        assert read_environment_once(StandIn(), [PAGERDUTY]) is False

    def test_read_once_at_most(self):
        http = wrapper()
        assert read_environment_once(http, [PAGERDUTY]) is True
        assert read_environment_once(http, [PAGERDUTY]) is False
        assert http.session.trust_env is False


class TestTheCheck:
    INSTANCE = {
        'pagerduty_api_url': PAGERDUTY,
        'api_token': 'u+SECRETtoken0123456789',
        'datadog_api_key': 'bench0123456789abcdef0123456789ab',
        'datadog_api_url': DATADOG,
        'env': 'prod',
    }

    def check(self):
        from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

        check = PagerdutyDoraCheck('pagerduty_dora', {}, [dict(self.INSTANCE)])
        for initialization in check.check_initializations:
            initialization()
        return check

    def test_reads_an_environment_without_proxy_once(self):
        assert self.check().http.session.trust_env is False

    def test_reads_a_proxy_for_both_apis_once(self, monkeypatch):
        monkeypatch.setenv('HTTPS_PROXY', PROXY)
        session = self.check().http.session
        assert session.trust_env is False
        assert select_proxy(PAGERDUTY, session.proxies) == select_proxy(DATADOG, session.proxies) == PROXY

    def test_leaves_a_proxy_for_one_api_to_requests(self, monkeypatch):
        monkeypatch.setenv('HTTPS_PROXY', PROXY)
        monkeypatch.setenv('NO_PROXY', 'api.pagerduty.com')
        session = self.check().http.session
        assert session.trust_env is True
        assert select_proxy(DATADOG, session.proxies) is None
