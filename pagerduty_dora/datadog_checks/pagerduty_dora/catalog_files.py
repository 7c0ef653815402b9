# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The `catalog_files` source: definition files matched by globs, kept file by file.

A file that turns invalid, empty, unreadable or goes away keeps giving the entries of its last good
read, so one bad file (a deploy halfway through, a typo) never moves the incidents of the others to
the fallback rule. The source has never loaded only while no file has ever given a valid definition.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import yaml

from .definitions import CatalogSourceError, InvalidDefinition, entity_key, merge_services, parse_definition
from .mapping import CatalogService
from .times import format_time

SOURCE_FILES = 'files'


@dataclass(frozen=True)
class FileCopy:
    """The entries one definition file gave at its last good read."""

    loaded_at: float
    services: tuple[CatalogService, ...]


@dataclass(frozen=True)
class FileRead:
    """One read of a definition file: its entries, the documents skipped (position, reason), and why
    the file as a whole gave nothing (`problem`: unreadable, not YAML or JSON, empty), if it did not."""

    services: tuple[CatalogService, ...]
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None


def read_definitions_file(path: str) -> FileRead:
    """Read and parse one definition file; never raises for what the file holds."""
    try:
        with open(path, encoding='utf-8') as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return FileRead((), problem='cannot be read ({})'.format(getattr(e, 'strerror', None) or e))
    try:
        documents = _documents(path, content)
    except (ValueError, yaml.YAMLError) as e:
        return FileRead((), problem='is not valid YAML or JSON ({})'.format(_first_line(e)))
    if not documents:
        return FileRead((), problem='holds no definition')
    services: list[CatalogService] = []
    skipped: list[tuple[int | None, str]] = []
    for position, document in enumerate(documents, 1):
        try:
            services.extend(parse_definition(document, SOURCE_FILES))
        except InvalidDefinition as e:
            skipped.append((position if len(documents) > 1 else None, str(e)))
    return FileRead(tuple(services), tuple(skipped), None if services else 'holds no valid definition')


def _documents(path: str, content: str) -> list[Any]:
    """The definitions in one file: every document of a YAML stream, or a JSON value; lists are flattened."""
    if path.lower().endswith('.json'):
        loaded: list[Any] = [json.loads(content)]
    else:
        loaded = list(yaml.safe_load_all(content))
    documents: list[Any] = []
    for item in loaded:
        if item is None:
            continue
        documents.extend(item if isinstance(item, list) else [item])
    return documents


@dataclass(frozen=True)
class CatalogFileReport:
    """What one catalog file gave the catalog at the last refresh, or a `catalog_files` pattern that matched none.

    `entries` is what the file gives the catalog now, `kept` how many of those come from its last good
    copy (loaded at `kept_at`) because the file is `problem` (missing, unreadable, invalid, empty) or has
    invalid definitions since `since`.
    """

    path: str
    entries: int = 0
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None
    since: float | None = None
    kept: int = 0
    kept_at: float | None = None
    unmatched_pattern: bool = False

    def reasons(self) -> list[str]:
        """Why entries were skipped or kept, one line each, for people."""
        if self.unmatched_pattern:
            return ['the pattern matches no file']
        lines = [
            reason if position is None else 'document {}: {}'.format(position, reason)
            for position, reason in self.skipped
        ]
        if self.problem is not None:
            if self.kept:
                lines.append(
                    'file {} since {}; using the {} it gave at {}'.format(
                        self.problem, format_time(self.since or 0), _entries(self.kept), format_time(self.kept_at or 0)
                    )
                )
            else:
                lines.append('file {}'.format(self.problem))
        elif self.kept:
            lines.append(
                'invalid definitions since {}; using {} it gave at {} and no longer gives'.format(
                    format_time(self.since or 0), _entries(self.kept), format_time(self.kept_at or 0)
                )
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        key = 'pattern' if self.unmatched_pattern else 'file'
        return {key: self.path, 'entries': self.entries, 'skipped': self.reasons()}

    def warn(self, warning: Callable[..., None]) -> None:
        """Tell `warning` what a user must see about this file: skipped definitions, a kept last good copy."""
        if self.unmatched_pattern:
            warning('catalog_files pattern %s matches no file', self.path)
            return
        for position, reason in self.skipped:
            where = self.path if position is None else '{} (document {})'.format(self.path, position)
            warning('Skipping a service definition in %s: %s', where, reason)
        if self.problem is not None and self.kept:
            warning(
                'Catalog file %s %s since %s; still using the %s it gave at %s',
                self.path,
                self.problem,
                format_time(self.since or 0),
                _entries(self.kept),
                format_time(self.kept_at or 0),
            )
        elif self.problem is not None:
            warning('Skipping catalog file %s: it %s', self.path, self.problem)
        elif self.kept:
            warning(
                'Catalog file %s has invalid definitions since %s; still using %s it gave at %s and no longer gives',
                self.path,
                format_time(self.since or 0),
                _entries(self.kept),
                format_time(self.kept_at or 0),
            )


class CatalogFiles:
    """The definition files the `catalog_files` globs match, each with its last good copy.

    `copies` are what the persistent cache keeps (`restore` puts them back after a restart); `reports`
    say what each file gave at the last `load`.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [p for p in (patterns or ()) if isinstance(p, str) and p.strip()]
        self.copies: dict[str, FileCopy] = {}
        self.reports: list[CatalogFileReport] = []
        self._failing_since: dict[str, float] = {}

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
        paths: list[str] = []
        reports: list[CatalogFileReport] = []
        for pattern in self.patterns:
            matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
            matched = [p for p in matched if os.path.isfile(p)]
            if not matched:
                # Not a failure of the source: the other patterns may well hold every definition.
                reports.append(CatalogFileReport(pattern, unmatched_pattern=True))
            paths.extend(p for p in matched if p not in paths)
        effective: dict[str, tuple[CatalogService, ...]] = {}
        for path in paths:
            effective[path], report = self._refresh(path, read_definitions_file(path), now)
            reports.append(report)
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


def _entries(count: int) -> str:
    return '1 entry' if count == 1 else '{} entries'.format(count)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
