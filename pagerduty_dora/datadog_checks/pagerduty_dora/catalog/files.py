# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The `catalog_files` source: definition files matched by globs, kept file by file.

A file that turns invalid, empty, unreadable or goes away keeps giving the entries of its last good
read, so one bad file (a deploy halfway through, a typo) never moves the incidents of the others to
the fallback rule. The source has never loaded only while no file has ever given a valid definition.

What one refresh may cost is bounded, since a glob can match a file nobody meant as a definition:
a file larger than `MAX_FILE_BYTES` is not read, a YAML document whose aliases expand to more than
`MAX_ALIAS_EXPANSION` nodes beyond those written (a "billion laughs" file of a few hundred bytes) or
that is nested too deeply is refused, a pattern gives at most `MAX_FILES_PER_PATTERN` files, and
reading stops after `TIME_BUDGET` seconds. Each is a file that gave nothing, with a warning naming
it and the bound, and it keeps its last good copy like any other file that cannot be read. What each
file gave is told by its `CatalogFileReport` (`file_report`).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

from .definitions import (
    CatalogSourceError,
    InvalidDefinition,
    entity_key,
    merge_services,
    parse_definition,
    unknown_keys,
)
from .file_report import CatalogFileReport
from .model import CatalogService

SOURCE_FILES = 'files'
# A definition is a few hundred bytes; a file of thousands of them is well under this.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Nodes YAML aliases may add to one document beyond those written in it (anchors and merge keys
# shared by many definitions add far fewer).
MAX_ALIAS_EXPANSION = 100_000
# Files one `catalog_files` pattern may give, and seconds one refresh may spend on all the files.
MAX_FILES_PER_PATTERN = 1000
TIME_BUDGET = 10.0


class _Refused(Exception):
    """A file, or one of its documents, that is not read because of a bound; the message says which."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe YAML loader, stopped when its deadline passes (checked at every step of composing)."""

    def __init__(self, stream: str, deadline: float, clock: Callable[[], float]) -> None:
        super().__init__(stream)
        self._deadline = deadline
        self._clock = clock

    def check_event(self, *choices: Any) -> bool:
        if self._clock() > self._deadline:
            raise _Refused(_out_of_time())
        return super().check_event(*choices)


@dataclass(frozen=True)
class FileCopy:
    """The entries one definition file gave at its last good read."""

    loaded_at: float
    services: tuple[CatalogService, ...]


@dataclass(frozen=True)
class FileRead:
    """One read of a definition file: its entries, the documents skipped (position, reason), and why
    the file as a whole gave nothing (`problem`: unreadable, not YAML or JSON, empty), if it did not.
    `unknown_keys` are keys its schema does not define (position, what and where), which are ignored."""

    services: tuple[CatalogService, ...]
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None
    unknown_keys: tuple[tuple[int | None, str], ...] = ()


def read_definitions_file(
    path: str, deadline: float = float('inf'), clock: Callable[[], float] = time.monotonic
) -> FileRead:
    """Read and parse one definition file, within the bounds of this module and by `deadline` (on `clock`).

    Never raises for what the file holds.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return FileRead(
                (), problem='is larger than {} MB, the most a catalog file may hold; not read'.format(_mb())
            )
        content = data.decode('utf-8')
    except (OSError, UnicodeDecodeError) as e:
        return FileRead((), problem='cannot be read ({})'.format(getattr(e, 'strerror', None) or e))
    try:
        documents = _documents(path, content, deadline, clock)
    except _Refused as e:
        return FileRead((), problem=str(e))
    except RecursionError:
        return FileRead((), problem='is nested too deeply to be read')
    except (ValueError, yaml.YAMLError) as e:
        return FileRead((), problem='is not valid YAML or JSON ({})'.format(_first_line(e)))
    if not documents:
        return FileRead((), problem='holds no definition')
    services: list[CatalogService] = []
    skipped: list[tuple[int | None, str]] = []
    unknown: list[tuple[int | None, str]] = []
    for position, document in enumerate(documents, 1):
        where = position if len(documents) > 1 else None
        try:
            services.extend(parse_definition(document, SOURCE_FILES))
        except InvalidDefinition as e:
            skipped.append((where, str(e)))
            continue
        unknown.extend((where, line) for line in unknown_keys(document))
    return FileRead(tuple(services), tuple(skipped), None if services else 'holds no valid definition', tuple(unknown))


def _documents(path: str, content: str, deadline: float, clock: Callable[[], float]) -> list[Any]:
    """The definitions in one file: every document of a YAML stream, or a JSON value; lists are flattened."""
    if path.lower().endswith('.json'):
        loaded: list[Any] = [json.loads(content)]
    else:
        loaded = list(_yaml_documents(content, deadline, clock))
    documents: list[Any] = []
    for item in loaded:
        if item is None:
            continue
        documents.extend(item if isinstance(item, list) else [item])
    return documents


def _yaml_documents(content: str, deadline: float, clock: Callable[[], float]) -> Iterator[Any]:
    """Each document of a YAML stream, as `yaml.safe_load_all` gives them, once its alias expansion is checked."""
    loader = _BoundedLoader(content, deadline, clock)
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_expansion(node)
            yield loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it (as a Python value) far beyond the nodes written in it.

    The composed document shares each anchored node between its aliases, so it stays small; the value
    built from it, once anything walks or formats it, does not. Sizes are counted once per node, by
    an explicit walk (no recursion), so the check costs what the document holds as written.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > len(sizes) + MAX_ALIAS_EXPANSION:
                raise _Refused(
                    'expands YAML aliases to more than {:,} nodes beyond those it holds; not read'.format(
                        MAX_ALIAS_EXPANSION
                    )
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused('holds a YAML alias to a node that contains it; not read')
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _mb() -> str:
    return '{:g}'.format(MAX_FILE_BYTES / 2**20)


def _out_of_time() -> str:
    return 'was not read: reading the catalog files took more than the {:g} s one refresh may spend'.format(TIME_BUDGET)


class CatalogFiles:
    """The definition files the `catalog_files` globs match, each with its last good copy.

    `copies` are what the persistent cache keeps (`restore` puts them back after a restart); `reports`
    say what each file gave at the last `load`. `monotonic` times the refresh against `TIME_BUDGET`.
    """

    def __init__(self, patterns: Sequence[str], monotonic: Callable[[], float] = time.monotonic) -> None:
        self.patterns = [p for p in (patterns or ()) if isinstance(p, str) and p.strip()]
        self.copies: dict[str, FileCopy] = {}
        self.reports: list[CatalogFileReport] = []
        self._failing_since: dict[str, float] = {}
        self._monotonic = monotonic
        # Files the last refresh ran out of time for: the next one reads them first.
        self._unread: set[str] = set()

    @property
    def fingerprint(self) -> str:
        """The settings a cached copy must have been read with to stand in for this source."""
        # `per-file`: a copy cached before files were kept one by one cannot stand in for them.
        return 'files/per-file:' + json.dumps(sorted(self.patterns))

    def restore(self, copies: Mapping[str, FileCopy]) -> None:
        self.copies = dict(copies)

    def load(self, now: float) -> tuple[CatalogService, ...]:
        """Read every file the patterns match; each file that fails keeps its last good copy.

        Raises `CatalogSourceError` only while no file has ever given a valid definition.
        """
        deadline = self._monotonic() + TIME_BUDGET
        paths: list[str] = []
        reports: list[CatalogFileReport] = []
        for pattern in self.patterns:
            matched, cut = self._matches(pattern, deadline)
            if cut:
                reports.append(CatalogFileReport(pattern, pattern_problem=cut))
            elif not matched:
                # Not a failure of the source: the other patterns may well hold every definition.
                reports.append(CatalogFileReport(pattern, unmatched_pattern=True))
            paths.extend(p for p in matched if p not in paths)
        effective: dict[str, tuple[CatalogService, ...]] = {}
        unread: set[str] = set()
        # The files the last refresh had no time for go first, so that every file is read in turn.
        for path in sorted(paths, key=lambda p: p not in self._unread):
            if self._monotonic() > deadline:
                read = FileRead((), problem=_out_of_time())
            else:
                read = read_definitions_file(path, deadline, self._monotonic)
            if read.problem == _out_of_time():
                unread.add(path)
            effective[path], report = self._refresh(path, read, now)
            if read.unknown_keys:
                report = dataclasses.replace(report, unknown_keys=read.unknown_keys)
            reports.append(report)
        self._unread = unread
        # A file that went away (deleted, renamed, a deploy halfway through) keeps its entries too.
        for path, copy in self.copies.items():
            if path not in effective:
                since = self._failing_since.setdefault(path, now)
                effective[path] = copy.services
                reports.append(
                    CatalogFileReport(
                        path,
                        entries=len(copy.services),
                        problem='is missing',
                        since=since,
                        kept=len(copy.services),
                        kept_at=copy.loaded_at,
                    )
                )
        self.reports = reports
        if not self.copies:
            raise CatalogSourceError('no file matched by catalog_files has given a valid definition yet')
        return merge_services(effective.values())

    def _matches(self, pattern: str, deadline: float) -> tuple[list[str], str | None]:
        """The files a pattern matches, sorted, and why the list was cut short (too many, out of time), if it was."""
        found: list[str] = []
        cut = None
        for path in glob.iglob(os.path.expanduser(pattern), recursive=True):
            if self._monotonic() > deadline:
                cut = 'was not searched to its end: {}'.format(_out_of_time().replace('was not read: ', ''))
                break
            if not os.path.isfile(path):
                continue
            if len(found) >= MAX_FILES_PER_PATTERN:
                cut = 'matches more than {} files; only the first {} found are read'.format(
                    MAX_FILES_PER_PATTERN, MAX_FILES_PER_PATTERN
                )
                break
            found.append(path)
        return sorted(found), cut

    def _refresh(self, path: str, read: FileRead, now: float) -> tuple[tuple[CatalogService, ...], CatalogFileReport]:
        """The entries one file gives after this read, and its report; updates its last good copy."""
        kept = self.copies.get(path)
        if read.problem is None and not read.skipped:
            self.copies[path] = FileCopy(now, read.services)
            self._failing_since.pop(path, None)
            return read.services, CatalogFileReport(path, entries=len(read.services))
        if kept is None:
            # Nothing to fall back on: what is valid is used, and becomes the file's last good copy.
            if read.services:
                self.copies[path] = FileCopy(now, read.services)
            return read.services, CatalogFileReport(
                path, entries=len(read.services), skipped=read.skipped, problem=read.problem
            )
        since = self._failing_since.setdefault(path, now)
        # Invalid definitions in a file that was good: its valid definitions are read, and the entries
        # of its last good copy that they no longer give are kept, so a broken document loses nothing.
        fresh = {entity_key(s) for s in read.services}
        carried = tuple(s for s in kept.services if entity_key(s) not in fresh)
        services = read.services + carried
        self.copies[path] = FileCopy(kept.loaded_at, services)
        return services, CatalogFileReport(
            path,
            entries=len(services),
            skipped=read.skipped,
            problem=read.problem,
            since=since,
            kept=len(carried),
            kept_at=kept.loaded_at,
        )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
