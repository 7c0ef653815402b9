# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What one catalog file gave at the last refresh, told to the user and to the dry run.

Kept apart from the reading (`files`): a report only says what a refresh decided (entries used,
definitions skipped, a last good copy kept), as warnings and as the dry run's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from datadog_checks.pagerduty_dora.common.text import for_log
from datadog_checks.pagerduty_dora.common.times import format_time

# What a warning shows of a file's path.
PATH_LIMIT = 1000


@dataclass(frozen=True)
class CatalogFileReport:
    """What one catalog file gave the catalog at the last refresh, or a `catalog_files` pattern that matched
    none (`unmatched_pattern`) or whose files were cut short (`pattern_problem`: too many, out of time).

    `entries` is what the file gives the catalog now, `kept` how many of those come from its last good
    copy (loaded at `kept_at`) because the file is `problem` (missing, unreadable, invalid, empty, over a
    bound) or has invalid definitions since `since`. `unknown_keys` are keys of a known schema's
    definitions that the schema does not define (position, what and where), ignored as the schema ignores them.
    """

    path: str
    entries: int = 0
    skipped: tuple[tuple[int | None, str], ...] = ()
    problem: str | None = None
    since: float | None = None
    kept: int = 0
    kept_at: float | None = None
    unmatched_pattern: bool = False
    pattern_problem: str | None = None
    unknown_keys: tuple[tuple[int | None, str], ...] = ()

    def reasons(self) -> list[str]:
        """Why entries were skipped or kept, one line each, for people."""
        if self.unmatched_pattern:
            return ['the pattern matches no file']
        if self.pattern_problem is not None:
            return ['the pattern {}'.format(self.pattern_problem)]
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

    def unknown_key_lines(self) -> list[str]:
        """The keys the file's definitions hold that their schema does not define, one line each, for people."""
        return [
            unknown if position is None else 'document {}: {}'.format(position, unknown)
            for position, unknown in self.unknown_keys
        ]

    def to_json(self) -> dict[str, Any]:
        key = 'pattern' if self.unmatched_pattern or self.pattern_problem is not None else 'file'
        return {
            key: self.path,
            'entries': self.entries,
            'skipped': self.reasons(),
            'unknown_keys': self.unknown_key_lines(),
        }

    def warn(self, warning: Callable[..., None]) -> None:
        """Tell `warning` what a user must see about this file: skipped definitions, a kept last good copy."""
        # A file name can hold any character but `/`, and undecodable bytes come back as lone surrogates.
        path = for_log(self.path, PATH_LIMIT)
        if self.unmatched_pattern:
            warning('catalog_files pattern %s matches no file', path)
            return
        if self.pattern_problem is not None:
            warning('catalog_files pattern %s %s', path, self.pattern_problem)
            return
        for position, reason in self.skipped:
            where = path if position is None else '{} (document {})'.format(path, position)
            warning('Skipping a service definition in %s: %s', where, reason)
        for position, unknown in self.unknown_keys:
            where = path if position is None else '{} (document {})'.format(path, position)
            warning('Catalog file %s: %s', where, unknown)
        if self.problem is not None and self.kept:
            warning(
                'Catalog file %s %s since %s; still using the %s it gave at %s',
                path,
                self.problem,
                format_time(self.since or 0),
                _entries(self.kept),
                format_time(self.kept_at or 0),
            )
        elif self.problem is not None:
            warning('Skipping catalog file %s: it %s', path, self.problem)
        elif self.kept:
            warning(
                'Catalog file %s has invalid definitions since %s; still using %s it gave at %s and no longer gives',
                path,
                format_time(self.since or 0),
                _entries(self.kept),
                format_time(self.kept_at or 0),
            )


def _entries(count: int) -> str:
    return '1 entry' if count == 1 else '{} entries'.format(count)
