# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Agent release an operator can act on.

The wheel requires a datadog-checks-base release (pyproject.toml), and the Agent's installer refuses
the wheel on an Agent whose embedded base does not meet it. The minimum Agent is the oldest release
recorded below whose embedded base meets the requirement; every document states that release, and
the requirement is no lower than what the check uses from the base.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, NamedTuple

import certifi
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from datadog_checks.base import AgentCheck

from ..harness import World, assert_service_check
from ..paths import PACKAGE, REPOSITORY

INTEGRATION = REPOSITORY / 'pagerduty_dora'


class Embedded(NamedTuple):
    """What an Agent release embeds: its Python (major.minor) and the oldest datadog-checks-base it can hold."""

    python: str
    base: str


# What Agent releases embed, as integrations-core's changelogs record it: each integration release is
# listed under the first Agent release that ships it, and the Agent ships the base those releases need,
# so each base here is a floor (the release may hold a later patch). Only the rows this check needs.
EMBEDDED = {
    # infiniband/CHANGELOG.md 1.2.0: "Bump Python to 3.13", "Bump datadog-checks-base to 37.21.0".
    '7.72.0': Embedded(python='3.13', base='37.21.0'),
    # infiniband/CHANGELOG.md 1.3.0, lustre/CHANGELOG.md 1.3.0: "Bump minimum version of
    # datadog-checks-base to 37.24.0".
    '7.74.0': Embedded(python='3.13', base='37.24.0'),
    # nutanix/CHANGELOG.md 1.1.0, infiniband/CHANGELOG.md 1.6.0: "Add support for security validation
    # in models", models calling the checks datadog-checks-base has from 37.33.0 on (USES below).
    '7.78.0': Embedded(python='3.13', base='37.33.0'),
}

# What the check uses from datadog-checks-base that older releases lack, with the first release that has
# it: the configuration models generated from assets/configuration/spec.yaml call it on file-path
# options (on 37.32.0, a configured `tls_ca_cert` fails with an AttributeError).
USES = {
    'validation.security.check_field_trusted_provider': '37.33.0',
}


def base_requirement() -> SpecifierSet:
    """The datadog-checks-base versions the wheel accepts, as pyproject.toml states them."""
    pyproject = (INTEGRATION / 'pyproject.toml').read_text(encoding='utf-8')
    (line,) = re.findall(r'"(datadog-checks-base[^"]*)"', pyproject)
    return Requirement(line).specifier


def minimum_base() -> str:
    """The oldest datadog-checks-base the wheel accepts (its `>=` bound)."""
    (bound,) = [spec.version for spec in base_requirement() if spec.operator == '>=']
    return bound


def minimum_agent() -> str:
    """The oldest recorded Agent release whose embedded base the wheel accepts."""
    accepted = [agent for agent, embedded in EMBEDDED.items() if embedded.base in base_requirement()]
    assert accepted, 'no recorded Agent release embeds datadog-checks-base {}'.format(base_requirement())
    return min(accepted, key=Version)


def minor(release: str) -> str:
    """`7.78.0` -> `7.78`, as the documents name an Agent line."""
    return '.'.join(release.split('.')[:2])


def stated_minimums(text: str) -> set[str]:
    """Every `Agent 7.NN or later` a document states (markup and line breaks ignored)."""
    return set(re.findall(r'Agent (7\.\d+) or later', ' '.join(text.replace('*', '').replace('#', ' ').split())))


class TestRequirement:
    """The requirement is one some released Agent meets, and no lower than what the check uses."""

    def test_the_minimum_agent_embeds_what_the_wheel_requires(self):
        agent = minimum_agent()
        assert EMBEDDED[agent].base in base_requirement()
        requires_python = (INTEGRATION / 'pyproject.toml').read_text(encoding='utf-8')
        (python,) = re.findall(r'requires-python = "([^"]+)"', requires_python)
        assert EMBEDDED[agent].python + '.0' in SpecifierSet(python)

    def test_no_older_recorded_release_does(self):
        agent = minimum_agent()
        older = [a for a in EMBEDDED if Version(a) < Version(agent)]
        assert older, 'the table records no release before the minimum, so nothing says it is the oldest'
        assert all(EMBEDDED[a].base not in base_requirement() for a in older)

    def test_the_requirement_covers_what_the_check_uses(self):
        source = '\n'.join(p.read_text(encoding='utf-8') for p in sorted(PACKAGE.rglob('*.py')))
        for name, first in USES.items():
            assert name in source, '{} is no longer used: drop it from USES'.format(name)
            assert Version(minimum_base()) >= Version(first), '{} needs datadog-checks-base {}'.format(name, first)

    def test_the_tests_run_on_the_oldest_base_the_wheel_accepts(self):
        lib = (REPOSITORY / 'scripts' / 'lib.sh').read_text(encoding='utf-8')
        (pinned,) = re.findall(r'DDEV_TEST_BASE_PACKAGE_VERSION:-([0-9.]+)\}', lib)
        assert pinned == minimum_base()


class TestOnTheTestedBase:
    """On the base the tests run on (the oldest the wheel accepts), what the check uses is there."""

    def test_a_file_path_option_passes_the_models(self, aggregator, dd_run_check: Callable[..., Any], world: World):
        check = world.check(tls_ca_cert=certifi.where(), tags=['team:sre'])
        dd_run_check(check)

        assert check.config.tls_ca_cert == certifi.where()
        for api in ('pagerduty', 'datadog'):
            assert_service_check(
                aggregator, 'pagerduty_dora.can_connect', AgentCheck.OK, tags=['team:sre', 'api:' + api], count=1
            )


class TestDocuments:
    """Every place an operator reads the minimum Agent states the same one."""

    def test_the_documents_state_the_minimum(self):
        expected = {minor(minimum_agent())}
        for path in ('README.md', 'pagerduty_dora/README.md', 'pagerduty_dora/docs/containers.md', 'Dockerfile'):
            text = (REPOSITORY / path).read_text(encoding='utf-8')
            assert stated_minimums(text) == expected, path

    def test_the_readme_names_the_base_it_needs(self):
        readme = ' '.join((INTEGRATION / 'README.md').read_text(encoding='utf-8').split())
        assert 'datadog-checks-base **{} or later**'.format(minimum_base()) in readme
        assert 'Agent {} is the first release known to embed such a base'.format(minimum_agent()) in readme

    def test_the_service_checks_name_the_minimum(self):
        entries = json.loads((INTEGRATION / 'assets' / 'service_checks.json').read_text(encoding='utf-8'))
        assert {entry['agent_version'] for entry in entries} == {minimum_agent()}
