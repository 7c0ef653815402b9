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

from ..paths import INTEGRATION, PACKAGE, TESTS

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
GLOSSARY = (INTEGRATION / 'docs' / 'how-it-works.md').read_text(encoding='utf-8')


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


def _source_module(module: str | None, path: Path, node: ast.ImportFrom) -> str | None:
    """The package module (relative to the package, '' for its root) `node` imports from; None outside the package.

    `module` is the importing module's name in the package, None for a file outside it (a test).
    """
    if node.level and module is not None:
        package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
        base = package[: len(package) - node.level + 1]
        return '.'.join(base + ([node.module] if node.module else []))
    if not node.level and node.module == NAME:
        return ''
    if not node.level and node.module and node.module.startswith(NAME + '.'):
        return node.module[len(NAME) + 1 :]
    return None


def _imports(module: str, path: Path) -> set[str]:
    """Package modules `module` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            target = _source_module(module, path, node)
            if target is None:
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


def _top_level(tree: ast.Module) -> list[ast.AST]:
    """The nodes of a module outside its functions and classes: what makes its attributes."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node)
            stack.extend(ast.iter_child_nodes(node))
    return found


def _borrowed(module: str, path: Path) -> dict[str, str]:
    """Names `module` binds by importing them from another package module: name -> that module.

    An `__init__.py` with an `__all__` says what its package offers: it borrows nothing.
    """
    tree = ast.parse(path.read_text())
    nodes = _top_level(tree)
    if path.name == '__init__.py' and any(
        isinstance(node, ast.Name) and node.id == '__all__' and isinstance(node.ctx, ast.Store) for node in nodes
    ):
        return {}
    borrowed = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            source = _source_module(module, path, node)
            for alias in node.names if source is not None else ():
                borrowed[alias.asname or alias.name] = source or '__init__'
    return borrowed


def _through_others(modules: dict[str, Path], importers: list[tuple[str | None, Path]], root: Path) -> list[str]:
    """Each name an importer takes from a package module that only imported it from another.

    `importers` are (name in the package, None for a test file, path); a name is taken with
    `from A import name`, or as `alias.name` after `from package import A as alias`.
    """
    borrowed = {module: _borrowed(module, path) for module, path in modules.items()}
    found = []
    for module, path in importers:
        tree = ast.parse(path.read_text())
        taken: list[tuple[str, str, int]] = []
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _source_module(module, path, node)
                for alias in node.names if source is not None else ():
                    assert source is not None
                    qualified = '{}.{}'.format(source, alias.name) if source else alias.name
                    if qualified in modules:
                        aliases[alias.asname or alias.name] = qualified
                    else:
                        taken.append((source or '__init__', alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name.startswith(NAME + '.'):
                        aliases[alias.asname] = alias.name[len(NAME) + 1 :]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                taken.append((aliases[node.value.id], node.attr, node.lineno))
        found += [
            '{}:{}: {} from {}, which imports it from {}'.format(
                path.relative_to(root).as_posix(), line, name, source, borrowed[source][name]
            )
            for source, name, line in taken
            if name in borrowed.get(source, {})
        ]
    return sorted(set(found))


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
        assert 'common.errors' in GRAPH['collection.feed']
        assert 'pagerduty.transitions' in GRAPH['collection.story']


class TestImportPaths:
    """One import path per name: each name is imported from the module that defines it, never through another."""

    def test_no_name_is_imported_through_another_module(self) -> None:
        importers: list[tuple[str | None, Path]] = list(MODULES.items())
        importers += [(None, path) for path in sorted(TESTS.rglob('*.py'))]
        assert _through_others(MODULES, importers, PACKAGE.parent.parent) == []

    def test_the_check_sees_both_ways_of_importing_a_name(self, tmp_path: Path) -> None:
        files = {
            'errors.py': 'class Refused(Exception):\n    pass\n',
            'client.py': 'from .errors import Refused\n\n\ndef ask():\n    raise Refused()\n',
            'caller.py': 'from {0}.client import Refused, ask\nfrom {0} import client as api\n\napi.Refused\n'.format(
                NAME
            ),
            'offer/__init__.py': 'from ..errors import Refused\n\n__all__ = ["Refused"]\n',
            'user.py': 'from {}.offer import Refused\n'.format(NAME),
        }
        for name, text in files.items():
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_text(text)
        modules = {name[: -len('.py')].replace('/__init__', '').replace('/', '.'): tmp_path / name for name in files}
        importers: list[tuple[str | None, Path]] = list(modules.items())
        assert _through_others(modules, importers, tmp_path) == [
            'caller.py:1: Refused from client, which imports it from errors',
            'caller.py:4: Refused from client, which imports it from errors',
        ]


class TestPackageMap:
    """docs/package-map.md says what the code does: every room on its layer, every module it names present."""

    MAP = (INTEGRATION / 'docs' / 'package-map.md').read_text(encoding='utf-8')

    def test_every_room_is_on_the_map_at_its_layer(self) -> None:
        rows = re.findall(r'^\| (\d+) \| (.+?) \|', self.MAP, flags=re.MULTILINE)
        mapped = {room: int(layer) for layer, cell in rows for room in re.findall(r'`([a-z_]+)(?:/|\.py)`', cell)}
        rooms = {_room(m) for m in MODULES if '.' in m} | {'check'}
        assert {room: mapped.get(room) for room in rooms} == {room: LAYERS[room] for room in rooms}

    def test_every_module_the_map_names_exists(self) -> None:
        named = set(re.findall(r'`([a-z_]+/[a-z_]+)\.py`', self.MAP))
        assert named
        integration = INTEGRATION
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


class TestTestFolders:
    """Tests grouped by the part they specify: a folder of tests is a room of the package or names its subject."""

    # Folders whose tests cut across the rooms, each for a subject of its own.
    CROSS_CUTTING = {'adversarial', 'model', 'check', 'repository'}
    # Folders of what the tests use, not of tests.
    SUPPORT = {'fakes', 'fixtures', 'layouts', 'benchmarks'}

    def test_every_test_folder_is_a_room_or_a_named_subject(self) -> None:
        rooms = {name for name, layer in LAYERS.items() if (PACKAGE / name).is_dir()}
        folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith(('.', '_'))}
        assert folders - self.SUPPORT <= rooms | self.CROSS_CUTTING, folders - self.SUPPORT - rooms

    def test_no_test_module_sits_outside_a_folder(self) -> None:
        assert sorted(p.name for p in TESTS.glob('test_*.py')) == []
