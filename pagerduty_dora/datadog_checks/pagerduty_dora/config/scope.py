# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Whether the PagerDuty services and teams an instance names exist, so that a typo is a warning.

A `service_overrides` entry that names no PagerDuty service applies to no incident, and a
`service_ids` or `team_ids` entry PagerDuty does not know selects nothing: both are accepted in
silence by the configuration, and the incidents they were meant for are mapped by the catalog rules
instead, or not collected at all. PagerDuty is asked about each name once (read-only requests).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import Override
from datadog_checks.pagerduty_dora.catalog.model import name_key, pagerduty_url_key
from datadog_checks.pagerduty_dora.common.errors import RequestRejected

# PagerDuty object ids: `P` and six or more upper-case letters and digits (`PABC123`).
PAGERDUTY_ID = re.compile(r'\AP[A-Z0-9]{5,}\Z')
# `GET /services?query=` matches names containing the query; this many pages of 100 are read for an exact one.
QUERY_PAGES = 3
PAGE_SIZE = 100
NOT_FOUND = 404


def scope_warnings(
    api: Any, overrides: Sequence[Override], service_ids: Sequence[str], team_ids: Sequence[str]
) -> list[str]:
    """One warning per `service_ids`/`team_ids` entry or override that names nothing PagerDuty knows.

    `api` is the check's PagerDuty `ApiClient`. Raises its `ApiError` when PagerDuty does not answer
    (the caller asks again later); a 404 is the answer "no such object".
    """
    warnings = []
    for service_id in service_ids:
        if not _exists(api, '/services/{}'.format(service_id.strip()), '/services/{id}'):
            warnings.append(
                '`service_ids` entry {} is not a PagerDuty service this key can read: no incident of it is '
                'collected'.format(service_id)
            )
    for team_id in team_ids:
        if not _exists(api, '/teams/{}'.format(team_id.strip()), '/teams/{id}'):
            warnings.append(
                '`team_ids` entry {} is not a PagerDuty team this key can read: no incident of it is collected'.format(
                    team_id
                )
            )
    for position, override in enumerate(overrides, 1):
        if not _service_named(api, override.pagerduty_service):
            warnings.append(
                '`service_overrides` entry #{} names {!r}, which is no PagerDuty service (by ID, name or URL): '
                'it applies to no incident'.format(position, override.pagerduty_service)
            )
    return warnings


def _exists(api: Any, path: str, endpoint: str) -> bool:
    try:
        api.get(path, endpoint=endpoint)
    except RequestRejected as e:
        if e.status == NOT_FOUND:
            return False
        raise
    return True


def _service_named(api: Any, wanted: str) -> bool:
    """Whether a PagerDuty service has `wanted` as its id, its name (case-insensitively) or its URL."""
    wanted = wanted.strip()
    key = pagerduty_url_key(wanted) if '/' in wanted else ''
    if key.startswith('id:'):
        return _exists(api, '/services/{}'.format(key[3:]), '/services/{id}')
    if key:
        # A URL that names no service by id cannot be looked up; the mapping compares it as written.
        return True
    if PAGERDUTY_ID.match(wanted) and _exists(api, '/services/{}'.format(wanted), '/services/{id}'):
        return True
    for page in range(QUERY_PAGES):
        params = {'query': wanted, 'limit': PAGE_SIZE, 'offset': page * PAGE_SIZE}
        data = api.get('/services', params=params, endpoint='/services').data or {}
        services = data.get('services') or []
        if any(isinstance(s, dict) and name_key(s.get('name')) == name_key(wanted) for s in services):
            return True
        if not data.get('more'):
            return False
    # Many services contain the name and none of the first pages is it: say nothing rather than guess.
    return True
