# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's Software Catalog and Teams endpoints, for `FakeServer`.

It is the demo's catalog, stricter where the check depends on it: `page[size]` and `page[limit]`
above 100 are refused, and a key without the needed permission answers 403, as a missing or wrong
`DD-API-KEY` or `DD-APPLICATION-KEY` does.
"""

from __future__ import annotations

from typing import Any

from datadog_checks.pagerduty_dora.demo.catalog import (
    FORBIDDEN,
    MAX_PAGE_SIZE,
    MISSING_PERMISSION,
    Catalog,
    Refused,
    monitor,
    v3_entity,
    v22_definition,
)
from datadog_checks.pagerduty_dora.demo.server import Route

from .server import Reply, Request

__all__ = ['CatalogState', 'catalog_routes', 'monitor', 'v3_entity', 'v22_definition']


class CatalogState(Catalog):
    """What the fake Datadog account holds: v2.2 definitions, v3 entities, teams, and the accepted keys.

    `teams` are `(handle, display name)` pairs. `catalog_read` / `teams_read` say whether the
    application key has `apm_service_catalog_read` / `teams_read`; `monitors_read` whether it has
    `monitors_read` (`GET /api/v1/monitor/{id}`: a 403 that says a permission check failed).
    """

    def __init__(
        self, *, catalog_read: bool = True, teams_read: bool = True, monitors_read: bool = True, **contents: Any
    ) -> None:
        super().__init__(**contents)
        self.catalog_read = catalog_read
        self.teams_read = teams_read
        self.monitors_read = monitors_read

    def check_access(self, request: Request, scope: str) -> None:
        super().check_access(request, scope)
        if scope == 'monitors':
            if not self.monitors_read:
                raise Refused(Reply(403, MISSING_PERMISSION))
        elif not (self.catalog_read if scope == 'catalog' else self.teams_read):
            raise Refused(Reply(403, FORBIDDEN))

    def paging(self, request: Request, size_name: str, index_name: str, default_size: int) -> tuple[int, int]:
        size, index = _int_arg(request, size_name, default_size), _int_arg(request, index_name, 0)
        if size is None or index is None or not 1 <= size <= MAX_PAGE_SIZE:
            raise Refused(Reply(400, {'errors': ['{} must be between 1 and {}'.format(size_name, MAX_PAGE_SIZE)]}))
        return size, index


def _int_arg(request: Request, name: str, default: int) -> int | None:
    value = request.arg(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def catalog_routes(state: CatalogState) -> list[Route]:
    """Routes for `FakeServer`: the service definitions, catalog entity and team listings over `state`."""
    return state.routes()
