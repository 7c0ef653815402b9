# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The requests change-failure attribution makes, and nothing else.

- `DeploymentsClient`: Datadog's DORA deployments API, to search a service's deployments in an env
  and to mark one as a change failure (or set it back) with its remediation;
- `PagerDutySignals`: PagerDuty's change events related to an incident
  (`GET /incidents/{id}/related_change_events`) and the account's priorities in order (`GET /priorities`).

Both make their requests through the check's `ApiClient`s (so the request budget, run deadline, rate
limits and typed errors apply), each wrapped in an `AttributionApi`, which acts on the disposition of a
failed answer (`common/disposition.py`). At the first answer that resumes next run, or a refusal of
Datadog's keys, it stalls for the rest of the run: `Unavailable` then tells the caller to keep its
work for a later run.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from datadog_checks.pagerduty_dora.catalog.model import name_key
from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.http import ApiClient, Response
from datadog_checks.pagerduty_dora.common.text import clean, for_log
from datadog_checks.pagerduty_dora.common.times import format_time, parse_api_time

from .blame import identifiers_of
from .model import ChangeEvent, Deployment
from .ports import Log

DEPLOYMENTS_PATH = '/api/v2/dora/deployments'
LIST_ENDPOINT = 'dora_deployments_list'
PATCH_ENDPOINT = 'dora_deployments_patch'
LIST_TYPE = 'dora_deployments_list_request'
PATCH_TYPE = 'dora_deployment_patch_request'
CHANGE_EVENTS_ENDPOINT = 'incident_related_change_events'
PRIORITIES_ENDPOINT = 'priorities'

# The list endpoint has no cursor: pages are walked by moving `to` back to the oldest start seen.
PAGE_LIMIT = 100
MAX_PAGES = 10

_PLAIN_QUERY_VALUE = re.compile(r'[A-Za-z0-9_.\-/]+')


class Unavailable(Exception):
    """The API cannot be used in this run (transient error, request budget, or refused keys).

    `forbidden` is True when Datadog refused the keys (401/403), with its `status`: the work waits for a
    later run, and the refusal is told once, as the API stalls at it.
    """

    def __init__(self, forbidden: bool = False, status: int | None = None) -> None:
        super().__init__('forbidden' if forbidden else 'unavailable')
        self.forbidden = forbidden
        self.status = status


class AttributionApi:
    """One of the check's `ApiClient`s as attribution uses it; `caller` names attribution to it when it stalls.

    `answer()` acts on the disposition of a failed answer (`common/disposition.py`):

    - the API stalled earlier in this run: `Unavailable`, and no request is made;
    - one that resumes next run (the budget spent, or the API failed for now, which is logged): the API
      stalls for attribution until its next run, and `Unavailable` keeps the work for then;
    - `FIX_KEY` (401/403): with `refused_keys_stall` (Datadog's keys, with which no other request of the
      run can succeed) it stalls too, raising `Unavailable(forbidden=True)` with the status; otherwise
      the `AuthError` is raised as it is, for the caller to answer as a refusal;
    - `GONE` or `GIVE_UP` (any other 4xx): `RequestRejected`, raised as it is: sending it again would be
      refused the same way, so the caller answers it as a value.
    """

    def __init__(self, api: ApiClient, *, caller: str, log: Log, refused_keys_stall: bool) -> None:
        self._api = api
        self._caller = caller
        self._log = log
        self._refused_keys_stall = refused_keys_stall

    @property
    def stalled(self) -> bool:
        """Whether this run has stopped using the API; the next run of the `ApiClient` resets it."""
        return self._api.stalled(self._caller)

    def answer(self, send: Callable[[ApiClient], Response]) -> Response:
        """What `send(api)` answered; a failure means what the class docstring says."""
        if self.stalled:
            raise Unavailable()
        try:
            return send(self._api)
        except ApiError as e:
            disposition = dispose(e)
            forbidden = disposition is Disposition.FIX_KEY and self._refused_keys_stall
            if not (disposition.resumes_next_run or forbidden):
                raise
            if disposition.failed_for_now:
                self._log.warning('Change-failure attribution paused until the next run: %s', e)
            self._api.stall(self._caller)
            raise Unavailable(forbidden=forbidden, status=e.status if forbidden else None) from None


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
    git = attributes.get('git')
    commit = git.get('commit_sha') if isinstance(git, dict) else None
    # Cleaned of lone surrogates: these are shown in event texts, which must encode as UTF-8.
    return Deployment(
        id=clean(raw['id']),
        service=clean(attributes['service']),
        env=clean(env) if isinstance(env, str) and env else None,
        version=clean(version) if isinstance(version, str) and version else None,
        started_at=started,
        finished_at=finished,
        commit=clean(commit) if isinstance(commit, str) and commit else None,
    )


def _query_value(value: str) -> str:
    if _PLAIN_QUERY_VALUE.fullmatch(value):
        return value
    return '"{}"'.format(value.replace('\\', '\\\\').replace('"', '\\"'))


def search_query(service: str, env: str) -> str:
    """The event-platform query for one service in one env."""
    return 'service:{} env:{}'.format(_query_value(service), _query_value(env))


def patch_body(deployment_id: str, attributes: dict) -> dict:
    """Body of `PATCH /api/v2/dora/deployments/{id}`: `change_failure` and, when recorded, `remediation`."""
    return {'data': {'id': deployment_id, 'type': PATCH_TYPE, 'attributes': dict(attributes)}}


def _same(a: str | None, b: str | None) -> bool:
    return bool(name_key(a)) and name_key(a) == name_key(b)


def _format_upper(epoch: float) -> str:
    # `format_time` drops the fraction; rounding the upper bound up keeps its second in the range.
    return format_time(int(epoch) + (1 if epoch != int(epoch) else 0))


class DeploymentsClient:
    """Searches and marks DORA deployments through Datadog's `api`; `caller` names it when it stalls.

    Datadog refusing the keys stalls it for the run: the first request refused raises
    `Unavailable(forbidden=True)`, the next ones `Unavailable()`.
    """

    def __init__(self, api: ApiClient, *, caller: str, log: Log) -> None:
        self._api = AttributionApi(api, caller=caller, log=log, refused_keys_stall=True)
        self._log = log

    @property
    def stalled(self) -> bool:
        """Whether this run has stopped using the API; the next run of the `ApiClient` resets it."""
        return self._api.stalled

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

    def _call(self, method: str, path: str, body: dict, endpoint: str, expect_json: bool = True) -> Response:
        return self._api.answer(
            lambda api: getattr(api, method)(path, body, endpoint=endpoint, expect_json=expect_json)
        )


def parse_change_event(raw: Any) -> ChangeEvent | None:
    """One element of `related_change_events`, or None when it lacks an id or a time."""
    if not isinstance(raw, dict) or not isinstance(raw.get('id'), str) or not raw['id']:
        return None
    at = parse_api_time(raw.get('timestamp'))
    if at is None:
        return None
    services = raw.get('services')
    found = raw.get('summary')
    summary = found if isinstance(found, str) else ''
    reason = raw.get('correlation_reason')
    return ChangeEvent(
        id=raw['id'],
        at=at,
        summary=summary[:1024],
        services=tuple(
            s['id'] for s in (services if isinstance(services, list) else []) if isinstance(s, dict) and s.get('id')
        )[:20],
        identifiers=identifiers_of(summary, raw.get('custom_details')),
        reason=reason.get('reason') if isinstance(reason, dict) and isinstance(reason.get('reason'), str) else None,
    )


class PagerDutySignals:
    """What PagerDuty knows that attribution uses: change events related to an incident, and priorities in order.

    A refusal (any 4xx, 401/403 included) answers "none" rather than stalling: an account without change
    events or priorities is still attributed, by the other rules.
    """

    def __init__(self, api: ApiClient, *, caller: str, log: Log) -> None:
        self._api = AttributionApi(api, caller=caller, log=log, refused_keys_stall=False)
        self._log = log
        self.refused: dict[str, int | None] = {}

    @property
    def stalled(self) -> bool:
        return self._api.stalled

    def related_change_events(self, incident_id: str) -> list[ChangeEvent] | None:
        """The change events PagerDuty relates to the incident; None when it refuses to tell."""
        path = '/incidents/{}/related_change_events'.format(incident_id)
        data = self._get(path, [('limit', '100')], CHANGE_EVENTS_ENDPOINT)
        if data is None:
            return None
        items = data.get('change_events') if isinstance(data, dict) else None
        return [event for event in map(parse_change_event, items if isinstance(items, list) else []) if event]

    def priorities(self) -> list[str] | None:
        """The account's priority names, most severe first; None when PagerDuty refuses to tell."""
        names: list[str] = []
        offset = 0
        for _ in range(MAX_PAGES):
            data = self._get('/priorities', [('limit', '100'), ('offset', str(offset))], PRIORITIES_ENDPOINT)
            if data is None:
                return None
            items = data.get('priorities') if isinstance(data, dict) else None
            page = [p for p in items if isinstance(p, dict)] if isinstance(items, list) else []
            for item in page:
                name = item.get('name') or item.get('summary')
                if isinstance(name, str) and name.strip():
                    names.append(name.strip()[:200])
            if not data.get('more') or not page:
                break
            offset += len(page)
        return names

    def _get(self, path: str, params: list, endpoint: str) -> Any:
        try:
            return self._api.answer(lambda api: api.get(path, params, endpoint=endpoint)).data
        except ApiError as e:
            # What `answer` lets through is a refusal, of the key or of the request: PagerDuty will not tell.
            self.refused[endpoint] = e.status
            self._log.debug('PagerDuty refused %s (%s) to change-failure attribution', endpoint, e.status)
            return None
