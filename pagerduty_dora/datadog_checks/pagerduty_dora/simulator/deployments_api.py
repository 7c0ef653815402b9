# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's DORA deployments API: list, get and mark as change failure.

Serve it with `FakeServer(state.routes())`. It answers as the published API does:
- `POST /api/v2/dora/deployments` lists deployments (`from`/`to` RFC 3339 bounds, `limit` 1-1000,
  default 10, `query` in event-platform syntax, `sort` with `-` for descending); the response has no
  cursor, so a client pages by narrowing the time range. The fake applies `from`/`to` to when a
  deployment *started*, the stricter reading of the API's "timestamp";
- `GET /api/v2/dora/deployments/{id}` returns one deployment, 404 when unknown;
- `PATCH /api/v2/dora/deployments/{id}` sets `change_failure` and `remediation` (202, empty body).
Requests need `DD-API-KEY` and `DD-APPLICATION-KEY`; reads need `dora_metrics_read`, the PATCH
`dora_metrics_write` (a 403 otherwise). Beyond the published rules the fake refuses attribute
names the API does not define, so a misspelt field fails a test instead of being ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .server import Handler, Reply, Request

DEPLOYMENTS_PATH = '/api/v2/dora/deployments'
READ = 'dora_metrics_read'
WRITE = 'dora_metrics_write'
FORBIDDEN = {'errors': ['Forbidden']}
NOT_AUTHORIZED = {'errors': ['Failed permission authorization checks']}
LIST_TYPE = 'dora_deployments_list_request'
PATCH_TYPE = 'dora_deployment_patch_request'
LIST_ATTRIBUTES = {'from', 'to', 'limit', 'query', 'sort'}
PATCH_ATTRIBUTES = {'change_failure', 'remediation'}
REMEDIATION_FIELDS = {'id', 'type', 'version'}
REMEDIATION_TYPES = ('rollback', 'rollforward')
QUERY_FIELDS = ('service', 'env', 'version', 'team')
SORT_FIELDS = ('started_at', 'finished_at')
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
FAULT_KINDS = ('timeout',)


def render_time(epoch: float) -> str:
    """RFC 3339 with milliseconds, as the API renders times."""
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '{:03d}Z'.format(moment.microsecond // 1000)


def _read_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


@dataclass
class FakeDeployment:
    id: str
    service: str
    env: str | None
    version: str | None
    started_at: float
    finished_at: float
    team: str | None = None
    change_failure: bool = False
    remediation: dict | None = None
    patches: list[dict] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        return getattr(self, name)

    def to_api(self) -> dict:
        attributes: dict[str, Any] = {
            'service': self.service,
            'started_at': render_time(self.started_at),
            'finished_at': render_time(self.finished_at),
            'custom_tags': None,
        }
        for name in ('env', 'version', 'team'):
            if self.value(name):
                attributes[name] = self.value(name)
        return {'id': self.id, 'type': 'dora_deployment', 'attributes': attributes}


def parse_query(query: str) -> dict[str, str]:
    """`service:a env:"b c"` -> {'service': 'a', 'env': 'b c'}; raises ValueError on what the fake does not know."""
    terms: dict[str, str] = {}
    for token in shlex.split(query or ''):
        name, sep, value = token.partition(':')
        name = name.lstrip('@')
        if not sep or name not in QUERY_FIELDS or not value:
            raise ValueError('unsupported query term {!r}'.format(token))
        terms[name] = value
    return terms


class DeploymentsState:
    """DORA deployments held by the fake, the PATCHes it accepted, and its faults."""

    def __init__(
        self, api_key: str, app_key: str, *, permissions: tuple[str, ...] = (READ, WRITE), timeout_delay: float = 2.0
    ) -> None:
        self.api_key = api_key
        self.app_key = app_key
        self.permissions = set(permissions)
        self.timeout_delay = timeout_delay
        self.deployments: dict[str, FakeDeployment] = {}
        self.patches: list[tuple[str, dict]] = []
        self.searches: list[dict] = []
        self.rejected: list[tuple[int, list[str]]] = []
        self._faults: deque[int | str] = deque()
        self._lock = threading.Lock()

    def add(
        self,
        service: str,
        env: str | None,
        version: str | None,
        finished_at: float,
        *,
        duration: float = 300.0,
        team: str | None = None,
        deployment_id: str | None = None,
    ) -> str:
        """Record a deployment that finished at `finished_at` after running `duration` seconds; return its id."""
        deployment_id = deployment_id or uuid.uuid4().hex[:11]
        self.deployments[deployment_id] = FakeDeployment(
            id=deployment_id,
            service=service,
            env=env,
            version=version,
            started_at=finished_at - duration,
            finished_at=finished_at,
            team=team,
        )
        return deployment_id

    def failed(self) -> dict[str, FakeDeployment]:
        """The deployments marked as change failures."""
        return {key: d for key, d in self.deployments.items() if d.change_failure}

    def routes(self) -> list[tuple[str, str, Handler]]:
        """Route tuples for `FakeServer`."""
        single = re.escape(DEPLOYMENTS_PATH) + r'/(?P<deployment_id>[^/]+)'
        return [
            ('POST', re.escape(DEPLOYMENTS_PATH), self.search),
            ('GET', single, self.get),
            ('PATCH', single, self.patch),
        ]

    def fail_next(self, n: int, status_or_kind: int | str) -> None:
        """Answer the next `n` requests with a fault: an HTTP status (429, 500, 503, 400...) or `timeout`."""
        if isinstance(status_or_kind, str) and status_or_kind not in FAULT_KINDS:
            raise ValueError('unknown fault {!r}'.format(status_or_kind))
        with self._lock:
            self._faults.extend([status_or_kind] * n)

    # Handlers ----------------------------------------------------------------------------------

    def _guard(self, request: Request, permission: str) -> Reply | None:
        if request.headers.get('dd-api-key') != self.api_key:
            return Reply(403, FORBIDDEN)
        if request.headers.get('dd-application-key') != self.app_key:
            return Reply(403, FORBIDDEN)
        if permission not in self.permissions:
            return Reply(403, NOT_AUTHORIZED)
        if self._faults:
            fault = self._faults.popleft()
            if fault == 'timeout':
                return Reply(504, {'errors': ['Gateway Timeout']}, delay=self.timeout_delay)
            if fault == 429:
                return Reply(
                    429,
                    {'errors': ['Too many requests']},
                    headers={'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '1'},
                )
            return Reply(int(fault), {'errors': ['Injected error {}'.format(fault)]})
        return None

    def _bad(self, errors: list[str]) -> Reply:
        self.rejected.append((400, errors))
        return Reply(400, {'errors': errors})

    def search(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, READ)
            if refused is not None:
                return refused
            try:
                body = request.json()
            except ValueError:
                body = None
            data: dict = body['data'] if isinstance(body, dict) and isinstance(body.get('data'), dict) else {}
            attributes = data.get('attributes')
            if not isinstance(attributes, dict):
                return self._bad(['data.attributes: required object'])
            errors = ['{}: unknown attribute'.format(n) for n in sorted(set(attributes) - LIST_ATTRIBUTES)]
            if data.get('type', LIST_TYPE) != LIST_TYPE:
                errors.append('data.type: must be {}'.format(LIST_TYPE))
            limit = attributes.get('limit', DEFAULT_LIMIT)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
                errors.append('limit: must be an integer from 1 to {}'.format(MAX_LIMIT))
            bounds = {}
            for name in ('from', 'to'):
                if name in attributes:
                    bounds[name] = _read_time(attributes[name])
                    if bounds[name] is None:
                        errors.append('{}: must be an RFC 3339 date-time with a time zone'.format(name))
            sort = attributes.get('sort', '-started_at')
            if not isinstance(sort, str) or sort.lstrip('-') not in SORT_FIELDS:
                errors.append('sort: unsupported sort {!r}'.format(sort))
            try:
                terms = parse_query(attributes.get('query', ''))
            except ValueError as e:
                errors.append('query: {}'.format(e))
                terms = {}
            if errors:
                return self._bad(errors)
            self.searches.append(dict(attributes))
            since, until = bounds.get('from'), bounds.get('to')
            found = [
                d
                for d in self.deployments.values()
                if (since is None or d.started_at >= since)
                and (until is None or d.started_at <= until)
                and all(d.value(name) == value for name, value in terms.items())
            ]
            key = sort.lstrip('-')
            found.sort(key=lambda d: (getattr(d, key), d.id), reverse=sort.startswith('-'))
            return Reply(200, {'data': [d.to_api() for d in found[:limit]]})

    def get(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, READ)
            if refused is not None:
                return refused
            deployment = self.deployments.get(request.match['deployment_id'])
            if deployment is None:
                return Reply(404, {'errors': ['Deployment not found']})
            return Reply(200, {'data': deployment.to_api()})

    def patch(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, WRITE)
            if refused is not None:
                return refused
            deployment_id = request.match['deployment_id']
            try:
                body = request.json()
            except ValueError:
                body = None
            data = body.get('data') if isinstance(body, dict) else None
            if not isinstance(data, dict):
                return self._bad(['data: required object'])
            errors = []
            if data.get('type') != PATCH_TYPE:
                errors.append('data.type: must be {}'.format(PATCH_TYPE))
            if data.get('id') != deployment_id:
                errors.append('data.id: must be the deployment id of the path')
            attributes = data.get('attributes')
            if not isinstance(attributes, dict):
                return self._bad(errors + ['data.attributes: required object'])
            errors.extend('{}: unknown attribute'.format(n) for n in sorted(set(attributes) - PATCH_ATTRIBUTES))
            if 'change_failure' in attributes and not isinstance(attributes['change_failure'], bool):
                errors.append('change_failure: must be a boolean')
            deployment = self.deployments.get(deployment_id)
            remediation = attributes.get('remediation')
            if remediation is not None:
                errors.extend(self._check_remediation(remediation, deployment))
            if errors:
                return self._bad(errors)
            if deployment is None:
                return Reply(404, {'errors': ['Deployment not found']})
            if 'change_failure' in attributes:
                deployment.change_failure = attributes['change_failure']
            if remediation is not None:
                deployment.remediation = dict(remediation)
            deployment.patches.append(attributes)
            self.patches.append((deployment_id, attributes))
            return Reply(202, raw=b'')

    def _check_remediation(self, remediation: Any, deployment: FakeDeployment | None) -> list[str]:
        if not isinstance(remediation, dict):
            return ['remediation: must be an object']
        errors = ['remediation.{}: unknown attribute'.format(n) for n in sorted(set(remediation) - REMEDIATION_FIELDS)]
        if remediation.get('type') not in REMEDIATION_TYPES:
            errors.append('remediation.type: must be one of {}'.format(', '.join(REMEDIATION_TYPES)))
        if ('id' in remediation) == ('version' in remediation):
            errors.append('remediation: specify either id or version, but not both')
        elif 'id' in remediation:
            fix = self.deployments.get(remediation['id'])
            if fix is None:
                errors.append('remediation.id: unknown deployment')
            elif deployment is not None and (fix.service, fix.env) != (deployment.service, deployment.env):
                errors.append('remediation.id: must be a deployment of the same service and env')
        return errors
