# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The one place change-failure attribution makes requests: it runs the searches and PATCHes decided elsewhere.

Each method takes a task value of `decision` and answers with what the APIs said, a refusal of the
request itself included (`rejected`); `Unavailable` still propagates, to keep the work for a later
run. In a dry run nothing is written: the PATCHes it would send are kept in `would_patch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from datadog_checks.pagerduty_dora.common.http import ApiClient, RequestRejected

from .decision import BlameSearch, Patch, RemedySearch, RollbackSearch
from .deployments import DeploymentsClient, PagerDutySignals, patch_body
from .model import ChangeEvent, Deployment
from .remediation import history_range, remedy_range, wants_history, wants_history_for_rollback


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


class Executor:
    """Runs attribution's requests through the check's `ApiClient`s; `caller` names it when it stalls.

    `on_forbidden(status)` is told when Datadog refuses the keys, once per run.
    """

    def __init__(
        self,
        api: ApiClient,
        pagerduty: ApiClient | None,
        *,
        caller: str,
        log: Any,
        on_forbidden: Callable[[int | None], None],
        dry_run: bool = False,
    ) -> None:
        self._deployments = DeploymentsClient(api, caller=caller, log=log, on_forbidden=on_forbidden)
        self._signals = PagerDutySignals(pagerduty, caller=caller, log=log) if pagerduty is not None else None
        self.dry_run = dry_run
        self.would_patch: list[tuple[str, dict]] = []

    def blame_search(self, task: BlameSearch) -> SearchResult:
        """The incident's related change events, then the deployments of its service and env in range."""
        events = self._signals.related_change_events(task.incident) if self._signals is not None else None
        try:
            candidates = self._deployments.search(task.service, task.env, task.since, task.until)
        except RequestRejected as e:
            return SearchResult(events, [], e)
        return SearchResult(events, candidates)

    def remedy_search(self, task: RemedySearch) -> RemedyResult:
        """The deployments after the failed one up to the resolve, and its history when a rollback is possible."""
        failed = task.failed
        env = failed.env or ''
        try:
            later = self._deployments.search(failed.service, env, *remedy_range(failed, task.until))
            if not wants_history(later, failed, task.until):
                return RemedyResult(later, None)
            return RemedyResult(later, self._deployments.search(failed.service, env, *history_range(failed)))
        except RequestRejected as e:
            return RemedyResult([], None, e)

    def rollback_search(self, task: RollbackSearch) -> RemedyResult:
        """The deployments after the failed one up to now, and its history when one of them may go back to it."""
        failed = task.failed
        env = failed.env or ''
        try:
            later = self._deployments.search(failed.service, env, *remedy_range(failed, task.until))
            if not wants_history_for_rollback(later, failed, task.until):
                return RemedyResult(later, None)
            return RemedyResult(later, self._deployments.search(failed.service, env, *history_range(failed)))
        except RequestRejected as e:
            return RemedyResult([], None, e)

    def patch(self, task: Patch) -> RequestRejected | None:
        """Send the PATCH (or keep it, in a dry run); the refusal of the request, if Datadog refused it."""
        body = patch_body(task.deployment, task.attributes)
        if self.dry_run:
            self.would_patch.append((task.deployment, body))
            return None
        try:
            self._deployments.patch(task.deployment, body)
        except RequestRejected as e:
            return e
        return None

    def priorities(self) -> list[str] | None:
        """The account's priorities, most severe first; None when PagerDuty refused to tell (or no client)."""
        return self._signals.priorities() if self._signals is not None else None

    def priorities_refusal(self) -> int | str | None:
        """Why the account's priorities were not told: PagerDuty's status, or that there is no client."""
        return self._signals.refused.get('priorities') if self._signals is not None else 'no client'
