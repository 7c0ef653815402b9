# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The command line: `--demo`, `--config ... --dry-run`, `--json`, `--help` and errors, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from datadog_checks.pagerduty_dora import cli
from datadog_checks.pagerduty_dora.mapping import RULES
from datadog_checks.pagerduty_dora.simulator.demo import EXPECTED_RULES, DemoWorld

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
    return [r for r in world.datadog.requests if r.method == 'POST']


class TestDemo:
    """`--demo` runs the real check against the simulated account and shows what it submitted."""

    def test_text(self, demo_text):
        assert demo_text.returncode == 0, demo_text.stderr
        assert demo_text.stderr == ''
        out = demo_text.stdout
        assert 'run 4:' in out
        assert '#5 Invoices stuck in queue: reopened' in out
        assert 'DORA failures (POST /api/v2/dora/failure): 10 incidents' in out
        assert 'Agent events: 9' in out
        assert '[P2] #11 triggered: Login errors spiking' in out
        assert 'pagerduty_dora.incidents.time_to_restore' in out
        assert '"id": "pagerduty-incident-' in out

    @pytest.mark.parametrize('rule', RULES, ids=RULES)
    def test_table_shows_every_rule(self, demo_text, rule):
        rows = [line.split() for line in demo_text.stdout.splitlines() if line.startswith('  ') and '  prod  ' in line]
        assert any(rule in row for row in rows), rule

    def test_json_covers_every_rule(self, demo_json):
        assert demo_json['mode'] == 'demo'
        assert set(demo_json['rules']) == set(RULES)
        assert sum(demo_json['rules'].values()) == len(demo_json['incidents']) == 12

    @pytest.mark.parametrize('service, rule', sorted(EXPECTED_RULES.items()), ids=sorted(EXPECTED_RULES))
    def test_each_service_maps_by_its_rule(self, demo_json, service, rule):
        found = {i['mapping']['rule'] for i in demo_json['incidents'] if i['pagerduty_service'] == service}
        assert found == {rule}

    def test_json_states_and_outputs(self, demo_json):
        incidents = demo_json['incidents']
        assert {i['status'] for i in incidents} == {'triggered', 'acknowledged', 'resolved'}
        reopened = [i for i in incidents if i['reopened']]
        assert [i['title'] for i in reopened] == ['Invoices stuck in queue']
        assert reopened[0]['status'] == 'triggered'
        assert reopened[0]['dora_failure'] is not None and 'finished_at' not in reopened[0]['dora_failure']
        assert [i['number'] for i in incidents if i['priority'] is None] == [8]
        assert sorted(i['filtered_by'] for i in incidents if not i['counted']) == ['low urgency', 'low urgency']
        assert all(i['dora_failure'] is None for i in incidents if not i['counted'])
        assert demo_json['dora_failures']['count'] == 10
        assert demo_json['dora_failures']['rejected'] == 0
        assert demo_json['events']['count'] == 9
        assert demo_json['events']['by_transition'] == {
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
        assert row[-6:-2] == ['override', 'billing-api', 'payments', 'prod']
        assert 'DORA failures that would be sent (POST /api/v2/dora/failure): 9' in out
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
        assert {i['mapping']['env'] for i in data['incidents']} == {'staging'}
        assert set(data['rules']) == set(RULES)
        sent = [i for i in data['incidents'] if i['dora_failure']]
        assert data['dora_failures']['count'] == len(sent) == 9
        assert [i['dora_failure']['id'] for i in sent] == ['pagerduty-incident-' + i['id'] for i in sent]
        assert [i['title'] for i in data['incidents'] if not i['counted']] == ['TLS certificate expires in 20 days']
        assert data['events']['count'] == 0
        assert TOKEN not in result.stdout
        assert world.dora.posts == []

    def test_dora_disabled(self, world, tmp_path):
        result = run('--config', write_conf(tmp_path, world.instance(submit_dora_failures=False)), '--dry-run')
        assert result.returncode == 0, result.stderr
        assert 'none would be sent (submit_dora_failures is false' in result.stdout

    def test_nothing_is_stored(self, world, tmp_path, monkeypatch):
        from datadog_checks.base.stubs import datadog_agent

        monkeypatch.setenv('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
        result = cli.run_dry({}, world.instance(), 'conf.yaml', 0)
        assert result['dora_failures']['count'] == 9
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
            ('instances:\n  - {instance_bad_days}\n', [], '`backfill_days` must be between 0 and 365, got 999'),
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
