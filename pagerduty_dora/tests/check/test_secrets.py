# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`api_token`, `datadog_api_key` and `datadog_app_key` never leave the Authorization headers they are sent in."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from ..fakes.pagerduty import PagerDutyAccount
from ..fakes.server import Reply, Request
from ..harness import DD_API_KEY, DD_APP_KEY, START, World
from ..paths import PACKAGE

pytestmark = [pytest.mark.usefixtures('datadog_agent', 'simulated_run'), pytest.mark.slow]

# Shaped like real keys and unlike anything else a run prints, so a plain substring search finds a leak.
PD_TOKEN = 'u+pdSecretsSuiteToken_Zq81Xv'
SECRETS = (PD_TOKEN, DD_API_KEY, DD_APP_KEY)


@pytest.fixture
def world():
    world = World(PagerDutyAccount(now=START, token=PD_TOKEN))
    yield world
    world.close()


def echo_headers(status: int, method: str | None = None):
    """A fault that answers `status` with a body quoting every request header back, as a broken proxy might."""

    def fault(request: Request) -> Reply | None:
        if method is not None and request.method != method:
            return None
        return Reply(status, {'errors': ['echo'], 'received_headers': request.headers})

    return fault


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def log_text(records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return '\n'.join(lines)


def submitted_text(aggregator: Any) -> str:
    parts = [json.dumps(aggregator.events, default=str)]
    for name in aggregator.metric_names:
        parts.extend(' '.join(m.tags) for m in aggregator.metrics(name))
    for name in list(aggregator._service_checks):
        parts.extend(' '.join(s.tags) + ' ' + str(s.message) for s in aggregator.service_checks(name))
    return '\n'.join(parts)


class TestLifecycleLeaksNothing:
    """A whole lifecycle with every error path, at DEBUG with `log_requests`: no secret anywhere."""

    def test_full_lifecycle(self, world, dd_run_check, aggregator, datadog_agent, caplog):
        caplog.set_level(logging.DEBUG)
        account = world.account
        service = account.add_service('Checkout API', team_ids=[account.add_team('Payments')])
        options = {'log_requests': True, 'datadog_app_key': DD_APP_KEY, 'tags': ['team:sre']}
        check = world.check(**options)
        reports = []

        def run(expect_error: bool = False) -> None:
            account.advance(60)
            reports.append(check.run())
            assert bool(json.loads(reports[-1] or '[]')) == expect_error, reports[-1]

        run()
        incident = account.trigger(service, 'Checkout latency above SLO', priority='P1')
        run()
        account.acknowledge(incident)
        run()
        # DORA refuses the post with a body echoing the headers it received (the API key among them).
        world.datadog.fault = echo_headers(400, 'POST')
        account.resolve(incident)
        run()
        world.datadog.fault = None
        # The catalog refuses the application key (403), with the headers echoed; the last good copy is
        # used, and the run ends with the error of its CRITICAL service check.
        world.catalog.catalog_read = False
        world.datadog.fault = lambda request: echo_headers(403)(request) if request.method == 'GET' else None
        account.advance(600)
        account.reopen(incident)
        run(expect_error=True)
        world.datadog.fault = None
        world.catalog.catalog_read = True
        # PagerDuty answers 401 echoing the Authorization header, then a 500 that does the same.
        world.pagerduty.server.fault = echo_headers(401)
        run(expect_error=True)
        world.pagerduty.server.fault = echo_headers(500)
        run(expect_error=True)
        world.pagerduty.server.fault = None
        run()

        assert world.dora.failures and aggregator.events, 'the lifecycle must have produced output'
        assert any('rejected' in r.getMessage() for r in caplog.records), 'the DORA 4xx path must have run'
        assert any('403' in w for w in check.warnings), check.warnings
        assert any('401 Unauthorized' in (r or '') for r in reports), reports
        assert any('Sending GET request to' in r.getMessage() for r in caplog.records), 'log_requests is on'
        assert leaks(log_text(caplog.records)) == []
        assert leaks(submitted_text(aggregator)) == []
        assert leaks('\n'.join(check.warnings)) == []
        assert leaks('\n'.join(r or '' for r in reports)) == []
        assert leaks(json.dumps(datadog_agent._cache)) == []
        assert len(datadog_agent._cache) >= 2


class TestDryRunLeaksNothing:
    """`--dry-run` output, verbose logs included, never shows a secret, even when an API echoes it."""

    @pytest.mark.parametrize('fault', [None, 401], ids=['ok', 'pagerduty-401-echo'])
    @pytest.mark.parametrize('as_json', [False, True], ids=['text', 'json'])
    def test_dry_run(self, world, tmp_path, fault, as_json):
        account = world.account
        service = account.add_service('Checkout API', team_ids=[account.add_team('Payments')])
        account.trigger(service, 'Checkout latency above SLO', priority='P1')
        if fault:
            world.pagerduty.server.fault = echo_headers(fault)
        instance = world.instance(log_requests=True, datadog_app_key=DD_APP_KEY)
        conf = tmp_path / 'conf.yaml'
        conf.write_text(yaml.safe_dump({'init_config': {}, 'instances': [instance]}), encoding='utf-8')
        command = [sys.executable, '-m', 'datadog_checks.pagerduty_dora', '--config', str(conf), '--dry-run', '-v']
        result = subprocess.run(command + (['--json'] if as_json else []), capture_output=True, text=True, timeout=60)
        assert (result.returncode != 0) == bool(fault), result.stderr[-2000:]
        assert 'Sending GET request to' in result.stderr
        assert leaks(result.stdout + result.stderr) == []


class TestResolvedSecrets:
    """The Agent resolves `ENC[...]` before the check runs: the check only ever sees, and needs, plain strings."""

    def test_no_module_but_the_command_line_knows_the_enc_form(self):
        knowing = sorted(p.name for p in PACKAGE.rglob('*.py') if 'ENC[' in p.read_text(encoding='utf-8'))
        # The command line has no Agent to resolve them, so it says so instead of sending `ENC[...]` as a key.
        assert knowing == ['main.py']

    def test_resolved_values_behave_like_any_value(self, world, dd_run_check, aggregator):
        account = world.account
        service = account.add_service('Checkout API')
        check = world.check()
        dd_run_check(check)
        account.advance(60)
        incident = account.trigger(service, 'Down')
        account.advance(60)
        dd_run_check(check)
        assert [e['aggregation_key'] for e in aggregator.events] == [incident]
        sent = {r.headers.get('authorization') for r in world.pagerduty.requests}
        assert sent == {'Token token={}'.format(PD_TOKEN)}
        assert {r.headers.get('dd-api-key') for r in world.datadog.requests} == {DD_API_KEY}

    def test_unresolved_enc_value_is_just_a_wrong_key(self, world, dd_run_check):
        # Without a secret backend the Agent passes the text on; it is sent as is, refused, and never echoed.
        raw = 'ENC[pagerduty_api_token]'
        check = world.check(api_token=raw)
        with pytest.raises(Exception, match='401 Unauthorized') as raised:
            dd_run_check(check)
        assert {r.headers.get('authorization') for r in world.pagerduty.requests} == {'Token token=' + raw}
        assert raw not in str(raised.value)
        assert not any(raw in w for w in check.warnings)

    def test_cursor_is_keyed_on_the_resolved_token_only_as_a_hash(self, world):
        first, second = world.check(), world.check(tags=['other:tag'], timeout=9)
        assert first.persistent_cache_id() == second.persistent_cache_id()
        assert PD_TOKEN not in first.persistent_cache_id()
        assert world.check(api_token=PD_TOKEN + 'x').persistent_cache_id() != first.persistent_cache_id()


class TestEchoedErrorBodies:
    """An error body that quotes the request's credentials back is masked before anyone can log it."""

    @pytest.mark.parametrize('status', [400, 401, 500], ids=['rejected', 'auth', 'server-error'])
    def test_error_body_is_redacted(self, status):
        from datadog_checks.base.utils.http import RequestsWrapper
        from datadog_checks.pagerduty_dora.common.errors import ApiError
        from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
        from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
        from datadog_checks.pagerduty_dora.pagerduty.client import auth_headers

        from ..fakes.server import FakeServer

        with FakeServer([('GET', '/incidents', echo_headers(status))]) as server:
            client = ApiClient(
                ApiTarget('pagerduty', server.url, dict(auth_headers(PD_TOKEN), **{'X-Echo-Key': DD_APP_KEY})),
                RequestsWrapper({'timeout': 5}, {}),
                RequestLimits(10),
                logging.getLogger(__name__),
                timing=Timing(sleep=lambda seconds: None),
            )
            client.start_run(time.monotonic() + 30)
            with pytest.raises(ApiError) as raised:
                client.get('/incidents')
        assert 'received_headers' in raised.value.body and '********' in raised.value.body
        assert leaks(raised.value.body + str(raised.value)) == []
