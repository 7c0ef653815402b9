# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`scripts/test --fast`: the suite without the tests marked `slow`, for the edit-test loop."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from ..conftest import SLOW_TESTS, pytest_collection_modifyitems
from ..paths import REPOSITORY, TESTS

# Stands in for ddev: answers its version, and prints the arguments of any other call, one a line.
FAKE_DDEV = '''#!/usr/bin/env bash
if [ "${1:-}" = "--version" ]; then echo "ddev, version $DDEV_VERSION"; exit 0; fi
printf '%s\\n' "$@"
'''


def run_scripts_test(tmp_path: Path, *arguments: str) -> list[str]:
    """The ddev command `scripts/test` runs with `arguments`, against a stand-in ddev and Python 3.12."""
    bin_dir = tmp_path / 'bin'
    (tmp_path / 'ddev' / 'bin').mkdir(parents=True)
    bin_dir.mkdir()
    ddev = tmp_path / 'ddev' / 'bin' / 'ddev'
    ddev.write_text(FAKE_DDEV)
    python = bin_dir / 'python3.12'
    python.write_text('#!/usr/bin/env bash\nexit 0\n')
    for script in (ddev, python):
        script.chmod(0o755)
    environment = dict(
        os.environ,
        PATH='{}:{}'.format(bin_dir, os.environ['PATH']),
        PYTHON313=str(python),
        DDEV_VENV=str(tmp_path / 'ddev'),
        DDEV_VERSION='20.1.0',
    )
    result = subprocess.run(
        [str(REPOSITORY / 'scripts' / 'test'), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# The fast lane: all but the slow tests, in two processes.
FAST = ['--here', 'test', 'pagerduty_dora', '--', '-m', 'not slow', '-n', '2']


class TestScript:
    def test_fast_leaves_out_the_slow_tests(self, tmp_path):
        assert run_scripts_test(tmp_path, '--fast') == FAST

    def test_fast_passes_pytest_arguments_on(self, tmp_path):
        found = run_scripts_test(tmp_path, '--fast', '--', '-k', 'config')
        assert found == [*FAST, '-k', 'config']

    def test_without_fast_everything_runs(self, tmp_path):
        assert run_scripts_test(tmp_path, '--', '-k', 'config') == [
            '--here',
            'test',
            'pagerduty_dora',
            '--',
            '-k',
            'config',
        ]


class TestMarker:
    def test_the_marker_is_registered(self, pytestconfig):
        assert [line for line in pytestconfig.getini('markers') if line.startswith('slow:')]

    def test_the_tests_named_slow_are_marked(self):
        marked: list[str] = []
        items = [
            SimpleNamespace(
                path=TESTS / 'collection' / 'test_state.py',
                nodeid='tests/collection/test_state.py::TestRoundTrip::test_every_state_round_trips',
                add_marker=lambda marker: marked.append('round trip'),
            ),
            SimpleNamespace(
                path=TESTS / 'collection' / 'test_state.py',
                nodeid='tests/collection/test_state.py::TestRoundTrip::test_every_state_round_trips_again',
                add_marker=lambda marker: marked.append('another test'),
            ),
        ]
        pytest_collection_modifyitems(items)  # type: ignore[arg-type]
        assert marked == ['round trip']

    @pytest.mark.parametrize('name', SLOW_TESTS)
    def test_every_test_named_slow_exists(self, name):
        module, *path = name.split('::')
        scope: list[ast.stmt] = ast.parse((TESTS / module).read_text(encoding='utf-8')).body
        for part in path:
            found = [n for n in scope if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == part]
            assert found, name
            scope = found[0].body
