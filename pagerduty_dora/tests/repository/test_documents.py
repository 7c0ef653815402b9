# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The repository's documents: every relative link resolves, and every paragraph ends its sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..paths import PACKAGE, REPOSITORY

INTEGRATION = REPOSITORY / 'pagerduty_dora'
EXAMPLE = PACKAGE / 'data' / 'conf.yaml.example'
# Folders that hold no document of the repository: tools' environments and caches.
IGNORED = re.compile(r'^(\.git|\.venv.*|\..*_cache|__pycache__|build|dist|.*\.egg-info)$')
# Markdown's inline links `[text](target)`, images included, and reference definitions `[1]: target`.
INLINE_LINK = re.compile(r'\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
REFERENCE_LINK = re.compile(r'^\s*\[[^\]]+\]:\s*(\S+)', flags=re.MULTILINE)
FENCE = re.compile(r'^\s*```.*?^\s*```', flags=re.MULTILINE | re.DOTALL)
# A path to a document in the conf.yaml.example's comments, read from the integration's folder.
EXAMPLE_PATH = re.compile(r'(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]+\.md)\b')


def markdown_files() -> list[Path]:
    found = []
    for path in sorted(REPOSITORY.rglob('*.md')):
        parts = path.relative_to(REPOSITORY).parts
        if not any(IGNORED.match(part) for part in parts[:-1]):
            found.append(path)
    return found


def name(path: Path) -> str:
    return str(path.relative_to(REPOSITORY))


def relative_targets(text: str) -> list[str]:
    """The targets of the links of a Markdown text that point into the repository (no scheme, no mail)."""
    text = FENCE.sub('', text)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r'^[a-z][a-z0-9+.-]*:', t, flags=re.IGNORECASE)]


def test_the_documents_are_found():
    names = {name(p) for p in markdown_files()}
    expected = {'README.md', 'pagerduty_dora/README.md', 'pagerduty_dora/CHANGELOG.md', 'pagerduty_dora/docs/limits.md'}
    assert expected <= names


@pytest.mark.parametrize('document', markdown_files(), ids=name)
def test_relative_links_resolve(document):
    broken = []
    for target in relative_targets(document.read_text(encoding='utf-8')):
        path = target.split('#', 1)[0]
        if path and not (document.parent / path).exists():
            broken.append(target)
    assert broken == []


def test_example_configuration_names_existing_pages():
    text = EXAMPLE.read_text(encoding='utf-8')
    paths = EXAMPLE_PATH.findall(text)
    assert paths, 'the example names no page: the test would check nothing'
    assert [p for p in paths if not (INTEGRATION / p).is_file()] == []


def paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a Markdown text: no code, headings, tables, lists, quotes or link definitions."""
    text = FENCE.sub('\n', text)
    found = []
    for block in re.split(r'\n\s*\n', text):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        first = lines[0].lstrip()
        if re.match(r'^(#|\||[-*+] |\d+\. |>|\[[^\]]+\]:|<!--|<)', first):
            continue
        found.append(' '.join(line.strip() for line in lines))
    return found


@pytest.mark.parametrize('document', markdown_files(), ids=name)
def test_paragraphs_end_their_sentence(document):
    unfinished = [p[-60:] for p in paragraphs(document.read_text(encoding='utf-8')) if not re.search(r'[.:?!)*`]$', p)]
    assert unfinished == []


def test_readme_names_the_environments_the_scripts_create():
    """The root README names the clone's `.venv-*` folders the scripts make; the test environments are hatch's."""
    readme = ' '.join((REPOSITORY / 'README.md').read_text(encoding='utf-8').split())
    lib = (REPOSITORY / 'scripts' / 'lib.sh').read_text(encoding='utf-8')
    named = set(re.findall(r'`(\.venv-[a-z]+)`', readme))
    assert named == set(re.findall(r'\$ROOT/(\.venv-[a-z]+)', lib)) == {'.venv-ddev', '.venv-demo'}
    assert '`.venv-*`' not in readme
    assert 'hatch' in readme
