# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The command line: `--demo`, `--config ... --dry-run`, `--json`, `--help` and errors, run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from datadog_checks.pagerduty_dora.catalog.mapping import RULES
from datadog_checks.pagerduty_dora.cli.dry_run import run_dry
from datadog_checks.pagerduty_dora.cli.main import redact

from ..fakes.demo import EXPECTED_RULES, DemoWorld

pytestmark = pytest.mark.slow

COMMAND = [sys.executable, '-m', 'datadog_checks.pagerduty_dora']
# Shaped like a real key, so a leak is found by a plain substring search.
TOKEN = 'u+pdCliToken_Q8zKw2LmNb7'
FORBIDDEN_TOKEN = 'u+pdNoReadAccess_T5rYx1'
WRONG_TOKEN = 'u+pdRevokedKey_H3jVc9'


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert 'Traceback' not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert result.stdout == ''


@pytest.fixture(scope='module')
def demo_text() -> subprocess.CompletedProcess:
    return run('--demo')


@pytest.fixture(scope='module')
def demo_json() -> dict[str, Any]:
    result = run('--demo', '--json')
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope='module')
def world():
    # The demo account, on the real clock: a dry run reads the real time, as the Agent does.
    world = DemoWorld(start=time.time())
    world.account.token = TOKEN
    world.pagerduty.forbidden_tokens.add(FORBIDDEN_TOKEN)
    with world:
        yield world


def write_conf(tmp_path, *instances: dict[str, Any]) -> str:
    path = tmp_path / 'conf.yaml'
    path.write_text(yaml.safe_dump({'init_config': {}, 'instances': list(instances)}), encoding='utf-8')
    return str(path)


def posts(world: DemoWorld) -> list:
    """Requests that write to Datadog; the DORA deployments search and failures listing are POSTs that only read."""
    return [
        r
        for r in world.datadog.requests
        if r.method in ('POST', 'PATCH', 'PUT', 'DELETE')
        and r.path not in ('/api/v2/dora/deployments', '/api/v2/dora/failures')
    ]


class TestDemo:
    """`--demo` runs the real check against the simulated account and shows what it submitted."""

    def test_text(self, demo_text):
        assert demo_text.returncode == 0, demo_text.stderr
        assert demo_text.stderr == ''
        out = demo_text.stdout
        assert 'run 4:' in out
        assert '#7 Invoices stuck in queue: reopened' in out
        assert 'DORA failures (POST /api/v2/dora/failure): 12 incidents' in out
        assert 'Agent events: 10' in out
        assert '[P2] #13 triggered: Login errors spiking' in out
        assert 'pagerduty_dora.incidents.time_to_restore' in out
        assert '"id": "pagerduty-incident-' in out
        # Searched once the settle time after the trigger has passed: told on the next event of the incident.
        assert 'dep-login-v1-9-0 (login v1.9.0 in prod) marked as a change failure, for [P2] #13 acknowledged' in out
        assert 'remediation: rollback by dep-login-rollback' in out

    @pytest.mark.parametrize('rule', RULES, ids=RULES)
    def test_table_shows_every_rule(self, demo_text, rule):
        rows = [line.split() for line in demo_text.stdout.splitlines() if line.startswith('  ') and '  prod  ' in line]
        assert any(rule in row for row in rows), rule

    def test_json_covers_every_rule(self, demo_json):
        assert demo_json['mode'] == 'demo'
        assert set(demo_json['rules']) == set(RULES)
        assert sum(demo_json['rules'].values()) == len(demo_json['incidents']) == 14

    @pytest.mark.parametrize('service, rule', sorted(EXPECTED_RULES.items()), ids=sorted(EXPECTED_RULES))
    def test_each_service_maps_by_its_rule(self, demo_json, service, rule):
        found = {i['mapping']['rule'] for i in demo_json['incidents'] if i['pagerduty_service'] == service}
        assert found == {rule}

    def test_in_process_run_matches_the_command(self, demo_json):
        """The demo's own small world (what ships in the wheel), run in this process, gives what the command gave."""
        from datadog_checks.pagerduty_dora.cli import demo as demo_run

        result = json.loads(json.dumps(demo_run.run_demo()))
        for key in ('rules', 'incidents', 'dora_failures', 'events', 'attribution'):
            assert _without_instance(result[key]) == _without_instance(demo_json[key]), key

    def test_json_states_and_outputs(self, demo_json):
        incidents = demo_json['incidents']
        assert {i['status'] for i in incidents} == {'triggered', 'acknowledged', 'resolved'}
        reopened = [i for i in incidents if i['reopened']]
        assert [i['title'] for i in reopened] == ['Invoices stuck in queue']
        assert reopened[0]['status'] == 'triggered'
        assert reopened[0]['dora_failure'] is not None and 'finished_at' not in reopened[0]['dora_failure']
        assert [i['number'] for i in incidents if i['priority'] is None] == [10]
        assert sorted(i['filtered_by'] for i in incidents if not i['counted']) == ['low urgency', 'low urgency']
        assert all(i['dora_failure'] is None for i in incidents if not i['counted'])
        assert demo_json['dora_failures']['count'] == 12
        assert demo_json['dora_failures']['rejected'] == 0
        assert demo_json['events']['count'] == 10
        assert demo_json['events']['by_transition'] == {
            'live': 1,
            'reopened': 1,
            'acknowledged': 3,
            'priority_changed': 1,
            'triggered': 1,
            'resolved': 3,
        }
        assert [r['events'] for r in demo_json['runs']] == [0, 4, 3, 2]
        metrics = {m['name']: m for m in demo_json['metrics']}
        assert metrics['pagerduty_dora.incidents.resolved']['total'] == 3
        assert sorted(metrics['pagerduty_dora.incidents.time_to_restore']['samples']) == [600, 2340, 4440]
        assert metrics['pagerduty_dora.incidents.open']['latest'] == 3
        assert demo_json['warnings'] == []


class TestHelp:
    """`--help` explains every flag and shows examples."""

    def test_help(self):
        result = run('--help')
        assert result.returncode == 0
        for flag in ('--demo', '--config', '--instance', '--dry-run', '--json', '--verbose'):
            assert flag in result.stdout
        assert 'examples:' in result.stdout
        assert '--config conf.yaml --instance 1 --dry-run --json' in result.stdout


class TestDryRun:
    """`--config ... --dry-run` collects once from the configured account, submitting and storing nothing."""

    def test_text(self, world, tmp_path):
        before = len(posts(world))
        result = run('--config', write_conf(tmp_path, world.instance()), '--dry-run')
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert 'Nothing was submitted and no state was stored.' in out
        assert 'Checkout latency above SLO' in out
        row = next(line.split() for line in out.splitlines() if 'Invoices stuck in queue' in line)
        assert row[-7:-2] == ['override', '-', 'billing-api', 'payments', 'prod']
        # An incident a Datadog monitor triggered shows the monitor's rule and id.
        row = next(line.split() for line in out.splitlines() if 'Checkout 5xx above 2%' in line)
        start = row.index('monitor_group')
        assert row[start : start + 5] == ['monitor_group', '4207311', 'checkout-api', 'payments', 'prod']
        assert 'DORA failures that would be sent (POST /api/v2/dora/failure): 11' in out
        assert 'A dry run is a first run' in out
        assert TOKEN not in out + result.stderr
        assert len(posts(world)) == before
        assert world.dora.posts == []

    def test_json(self, world, tmp_path):
        conf = write_conf(tmp_path, world.instance(urgencies=['high', 'low']), world.instance(env='staging'))
        result = run('--config', conf, '--instance', '1', '--dry-run', '--json')
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data['mode'] == 'dry_run' and data['instance'] == 1 and data['first_run'] is True
        # The env of the instance, but where the monitor that triggered an incident says otherwise.
        envs = {(i['mapping']['monitor_id'] is not None, i['mapping']['env']) for i in data['incidents']}
        assert envs == {(False, 'staging'), (True, 'prod')}
        assert set(data['rules']) == set(RULES)
        sent = [i for i in data['incidents'] if i['dora_failure']]
        assert data['dora_failures']['count'] == len(sent) == 11
        assert [i['dora_failure']['id'] for i in sent] == ['pagerduty-incident-' + i['id'] for i in sent]
        assert [i['title'] for i in data['incidents'] if not i['counted']] == ['TLS certificate expires in 20 days']
        assert data['events']['count'] == 0
        assert TOKEN not in result.stdout
        assert world.dora.posts == []

    def test_dora_disabled(self, world, tmp_path):
        result = run('--config', write_conf(tmp_path, world.instance(submit_dora_failures=False)), '--dry-run')
        assert result.returncode == 0, result.stderr
        assert 'none would be sent (submit_dora_failures is false' in result.stdout

    def test_nothing_is_stored(self, world, tmp_path):
        from datadog_checks.base.stubs import datadog_agent

        result = run_dry({}, world.instance(), 'conf.yaml', 0)
        assert result['dora_failures']['count'] == 11
        assert datadog_agent._cache == {}


class TestErrors:
    """Every error is one line on stderr and a non-zero exit, without a traceback or a secret."""

    @pytest.mark.parametrize(
        'content, args, expected',
        [
            (None, ['--config', '{dir}/missing.yaml', '--dry-run'], 'missing.yaml: no such file'),
            ('instances:\n  - api_token: x\n   bad: [\n', [], 'is not valid YAML'),
            ('init_config:\ninstances: []\n', [], 'has no instances'),
            ('instances:\n  - {instance}\n', ['--instance', '3'], 'has 1 instance (0 to 0); there is no instance 3'),
            ('instances:\n  - {instance}\n', ['--instance', 'abc'], "invalid int value: 'abc'"),
            ('instances:\n  - {instance_bad_days}\n', [], '`backfill_days` must be between 0 and 730, got 999'),
            ('instances:\n  - {instance_no_token}\n', [], 'api_token: Field required'),
            ('instances:\n  - {instance}\n', ['--no-dry-run'], '--config needs --dry-run'),
            ('instances:\n  - {instance_wrong_token}\n', [], 'PagerDuty rejected `api_token` (401 Unauthorized)'),
            ('instances:\n  - {instance_forbidden}\n', [], 'PagerDuty refused `api_token` access (403 Forbidden)'),
        ],
        ids=[
            'missing-file',
            'invalid-yaml',
            'no-instances',
            'no-such-instance',
            'bad-instance-argument',
            'bad-option-value',
            'missing-token',
            'config-without-dry-run',
            'unauthorized',
            'forbidden',
        ],
    )
    def test_one_line(self, world, tmp_path, content, args, expected):
        instances = {
            'instance': world.instance(),
            'instance_bad_days': world.instance(backfill_days=999),
            'instance_no_token': {k: v for k, v in world.instance().items() if k != 'api_token'},
            'instance_wrong_token': world.instance(api_token=WRONG_TOKEN),
            'instance_forbidden': world.instance(api_token=FORBIDDEN_TOKEN),
        }
        if content is not None:
            text = content.format(**{k: json.dumps(v) for k, v in instances.items()})
            (tmp_path / 'conf.yaml').write_text(text, encoding='utf-8')
        argv = [a.format(dir=tmp_path) for a in args]
        if not argv or argv[0] != '--config':
            argv = ['--config', str(tmp_path / 'conf.yaml')] + [a for a in argv if a != '--no-dry-run']
            if '--no-dry-run' not in args:
                argv.append('--dry-run')
        before = len(posts(world))
        result = run(*argv)
        assert_one_line_error(result, expected)
        for secret in (TOKEN, WRONG_TOKEN, FORBIDDEN_TOKEN):
            assert secret not in result.stderr
        assert len(posts(world)) == before


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class TestAgentValidation:
    """The dry run loads the instance as the Agent does and refuses what it refuses, in one line naming the option."""

    @pytest.mark.parametrize(
        'options, removed, expected',
        [
            ({'submit_dora_failures': 'maybe'}, (), "`submit_dora_failures` must be true or false, got 'maybe'"),
            (
                {'attribute_change_failures': True},
                ('datadog_app_key',),
                '`attribute_change_failures` needs `datadog_app_key`',
            ),
            ({'urgencies': 'high'}, (), "`urgencies` must be a list of high, low or both, got 'high'"),
            ({'severity_mapping': ['P1', 'P2']}, (), "`severity_mapping` must map priority names to severities"),
            ({'timeout': -3}, (), '`timeout` must be greater than 0 seconds, got -3'),
            ({'min_collection_interval': -10}, (), '`min_collection_interval` must be greater than 0 seconds, got -10'),
            ({'tags': ['service:checkout']}, (), "`tags` entry #1 'service:checkout' is not allowed"),
            ({'service': 'checkout'}, (), "`service` must not be set, got 'checkout'"),
            ({'unmapped_incidents': 'drop'}, (), "`unmapped_incidents` must be `send` or `skip`, got 'drop'"),
        ],
        ids=[
            'submit_dora_failures-maybe',
            'attribution-without-app-key',
            'urgencies-not-a-list',
            'severity_mapping-a-list',
            'timeout-negative',
            'min_collection_interval-negative',
            'service-tag',
            'service-option',
            'unmapped_incidents-unknown',
        ],
    )
    def test_refused(self, world, tmp_path, options, removed, expected):
        instance = {k: v for k, v in world.instance(**options).items() if k not in removed}
        before = world.pagerduty.count('/')

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 1
        assert_one_line_error(result, 'invalid configuration: ' + expected)
        # Refused before any request, as the Agent refuses it before its first run.
        assert world.pagerduty.count('/') == before

    def test_connection_refused_names_url_cause_and_hint(self, world, tmp_path):
        url = 'http://127.0.0.1:{}'.format(closed_port())
        conf = write_conf(tmp_path, world.instance(pagerduty_api_url=url, min_collection_interval=5))

        result = run('--config', conf, '--dry-run')

        assert result.returncode == 1
        assert_one_line_error(result, 'cannot connect to {}/incidents'.format(url))
        line = result.stderr.strip()
        assert 'was refused' in line
        assert '`pagerduty_api_url` (EU accounts use https://api.eu.pagerduty.com)' in line
        assert '`proxy` option' in line


class TestDryRunOptions:
    """Unknown options, `unmapped_incidents: skip` and the attribution preview, as the dry run shows them."""

    def test_unknown_options_are_warned(self, world, tmp_path):
        instance = world.instance(
            backfil_days=7,
            urgency=['high'],
            service_overrides=[{'pagerduty_service': 'Legacy Billing', 'team': 'payments', 'servce': 'billing-api'}],
        )

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 0, result.stderr
        warnings = result.stdout.split('Warnings (the Agent status page would show these):', 1)[1]
        for expected in (
            'Unknown option `backfil_days` in the instance is ignored: did you mean `backfill_days`?',
            'Unknown option `urgency` in the instance is ignored: did you mean `urgencies`?',
            'Unknown option `servce` in `service_overrides` entry #1 is ignored: did you mean `service`?',
        ):
            assert warnings.count(expected) == 1, warnings

    def test_unmapped_incidents_skip(self, world, tmp_path):
        sent = json.loads(run('--config', write_conf(tmp_path, world.instance()), '--dry-run', '--json').stdout)
        conf = write_conf(tmp_path, world.instance(unmapped_incidents='skip'))

        data = json.loads(run('--config', conf, '--dry-run', '--json').stdout)
        text = run('--config', conf, '--dry-run').stdout

        fallback = [i for i in data['incidents'] if i['mapping']['rule'] == 'fallback' and i['counted']]
        assert len(fallback) >= 1
        assert data['unmapped_incidents']['skipped'] == len(fallback)
        assert [i['number'] for i in data['unmapped_incidents']['incidents']] == [i['number'] for i in fallback]
        assert all(i['dora_failure'] is None for i in fallback)
        assert data['dora_failures']['count'] == sent['dora_failures']['count'] - len(fallback)
        assert sent['unmapped_incidents']['skipped'] == 0
        assert 'Unmapped incidents not sent (unmapped_incidents: skip' in text
        assert 'Contact form not sending' in text.split('Unmapped incidents not sent', 1)[1]

    def test_attribution_preview_reads_and_writes_nothing(self, world, tmp_path):
        conf = write_conf(tmp_path, world.instance(attribute_change_failures=True))

        data = json.loads(run('--config', conf, '--dry-run', '--json').stdout)
        text = run('--config', conf, '--dry-run').stdout

        preview = {i['title']: i for i in data['attribution']['incidents']}
        checkout = preview['Checkout latency above SLO']
        assert checkout['outcome'] == 'attributed'
        assert (checkout['deployment']['id'], checkout['deployment']['version']) == ('dep-checkout-v3-4-1', 'v3.4.1')
        assert data['attribution']['marked'] == 1
        assert world.deployments.failed() == {}
        assert [r for r in world.datadog.requests if r.method == 'PATCH'] == []
        assert 'Change-failure attribution preview (deployments read, nothing written): 1 of' in text
        assert 'dep-checkout-v3-4-1 v3.4.1' in text


def stderr_lines(result: subprocess.CompletedProcess) -> tuple[list[str], str]:
    """The `warning:` lines, in order, and the one `error:` line, which comes last."""
    lines = result.stderr.strip().splitlines()
    assert 'Traceback' not in result.stderr
    assert lines and ': error: ' in lines[-1], result.stderr
    assert all(': warning: ' in line for line in lines[:-1]), result.stderr
    return [line.split(': warning: ', 1)[1] for line in lines[:-1]], lines[-1].split(': error: ', 1)[1]


def without(instance: dict[str, Any], *options: str) -> dict[str, Any]:
    return {k: v for k, v in instance.items() if k not in options}


class TestAgentVerdict:
    """The dry run exits 1 where the Agent reports a CRITICAL service check, with the same line, warnings first."""

    def test_warnings_come_first_at_an_unreachable_url(self, world, tmp_path):
        url = 'http://127.0.0.1:{}'.format(closed_port())
        instance = world.instance(pagerduty_api_url=url, min_collection_interval=5, backfil_days=7, urgency=['high'])

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 1 and result.stdout == ''
        warnings, error = stderr_lines(result)
        assert warnings == [
            'Unknown option `backfil_days` in the instance is ignored: did you mean `backfill_days`?',
            'Unknown option `urgency` in the instance is ignored: did you mean `urgencies`?',
        ]
        assert 'cannot connect to {}/incidents'.format(url) in error and 'was refused' in error

    def test_warnings_come_first_in_the_report(self, world, tmp_path):
        result = run('--config', write_conf(tmp_path, without(world.instance(), 'env')), '--dry-run')

        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert out.index('Warnings (the Agent status page would show these):') < out.index('Incidents (')
        assert '  No `env` is set: every DORA failure' in out

    def test_api_key_for_api_token(self, world, tmp_path):
        instance = without(world.instance(), 'api_token')
        instance['api_key'] = TOKEN

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 1
        warnings, error = stderr_lines(result)
        assert error == (
            'invalid configuration: api_token: Field required (the instance has `api_key`: did you mean `api_token`?)'
        )
        assert len(warnings) == 1 and 'did you mean `api_token`' in warnings[0]
        assert TOKEN not in result.stderr

    def test_service_overrides_as_a_mapping(self, world, tmp_path):
        conf = write_conf(tmp_path, world.instance(service_overrides={'PABC123': 'checkout'}))

        result = run('--config', conf, '--dry-run')

        assert_one_line_error(
            result,
            'invalid configuration: `service_overrides` must be a list of entries, got a mapping: write one entry per '
            'PagerDuty service, like `service_overrides: [{pagerduty_service: PABC123, service: checkout}]`',
        )

    @pytest.mark.parametrize(
        'options, removed, environment, expected',
        [
            ({}, ('datadog_app_key',), {}, 'the API key is accepted.'),
            (
                {},
                ('datadog_app_key', 'datadog_api_key'),
                {'DD_API_KEY': ''},
                'set DD_API_KEY in the environment (or `datadog_api_key` in this copy of conf.yaml) to check it.',
            ),
            ({}, ('datadog_app_key', 'datadog_api_key'), {'DD_API_KEY': 'demo-datadog-api-key'}, 'is accepted.'),
        ],
        ids=['instance-key', 'agent-key-unknown', 'agent-key-from-environment'],
    )
    def test_datadog_api_is_checked_without_writing(self, world, tmp_path, options, removed, environment, expected):
        instance = without(world.instance(attribute_change_failures=False, **options), *removed)
        before = len(world.datadog.requests)

        result = subprocess.run(
            [*COMMAND, '--config', write_conf(tmp_path, instance), '--dry-run'],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, **environment),
        )

        assert result.returncode == 0, result.stderr
        line = next(line for line in result.stdout.splitlines() if line.startswith('Datadog API ('))
        answers = 'Datadog API ({}): it answers (GET /api/v1/validate, nothing written); '.format(world.datadog.url)
        assert line.startswith(answers)
        assert line.endswith(expected)
        assert [(r.method, r.path) for r in world.datadog.requests[before:]] == [('GET', '/api/v1/validate')]

    def test_datadog_key_refused(self, world, tmp_path):
        instance = without(world.instance(attribute_change_failures=False, datadog_api_key='wrong'), 'datadog_app_key')

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 1
        _, error = stderr_lines(result)
        assert error == (
            'Datadog rejected the API key (403 Forbidden): check `datadog_api_key` (or the Agent `api_key`) and that '
            '`datadog_api_url` matches your Datadog site'
        )
        # PagerDuty answered: its mapping is shown, then the Agent's verdict.
        assert 'Checkout latency above SLO' in result.stdout
        assert 'Datadog API ({}): Datadog rejected the API key'.format(world.datadog.url) in result.stdout

    @pytest.mark.parametrize('app_key', [False, True], ids=['without-app-key', 'with-app-key'])
    def test_datadog_unreachable_names_url_and_cause(self, world, tmp_path, app_key):
        url = 'http://127.0.0.1:{}'.format(closed_port())
        instance = world.instance(datadog_api_url=url, min_collection_interval=5, attribute_change_failures=app_key)
        if not app_key:
            instance = without(instance, 'datadog_app_key')

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')

        assert result.returncode == 1
        _, error = stderr_lines(result)
        path = '/api/v2/catalog/entity' if app_key else '/api/v1/validate'
        assert 'cannot connect to {}{}: the connection to 127.0.0.1 was refused'.format(url, path) in error
        assert 'check `datadog_api_url`' in error and 'api.can_connect' not in error
        if app_key:
            # The catalog never loaded: nothing would be submitted, so there is no mapping to show.
            assert result.stdout == ''
        else:
            assert 'Checkout latency above SLO' in result.stdout
            assert 'DORA failures that would be sent (POST /api/v2/dora/failure): 11' in result.stdout

    @pytest.mark.parametrize('app_key', [False, True], ids=['without-app-key', 'with-app-key'])
    def test_datadog_unreachable_is_told_at_once(self, world, tmp_path, app_key):
        """One attempt per connection: the Agent's backoff (seconds of silence) is for the next run, not a dry run."""
        url = 'http://127.0.0.1:{}'.format(closed_port())
        instance = world.instance(datadog_api_url=url, min_collection_interval=5, attribute_change_failures=app_key)
        if not app_key:
            instance = without(instance, 'datadog_app_key')

        result = run('--config', write_conf(tmp_path, instance), '--dry-run', '--verbose')

        assert result.returncode == 1
        assert 'cannot connect to {}'.format(url) in result.stderr
        assert 'retrying' not in result.stderr

    def test_pagerduty_401_agrees_with_the_agent(self, world, tmp_path, dd_run_check):
        from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

        instance = world.instance(api_token=WRONG_TOKEN)

        result = run('--config', write_conf(tmp_path, instance), '--dry-run')
        with pytest.raises(Exception) as raised:
            dd_run_check(PagerdutyDoraCheck('pagerduty_dora', {}, [instance]))

        assert result.returncode == 1
        _, error = stderr_lines(result)
        assert error.startswith('PagerDuty rejected `api_token` (401 Unauthorized) at ')
        assert error in str(raised.value)


class TestStrict:
    """`--strict` turns what the Agent only warns about (a misspelled optional option) into exit status 1."""

    def test_misspelled_option(self, world, tmp_path):
        conf = write_conf(tmp_path, world.instance(backfil_days=7))

        lenient = run('--config', conf, '--dry-run')
        strict = run('--config', conf, '--dry-run', '--strict')

        assert lenient.returncode == 0, lenient.stderr
        assert strict.returncode == 1
        _, error = stderr_lines(strict)
        assert error.startswith('--strict: the check warned 1 time ')
        assert 'did you mean `backfill_days`?' in strict.stdout
        assert strict.stdout == lenient.stdout

    def test_no_warning(self, keyed_world, tmp_path):
        result = run('--config', write_conf(tmp_path, keyed_world.instance()), '--dry-run', '--strict')

        assert result.returncode == 0, result.stderr

    def test_not_with_demo(self):
        result = run('--demo', '--strict')

        assert result.returncode == 2
        assert '--strict go with --config' in result.stderr


@pytest.fixture(scope='module')
def keyed_world():
    """The demo account whose DORA and Events APIs accept the demo's application key, with every permission."""
    from datadog_checks.pagerduty_dora.demo.world import APP_KEY

    world = DemoWorld(start=time.time())
    world.dora.app_key = APP_KEY
    with world:
        yield world


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {row['permission']: row['status'] for row in result['permissions']}


class TestPermissionProbes:
    """The dry run reads once with each permission of `datadog_app_key` the configuration uses; it lists the missing."""

    def test_all_granted(self, keyed_world):
        before = len(posts(keyed_world))

        result = run_dry({}, keyed_world.instance(), 'conf.yaml', 0)

        assert statuses(result) == {
            'apm_service_catalog_read': 'granted',
            'teams_read': 'granted',
            'events_read': 'granted',
            'dora_metrics_read': 'granted',
            'dora_metrics_write': 'not checked',
        }
        assert len(posts(keyed_world)) == before
        assert keyed_world.dora.removed == []

    @pytest.mark.parametrize(
        'options, removed, expected',
        [
            ({'attribute_change_failures': False}, ('datadog_app_key',), []),
            (
                {'attribute_change_failures': False, 'submit_dora_failures': False},
                (),
                ['apm_service_catalog_read', 'teams_read', 'events_read', 'dora_metrics_read'],
            ),
            (
                {'attribute_change_failures': False},
                (),
                ['apm_service_catalog_read', 'teams_read', 'events_read', 'dora_metrics_read', 'dora_metrics_write'],
            ),
        ],
        ids=['no-app-key', 'no-dora-no-attribution', 'no-attribution'],
    )
    def test_only_what_the_configuration_uses(self, keyed_world, options, removed, expected):
        instance = without(keyed_world.instance(**options), *removed)

        result = run_dry({}, instance, 'conf.yaml', 0)

        assert [row['permission'] for row in result['permissions']] == expected

    def test_missing_events_read(self, keyed_world, tmp_path):
        keyed_world.dora.events_read = False
        try:
            conf = write_conf(tmp_path, keyed_world.instance())
            lenient = run('--config', conf, '--dry-run')
            strict = run('--config', conf, '--dry-run', '--strict')
            data = json.loads(run('--config', conf, '--dry-run', '--json').stdout)
        finally:
            keyed_world.dora.events_read = True

        assert statuses(data)['events_read'] == 'missing'
        assert statuses(data)['dora_metrics_read'] == 'granted'
        assert lenient.returncode == 0, lenient.stderr
        section = lenient.stdout.split('Permissions of `datadog_app_key` this configuration uses', 1)[1]
        row = next(line.split() for line in section.splitlines() if line.strip().startswith('events_read'))
        assert row[:2] == ['events_read', 'missing']
        assert 'Missing: events_read (Datadog answered 403 Forbidden: the key lacks it)' in section
        assert strict.returncode == 1
        _, error = stderr_lines(strict)
        assert error.startswith('--strict: `datadog_app_key` lacks `events_read`')

    def test_missing_dora_metrics_read(self, keyed_world):
        keyed_world.dora.permissions.discard('dora_metrics_read')
        try:
            result = run_dry({}, keyed_world.instance(attribute_change_failures=False), 'conf.yaml', 0)
        finally:
            keyed_world.dora.permissions.add('dora_metrics_read')

        assert statuses(result)['dora_metrics_read'] == 'missing'
        assert statuses(result)['events_read'] == 'granted'


class TestSecretMasking:
    """Secrets are masked as whole values in everything the command prints, never inside other words."""

    @pytest.mark.parametrize(
        'text, secrets, expected',
        [
            ('backfill and api_token', ['k'], 'backfill and api_token'),
            ('the key k was refused', ['k'], 'the key ******** was refused'),
            ("got 'k'", ['k'], "got '********'"),
            ('token=k&x=1', ['k'], 'token=********&x=1'),
            ('u+pdToken_1 and u+pdToken_12', ['u+pdToken_1'], '******** and u+pdToken_12'),
            ('prefix' + TOKEN + 'suffix', [TOKEN], 'prefix********suffix'),
            ('a-b and a', ['a'], 'a-b and ********'),
        ],
        ids=['inside-words', 'alone', 'quoted', 'in-a-query', 'longer-token', 'long-key-anywhere', 'hyphenated'],
    )
    def test_redact(self, text, secrets, expected):
        assert redact(text, secrets) == expected

    def test_short_token_leaves_option_names_whole(self, world, tmp_path):
        result = run('--config', write_conf(tmp_path, world.instance(api_token='k')), '--dry-run')

        _, error = stderr_lines(result)
        assert error.startswith('PagerDuty rejected `api_token` (401 Unauthorized) at '), error
        assert '*' not in error


class TestNextStep:
    """The demo ends with the command that dry-runs the user's own conf.yaml, from a clone and where installed."""

    def test_demo_prints_the_dry_run_commands(self, demo_text):
        tail = demo_text.stdout.rstrip().splitlines()[-3:]
        assert tail[0].startswith('Next: see how your own incidents map')
        assert tail[1].split() == ['scripts/dry-run', 'conf.yaml', 'from', 'a', 'clone', 'of', 'the', 'repository']
        assert tail[2].strip().startswith('python -m datadog_checks.pagerduty_dora --config conf.yaml --dry-run')


def _without_instance(value):
    """`value` without the `pagerduty_dora_instance:` tags, which name the instance by its URLs (their ports differ)."""
    if isinstance(value, dict):
        return {k: _without_instance(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_instance(v) for v in value if not str(v).startswith('pagerduty_dora_instance:')]
    return value
