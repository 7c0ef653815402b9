# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The wheel as the Agent's installer sees it, and the check loaded from it the way the Agent loads it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from ..conftest import API_TOKEN, DATADOG_API_KEY, quiet_account_routes
from ..fakes.server import FakeServer
from ..paths import INTEGRATION

pytestmark = pytest.mark.slow

ROOT = INTEGRATION
PACKAGE_DIR = 'datadog_checks/pagerduty_dora/'
# Every file the wheel holds under the package: the check, its generated config models, and the
# demo's small world. A module only the tests use (a fake, fault injection) belongs in tests/fakes.
SHIPPED = [
    '__about__.py',
    '__init__.py',
    '__main__.py',
    'attribution/__init__.py',
    'attribution/attributor.py',
    'attribution/blame.py',
    'attribution/decision.py',
    'attribution/deployments.py',
    'attribution/eligibility.py',
    'attribution/executor.py',
    'attribution/marking.py',
    'attribution/model.py',
    'attribution/ports.py',
    'attribution/remediation.py',
    'attribution/reporting.py',
    'attribution/state.py',
    'attribution/tasks.py',
    'attribution/texts.py',
    'catalog/__init__.py',
    'catalog/api.py',
    'catalog/definitions.py',
    'catalog/file_report.py',
    'catalog/files.py',
    'catalog/mapping.py',
    'catalog/model.py',
    'catalog/qualification.py',
    'catalog/sources.py',
    'check.py',
    'cli/__init__.py',
    'cli/demo.py',
    'cli/dry_run.py',
    'cli/main.py',
    'cli/probes.py',
    'cli/render.py',
    'cli/results.py',
    'cli/standalone.py',
    'collection/__init__.py',
    'collection/collector.py',
    'collection/feed.py',
    'collection/feed_position.py',
    'collection/monitors.py',
    'collection/pages.py',
    'collection/passes.py',
    'collection/ports.py',
    'collection/rebuild.py',
    'collection/recheck.py',
    'collection/reconcile.py',
    'collection/record.py',
    'collection/recorder.py',
    'collection/recovery.py',
    'collection/rest.py',
    'collection/run.py',
    'collection/settings.py',
    'collection/state.py',
    'collection/story.py',
    'collection/sweep.py',
    'common/__init__.py',
    'common/codec.py',
    'common/disposition.py',
    'common/documents.py',
    'common/environment.py',
    'common/errors.py',
    'common/http.py',
    'common/json_format.py',
    'common/pacing.py',
    'common/permissions.py',
    'common/responses.py',
    'common/services.py',
    'common/text.py',
    'common/times.py',
    'common/urls.py',
    'config/__init__.py',
    'config/scope.py',
    'config/spelling.py',
    'config_models/__init__.py',
    'config_models/defaults.py',
    'config_models/instance.py',
    'config_models/shared.py',
    'config_models/validators.py',
    'data/conf.yaml.example',
    'datadog/__init__.py',
    'datadog/dora.py',
    'datadog/events.py',
    'datadog/marks.py',
    'datadog/outputs.py',
    'datadog/queue.py',
    'datadog/readback.py',
    'demo/__init__.py',
    'demo/account.py',
    'demo/catalog.py',
    'demo/datadog.py',
    'demo/pagerduty.py',
    'demo/rendering.py',
    'demo/server.py',
    'demo/world.py',
    'health.py',
    'identity.py',
    'lineage.py',
    'pagerduty/__init__.py',
    'pagerduty/client.py',
    'pagerduty/incident.py',
    'pagerduty/listing.py',
    'pagerduty/monitor.py',
    'pagerduty/transitions.py',
    'wiring.py',
]
# Names of what only the tests use; none may appear in a shipped path.
TEST_ONLY = ('tests', 'fakes', 'faults', 'simulator', 'conftest', 'harness')
# Words of the tests' fault injection; none may appear in a shipped module.
FAULT_INJECTION = ('fail_next', 'chaos(', 'Faults(', 'timeout_delay', 'faults.take')
# What the Agent's embedded Python holds: the base package and the libraries it pins, nothing of ours.
AGENT_BASE = 'datadog-checks-base[deps]==37.33.0'

# Run inside the fresh environment: import the package and pick the check class the way the Agent's
# loader does (every name of `dir(module)` that is a class deriving from AgentCheck, is not AgentCheck
# itself and has no subclass), configure it with the instance of conf.yaml.example plus the given
# options, and run it once. The loader takes AgentCheck from a legacy alias of the same class.
LOADER = r'''
import json, sys
from importlib.resources import files

import yaml
from datadog_checks.base.stubs import aggregator
from datadog_checks.base import AgentCheck

import datadog_checks.pagerduty_dora as package

found = []
for name in dir(package):
    obj = getattr(package, name, None)
    if isinstance(obj, type) and issubclass(obj, AgentCheck) and obj is not AgentCheck and not obj.__subclasses__():
        found.append(obj)
if len(found) != 1:
    print(json.dumps({'classes': [cls.__name__ for cls in found]}))
    sys.exit(0)
example = yaml.safe_load(files(package).joinpath('data', 'conf.yaml.example').read_text())
instance = dict(example['instances'][0])
instance.update(json.loads(sys.argv[1]))
check = found[0]('pagerduty_dora', example.get('init_config') or {}, [instance])
error = check.run()
print(json.dumps({
    'classes': [cls.__name__ for cls in found],
    'module': package.__file__,
    'example_keys': sorted(example['instances'][0]),
    'error': json.loads(error)[0]['message'] if error else '',
    'can_connect': [[m.value, sorted(m.tags)] for m in aggregator.metrics('pagerduty_dora.api.can_connect')],
}))
'''


def _run(*command: Any, cwd: Path | None = None) -> str:
    """Run a command, failing the test with its whole output if it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, 'command failed: {}\n{}\n{}'.format(command, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope='session')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('wheel')
    _run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--disable-pip-version-check', '--wheel-dir', out, ROOT)
    wheels = list(out.glob('*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='session')
def agent_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtual environment holding only the base package, with the wheel installed as the Agent does."""
    venv = tmp_path_factory.mktemp('agent-venv')
    _run(sys.executable, '-m', 'venv', venv)
    python = venv / 'bin' / 'python'
    _run(python, '-m', 'pip', 'install', '--disable-pip-version-check', AGENT_BASE)
    _run(python, '-m', 'pip', 'install', '--disable-pip-version-check', '--no-deps', wheel)
    return python


class TestWheel:
    """The wheel carries what `datadog-agent integration install -w` needs, and nothing it must not."""

    def test_metadata(self, wheel: Path) -> None:
        with zipfile.ZipFile(wheel) as archive:
            (metadata_name,) = [n for n in archive.namelist() if n.endswith('.dist-info/METADATA')]
            metadata = Parser().parsestr(archive.read(metadata_name).decode('utf-8'))

        assert metadata['Name'] == 'datadog-pagerduty-dora'
        assert [r for r in metadata.get_all('Requires-Dist') or [] if 'extra ==' not in r] == [
            'datadog-checks-base>=37.33.0'
        ]
        requires_python = SpecifierSet(metadata['Requires-Python'])
        assert ['3.12.0', '3.13.0'] == [v for v in ('3.12.0', '3.13.0') if v in requires_python]

    def test_files(self, wheel: Path) -> None:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            example = archive.read(PACKAGE_DIR + 'data/conf.yaml.example').decode('utf-8')

        assert 'datadog_checks/__init__.py' not in names
        assert example == (ROOT / PACKAGE_DIR / 'data' / 'conf.yaml.example').read_text()
        assert PACKAGE_DIR + '__init__.py' in names
        assert PACKAGE_DIR + 'config_models/instance.py' in names
        outside = [n for n in names if not n.startswith(PACKAGE_DIR) and '.dist-info/' not in n]
        assert outside == []
        assert [n for n in names if '__pycache__' in n or n.endswith('.pyc')] == []

    def test_holds_the_product_and_the_demo_only(self, wheel: Path) -> None:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            sources = {n: archive.read(n).decode('utf-8') for n in names if n.endswith('.py')}

        shipped = sorted(n[len(PACKAGE_DIR) :] for n in names if n.startswith(PACKAGE_DIR))
        assert shipped == sorted(SHIPPED), (
            'a module was added or removed: if it is for the tests, move it to tests/fakes'
        )
        parts = {part.removesuffix('.py') for name in names for part in name.split('/')}
        assert parts.isdisjoint(TEST_ONLY)
        injecting = [n for n, text in sources.items() if any(w in text for w in FAULT_INJECTION)]
        assert injecting == [], 'fault injection ships in the wheel'


class TestAgentLoad:
    """Installed with --no-deps next to the base package only, the check imports, configures and runs."""

    def test_runs_once_against_loopback(self, agent_python: Path, tmp_path: Path) -> None:
        with FakeServer(quiet_account_routes()) as server:
            options = {
                'api_token': API_TOKEN,
                'pagerduty_api_url': server.url,
                'datadog_api_url': server.url,
                'datadog_api_key': DATADOG_API_KEY,
            }
            # -I keeps the source tree and this test environment off the path: only the wheel can be imported.
            output = _run(agent_python, '-I', '-c', LOADER, json.dumps(options), cwd=tmp_path)
            incident_requests = [r for r in server.requests if r.method == 'GET' and r.path == '/incidents']

        report = json.loads(output.strip().splitlines()[-1])
        assert report['classes'] == ['PagerdutyDoraCheck'], 'the Agent would not find exactly one check class'
        assert report['error'] == ''
        assert report['module'].startswith(str(agent_python.parent.parent))
        assert report['example_keys'] == ['api_token']
        assert [1, ['api:pagerduty']] in report['can_connect']
        assert incident_requests, 'the check never asked the fake for incidents'
        assert {r.headers.get('authorization') for r in incident_requests} == {'Token token={}'.format(API_TOKEN)}
