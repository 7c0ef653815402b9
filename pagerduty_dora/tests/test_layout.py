# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The package map of docs/package-map.md, held to: sub-packages import one way, no cycles, rooms of a readable size.

Also narrow constructors where a room has them, and a glossary (docs/how-it-works.md) naming modules that exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / 'datadog_checks' / 'pagerduty_dora'
NAME = 'datadog_checks.pagerduty_dora'
# Each room and the layer it sits on: a module imports only from its own room or from lower layers.
LAYERS = {
    '__about__': 0,
    'common': 0,
    'pagerduty': 1,
    'catalog': 2,
    'datadog': 3,
    'attribution': 4,
    'collection': 5,
    'config_models': 6,
    'config': 6,
    'check': 7,
    '__init__': 7,
    'demo': 8,
    'cli': 9,
    '__main__': 10,
}
# Modules the check's wiring may add beside check.py sit on its layer.
TOP_LAYER = 7
# Written by `ddev validate models`, not by hand.
GENERATED = {'config_models/instance.py', 'config_models/shared.py', 'config_models/defaults.py'}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Parameters of a constructor (`self` aside) in the rooms held to it: a part that needs more takes a
# value grouping what travels together, or a collaborator already built.
MAX_CONSTRUCTOR_PARAMETERS = 7
NARROW_ROOMS = ('attribution', 'common', 'datadog')
# Constructors elsewhere still wider than that; a room joins NARROW_ROOMS once its own are narrowed.
WIDE_CONSTRUCTORS = {
    'collection.collector': 'Collector',
    'collection.recorder': 'Recorder',
}
GLOSSARY = (Path(__file__).parent.parent / 'docs' / 'how-it-works.md').read_text(encoding='utf-8')


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        if parts[-1] == '__init__' and len(parts) > 1:
            parts = parts[:-1]
        found['.'.join(parts)] = path
    return found


MODULES = _modules()


def _constructor_widths(source: str) -> dict[str, int]:
    """Per class of `source` that defines `__init__`: how many parameters it takes, `self` aside."""
    widths = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for member in node.body:
            if isinstance(member, ast.FunctionDef) and member.name == '__init__':
                a = member.args
                named = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - 1
                widths[node.name] = named + (a.vararg is not None) + (a.kwarg is not None)
    return widths


def _room(module: str) -> str:
    return module.split('.')[0]


def _layer(module: str) -> int:
    return LAYERS.get(_room(module), TOP_LAYER)


def _imports(module: str, path: Path) -> set[str]:
    """Package modules `module` imports, at the top or inside a function."""
    package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith(NAME):
                target = node.module[len(NAME) + 1 :]
            else:
                continue
            names = [target + '.' + alias.name if target else alias.name for alias in node.names]
            names.append(target)
        elif isinstance(node, ast.Import):
            names = [a.name[len(NAME) + 1 :] for a in node.names if a.name.startswith(NAME + '.')]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition('.')[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


class TestImports:
    """Imports run one way, from the check down."""

    def test_every_room_has_a_layer(self) -> None:
        rooms = {_room(m) for m in MODULES if '.' in m}
        assert rooms <= set(LAYERS), sorted(rooms - set(LAYERS))

    def test_no_module_imports_from_a_higher_layer(self) -> None:
        upward = sorted(
            '{} -> {}'.format(module, target)
            for module, targets in GRAPH.items()
            for target in targets
            if _layer(target) > _layer(module) and not target.startswith(module + '.')
        )
        assert upward == []

    def test_no_import_cycle(self) -> None:
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        cycles: list[list[str]] = []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            for target in GRAPH.get(node, ()):
                if target.startswith(node + '.'):
                    continue
                if target not in index:
                    visit(target)
                    low[node] = min(low[node], low[target])
                elif target in stack:
                    low[node] = min(low[node], index[target])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))

        for module in sorted(GRAPH):
            if module not in index:
                visit(module)
        assert cycles == []

    def test_the_layout_check_sees_the_imports(self) -> None:
        assert 'collection.feed' in GRAPH['collection.passes']
        assert 'common.http' in GRAPH['collection.feed']
        assert 'pagerduty.transitions' in GRAPH['collection.story']


class TestPackageMap:
    """docs/package-map.md says what the code does: every room on its layer, every module it names present."""

    MAP = (Path(__file__).parent.parent / 'docs' / 'package-map.md').read_text(encoding='utf-8')

    def test_every_room_is_on_the_map_at_its_layer(self) -> None:
        rows = re.findall(r'^\| (\d+) \| (.+?) \|', self.MAP, flags=re.MULTILINE)
        mapped = {room: int(layer) for layer, cell in rows for room in re.findall(r'`([a-z_]+)(?:/|\.py)`', cell)}
        rooms = {_room(m) for m in MODULES if '.' in m} | {'check'}
        assert {room: mapped.get(room) for room in rooms} == {room: LAYERS[room] for room in rooms}

    def test_every_module_the_map_names_exists(self) -> None:
        named = set(re.findall(r'`([a-z_]+/[a-z_]+)\.py`', self.MAP))
        assert named
        integration = Path(__file__).parent.parent
        missing = [
            name
            for name in named
            if name.replace('/', '.') not in MODULES and not (integration / (name + '.py')).is_file()
        ]
        assert sorted(missing) == []


class TestSizes:
    """Rooms a newcomer can read: modules of a few hundred lines, functions of a screen."""

    @pytest.mark.parametrize('module', sorted(MODULES), ids=sorted(MODULES))
    def test_module_and_function_sizes(self, module: str) -> None:
        path = MODULES[module]
        if path.relative_to(PACKAGE).as_posix() in GENERATED:
            pytest.skip('generated by ddev validate models')
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_MODULE_LINES
        long = [
            '{} ({} lines)'.format(node.name, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        ]
        assert long == []


class TestConstructors:
    """Narrow constructors: what travels together is one value (rules, bounds, the Agent's services)."""

    @pytest.mark.parametrize('module', [m for m in sorted(MODULES) if _room(m) in NARROW_ROOMS])
    def test_no_constructor_takes_more_than_the_maximum(self, module: str) -> None:
        widths = _constructor_widths(MODULES[module].read_text())
        assert {name: n for name, n in widths.items() if n > MAX_CONSTRUCTOR_PARAMETERS} == {}

    def test_the_wide_ones_are_outside_the_narrow_rooms(self) -> None:
        assert [module for module in WIDE_CONSTRUCTORS if _room(module) in NARROW_ROOMS] == []

    def test_the_count_sees_every_kind_of_parameter(self) -> None:
        source = 'class Wide:\n    def __init__(self, a, /, b, *c, d, e=1, **f):\n        pass\n'
        assert _constructor_widths(source) == {'Wide': 6}


class TestGlossary:
    """The glossary of docs/how-it-works.md points each word to a module that exists."""

    def test_every_module_the_glossary_names_exists(self) -> None:
        glossary = GLOSSARY.split('## Glossary', 1)[1]
        named = set(re.findall(r'`([a-z_]+/[a-z_]+)\.py`', glossary))
        assert len(named) > 10
        assert sorted(name for name in named if name.replace('/', '.') not in MODULES) == []
