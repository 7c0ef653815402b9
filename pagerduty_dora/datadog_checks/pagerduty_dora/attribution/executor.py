# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The one place change-failure attribution makes requests: it runs the searches and PATCHes decided elsewhere.

Its job is the step between a decision and the APIs' clients of `deployments`: each method takes a
task value of `decision` and answers with one value of `ports`, what the APIs said with a refusal
of the request itself included (`rejected`, `refusal`). It makes the requests a task needs (the
related change events and the deployments of a blame search; a remediation search reads the
service's history only when a rollback is possible), and keeps the PATCHes of a dry run.
`Unavailable` still propagates, to keep the work for a later run. In a dry run nothing is written:
the PATCHes it would send are kept in `would_patch`.
"""

from __future__ import annotations

from typing import Callable

from datadog_checks.pagerduty_dora.common.errors import RequestRejected

from .decision import BlameSearch, Patch, RemedySearch, RollbackSearch
from .deployments import DeploymentsClient, PagerDutySignals, patch_body
from .model import Deployment
from .ports import Priorities, RemedyResult, SearchResult
from .remediation import history_range, remedy_range, wants_history, wants_history_for_rollback

# Whether a search after a failed deployment needs its history too: (later deployments, failed, until).
WantsHistory = Callable[[list[Deployment], Deployment, float], bool]


class Executor:
    """Runs attribution's requests through Datadog's `deployments` and PagerDuty's `signals` (None: no client)."""

    def __init__(self, deployments: DeploymentsClient, signals: PagerDutySignals | None, *, dry_run: bool) -> None:
        self._deployments = deployments
        self._signals = signals
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
        return self._after(task.failed, task.until, wants_history)

    def rollback_search(self, task: RollbackSearch) -> RemedyResult:
        """The deployments after the failed one up to now, and its history when one of them may go back to it."""
        return self._after(task.failed, task.until, wants_history_for_rollback)

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

    def priorities(self) -> Priorities:
        """The account's priorities, most severe first, or why they were not told: PagerDuty's status, or no client."""
        if self._signals is None:
            return Priorities(None, 'no client')
        names = self._signals.priorities()
        return Priorities(names, self._signals.refused.get('priorities') if names is None else None)

    def _after(self, failed: Deployment, until: float, wants: WantsHistory) -> RemedyResult:
        """The deployments of the failed one's service and env after it up to `until`, and its history if `wants`."""
        env = failed.env or ''
        try:
            later = self._deployments.search(failed.service, env, *remedy_range(failed, until))
            if not wants(later, failed, until):
                return RemedyResult(later, None)
            return RemedyResult(later, self._deployments.search(failed.service, env, *history_range(failed)))
        except RequestRejected as e:
            return RemedyResult([], None, e)
