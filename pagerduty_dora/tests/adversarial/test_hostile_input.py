# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Hostile input end to end: URLs that parsers read apart, mentions, forged log lines, surrogates, huge
ids, accepted writes with odd bodies, unreadable answers and catalog files built to exhaust the Agent.

Each test runs the real check against the loopback fakes (or a hostile file) and asserts what a user
needs: no error out of the run but the check's own, every valid record exactly as in a clean run, a
warning and a count for the bad one, and bounded memory.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.catalog import files as catalog_files
from datadog_checks.pagerduty_dora.common import http as api_module
from datadog_checks.pagerduty_dora.common.errors import RequestRejected, TransientError, UnreadableResponse
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.common.text import MENTION_SIGN, for_log
from datadog_checks.pagerduty_dora.common.urls import UnsafeUrl, is_loopback_host
from datadog_checks.pagerduty_dora.config_models import validators
from datadog_checks.pagerduty_dora.datadog.dora import failure_id
from datadog_checks.pagerduty_dora.demo.server import LoopbackServer

from ..fakes.server import FakeServer, Reply, Request
from ..harness import DD_API_KEY, World, event_keys, stored_queue
from .test_hardening import TrickleServer

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

MB = 1024 * 1024


# Helpers ----------------------------------------------------------------------------------------


def rewrite(server: FakeServer, path: str, transform: Callable[[Request, Reply], Reply]) -> None:
    """Let `server` answer requests to `path` as usual, then hand each reply to `transform` before it is sent."""

    def fault(request: Request) -> Reply | None:
        if request.path != path:
            return None
        # The routes answer; the request is already recorded once, by the server that called this fault.
        reply: Any = LoopbackServer.dispatch(server, request)
        return transform(request, reply)

    server.fault = fault


def add_to_lists(world: World, *bad: Any) -> None:
    """Every non-empty `GET /incidents` page lists `bad` before the incidents the account really has."""

    def mix(request: Request, reply: Reply) -> Reply:
        if reply.status == 200 and reply.body['incidents']:
            reply.body['incidents'] = list(bad) + reply.body['incidents']
        return reply

    rewrite(world.pagerduty.server, '/incidents', mix)


def live_check(world: World, dd_run_check: Any, **options: Any) -> Any:
    """A check past its first run (which only records), the clock a minute on."""
    check = world.check(**options)
    dd_run_check(check)
    world.account.advance(60)
    return check


def skipped(aggregator: Any) -> float:
    return sum(m.value for m in aggregator.metrics('pagerduty_dora.incidents.skipped'))


def log_lines(records: list[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records]


@pytest.fixture
def service(world: World) -> str:
    team = world.account.add_team('Payments')
    return world.account.add_service('Checkout API', team_ids=[team])


@pytest.fixture
def clean_run(world: World, service: str, dd_run_check: Any, aggregator: Any) -> Callable[[], tuple[dict, dict]]:
    """The event and DORA failure a clean incident gives, to compare the same incident beside a bad one."""

    def expected() -> tuple[dict, dict]:
        other = World()
        try:
            team = other.account.add_team('Payments')
            other_service = other.account.add_service('Checkout API', team_ids=[team])
            check = other.check()
            dd_run_check(check)
            other.account.advance(60)
            before = len(aggregator.events)
            incident = other.account.trigger(other_service, 'Checkout latency above SLO', priority='P1')
            other.account.advance(60)
            dd_run_check(check)
            (event,) = aggregator.events[before:]
            failure = dict(other.dora.failures[failure_id(incident)])
        finally:
            other.close()
        aggregator.reset()
        return event, failure

    return expected


def comparable(event: dict) -> dict:
    """An event without what differs between two accounts: ids, URLs, times, and the tags naming them."""
    drop = ('aggregation_key', 'timestamp', 'msg_text')
    named = ('pagerduty_transition:', 'pagerduty_dora_instance:')
    found = {k: v for k, v in event.items() if k not in drop}
    found['tags'] = [tag for tag in event.get('tags', []) if not tag.startswith(named)]
    return found


# 1. URLs that two parsers read apart -----------------------------------------------------------

# Accepted as loopback by the standard library, sent to `evil.example` by urllib3 (which requests uses).
SPLIT_URLS = [
    'http://evil.example:{port}\\@127.0.0.1:{port}',
    'http://evil.example:{port}\\@localhost:{port}',
    'http://evil.example:{port}\\@[::1]:{port}',
]
SPLIT_IDS = ['backslash-before-loopback', 'backslash-before-localhost', 'backslash-before-ipv6']


class TestUrlsParsersReadApart:
    """A URL read as loopback by one parser and as another host by the one that sends is refused, unsent."""

    @pytest.mark.parametrize('option', ['pagerduty_api_url', 'datadog_api_url'])
    @pytest.mark.parametrize('template', SPLIT_URLS, ids=SPLIT_IDS)
    def test_option_is_refused_and_nothing_leaves_loopback(
        self, world, service, dd_run_check, loopback_only, option, template
    ):
        world.account.trigger(service, 'Down')
        url = template.format(port=80)
        check = world.check(**{option: url})
        with pytest.raises(Exception) as raised:
            dd_run_check(check)
        assert loopback_only == []
        assert 'ConfigurationError' in str(raised.value) and option in str(raised.value)
        assert world.account.token not in str(raised.value) and DD_API_KEY not in str(raised.value)
        assert world.pagerduty.requests == [] and world.datadog.requests == []

    def test_agent_site_is_refused_by_the_client(self, world, dd_run_check, datadog_agent, loopback_only):
        # Without `datadog_api_url` the URL is built from the Agent's `site`; only `ApiClient` can check it.
        datadog_agent._config['site'] = 'evil.example\\@127.0.0.1'
        instance = world.instance()
        del instance['datadog_api_url']
        from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

        check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
        with pytest.raises(Exception, match='ConfigurationError') as raised:
            dd_run_check(check)
        assert loopback_only == []
        assert 'datadog API: refusing the base URL' in str(raised.value)
        assert world.pagerduty.requests == [] and world.datadog.requests == []

    @pytest.mark.parametrize(
        'url',
        [
            'http://evil.example:80\\@127.0.0.1',
            'https://evil.example\\@api.pagerduty.com',
            'http://127.0.0.1:80@evil.example',
            'https://user:secret@api.pagerduty.com',
            'http://evil.example#@127.0.0.1',
            'http://evil.example?@127.0.0.1',
            'http://127.0.0.1\t.evil.example',
            'http://127.0.0.1\n.evil.example',
            'http://127.0.0.1 .evil.example',
            'http://１２７.0.0.1',
            'http://127.0.0.1%2F@evil.example',
            'https://api.pagerduty.com?x=1',
            'https://[::1',
            'http://evil.example',
        ],
        ids=[
            'backslash',
            'backslash-https',
            'userinfo',
            'credentials',
            'fragment',
            'query-at',
            'tab',
            'newline',
            'space',
            'fullwidth-digits',
            'percent-at',
            'query',
            'broken-ipv6',
            'plain-http-public',
        ],
    )
    def test_client_refuses_the_base_url(self, url, loopback_only):
        with pytest.raises(UnsafeUrl, match='pagerduty API: refusing the base URL'):
            ApiClient(
                ApiTarget('pagerduty', url, {'Authorization': 'Token token=u+pdUrlToken_123456'}),
                RequestsWrapper({'timeout': 1}, {}),
                RequestLimits(1),
                logging.getLogger(__name__),
            )
        assert loopback_only == []

    @example('http://evil.example:80\\@127.0.0.1')
    @example('http://evil.example:80\\@[::1]:80')
    @given(
        st.lists(
            st.sampled_from(
                [
                    'http://',
                    'https://',
                    'evil.example',
                    '127.0.0.1',
                    'localhost',
                    '[::1]',
                    ':80',
                    ':',
                    '@',
                    '\\',
                    '/',
                    '#',
                    '?',
                    '%40',
                    '%2F',
                    '.',
                    ' ',
                    '\t',
                    'x',
                    '[',
                    ']',
                    '\u3002',
                    '\uff0e',
                ]
            ),
            min_size=1,
            max_size=8,
        ).map(''.join)
    )
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def test_every_accepted_url_is_read_alike(self, url):
        from urllib.parse import urlsplit

        from urllib3.util import parse_url

        try:
            accepted = validators.instance_pagerduty_api_url(url)
        except ValueError:
            return
        sent = parse_url(accepted)
        read = urlsplit(accepted)
        assert (sent.host or '').strip('[]').lower() == (read.hostname or '').lower()
        assert sent.port == read.port and sent.auth is None
        if (sent.scheme or '').lower() == 'http':
            assert is_loopback_host(sent.host or '')


# 2. Mentions -----------------------------------------------------------------------------------

MENTION = re.compile(r'@[\w.+-]')


class TestMentions:
    """`@here`, `@slack-…` and `@user@example.com` from PagerDuty never reach an event as a mention."""

    def test_no_mention_survives(self, world, dd_run_check, aggregator, clean_run):
        expected_event, expected_failure = clean_run()
        account = world.account
        team = account.add_team('@channel responders')
        loud = account.add_service('@oncall-payments', team_ids=[team])
        quiet = account.add_service('Checkout API', team_ids=[account.add_team('Payments')])
        check = live_check(world, dd_run_check)
        title = '@here checkout down, ping @slack-ops-alerts and @user@example.com'
        good = account.trigger(quiet, 'Checkout latency above SLO', priority='P1')
        bad = account.trigger(loud, title, priority='P1')
        account.advance(60)
        dd_run_check(check)
        account.acknowledge(bad)
        account.advance(60)
        dd_run_check(check)

        events = [e for e in aggregator.events if e['aggregation_key'] == bad]
        assert [e['alert_type'] for e in events] == ['error', 'warning']
        for field in ('msg_title', 'msg_text'):
            shown = '\n'.join(e[field] for e in events)
            assert MENTION.findall(shown) == []
        title_shown = events[0]['msg_title']
        assert 'here checkout down' in title_shown and title_shown.count(MENTION_SIGN) == 4
        text = events[0]['msg_text']
        assert MENTION_SIGN + 'oncall-payments' in text and MENTION_SIGN + 'channel responders' in text
        # The incident itself is delivered as written: only event text is for people to be notified by.
        assert world.dora.failures[failure_id(bad)]['name'] == title
        (good_event,) = [e for e in aggregator.events if e['aggregation_key'] == good]
        assert comparable(good_event) == comparable(expected_event)
        good_failure = dict(world.dora.failures[failure_id(good)], id=None)
        assert good_failure == dict(expected_failure, id=None)


# 3. Forged log lines ---------------------------------------------------------------------------


class TestForgedLogLines:
    """CR/LF and other control characters from PagerDuty never start a line of the Agent log."""

    def test_incident_id_and_service_name(self, world, service, dd_run_check, aggregator, caplog):
        account = world.account
        forged = account.add_service('Checkout\r\n2026-11-02 12:00:00 UTC | CORE | ERROR | forged', team_ids=[])
        check = live_check(world, dd_run_check)
        caplog.set_level(logging.DEBUG)
        good = account.trigger(service, 'Checkout latency above SLO', priority='P1')
        named = account.trigger(forged, 'Forged service name')
        template = account.incident(good, api_url=world.pagerduty.url)
        bad = dict(template, id='PBAD\r\nERROR | forged\x1b[2J\u2028line', status='snoozed')
        add_to_lists(world, bad)
        account.advance(60)
        dd_run_check(check)

        lines = log_lines(caplog.records) + list(check.warnings)
        assert [line for line in lines if re.search('[\r\n\x1b\u2028]', line)] == []
        warning = [w for w in check.warnings if w.startswith('Skipped PagerDuty incident')]
        assert warning == ["Skipped PagerDuty incident PBAD\\x0d\\x0aERROR | forged\\x1b[2J\\u2028line: unusable id"]
        debug = [line for line in log_lines(caplog.records) if 'Forged service name' in line or 'forged' in line]
        assert debug == [
            'Incident #2 triggered (mapping_rule=fallback service=Checkout\\x0d\\x0a2026-11-02 12:00:00 UTC | CORE '
            '| ERROR | forged team=None env=None)',
            'Skipped PagerDuty incident PBAD\\x0d\\x0aERROR | forged\\x1b[2J\\u2028line: unusable id',
        ]
        assert set(event_keys(aggregator)) == {(good, 'triggered'), (named, 'triggered')}
        assert skipped(aggregator) == 1


# 4. Lone surrogates ----------------------------------------------------------------------------


def _title(raw: dict) -> None:
    raw['title'] = 'Checkout \ud800 latency'


def _service(raw: dict) -> None:
    raw['service'] = dict(raw['service'], summary='Checkout \udfff API', name='Checkout \udfff API')


def _team(raw: dict) -> None:
    raw['teams'] = [dict(raw['teams'][0], summary='Pay\udc00ments', name='Pay\udc00ments')]


def _priority(raw: dict) -> None:
    raw['priority'] = dict(raw['priority'], summary='P\ud8001', name='P\ud8001')


SURROGATE_FIELDS = [('title', _title), ('service-name', _service), ('team-name', _team), ('priority', _priority)]


class TestLoneSurrogates:
    """A lone UTF-16 surrogate in any text field: the run goes on, text is cleaned, a bad id is skipped."""

    @pytest.mark.parametrize('damage', [d for _, d in SURROGATE_FIELDS], ids=[n for n, _ in SURROGATE_FIELDS])
    def test_text_field(self, world, service, dd_run_check, aggregator, datadog_agent, damage):
        account = world.account
        check = live_check(world, dd_run_check)
        good = account.trigger(service, 'Checkout latency above SLO', priority='P1')
        raw = account.incident(good, api_url=world.pagerduty.url)
        raw['id'] = 'PSURR01'
        damage(raw)
        add_to_lists(world, raw)
        # Listed only (no log entry shows it): reconciliation takes it up once the feed has read past its creation.
        for _ in range(6):
            account.advance(60)
            dd_run_check(check)

        assert failure_id(good) in world.dora.failures
        # The damaged incident is an incident like any other, its text with U+FFFD for the surrogate.
        failure = world.dora.failures[failure_id('PSURR01')]
        submitted = json.dumps([failure, aggregator.events, datadog_agent._cache], ensure_ascii=False)
        submitted.encode('utf-8')
        assert '\ufffd' in json.dumps(failure, ensure_ascii=False) + json.dumps(
            [m.tags for m in aggregator.metrics('pagerduty_dora.mapping.matches')], ensure_ascii=False
        )
        assert skipped(aggregator) == 0

    def test_incident_id(self, world, service, dd_run_check, aggregator, datadog_agent):
        account = world.account
        check = live_check(world, dd_run_check)
        good = account.trigger(service, 'Checkout latency above SLO', priority='P1')
        raw = dict(account.incident(good, api_url=world.pagerduty.url), id='PSURR\ud800')
        add_to_lists(world, raw)
        for _ in range(3):
            account.advance(60)
            dd_run_check(check)

        assert event_keys(aggregator) == {(good, 'triggered'): 1}
        assert set(world.dora.failures) == {failure_id(good)}
        assert [w for w in check.warnings if not w.startswith('No `env` is set')] == [
            'Skipped PagerDuty incident PSURR\\ud800: unusable id'
        ]
        assert skipped(aggregator) == 3
        json.dumps(datadog_agent._cache, ensure_ascii=False).encode('utf-8')


# 5. Huge ids -----------------------------------------------------------------------------------


class TestHugeIds:
    """A malformed incident with a 2 MB id: bounded warnings, and memory that does not grow run after run."""

    def test_warning_and_memory_are_bounded(self, world, service, dd_run_check, aggregator):
        account = world.account
        check = live_check(world, dd_run_check)
        good = account.trigger(service, 'Checkout latency above SLO', priority='P1')
        template = account.incident(good, api_url=world.pagerduty.url)
        runs = 6
        grown = []
        tracemalloc.start()
        try:
            for run in range(runs):
                # A new id each run: nothing may be kept of the last one.
                add_to_lists(world, dict(template, id=str(run) * (2 * MB), status='snoozed'))
                account.advance(60)
                dd_run_check(check)
                # A page lives in reference cycles (response, connection) until a collection.
                gc.collect()
                grown.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()

        assert event_keys(aggregator) == {(good, 'triggered'): 1}
        assert skipped(aggregator) == runs
        warnings = [w for w in check.warnings if w.startswith('Skipped PagerDuty incident')]
        assert len(warnings) == runs
        assert max(len(w) for w in warnings) < 200
        assert warnings[0] == 'Skipped PagerDuty incident {}…(2097152 characters): unusable id'.format('0' * 64)
        # Each run held its page (a few MB) and let it go; what stays from run 2 to the last is small.
        assert grown[-1] - grown[1] < MB


# 6. Accepted writes whose body is not JSON -----------------------------------------------------

ACCEPTED_BODIES = [
    (202, b'Accepted'),
    (202, b'<html><body>Accepted</body></html>'),
    (200, b'{"data": '),
    (201, b'\xff\xfe not utf-8'),
]
ACCEPTED_IDS = ['text', 'html', 'cut-json', 'not-utf-8']


class TestAcceptedWrites:
    """A 2xx to a DORA post is a delivery whatever its body: the failure is not posted again."""

    @pytest.mark.parametrize('status, body', ACCEPTED_BODIES, ids=ACCEPTED_IDS)
    def test_failure_delivered_once(self, world, service, dd_run_check, aggregator, status, body):
        def odd_body(request: Request, reply: Reply) -> Reply:
            return Reply(status, raw=body, headers={'Content-Type': 'text/html'}) if reply.status < 300 else reply

        rewrite(world.datadog, '/api/v2/dora/failure', odd_body)
        check = live_check(world, dd_run_check)
        incident = world.account.trigger(service, 'Checkout latency above SLO', priority='P1')
        for _ in range(3):
            world.account.advance(60)
            dd_run_check(check)

        assert failure_id(incident) in world.dora.failures
        assert world.datadog.count('POST', '/api/v2/dora/failure') == 1
        assert sum(m.value for m in aggregator.metrics('pagerduty_dora.dora.submitted')) == 1
        assert aggregator.metrics('pagerduty_dora.dora.transient_errors') == []
        assert stored_queue(check).keys() == []

    def test_removal_delivered_once(self, world, service, dd_run_check, aggregator):
        from ..harness import DD_APP_KEY

        def odd_body(request: Request, reply: Reply) -> Reply:
            return Reply(200, raw=b'<html>Deleted</html>') if reply.status < 300 else reply

        check = live_check(world, dd_run_check, datadog_app_key=DD_APP_KEY)
        incident = world.account.trigger(service, 'Down')
        world.account.advance(60)
        dd_run_check(check)
        rewrite(world.datadog, '/api/v2/dora/failure/{}'.format(failure_id(incident)), odd_body)
        world.account.delete(incident)
        for _ in range(3):
            world.account.advance(3600)
            dd_run_check(check)
        assert world.datadog.count('DELETE', '/api/v2/dora/failure') == 1
        assert sum(m.value for m in aggregator.metrics('pagerduty_dora.dora.removed')) == 1


# 7. Unreadable answers at the client level -----------------------------------------------------

UNREADABLE = [
    b'<html>Bad gateway</html>',
    b'{"incidents": [',
    b'[' * 12_000 + b']' * 12_000,
    b'\xff\xfe\x00{',
    b'{"total": ' + b'9' * 5000 + b'}',
]
UNREADABLE_IDS = ['html', 'cut', 'nested-12000', 'not-utf-8', 'integer-past-digit-limit']


def client_for(server: FakeServer, deadline: float = 30.0) -> ApiClient:
    client = ApiClient(
        ApiTarget('pagerduty', server.url, {'Authorization': 'Token token=u+pdUnreadable_0987'}),
        RequestsWrapper({'timeout': 5}, {}),
        RequestLimits(10),
        logging.getLogger(__name__),
        timing=Timing(sleep=lambda seconds: None),
    )
    client.start_run(time.monotonic() + deadline)
    return client


class TestUnreadableResponse:
    """A 2xx whose body does not read as JSON is an `UnreadableResponse`, unless the caller needs no body."""

    @pytest.mark.parametrize('body', UNREADABLE, ids=UNREADABLE_IDS)
    def test_get_raises_unreadable(self, body):
        with FakeServer([('GET', '/incidents', lambda request: Reply(200, raw=body))]) as server:
            client = client_for(server)
            with pytest.raises(UnreadableResponse, match='incidents answered a body that is not valid JSON') as raised:
                client.get('/incidents', endpoint='incidents')
        assert isinstance(raised.value, TransientError)
        assert client.limits.used == 1

    def test_body_over_the_cap_is_unreadable(self, monkeypatch):
        monkeypatch.setattr(api_module, 'MAX_BODY_BYTES', 64 * 1024)
        with FakeServer([('GET', '/incidents', lambda request: Reply(200, raw=b' ' * (256 * 1024)))]) as server:
            with pytest.raises(UnreadableResponse, match='larger than'):
                client_for(server).get('/incidents')

    @pytest.mark.parametrize('body', UNREADABLE, ids=UNREADABLE_IDS)
    def test_write_without_json_is_accepted(self, body):
        with FakeServer([('POST', '/api/v2/dora/failure', lambda request: Reply(202, raw=body))]) as server:
            response = client_for(server).post('/api/v2/dora/failure', {'data': {}}, expect_json=False)
        assert (response.status, response.data) == (202, None)

    def test_write_without_json_stops_reading_at_the_deadline(self):
        with TrickleServer() as server:
            response = client_for(server, deadline=0.5).post('/incidents', {}, expect_json=False)
        assert response.status == 200 and server.sent >= 1

    def test_paths_off_the_configured_host_are_refused(self, loopback_only):
        with FakeServer([('GET', '/incidents', lambda request: Reply(200, {}))]) as server:
            client = client_for(server)
            for path in ('http://evil.example/incidents', 'incidents', '.evil.example/incidents'):
                with pytest.raises(RequestRejected, match='not a path on the configured host'):
                    client.get(path)
            assert server.requests == []
        assert loopback_only == []


# 8. Catalog files built to exhaust the Agent -----------------------------------------------------

# 436 bytes that expand to 9**9 strings; the loader's message formatted the expanded `apiVersion`.
ALIAS_BOMB = '\n'.join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + ['{}: &{} [{}]'.format(c, c, ','.join(['*' + p] * 9)) for p, c in zip('abcdefg', 'bcdefgh', strict=False)]
    + ['apiVersion: [{}]'.format(','.join(['*h'] * 9)), 'kind: service', 'metadata: {name: bomb}', '']
)
# The same at six levels (9**6 strings): small enough for the old code to finish, and show its 4 MB warning.
SMALL_BOMB = '\n'.join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + ['{}: &{} [{}]'.format(c, c, ','.join(['*' + p] * 9)) for p, c in zip('abcd', 'bcde', strict=False)]
    + ['apiVersion: [{}]'.format(','.join(['*e'] * 9)), 'kind: service', 'metadata: {name: bomb}', '']
)
GOOD_DEFINITION = (
    'schema-version: v2.2\ndd-service: payments-api\nteam: payments\n'
    'integrations:\n  pagerduty:\n    service-url: https://acme.pagerduty.com/service-directory/{}\n'
)


def _bomb(path: Path) -> None:
    path.write_text(ALIAS_BOMB, encoding='utf-8')


def _small_bomb(path: Path) -> None:
    path.write_text(SMALL_BOMB, encoding='utf-8')


def _huge(path: Path) -> None:
    # Sparse: 200 MB to whoever reads it, nothing on the disk.
    with open(path, 'wb') as f:
        f.truncate(200 * MB)


def _deep(path: Path) -> None:
    path.write_text('[' * 600 + ']' * 600, encoding='utf-8')


def _recursive(path: Path) -> None:
    path.write_text('apiVersion: &a [*a]\nkind: service\n', encoding='utf-8')


HOSTILE_FILES = [
    ('alias-bomb', _bomb, 'expands YAML aliases to more than 100,000 nodes'),
    ('small-alias-bomb', _small_bomb, 'expands YAML aliases to more than 100,000 nodes'),
    ('200-mb', _huge, 'is larger than 4 MB, the most a catalog file may hold'),
    ('deeply-nested', _deep, 'is nested too deeply to be read'),
    ('recursive-alias', _recursive, 'holds a YAML alias to a node that contains it'),
]


class TestHostileCatalogFiles:
    """A catalog file built to exhaust memory or time is refused with a warning; the other files map as before."""

    @pytest.mark.parametrize(
        'make, problem', [(m, p) for _, m, p in HOSTILE_FILES], ids=[i for i, _, _ in HOSTILE_FILES]
    )
    def test_file_is_refused_and_the_others_used(self, world, service, dd_run_check, tmp_path, make, problem):
        folder = tmp_path / 'catalog'
        folder.mkdir()
        (folder / 'payments.yaml').write_text(GOOD_DEFINITION.format(service), encoding='utf-8')
        make(folder / 'zz-hostile.yaml')
        check = world.check(catalog_files=[str(folder / '*.yaml')])
        tracemalloc.start()
        try:
            # The first run reads the catalog files.
            dd_run_check(check)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        hostile = str(folder / 'zz-hostile.yaml')
        warnings = [w for w in check.get_warnings() if hostile in w]
        world.account.advance(60)
        incident = world.account.trigger(service, 'Checkout latency above SLO', priority='P1')
        world.account.advance(60)
        dd_run_check(check)

        failure = world.dora.failures[failure_id(incident)]
        assert (failure.get('services'), failure.get('team')) == (['payments-api'], 'payments')
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith('Skipping catalog file {}: it {}'.format(hostile, problem))
        assert len(warnings[0]) < 300
        assert peak < 50 * MB

    def test_time_budget_reads_every_file_in_turn(self, tmp_path, monkeypatch):
        for name in ('a', 'b', 'c'):
            (tmp_path / '{}.json'.format(name)).write_text(
                json.dumps({'schema-version': 'v2.2', 'dd-service': name}), encoding='utf-8'
            )
        ticks = iter(range(1000))
        monkeypatch.setattr(catalog_files, 'TIME_BUDGET', 5.0)
        files = catalog_files.CatalogFiles([str(tmp_path / '*.json')], monotonic=lambda: float(next(ticks)))
        first = {s.name for s in files.load(now=100.0)}
        unread_first = [Path(r.path).name for r in files.reports if r.problem]
        second = {s.name for s in files.load(now=200.0)}
        unread_second = [Path(r.path).name for r in files.reports if r.problem]

        # One clock reading per file matched and per file read: the third file is out of time, and is
        # read first by the next refresh, where the second file keeps its last good copy instead.
        assert (first, unread_first) == ({'a', 'b'}, ['c.json'])
        assert (second, unread_second) == ({'a', 'b', 'c'}, ['b.json'])
        assert files.copies[str(tmp_path / 'c.json')].loaded_at == 200.0
        assert files.copies[str(tmp_path / 'b.json')].loaded_at == 100.0


class TestForLog:
    """`for_log` escapes what could forge a log line and bounds the rest."""

    @pytest.mark.parametrize(
        'value, expected',
        [
            ('P1\r\nERROR', 'P1\\x0d\\x0aERROR'),
            ('bidi\u202eevil', 'bidi\\u202eevil'),
            ('lone\ud800', 'lone\\ud800'),
            ('ok ünïcode', 'ok ünïcode'),
            ('x' * 300, 'x' * 200 + '…(300 characters)'),
            (None, 'None'),
            ([[[['deep']]]], "[[[[...]]]]"),
        ],
        ids=['crlf', 'bidi', 'surrogate', 'unicode', 'long', 'none', 'nested'],
    )
    def test_for_log(self, value, expected):
        assert for_log(value) == expected
        for_log(value).encode('utf-8')
