# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The package map of docs/package-map.md, held to: sub-packages import one way, no cycles, rooms of a readable size.

Also: narrow constructors everywhere, a run context and typed collaborators in collection, one import path per
name, one error disposition (no caller translating error classes by itself), tests grouped by part, and a glossary
(docs/how-it-works.md) naming modules that exist.
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
# Parameters of a constructor (`self` aside), in every module of the package: a part that needs more
# takes a value grouping what travels together, or a collaborator already built.
MAX_CONSTRUCTOR_PARAMETERS = 7
# The room whose parts are handed a run context and typed collaborators (`collection/run.py`, `collection/ports.py`).
GLUED_ROOM = 'collection'
# Calls in that room that may take a lambda: each applies it at once to plain data, none keeps it.
LAMBDA_TAKERS = {
    'sorted': 'a sort key',
    '_each': 'a stored part read from a layout-4 document (`collection/state.py`)',
    '_each_record': 'a stored record read from a layout-4 document (`collection/state.py`)',
}
# Values that room writes the fields of, by the name it holds them under: plain data a part is
# building or the cursor it owns, never another part. Any other `x.y = ...` (`self.x.y` included) is
# a write into another object's fields, which the run context and methods replace.
DATA_VALUES = {
    'state': 'the collection state (`collection/state.py`): each pass moves its own cursor in it',
    'record': 'an incident record (`collection/record.py`) the recorder or recovery is bringing up to date',
    'updated': 'the incident record the recorder is building',
    'report': 'the run report (`collection/run.py`, `RunReport`), which the parts of a run add to',
    'page': 'the page a pass is filling before it yields it (`collection/pages.py`)',
    'look': 'a look a page is being filled with (`collection/pages.py`)',
    'feed': "the feed's position, the cursor the feed pass owns (`collection/feed_position.py`)",
    'window': 'a window of a cursor, owned by its pass (`collection/feed_position.py`, `collection/sweep.py`)',
    'scan': 'the reconciliation or recheck cursor, owned by its pass',
    'base': 'the base of a story being built (`collection/story.py`)',
}
GLOSSARY = (INTEGRATION / 'docs' / 'how-it-works.md').read_text(encoding='utf-8')
# The typed errors of an API request, and the one table of what each means to a caller: the only modules
# that may tell several of them apart.
ERRORS_MODULE = 'common.errors'
ERROR_TABLES = {ERRORS_MODULE, 'common.disposition'}
# Functions (`module:qualified name`) whose `try` tells several error classes apart, each with why it decides
# something the disposition does not say.
OWN_ERROR_DECISIONS: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        if parts[-1] == '__init__' and len(parts) > 1:
            parts = parts[:-1]
        found['.'.join(parts)] = path
    return found


MODULES = _modules()


def _constructors(source: str) -> dict[str, ast.arguments]:
    """The parameters of `__init__`, per class of `source` that defines one."""
    return {
        node.name: member.args
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef)
        for member in node.body
        if isinstance(member, ast.FunctionDef) and member.name == '__init__'
    }


def _constructor_widths(source: str) -> dict[str, int]:
    """Per class of `source` that defines `__init__`: how many parameters it takes, `self` aside."""
    return {
        name: len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - 1 + (a.vararg is not None) + (a.kwarg is not None)
        for name, a in _constructors(source).items()
    }


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


def _error_names(module: str | None, path: Path, tree: ast.Module, classes: frozenset[str]) -> tuple[dict, set]:
    """The names `module` binds to error classes of `common/errors.py` (name -> class), and to that module itself."""
    found: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _source_module(module, path, node)
            for alias in node.names if source is not None else ():
                if source == ERRORS_MODULE and alias.name in classes:
                    found[alias.asname or alias.name] = alias.name
                elif '{}.{}'.format(source, alias.name).lstrip('.') == ERRORS_MODULE:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.asname and a.name == NAME + '.' + ERRORS_MODULE)
    return found, modules


def _caught(handler: ast.ExceptHandler, names: dict[str, str], modules: set[str]) -> list[str]:
    """The error classes of `common/errors.py` an `except` clause names."""
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type] if handler.type else []
    caught = []
    for kind in kinds:
        if isinstance(kind, ast.Name) and kind.id in names:
            caught.append(names[kind.id])
        elif isinstance(kind, ast.Attribute) and isinstance(kind.value, ast.Name) and kind.value.id in modules:
            caught.append(kind.attr)
    return caught


def _error_translations(module: str | None, path: Path, classes: frozenset[str]) -> list[str]:
    """`module:function:line: classes` of each `try` whose `except` clauses, together, name more than one error
    class of `common/errors.py`: a caller translating errors by class rather than by `dispose()`."""
    tree = ast.parse(path.read_text())
    names, modules = _error_names(module, path, tree, classes)
    found = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = '{}.{}'.format(scope, child.name) if scope else child.name
            if isinstance(child, (ast.Try, ast.TryStar)):
                caught = sorted({kind for handler in child.handlers for kind in _caught(handler, names, modules)})
                if len(caught) > 1:
                    found.append('{}:{}:{}: {}'.format(module, inner or '<module>', child.lineno, ', '.join(caught)))
            visit(child, inner)

    visit(tree, '')
    return found


ERROR_CLASSES = frozenset(
    node.name for node in ast.parse(MODULES[ERRORS_MODULE].read_text()).body if isinstance(node, ast.ClassDef)
)


class TestOneErrorDisposition:
    """What a failed answer means is said once (`common/disposition.py`): callers branch on `dispose(error)`.

    The rule: outside `common/errors.py` and `common/disposition.py`, no `try` statement of the package names
    more than one error class of `common/errors.py` in its `except` clauses (in one tuple or across clauses),
    unless its function is in `OWN_ERROR_DECISIONS` with the reason. One class caught alone (`except ApiError`,
    or a class a caller expects by name) is no translation table.
    """

    @pytest.mark.parametrize('module', sorted(set(MODULES) - ERROR_TABLES))
    def test_no_caller_translates_error_classes_itself(self, module: str) -> None:
        found = _error_translations(module, MODULES[module], ERROR_CLASSES)
        assert [f for f in found if f.rsplit(':', 2)[0] not in OWN_ERROR_DECISIONS] == []

    def test_every_listed_decision_is_still_there(self) -> None:
        found = {
            f.rsplit(':', 2)[0]
            for m in sorted(set(MODULES) - ERROR_TABLES)
            for f in _error_translations(m, MODULES[m], ERROR_CLASSES)
        }
        assert sorted(set(OWN_ERROR_DECISIONS) - found) == []

    def test_the_check_sees_every_way_of_naming_the_classes(self, tmp_path: Path) -> None:
        source = (
            'from {0}.common.errors import AuthError, RateLimited as Limited, TransientError\n'
            'from {0}.common import errors\n'
            'from {0}.common.errors import ApiError\n'
            '\n'
            'def tuple_of_two():\n'
            '    try:\n'
            '        pass\n'
            '    except (AuthError, Limited, ValueError):\n'
            '        pass\n'
            '\n'
            'class Caller:\n'
            '    def clauses(self):\n'
            '        try:\n'
            '            pass\n'
            '        except errors.AuthError:\n'
            '            pass\n'
            '        except TransientError:\n'
            '            pass\n'
            '\n'
            'def by_disposition():\n'
            '    try:\n'
            '        pass\n'
            '    except ApiError:\n'
            '        pass\n'
            '    except KeyError:\n'
            '        pass\n'
        ).format(NAME)
        path = tmp_path / 'caller.py'
        path.write_text(source)
        assert _error_translations('collection.caller', path, ERROR_CLASSES) == [
            'collection.caller:tuple_of_two:6: AuthError, RateLimited',
            'collection.caller:Caller.clauses:13: AuthError, TransientError',
        ]
        assert {'ApiError', 'AuthError', 'RequestRejected', 'BudgetExhausted'} <= ERROR_CLASSES


class TestPackageMap:
    """docs/package-map.md says what the code does: every room on its layer, every module it names present."""

    MAP = (INTEGRATION / 'docs' / 'package-map.md').read_text(encoding='utf-8')

    def test_every_room_is_on_the_map_at_its_layer(self) -> None:
        rows = re.findall(r'^\| (\d+) \| (.+?) \|', self.MAP, flags=re.MULTILINE)
        mapped = {room: int(layer) for layer, cell in rows for room in re.findall(r'`([a-z_]+)(?:/|\.py)`', cell)}
        rooms = {_room(m) for m in MODULES if '.' in m} | {'check'}
        assert {room: mapped.get(room) for room in rooms} == {room: LAYERS[room] for room in rooms}

    def test_every_module_of_a_room_is_named_in_its_row(self) -> None:
        rows = re.findall(r'^\| \d+ \| (.+?) \| (.+?) \|', self.MAP, flags=re.MULTILINE)
        unnamed = []
        for rooms_cell, owns in rows:
            named = set(re.findall(r'`([a-z_]+)(?:\.py)?`', owns))
            for room in re.findall(r'`([a-z_]+)(?:/|\.py)`', rooms_cell):
                members = [m for m in MODULES if '.' in m and _room(m) == room]
                if room == 'check':
                    # The modules of the wiring's layer that sit beside check.py, outside any room.
                    members = [m for m in MODULES if '.' not in m and _layer(m) == TOP_LAYER and m[0] != '_']
                    members.remove('check')
                unnamed += ['{} ({})'.format(m, room) for m in members if m.rpartition('.')[2] not in named]
        assert len(rows) == len(set(LAYERS.values())) - 1
        assert sorted(unnamed) == []

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

    @pytest.mark.parametrize('module', sorted(MODULES))
    def test_no_constructor_takes_more_than_the_maximum(self, module: str) -> None:
        widths = _constructor_widths(MODULES[module].read_text())
        assert {name: n for name, n in widths.items() if n > MAX_CONSTRUCTOR_PARAMETERS} == {}

    def test_the_count_sees_every_kind_of_parameter(self) -> None:
        source = 'class Wide:\n    def __init__(self, a, /, b, *c, d, e=1, **f):\n        pass\n'
        assert _constructor_widths(source) == {'Wide': 6}


def _init_parameters_typed_any(source: str) -> list[str]:
    """`Class.parameter` of each `__init__` parameter annotated `Any` (alone or in a union)."""
    return [
        '{}.{}'.format(name, arg.arg)
        for name, a in _constructors(source).items()
        for arg in a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p is not None]
        if arg.annotation is not None and re.search(r'\bAny\b', ast.unparse(arg.annotation))
    ]


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ''


def _lambda_arguments(source: str) -> list[str]:
    """`line: callee` of each lambda passed as an argument to a call not in `LAMBDA_TAKERS`."""
    return [
        '{}: {}'.format(node.lineno, _callee(node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and _callee(node) not in LAMBDA_TAKERS
        and any(isinstance(value, ast.Lambda) for value in node.args + [k.value for k in node.keywords])
    ]


def _owner_name(owner: ast.expr) -> str:
    """The name an attribute's owner is held under: `state` of `state.x`, `client` of `self.client.x`."""
    if isinstance(owner, ast.Name):
        return owner.id
    if isinstance(owner, ast.Attribute):
        return owner.attr
    return ast.unparse(owner)


def _foreign_writes(source: str) -> list[str]:
    """`line: target` of each assignment to a field of an object other than `self` and `DATA_VALUES`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for each in target.elts if isinstance(target, ast.Tuple) else [target]:
                if not isinstance(each, ast.Attribute):
                    continue
                owner = each.value
                if isinstance(owner, ast.Name) and owner.id == 'self':
                    continue
                if _owner_name(owner) not in DATA_VALUES:
                    found.append('{}: {}'.format(node.lineno, ast.unparse(each)))
    return found


GLUED_MODULES = [m for m in sorted(MODULES) if _room(m) == GLUED_ROOM]


class TestGlue:
    """The parts of a run read one run context and typed collaborators: no `Any`, no lambda, no foreign write."""

    @pytest.mark.parametrize('module', GLUED_MODULES)
    def test_no_collaborator_is_typed_any(self, module: str) -> None:
        assert _init_parameters_typed_any(MODULES[module].read_text()) == []

    @pytest.mark.parametrize('module', GLUED_MODULES)
    def test_no_lambda_is_handed_over(self, module: str) -> None:
        assert _lambda_arguments(MODULES[module].read_text()) == []

    @pytest.mark.parametrize('module', GLUED_MODULES)
    def test_no_part_writes_another_ones_fields(self, module: str) -> None:
        assert _foreign_writes(MODULES[module].read_text()) == []

    def test_the_checks_see_what_they_forbid(self) -> None:
        source = (
            'class Part:\n'
            '    def __init__(self, a: Any, *, b: Any | None, c: int, d: Optional[Any] = None) -> None:\n'
            '        self.inner = Inner(now=lambda: self.now, key=sorted(c, key=lambda x: x))\n'
            '        self.inner.now = None\n'
            '        other.field, state.swept_until = 1, 2\n'
            '        self.run.report.pages += 1\n'
            '        self.own = 3\n'
        )
        assert _init_parameters_typed_any(source) == ['Part.a', 'Part.b', 'Part.d']
        assert _lambda_arguments(source) == ['3: Inner']
        assert _foreign_writes(source) == ['4: self.inner.now', '5: other.field']

    def test_the_room_is_there(self) -> None:
        assert len(GLUED_MODULES) > 10


# A word the package once gave two cursors (the sweep's creation time and the feed's log position):
# each now has the name of what it holds (`swept_until`, `Feed.read_until`), and nothing takes the word.
RETIRED_NAMES = {'horizon'}
# In collection, `window` alone names a window only where its type says which: in the modules of the
# feed and the sweep, as an argument or field annotated with one of their window types (a local of
# theirs holds what such an argument or field holds). Anywhere else in the room it is qualified.
WINDOW_MODULES = {'collection.feed', 'collection.feed_position', 'collection.sweep'}
WINDOW_TYPES = {'FeedWindow', 'CreationWindow'}


def _named(source: str) -> list[tuple[int, str, str]]:
    """(line, name, annotation text) of every identifier of `source`: names, attributes, arguments,
    keywords, definitions and fields; the annotation is an argument's or a class field's ('' for none)."""
    tree = ast.parse(source)
    fields = {
        id(member.target): ast.unparse(member.annotation)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for member in node.body
        if isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append((node.lineno, node.id, fields.get(id(node), '')))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr, ''))
        elif isinstance(node, ast.arg):
            found.append((node.lineno, node.arg, ast.unparse(node.annotation) if node.annotation else ''))
        elif isinstance(node, ast.keyword) and node.arg is not None:
            found.append((node.value.lineno, node.arg, ''))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append((node.lineno, node.name, ''))
    return sorted(found)


def _retired(source: str) -> list[str]:
    """`line: name` of each identifier of `source` named with a retired word."""
    return ['{}: {}'.format(line, name) for line, name, _ in _named(source) if name in RETIRED_NAMES]


def _bare_windows(source: str, *, owner: bool) -> list[str]:
    """`line: window` of each identifier `window` the type does not qualify (in a window module: `owner`)."""
    found = []
    for line, name, annotation in _named(source):
        if name != 'window':
            continue
        if owner and (not annotation or set(re.findall(r'\w+', annotation)) & WINDOW_TYPES):
            continue
        found.append('{}: {}'.format(line, name))
    return found


class TestPlainNames:
    """The engine's cursors and windows are named for what they are (docs/how-it-works.md, Glossary)."""

    @pytest.mark.parametrize('module', sorted(MODULES))
    def test_no_identifier_takes_a_retired_name(self, module: str) -> None:
        assert _retired(MODULES[module].read_text()) == []

    @pytest.mark.parametrize('module', GLUED_MODULES)
    def test_a_window_in_collection_says_which(self, module: str) -> None:
        assert _bare_windows(MODULES[module].read_text(), owner=module in WINDOW_MODULES) == []

    def test_the_checks_see_what_they_forbid(self) -> None:
        source = (
            'class Cursor:\n'
            '    window: Window | None = None\n'
            '    kept: FeedWindow | None = None\n'
            '    def horizon(self, window: FeedWindow, other: int) -> None:\n'
            '        horizon = Feed(horizon=1).horizon\n'
            '        window = self.window\n'
            'def scan(window: int) -> None:\n'
            '    pass\n'
        )
        assert _retired(source) == ['4: horizon', '5: horizon', '5: horizon', '5: horizon']
        assert _bare_windows(source, owner=True) == ['2: window', '7: window']
        assert len(_bare_windows(source, owner=False)) == 5

    def test_the_glossary_names_each_cursor(self) -> None:
        glossary = GLOSSARY.split('## Glossary', 1)[1]
        for word in ('`CollectorState.swept_until`', '`Feed.read_until`', '`CreationWindow`', '`FeedWindow`'):
            assert word in glossary, word


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


def _typing_isinstance(source: str) -> list[str]:
    """`isinstance`/`issubclass` calls whose class is a name imported from `typing` (an alias, slower to check)."""
    tree = ast.parse(source)
    from_typing = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == 'typing'
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node) in ('isinstance', 'issubclass') and len(node.args) == 2:
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            found += [
                '{}:{}'.format(node.lineno, kind.id)
                for kind in kinds
                if isinstance(kind, ast.Name) and kind.id in from_typing
            ]
    return found


class TestTypeChecks:
    """A type check at run time names `collections.abc` classes: `isinstance(x, typing.Mapping)` takes about
    a microsecond more, through `typing`'s alias, and parsing makes several such checks per incident."""

    @pytest.mark.parametrize('module', sorted(MODULES))
    def test_no_isinstance_against_a_typing_alias(self, module: str) -> None:
        assert _typing_isinstance(MODULES[module].read_text(encoding='utf-8')) == []

    def test_the_check_finds_one(self) -> None:
        source = (
            'from typing import Mapping as M, Sequence\n'
            'from collections.abc import Iterable\n'
            'isinstance(x, M)\nisinstance(x, (dict, Sequence))\nisinstance(x, Iterable)\n'
        )
        assert _typing_isinstance(source) == ['3:M', '4:Sequence']
