# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The repository's Dockerfile, read as Docker reads it (there is no Docker here): it builds the wheel the
build really produces, installs it the Agent's way on an Agent release that accepts it, and states the
requirement the wheel has."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from ..check.test_agent_version import EMBEDDED, base_requirement, minimum_agent, minimum_base
from ..paths import REPOSITORY

pytestmark = pytest.mark.slow

INTEGRATION = REPOSITORY / 'pagerduty_dora'
DOCKERFILE = REPOSITORY / 'Dockerfile'


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding='utf-8')
    lines = [line for line in text.splitlines() if not line.lstrip().startswith('#')]
    joined = re.sub(r'\\\n\s*', ' ', '\n'.join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(' ')
            found.append((instruction.upper(), arguments.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, the global ones (before the first FROM) first."""
    result: list[list[tuple[str, str]]] = [[]]
    for instruction, arguments in instructions():
        if instruction == 'FROM':
            result.append([])
        result[-1].append((instruction, arguments))
    return result


def agent_version_default() -> str:
    """The Agent release the Dockerfile builds on when none is given."""
    global_args, _, _ = stages()
    (default,) = [a.partition('=')[2] for i, a in global_args if i == 'ARG' and a.startswith('AGENT_VERSION=')]
    return default


@pytest.fixture(scope='module')
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the integration's build produces, built as the Dockerfile's first stage builds it."""
    out = tmp_path_factory.mktemp('dist')
    built = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--disable-pip-version-check', '--wheel-dir', str(out)]
        + [str(INTEGRATION)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob('*.whl')
    return wheel


class TestDockerfile:
    """A stage builds the wheel from the clone; the Agent stage installs exactly that wheel."""

    def test_two_stages(self):
        global_args, wheel_stage, agent_stage = stages()
        assert [i for i, _ in global_args] == ['ARG']
        assert wheel_stage[0] == ('FROM', 'python:3.13-slim AS wheel')
        assert ('COPY', 'pagerduty_dora/ /src/pagerduty_dora/') in wheel_stage
        assert agent_stage[0] == ('FROM', 'gcr.io/datadoghq/agent:${AGENT_VERSION}')
        assert global_args[0][1].startswith('AGENT_VERSION=')

    def test_the_built_wheel_is_the_one_installed(self, built_wheel: Path):
        built_wheel_name = built_wheel.name
        _, wheel_stage, agent_stage = stages()
        (build,) = [a for i, a in wheel_stage if i == 'RUN']
        assert build.split() == (
            'python -m pip wheel --no-deps --disable-pip-version-check --wheel-dir /dist /src/pagerduty_dora'.split()
        )
        copies = [a for i, a in agent_stage if i == 'COPY']
        assert copies == ['--from=wheel /dist/{} /tmp/'.format(built_wheel_name)]
        (install,) = [a for i, a in agent_stage if i == 'RUN']
        assert install.split('&&')[0].split() == [
            'agent',
            'integration',
            'install',
            '-r',
            '-w',
            '/tmp/' + built_wheel_name,
        ]

    def test_the_context_leaves_tool_environments_out(self):
        ignored = (REPOSITORY / '.dockerignore').read_text(encoding='utf-8').split()
        assert {'.git', '.venv*'} <= set(ignored)


class TestAgentRelease:
    """The image is built, by default, on an Agent release whose installer accepts the wheel."""

    def test_the_default_is_a_release_that_accepts_the_wheel(self):
        default = agent_version_default()
        assert re.fullmatch(r'7\.\d+\.\d+', default), 'AGENT_VERSION needs a default Agent image tag'
        assert Version(default) >= Version(minimum_agent())

    def test_the_built_wheel_requires_what_the_agent_embeds(self, built_wheel: Path):
        """The installer compares the wheel's `Requires-Dist` with the base the Agent embeds."""
        with zipfile.ZipFile(built_wheel) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith('.dist-info/METADATA')]
            metadata = Parser().parsestr(archive.read(name).decode('utf-8'))
        (base,) = [
            Requirement(line)
            for line in metadata.get_all('Requires-Dist') or []
            if line.startswith('datadog-checks-base')
        ]
        assert base.specifier == base_requirement()
        assert EMBEDDED[minimum_agent()].base in base.specifier


class TestBaseRequirement:
    """The datadog-checks-base release the wheel requires is stated the same way wherever an operator reads it."""

    def test_everywhere(self):
        minimum = minimum_base()
        readme = ' '.join((INTEGRATION / 'README.md').read_text(encoding='utf-8').split())
        containers = ' '.join((INTEGRATION / 'docs' / 'containers.md').read_text(encoding='utf-8').split())
        dockerfile = ' '.join(DOCKERFILE.read_text(encoding='utf-8').replace('#', ' ').split())
        lib = (REPOSITORY / 'scripts' / 'lib.sh').read_text(encoding='utf-8')
        assert 'datadog-checks-base **{} or later**'.format(minimum) in readme
        assert 'embedded datadog-checks-base {} or later'.format(minimum) in containers
        assert 'embedded datadog-checks-base {} or later'.format(minimum) in dockerfile
        assert 'DDEV_TEST_BASE_PACKAGE_VERSION:-{}}}'.format(minimum) in lib
        assert 'Left out, it is {},'.format(agent_version_default()) in containers
