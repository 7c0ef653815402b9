# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A failed deployment's remediation: when it is searched, and which later deployment it is.

The first later deployment of the same service and env that does not redeploy the failed version
and finished by the time an incident blaming it resolved, recorded once: a `rollback` when it deploys
a version the service ran before the failed one, a `rollforward` otherwise.

Datadog detects rollbacks itself and then marks a failed deployment on its own: `rollback_of()` is
what the check looks for before it sets a deployment back, so that it never erases that mark.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from datadog_checks.pagerduty_dora.catalog.model import name_key

from .model import ROLLBACK, ROLLFORWARD, Deployment

# How far back the service's history is read to tell a rollback (a version it ran before) from a rollforward.
ROLLBACK_HISTORY = 90 * 86400.0


def pick_remediation(
    later: Iterable[Deployment], failed: Deployment, until: float, history: Iterable[str] | None
) -> tuple[Deployment, str] | None:
    """The first deployment after `failed` that does not redeploy its version and finished by `until`.

    It is a `rollback` when it deploys a version in `history` (the versions the service ran before
    the failed deployment), a `rollforward` otherwise.
    """
    candidates = [
        d
        for d in later
        if d.id != failed.id
        and failed.finished_at < d.finished_at <= until
        # Redeploying the failed version again changes nothing; it is not a remediation.
        and not (d.version and failed.version and name_key(d.version) == name_key(failed.version))
    ]
    if not candidates:
        return None
    fix = min(candidates, key=lambda d: (d.finished_at, d.id))
    earlier = {name_key(v) for v in history or () if v}
    earlier.discard(name_key(failed.version))
    return fix, ROLLBACK if fix.version and name_key(fix.version) in earlier else ROLLFORWARD


def history_versions(deployments: Iterable[Deployment], failed: Deployment) -> list[str]:
    """The versions the service ran before the failed deployment (its own version excepted)."""
    return sorted(
        {
            d.version
            for d in deployments
            if d.version and d.id != failed.id and d.finished_at < failed.finished_at and d.version != failed.version
        }
    )


def remedy_range(failed: Deployment, until: float) -> tuple[float, float]:
    """The start times searched for the deployments that may remediate `failed`, up to a resolve at `until`."""
    return failed.started_at, until


def history_range(failed: Deployment) -> tuple[float, float]:
    """The start times searched for the versions the service ran before `failed`."""
    return failed.started_at - ROLLBACK_HISTORY, failed.started_at


def wants_history(later: Iterable[Deployment], failed: Deployment, until: float) -> bool:
    """Whether the service's history must be read: only a remediation with a version can be a rollback."""
    found = pick_remediation(later, failed, until, None)
    return found is not None and bool(found[0].version)


def choose_remediation(
    later: Sequence[Deployment], history: Sequence[Deployment] | None, failed: Deployment, until: float
) -> tuple[Deployment, str] | None:
    """The remediation of `failed` from the later deployments and, when it was read, the service's history."""
    if history is None:
        return pick_remediation(later, failed, until, None)
    return pick_remediation(later, failed, until, history_versions(list(history) + list(later), failed))


def rollback_of(
    later: Iterable[Deployment], history: Iterable[Deployment] | None, failed: Deployment, until: float
) -> Deployment | None:
    """The first deployment after `failed`, finished by `until`, that goes back to what the service ran before it.

    Datadog's rollback detection matches a redeploy by commit where deployments carry one, else by
    version: either counts here, so that a rollback Datadog may have seen is never missed. Redeploying
    the failed version (or commit) again is not a rollback of it.
    """
    before = [d for d in list(history or ()) + list(later) if d.id != failed.id and d.finished_at < failed.finished_at]
    versions = {name_key(d.version) for d in before if d.version} - {name_key(failed.version)}
    commits = {d.commit for d in before if d.commit} - {failed.commit}
    rollbacks = [
        d
        for d in later
        if d.id != failed.id
        and failed.finished_at < d.finished_at <= until
        and (name_key(d.version) in versions or (d.commit is not None and d.commit in commits))
    ]
    return min(rollbacks, key=lambda d: (d.finished_at, d.id)) if rollbacks else None


def wants_history_for_rollback(later: Iterable[Deployment], failed: Deployment, until: float) -> bool:
    """Whether the history must be read to tell a rollback: a later deployment names a version or commit."""
    return any(
        d.id != failed.id and failed.finished_at < d.finished_at <= until and (d.version or d.commit) for d in later
    )
