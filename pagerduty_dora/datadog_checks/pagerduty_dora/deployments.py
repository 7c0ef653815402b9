# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A client for Datadog's DORA deployments API: search a service's deployments in an env, and mark one.

It makes its requests through the check's `ApiClient` (so the request budget, run deadline, rate
limits and typed errors apply) and stalls for the rest of the run at the first transient error,
budget exhaustion or refusal: `Unavailable` then tells the caller to keep its work for a later run.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .attribution_rules import Deployment
from .text import clean, for_log
from .http_client import ApiClient, AuthError, BudgetExhausted, TransientError
from .times import format_time, parse_api_time

DEPLOYMENTS_PATH = '/api/v2/dora/deployments'
LIST_ENDPOINT = 'dora_deployments_list'
PATCH_ENDPOINT = 'dora_deployments_patch'
LIST_TYPE = 'dora_deployments_list_request'
PATCH_TYPE = 'dora_deployment_patch_request'

# The list endpoint has no cursor: pages are walked by moving `to` back to the oldest start seen.
PAGE_LIMIT = 100
MAX_PAGES = 10

_PLAIN_QUERY_VALUE = re.compile(r'[A-Za-z0-9_.\-/]+')


class Unavailable(Exception):
    """The deployments API cannot be used in this run (transient error, request budget, or refused).

    `forbidden` is True when Datadog refused the keys (401/403): the work waits for a later run.
    """

    def __init__(self, forbidden: bool = False) -> None:
        super().__init__('forbidden' if forbidden else 'unavailable')
        self.forbidden = forbidden


def parse_deployment(raw: Any) -> Deployment | None:
    """One element of the list response's `data`, or None when it lacks an id, a service or a finish time."""
    if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not raw['id']:
        return None
    attributes = raw.get('attributes')
    if not isinstance(attributes, dict) or not isinstance(attributes.get('service'), str):
        return None
    started = parse_api_time(attributes.get('started_at'))
    finished = parse_api_time(attributes.get('finished_at'))
    if started is None or finished is None:
        return None
    env = attributes.get('env')
    version = attributes.get('version')
    # Cleaned of lone surrogates: these are shown in event texts, which must encode as UTF-8.
    return Deployment(
        id=clean(raw['id']),
        service=clean(attributes['service']),
        env=clean(env) if isinstance(env, str) and env else None,
        version=clean(version) if isinstance(version, str) and version else None,
        started_at=started,
        finished_at=finished,
    )


def _query_value(value: str) -> str:
    if _PLAIN_QUERY_VALUE.fullmatch(value):
        return value
    return '"{}"'.format(value.replace('\\', '\\\\').replace('"', '\\"'))


def search_query(service: str, env: str) -> str:
    """The event-platform query for one service in one env."""
    return 'service:{} env:{}'.format(_query_value(service), _query_value(env))


def patch_body(deployment_id: str, remediation: dict | None = None) -> dict:
    """Body of `PATCH /api/v2/dora/deployments/{id}` marking the deployment a change failure."""
    attributes: dict[str, Any] = {'change_failure': True}
    if remediation:
        attributes['remediation'] = dict(remediation)
    return {'data': {'id': deployment_id, 'type': PATCH_TYPE, 'attributes': attributes}}


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.strip().casefold() == b.strip().casefold()


def _format_upper(epoch: float) -> str:
    # `format_time` drops the fraction; rounding the upper bound up keeps its second in the range.
    return format_time(int(epoch) + (1 if epoch != int(epoch) else 0))


class DeploymentsClient:
    """Searches and marks DORA deployments; `caller` names it to the `ApiClient` when it stalls.

    `on_forbidden(status)` is told when Datadog refuses the keys, once per run (the client stalls).
    """

    def __init__(self, api: ApiClient, *, caller: str, log: Any, on_forbidden: Callable[[int | None], None]) -> None:
        self._api = api
        self._caller = caller
        self._log = log
        self._on_forbidden = on_forbidden

    @property
    def stalled(self) -> bool:
        """Whether this run has stopped using the API; the next run of the `ApiClient` resets it."""
        return self._api.stalled(self._caller)

    def search(self, service: str, env: str, since: float, until: float) -> list[Deployment]:
        """Deployments of exactly this service and env with a start in [since, until], over every page.

        Raises `Unavailable`, or `RequestRejected` when the API refuses the search itself.
        """
        seen: dict[str, Deployment] = {}
        to = until
        for _ in range(MAX_PAGES):
            body = {
                'data': {
                    'type': LIST_TYPE,
                    'attributes': {
                        'from': format_time(since),
                        'to': _format_upper(to),
                        'query': search_query(service, env),
                        'sort': '-started_at',
                        'limit': PAGE_LIMIT,
                    },
                }
            }
            response = self._call('post', DEPLOYMENTS_PATH, body, LIST_ENDPOINT)
            data = response.data.get('data') if isinstance(response.data, dict) else None
            items = data if isinstance(data, list) else []
            new = 0
            oldest = to
            for raw in items:
                deployment = parse_deployment(raw)
                if deployment is None:
                    continue
                oldest = min(oldest, deployment.started_at)
                if deployment.id in seen:
                    continue
                new += 1
                # Checked here too: a loose query must never lead to blaming another service or env.
                if _same(deployment.service, service) and _same(deployment.env, env):
                    seen[deployment.id] = deployment
            if len(items) < PAGE_LIMIT or new == 0 or oldest <= since:
                break
            to = oldest
        else:
            self._log.debug(
                'Deployment search for %s in env %s stopped after %d pages; the latest ones are used',
                for_log(service),
                for_log(env),
                MAX_PAGES,
            )
        return list(seen.values())

    def patch(self, deployment_id: str, body: dict) -> None:
        """Send a `patch_body()`; raises `Unavailable`, or `RequestRejected` when the API refuses it."""
        # Accepted is accepted, whatever the body says: a 2xx that is not JSON must not be sent again.
        self._call('patch', '{}/{}'.format(DEPLOYMENTS_PATH, deployment_id), body, PATCH_ENDPOINT, expect_json=False)

    def _call(self, method: str, path: str, body: dict, endpoint: str, expect_json: bool = True) -> Any:
        if self.stalled:
            raise Unavailable()
        try:
            return getattr(self._api, method)(path, body, endpoint=endpoint, expect_json=expect_json)
        except BudgetExhausted:
            self._api.stall(self._caller)
            raise Unavailable() from None
        except TransientError as e:
            self._api.stall(self._caller)
            self._log.warning('Change-failure attribution paused until the next run: %s', e)
            raise Unavailable() from None
        except AuthError as e:
            self._api.stall(self._caller)
            self._on_forbidden(e.status)
            raise Unavailable(forbidden=True) from None
