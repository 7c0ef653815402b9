# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a newcomer runs from a fresh clone: `scripts/demo`, `scripts/dry-run`, and the README's Setup commands.

The clone is a copy of the repository's files (what `git clone` gives) whose `.venv-demo` already
exists, and whose PATH holds no Python at all: the scripts must use that environment, not look for
an interpreter. The environment is this test run's own Python, with the clone's package first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..check.test_agent_version import minimum_agent, minimum_base, minor
from ..fakes.demo import DemoWorld
from ..paths import REPOSITORY
from .test_package import AGENT_BASE

pytestmark = pytest.mark.slow

README = (REPOSITORY / 'pagerduty_dora' / 'README.md').read_text(encoding='utf-8')
# What the scripts call, so that looking for Python fails only for want of a Python.
TOOLS = ('bash', 'dirname', 'cat', 'ls', 'sort')


def repository_files() -> list[str]:
    if shutil.which('git') is None or not (REPOSITORY / '.git').exists():
        pytest.skip('not a git checkout: there is no clone to copy')
    listed = subprocess.run(
        ['git', '-C', str(REPOSITORY), 'ls-files', '--cached', '--others', '--exclude-standard'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (REPOSITORY / name).is_file()]


@pytest.fixture(scope='module')
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('clone')
    for name in repository_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, target)
    # The environment scripts/demo set up on its first run, standing in for the one it would install.
    python = root / '.venv-demo' / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text(
        '#!/bin/sh\nPYTHONPATH="{}" exec "{}" "$@"\n'.format(root / 'pagerduty_dora', sys.executable), encoding='utf-8'
    )
    python.chmod(0o755)
    return root


@pytest.fixture(scope='module')
def bare_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Only the tools the scripts use are on PATH: no python, no pyenv."""
    tools = tmp_path_factory.mktemp('bin')
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    home = tmp_path_factory.mktemp('home')
    return {
        'PATH': str(tools),
        'HOME': str(home),
        'PYENV_ROOT': str(home / 'no-pyenv'),
        'DDEV_SKIP_GENERIC_TAGS_CHECK': 'true',
        'LANG': 'C.UTF-8',
    }


@pytest.fixture(scope='module')
def world():
    world = DemoWorld(start=time.time())
    with world:
        yield world


def run_in(clone: Path, environment: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=clone, env=environment, capture_output=True, text=True, timeout=120)


def write_conf(directory: Path, instance: dict) -> Path:
    path = directory / 'conf.yaml'
    path.write_text(yaml.safe_dump({'init_config': {}, 'instances': [instance]}), encoding='utf-8')
    return path


class TestScriptsFromAClone:
    """`scripts/demo` and `scripts/dry-run` run from a fresh clone, in the clone's own environment."""

    def test_no_python_is_looked_for_once_the_environment_exists(self, clone, bare_environment):
        # The control: in this environment, looking for Python 3.13 fails.
        looked = run_in(clone, bare_environment, 'bash', '-c', 'set -euo pipefail; . scripts/lib.sh; require_python313')
        assert looked.returncode == 1
        assert looked.stderr.startswith('error: Python 3.13 not found on PATH nor under '), looked.stderr

        result = run_in(clone, bare_environment, 'scripts/demo')

        assert result.returncode == 0, result.stderr
        assert result.stderr == ''
        assert 'run 4:' in result.stdout
        assert result.stdout.rstrip().splitlines()[-2].split()[:2] == ['scripts/dry-run', 'conf.yaml']

    @pytest.mark.parametrize('versions', [('3.12',), ('3.12', '3.13')], ids=['only-3.12', 'both'])
    def test_demo_environment_takes_either_supported_python(self, clone, bare_environment, tmp_path, versions):
        """The demo's environment is built with 3.13 when there is one, else 3.12: both are supported."""
        folder = tmp_path / 'pythons'
        folder.mkdir()
        for version in versions:
            python = folder / 'python{}'.format(version)
            python.write_text('#!/bin/sh\nexit 0\n', encoding='utf-8')
            python.chmod(0o755)
        environment = dict(bare_environment, PATH='{}:{}'.format(folder, bare_environment['PATH']))

        script = 'set -euo pipefail; . scripts/lib.sh; require_demo_python; echo "$DEMO_BASE_PYTHON"'
        found = run_in(clone, environment, 'bash', '-c', script)

        assert found.returncode == 0, found.stderr
        assert found.stdout.strip() == str(folder / 'python{}'.format(versions[-1]))

    def test_demo_environment_without_python_names_both(self, clone, bare_environment):
        script = 'set -euo pipefail; . scripts/lib.sh; require_demo_python'
        found = run_in(clone, bare_environment, 'bash', '-c', script)

        assert found.returncode == 1
        assert found.stderr.strip() == (
            'error: neither Python 3.13 nor 3.12 found on PATH nor under pyenv; install one of them'
        )

    def test_dry_run(self, clone, bare_environment, world, tmp_path):
        conf = write_conf(tmp_path, world.instance())

        result = run_in(clone, bare_environment, 'scripts/dry-run', str(conf))

        assert result.returncode == 0, result.stderr
        assert 'Nothing was submitted and no state was stored.' in result.stdout
        assert 'DORA failures that would be sent (POST /api/v2/dora/failure): 11' in result.stdout
        assert 'the API key is accepted.' in result.stdout
        assert world.dora.posts == []

    def test_dry_run_json_and_instance(self, clone, bare_environment, world, tmp_path):
        conf = tmp_path / 'conf.yaml'
        conf.write_text(
            yaml.safe_dump({'instances': [world.instance(), world.instance(env='staging')]}), encoding='utf-8'
        )

        result = run_in(clone, bare_environment, 'scripts/dry-run', str(conf), '--instance', '1', '--json')

        assert result.returncode == 0, result.stderr
        assert '"env": "staging"' in result.stdout

    def test_dry_run_refusal_is_one_line(self, clone, bare_environment, world, tmp_path):
        conf = write_conf(tmp_path, world.instance(backfill_days=999))

        result = run_in(clone, bare_environment, 'scripts/dry-run', str(conf))

        assert result.returncode == 1 and result.stdout == ''
        assert result.stderr.strip().splitlines() == [
            'python -m datadog_checks.pagerduty_dora: error: invalid configuration: `backfill_days` must be between '
            '0 and 730, got 999'
        ]

    def test_demo_runs_a_dry_run_given_a_config(self, clone, bare_environment, world, tmp_path):
        conf = write_conf(tmp_path, world.instance())

        result = run_in(clone, bare_environment, 'scripts/demo', '--config', str(conf), '--dry-run')

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith('pagerduty_dora dry run: ')

    @pytest.mark.parametrize(
        'arguments, status', [(['--help'], 0), ([], 2), (['--json'], 2)], ids=['help', 'none', 'no-file']
    )
    def test_usage(self, clone, bare_environment, arguments, status):
        result = run_in(clone, bare_environment, 'scripts/dry-run', *arguments)

        assert result.returncode == status
        usage = result.stdout if status == 0 else result.stderr
        assert usage.startswith('usage: scripts/dry-run CONF.YAML [--instance N] [--json] [--strict] [--verbose]')


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(r'^ *```{}\n(.*?)^ *```'.format(language), text, flags=re.MULTILINE | re.DOTALL)


def flat(text: str) -> str:
    """Text with its line breaks and indentation as single spaces, as Markdown renders it."""
    return ' '.join(text.split())


def section(text: str, heading: str) -> str:
    """The text under a `## ` or `### ` heading, up to the next heading of the same or a higher level."""
    level = heading.split(' ', 1)[0]
    start = text.index('\n' + heading + '\n')
    ends = [m.start() for m in re.finditer(r'^#{2,%d} ' % len(level), text[start + 1 :], flags=re.MULTILINE)]
    end = start + 1 + ends[1] if len(ends) > 1 else len(text)
    return text[start:end]


class TestReadmeSetup:
    """The README has the integrations-core shape, and its Setup commands exist and run from a clone."""

    def test_shape(self):
        headings = re.findall(r'^(#{2,3} .+)$', README, flags=re.MULTILINE)
        assert headings[:6] == [
            '## Overview',
            '## Setup',
            '### Installation',
            '### Configuration',
            '### Select the API as the failures source in DORA Metrics',
            '### Change failure rate',
        ]
        tops = [h for h in headings if h.startswith('## ')]
        assert tops == [
            '## Overview',
            '## Setup',
            '## Data Collected',
            '## Troubleshooting',
            '## Further Reading',
            '## Support',
        ]
        assert '### Validation' in headings and headings.index('### Validation') < headings.index('## Data Collected')

    def test_reference_pages_are_linked_and_exist(self):
        pages = sorted(set(re.findall(r'\]: (docs/[a-z-]+\.md)$', README, flags=re.MULTILINE)))
        assert pages == [
            'docs/change-failure-attribution.md',
            'docs/containers.md',
            'docs/data-collected.md',
            'docs/how-it-works.md',
            'docs/limits.md',
            'docs/mapping.md',
            'docs/package-map.md',
            'docs/running-at-scale.md',
        ]
        for page in pages:
            assert (REPOSITORY / 'pagerduty_dora' / page).is_file(), page

    def test_script_commands_exist(self, clone):
        commands = set(re.findall(r'`(scripts/[a-z-]+)[^`]*`', README))
        for block in code_blocks(README, 'shell'):
            commands.update(re.findall(r'^\s*(scripts/[a-z-]+)', block, flags=re.MULTILINE))
        assert commands == {'scripts/demo', 'scripts/dry-run'}
        for command in commands:
            assert os.access(clone / command, os.X_OK), command

    def test_python_commands_run(self, clone, world, tmp_path):
        python = str(clone / '.venv-demo' / 'bin' / 'python')
        environment = dict(os.environ, DDEV_SKIP_GENERIC_TAGS_CHECK='true')
        blocks = '\n'.join(code_blocks(section(README, '### Installation'), 'shell'))
        assert 'python -m datadog_checks.pagerduty_dora --demo' in blocks
        demo = subprocess.run(
            [python, '-m', 'datadog_checks.pagerduty_dora', '--demo'],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
        assert demo.returncode == 0 and 'run 4:' in demo.stdout, demo.stderr

        validation = section(README, '### Validation')
        written = re.search(r'`(python -m datadog_checks\.pagerduty_dora --config conf\.yaml\s+--dry-run)`', validation)
        assert written, validation
        conf = write_conf(tmp_path, world.instance())
        arguments = written.group(1).replace('python', python, 1).replace('conf.yaml', str(conf)).split()
        dry = subprocess.run(arguments, capture_output=True, text=True, timeout=120, env=environment)
        assert dry.returncode == 0 and 'Nothing was submitted' in dry.stdout, dry.stderr

    def test_wheel_build_command(self, clone, tmp_path):
        (command,) = [
            line for line in code_blocks(section(README, '### Installation'), 'shell')[0].splitlines() if line.strip()
        ]
        assert command.strip() == 'python -m pip wheel --no-deps --wheel-dir dist .'
        out = tmp_path / 'dist'
        built = subprocess.run(
            [
                sys.executable,
                '-m',
                'pip',
                'wheel',
                '--no-deps',
                '--disable-pip-version-check',
                '--wheel-dir',
                str(out),
                '.',
            ],
            cwd=clone / 'pagerduty_dora',
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stderr
        assert [p.name for p in out.glob('*.whl')] == ['datadog_pagerduty_dora-{}-py3-none-any.whl'.format(version())]

    def test_pip_path_pins_the_base_that_resolves(self):
        from importlib.metadata import metadata

        installation = section(README, '### Installation')
        (install,) = [
            line for block in code_blocks(installation, 'shell') for line in block.splitlines() if 'pip install' in line
        ]
        # The requirement the package tests install into a fresh environment (`test_package`), and the
        # release the test environments pin (scripts/lib.sh), with the extra that brings its dependencies.
        assert '"{}"'.format(AGENT_BASE) in install
        lib = (REPOSITORY / 'scripts' / 'lib.sh').read_text(encoding='utf-8')
        pinned = re.search(r'DDEV_TEST_BASE_PACKAGE_VERSION:-([0-9.]+)', lib)
        assert AGENT_BASE == 'datadog-checks-base[deps]=={}'.format(pinned.group(1))
        assert 'deps' in (metadata('datadog-checks-base').get_all('Provides-Extra') or [])
        assert '38.6.0 and 38.7.0' in installation and 'certifi==2026.10.19' in installation

    def test_agent_requirements(self):
        installation = section(README, '### Installation')
        assert '**Agent {} or later**'.format(minor(minimum_agent())) in installation
        assert 'datadog-checks-base **{} or later**'.format(minimum_base()) in installation

    def test_dockerfile(self):
        """The README sends container users to the repository's Dockerfile, with no recipe of its own to drift."""
        installation = section(README, '### Installation')
        assert code_blocks(installation, 'dockerfile') == []
        assert '[`Dockerfile`](../Dockerfile)' in installation
        assert (REPOSITORY / 'Dockerfile').is_file()

    def test_setup_says_what_people_miss(self):
        setup = section(README, '## Setup')
        source = flat(section(README, '### Select the API as the failures source in DORA Metrics'))
        assert 'select the **API** as the failures (incident) data source' in source
        assert 'data populates from the moment that source is selected' in source
        assert "Datadog's PagerDuty webhook" in source
        failure_rate = flat(section(README, '### Change failure rate'))
        assert 'computed from **deployments marked as change failures**, not from the failures' in failure_rate
        assert '`attribute_change_failures: true`' in failure_rate and 'it writes nothing' in failure_rate
        validation = flat(section(README, '### Validation'))
        assert 'runs the real check once: it **posts DORA failures**' in validation
        assert '**writes the persistent cache** that the running Agent shares' in validation
        assert 'for a look that writes nothing, use the dry run' in validation
        assert setup.index('### Change failure rate') < setup.index('### Validation')

    def test_support_url(self):
        support = section(README, '## Support')
        assert 'https://docs.datadoghq.com/help/' in README and '[14]' in support
        assert 'open an issue in this repository' not in README.lower()


def version() -> str:
    about = (REPOSITORY / 'pagerduty_dora' / 'datadog_checks' / 'pagerduty_dora' / '__about__.py').read_text()
    found = re.search(r"__version__ = '([^']+)'", about)
    assert found is not None
    return found.group(1)


class TestDocsAgree:
    """The README, its reference pages, the CHANGELOG and the configuration say the same thing."""

    def test_time_to_acknowledge_ends_at_the_first_acknowledgement(self):
        folder = REPOSITORY / 'pagerduty_dora'
        texts = {
            p.name: p.read_text(encoding='utf-8')
            for p in [folder / 'README.md', folder / 'CHANGELOG.md', *sorted((folder / 'docs').glob('*.md'))]
        }
        assert [
            name for name, text in texts.items() if 'each\nacknowledgement' in text or 'each acknowledgement' in text
        ] == []
        assert 'time to acknowledge ends at the first acknowledgement' in texts['CHANGELOG.md']
        assert 'first acknowledgement' in texts['data-collected.md']

    def test_service_option_is_refused_everywhere(self):
        folder = REPOSITORY / 'pagerduty_dora'
        example = (folder / 'datadog_checks' / 'pagerduty_dora' / 'data' / 'conf.yaml.example').read_text()
        spec = (folder / 'assets' / 'configuration' / 'spec.yaml').read_text()
        for text in (example, spec, README):
            assert 'second `service` tag' not in text and 'Every metric has the same `service`' not in text
        assert example.count('refuses it with a') == 2 and spec.count('refuses it with a') == 2
