# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What crosses between attribution's decisions and its requests, each collaborator typed by the little used of it.

- `Log`: the check's log;
- `IncidentRequests`: what judging an incident asks of the APIs (a blame search, the priorities);
- `DeploymentRequests`: what the deployment side asks of them (rollback and remediation searches, a PATCH);
- `SearchResult`, `RemedyResult` and `Priorities`: what the requests read, a refusal included.

`executor.Executor` is the one implementation of both request protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from datadog_checks.pagerduty_dora.common.errors import RequestRejected

from .model import ChangeEvent, Deployment

if TYPE_CHECKING:
    from .decision import BlameSearch, Patch, RemedySearch, RollbackSearch


class Log(Protocol):
    """The check's log, as attribution writes to it."""

    def debug(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class SearchResult:
    """What a blame search read: the related change events (None: PagerDuty did not tell) and the deployments."""

    events: list[ChangeEvent] | None
    candidates: list[Deployment]
    rejected: RequestRejected | None = None


@dataclass(frozen=True)
class RemedyResult:
    """What a remediation search read: the later deployments, and the service's history when it was needed."""

    later: list[Deployment]
    history: list[Deployment] | None
    rejected: RequestRejected | None = None


@dataclass(frozen=True)
class Priorities:
    """The account's priority names, most severe first; None with why PagerDuty did not tell them
    (`refusal`: its status, or that there is no PagerDuty client)."""

    names: list[str] | None
    refusal: int | str | None = None


class IncidentRequests(Protocol):
    """The requests of judging an incident; each raises `deployments.Unavailable` to wait for a later run."""

    def blame_search(self, task: BlameSearch) -> SearchResult: ...

    def priorities(self) -> Priorities: ...


class DeploymentRequests(Protocol):
    """The requests about one deployment; each raises `deployments.Unavailable` to wait for a later run."""

    def rollback_search(self, task: RollbackSearch) -> RemedyResult: ...

    def remedy_search(self, task: RemedySearch) -> RemedyResult: ...

    def patch(self, task: Patch) -> RequestRejected | None: ...


class Requests(IncidentRequests, DeploymentRequests, Protocol):
    """Every request attribution makes."""
