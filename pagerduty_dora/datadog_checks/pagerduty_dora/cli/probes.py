# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The dry run's check of `datadog_app_key`: one harmless read per permission the configuration uses.

Which features a configuration uses, and the permissions each needs, come from `common.permissions`
(the table the README and the configuration show). Each permission is tried with the smallest read
that needs it; a write permission has no such read and is listed as not checked.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, cast

from datadog_checks.pagerduty_dora.catalog.api import DEFINITIONS_PATH, TEAMS_PATH
from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError
from datadog_checks.pagerduty_dora.common.permissions import FEATURES, status_text
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.readback import EVENTS_PATH, FAILURES_PATH, LIST_TYPE

GRANTED = 'granted'
MISSING = 'missing'
REFUSED = 'refused'
NOT_CHECKED = 'not checked'
FAILED = 'failed'
# Seconds the probes may take together.
PROBE_SECONDS = 30.0


def _catalog(api: Any, now: float) -> None:
    api.get(DEFINITIONS_PATH, params={'page[size]': 1, 'page[number]': 0}, endpoint=DEFINITIONS_PATH)


def _teams(api: Any, now: float) -> None:
    api.get(TEAMS_PATH, params={'page[size]': 1, 'page[number]': 0}, endpoint=TEAMS_PATH)


def _events(api: Any, now: float) -> None:
    params = {
        'filter[from]': str(math.floor((now - 60) * 1000)),
        'filter[to]': str(math.floor(now * 1000)),
        'page[limit]': 1,
    }
    api.get(EVENTS_PATH, params=params, endpoint=EVENTS_PATH)


def _dora_failures(api: Any, now: float) -> None:
    # A listing is a POST that only reads.
    attributes = {'from': format_time(now - 3600), 'to': format_time(now), 'limit': 1}
    api.post(FAILURES_PATH, {'data': {'type': LIST_TYPE, 'attributes': attributes}}, endpoint=FAILURES_PATH)


# The read that needs each permission; None where no read needs it (a write permission).
PROBES: dict[str, Callable[[Any, float], None] | None] = {
    'apm_service_catalog_read': _catalog,
    'teams_read': _teams,
    'events_read': _events,
    'dora_metrics_read': _dora_failures,
    'dora_metrics_write': None,
}


def used_permissions(config: Any) -> dict[str, list[str]]:
    """The permissions of `datadog_app_key` a configuration uses, each with the features that need it, in order."""
    used: dict[str, list[str]] = {}
    for feature in FEATURES:
        if feature.used_by(
            app_key=bool(config.datadog_app_key),
            submit_dora_failures=bool(config.submit_dora_failures),
            attribute_change_failures=bool(config.attribute_change_failures),
        ):
            for permission in feature.permissions:
                used.setdefault(permission, []).append(feature.name)
    return used


def probe_permissions(api: Any, config: Any, monotonic: Callable[[], float]) -> list[dict[str, Any]]:
    """Per permission the configuration uses: whether one read with it was granted, and the features that need it.

    `api` is the check's Datadog client, which carries both keys; nothing is written.
    """
    rows = []
    used = used_permissions(config)
    if used:
        api.start_run(monotonic() + PROBE_SECONDS)
    for permission, features in used.items():
        probe = PROBES.get(permission)
        status, detail = NOT_CHECKED, 'a write permission: no read shows it'
        if probe is not None:
            status, detail = _try(probe, api)
        rows.append({'permission': permission, 'status': status, 'detail': detail, 'features': features})
    return rows


def _try(probe: Callable[[Any, float], None], api: Any) -> tuple[str, str]:
    try:
        probe(api, time.time())
    except ApiError as e:
        if dispose(e) is not Disposition.FIX_KEY:
            return FAILED, str(e)
        if cast(AuthError, e).missing_permission:
            return MISSING, 'Datadog answered {}: the key lacks it'.format(status_text(e.status))
        return REFUSED, 'Datadog answered {}: the keys are wrong, or of another Datadog site'.format(
            status_text(e.status)
        )
    return GRANTED, 'one read answered'


def missing(rows: list[dict[str, Any]]) -> list[str]:
    """The permissions a probe found missing or refused."""
    return [row['permission'] for row in rows if row['status'] in (MISSING, REFUSED)]
