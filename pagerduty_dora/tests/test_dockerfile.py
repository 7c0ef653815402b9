# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The repository's Dockerfile, read as Docker reads it (there is no Docker here): it builds the wheel the
build really produces, installs it the Agent's way, and states the requirement the wheel has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
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


def base_requirement() -> str:
    pyproject = (INTEGRATION / 'pyproject.toml').read_text(encoding='utf-8')
    found = re.search(r'"datadog-checks-base>=([0-9.]+)"', pyproject)
    assert found, 'the wheel requires no datadog-checks-base version'
    return found.group(1)


@pytest.fixture(scope='module')
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of the wheel the integration's build produces, built as the Dockerfile's first stage builds it."""
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
    return wheel.name


class TestDockerfile:
    """A stage builds the wheel from the clone; the Agent stage installs exactly that wheel."""

    def test_two_stages(self):
        global_args, wheel_stage, agent_stage = stages()
        assert [i for i, _ in global_args] == ['ARG']
        assert wheel_stage[0] == ('FROM', 'python:3.13-slim AS wheel')
        assert ('COPY', 'pagerduty_dora/ /src/pagerduty_dora/') in wheel_stage
        assert agent_stage[0] == ('FROM', 'gcr.io/datadoghq/agent:${AGENT_VERSION}')
        assert global_args[0][1].startswith('AGENT_VERSION=')

    def test_the_built_wheel_is_the_one_installed(self, built_wheel):
        _, wheel_stage, agent_stage = stages()
        (build,) = [a for i, a in wheel_stage if i == 'RUN']
        assert build.split() == (
            'python -m pip wheel --no-deps --disable-pip-version-check --wheel-dir /dist /src/pagerduty_dora'.split()
        )
        copies = [a for i, a in agent_stage if i == 'COPY']
        assert copies == ['--from=wheel /dist/{} /tmp/'.format(built_wheel)]
        (install,) = [a for i, a in agent_stage if i == 'RUN']
        assert install.split('&&')[0].split() == ['agent', 'integration', 'install', '-r', '-w', '/tmp/' + built_wheel]

    def test_the_context_leaves_tool_environments_out(self):
        ignored = (REPOSITORY / '.dockerignore').read_text(encoding='utf-8').split()
        assert {'.git', '.venv*'} <= set(ignored)


class TestBaseRequirement:
    """The datadog-checks-base release the wheel requires is stated the same way wherever an operator reads it."""

    def test_everywhere(self):
        minimum = base_requirement()
        readme = ' '.join((INTEGRATION / 'README.md').read_text(encoding='utf-8').split())
        containers = ' '.join((INTEGRATION / 'docs' / 'containers.md').read_text(encoding='utf-8').split())
        dockerfile = ' '.join(DOCKERFILE.read_text(encoding='utf-8').replace('#', ' ').split())
        lib = (REPOSITORY / 'scripts' / 'lib.sh').read_text(encoding='utf-8')
        assert 'datadog-checks-base **{} or later**'.format(minimum) in readme
        assert 'embedded datadog-checks-base is {} or later'.format(minimum) in containers
        assert 'embedded datadog-checks-base is {} or later'.format(minimum) in dockerfile
        assert 'DDEV_TEST_BASE_PACKAGE_VERSION:-{}}}'.format(minimum) in lib
