# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Datadog API the demo's check talks to: DORA failures and DORA deployments, for `LoopbackServer`.

- `POST /api/v2/dora/failure` keeps the latest attributes per failure id (`DoraFailures`);
- `POST /api/v2/dora/deployments` lists deployments (`from`/`to` on when they started, `query` on
  service, env, version and team, `sort`, `limit`); `GET` and `PATCH /api/v2/dora/deployments/{id}`
  read one and mark it as a change failure with its remediation (`Deployments`).

Requests need the right `DD-API-KEY` (and `DD-APPLICATION-KEY` for deployments), else a 403.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .server import Reply, Request, Route

FAILURE_PATH = '/api/v2/dora/failure'
# Checks an API key and writes nothing: `{"valid": true}`, or a 403 for a key Datadog does not know.
VALIDATE_PATH = '/api/v1/validate'
DEPLOYMENTS_PATH = '/api/v2/dora/deployments'
EVENTS_PATH = '/api/v2/events'
FORBIDDEN = {'errors': ['Forbidden']}
QUERY_FIELDS = ('service', 'env', 'version', 'team')
DEFAULT_LIMIT = 10


def _body(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


class DoraFailures:
    """What the DORA failure API received: `failures` by id (latest attributes), `posts` in order."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.accepted_status = 202
        self.failures: dict[str, dict] = {}
        self.posts: list[dict] = []
        self.rejected: list[tuple[int, list[str]]] = []
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [('POST', re.escape(FAILURE_PATH), self.handle), ('GET', re.escape(VALIDATE_PATH), self.validate)]

    def record_routes(self) -> list[Route]:
        """What Datadog holds of a new demo account: no event and no failure yet to read back.

        A check that starts over an empty state first reads back what it sent before (its events
        and its failures); the demo always starts new, so both lists are empty.
        """
        return [
            ('GET', re.escape(EVENTS_PATH), self.no_events),
            ('POST', re.escape(FAILURE_PATH + 's'), self.no_failures),
        ]

    def no_events(self, request: Request) -> Reply:
        refused, _ = self._admit(request)
        return refused or Reply(200, {'data': [], 'meta': {'page': {}}, 'links': {}})

    def no_failures(self, request: Request) -> Reply:
        refused, _ = self._admit(request)
        return refused or Reply(200, {'data': []})

    def validate(self, request: Request) -> Reply:
        """`GET /api/v1/validate`: whether the API key is valid; the application key plays no part."""
        if request.headers.get('dd-api-key') != self.api_key:
            return Reply(403, FORBIDDEN)
        return Reply(200, {'valid': True})

    def _admit(self, request: Request, *, app_key: bool = False) -> tuple[Reply | None, dict[str, str]]:
        """A refusal, or None and the headers of the answer."""
        if request.headers.get('dd-api-key') != self.api_key:
            return Reply(403, FORBIDDEN), {}
        return None, {}

    def errors(self, body: Any) -> list[str]:
        """Why the API would answer this body with a 400 (empty when it would not)."""
        data = body.get('data') if isinstance(body, dict) else None
        return [] if isinstance(data, dict) and isinstance(data.get('attributes'), dict) else ['data: required object']

    def handle(self, request: Request) -> Reply:
        with self._lock:
            refused, headers = self._admit(request)
            if refused is not None:
                return refused
            body = _body(request)
            errors = self.errors(body)
            if errors:
                self.rejected.append((400, errors))
                return Reply(400, {'errors': errors}, headers=headers)
            attributes = body['data']['attributes']
            failure_id = attributes.get('id') or str(uuid.uuid4())
            self.failures[failure_id] = attributes
            self.posts.append(attributes)
            return Reply(self.accepted_status, {'data': {'id': failure_id, 'type': 'dora_failure'}}, headers=headers)


def render_time(epoch: float) -> str:
    """RFC 3339 with milliseconds, as the API renders times."""
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '{:03d}Z'.format(moment.microsecond // 1000)


def read_time(value: Any) -> float | None:
    """An RFC 3339 time with a time zone as epoch seconds, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


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


@dataclass
class Deployment:
    id: str
    service: str
    team: str | None
    env: str | None
    version: str | None
    started_at: float
    finished_at: float
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


class Deployments:
    """The DORA deployments held by the API, the searches it answered and the PATCHes it accepted."""

    READ = 'dora_metrics_read'
    WRITE = 'dora_metrics_write'

    def __init__(self, api_key: str, app_key: str) -> None:
        self.api_key = api_key
        self.app_key = app_key
        self.deployments: dict[str, Deployment] = {}
        self.patches: list[tuple[str, dict]] = []
        self.searches: list[dict] = []
        self.rejected: list[tuple[int, list[str]]] = []
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
        self.deployments[deployment_id] = Deployment(
            id=deployment_id,
            service=service,
            env=env,
            version=version,
            started_at=finished_at - duration,
            finished_at=finished_at,
            team=team,
        )
        return deployment_id

    def failed(self) -> dict[str, Deployment]:
        """The deployments marked as change failures."""
        return {key: d for key, d in self.deployments.items() if d.change_failure}

    def routes(self) -> list[Route]:
        single = re.escape(DEPLOYMENTS_PATH) + r'/(?P<deployment_id>[^/]+)'
        return [
            ('POST', re.escape(DEPLOYMENTS_PATH), self.search),
            ('GET', single, self.get),
            ('PATCH', single, self.patch),
        ]

    def _guard(self, request: Request, permission: str) -> Reply | None:
        if (
            request.headers.get('dd-api-key') != self.api_key
            or request.headers.get('dd-application-key') != self.app_key
        ):
            return Reply(403, FORBIDDEN)
        return None

    def _bad(self, errors: list[str]) -> Reply:
        self.rejected.append((400, errors))
        return Reply(400, {'errors': errors})

    def search_errors(self, data: dict, attributes: Any) -> list[str]:
        """Why the API would refuse this search with a 400 (empty when it would not)."""
        return [] if isinstance(attributes, dict) else ['data.attributes: required object']

    def patch_errors(self, deployment_id: str, data: Any) -> list[str]:
        """Why the API would refuse this PATCH with a 400 (empty when it would not)."""
        ok = isinstance(data, dict) and isinstance(data.get('attributes'), dict)
        return [] if ok else ['data.attributes: required object']

    def search(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, self.READ)
            if refused is not None:
                return refused
            body = _body(request)
            data: dict = body['data'] if isinstance(body, dict) and isinstance(body.get('data'), dict) else {}
            attributes = data.get('attributes')
            errors = self.search_errors(data, attributes)
            if errors:
                return self._bad(errors)
            assert isinstance(attributes, dict)
            try:
                terms = parse_query(attributes.get('query', ''))
            except ValueError as e:
                return self._bad(['query: {}'.format(e)])
            self.searches.append(dict(attributes))
            since, until = read_time(attributes.get('from')), read_time(attributes.get('to'))
            found = [
                d
                for d in self.deployments.values()
                if (since is None or d.started_at >= since)
                and (until is None or d.started_at <= until)
                and all(d.value(name) == value for name, value in terms.items())
            ]
            sort = attributes.get('sort', '-started_at')
            key = sort.lstrip('-')
            found.sort(key=lambda d: (getattr(d, key), d.id), reverse=sort.startswith('-'))
            return Reply(200, {'data': [d.to_api() for d in found[: attributes.get('limit', DEFAULT_LIMIT)]]})

    def get(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, self.READ)
            if refused is not None:
                return refused
            deployment = self.deployments.get(request.match['deployment_id'])
            if deployment is None:
                return Reply(404, {'errors': ['Deployment not found']})
            return Reply(200, {'data': deployment.to_api()})

    def patch(self, request: Request) -> Reply:
        with self._lock:
            refused = self._guard(request, self.WRITE)
            if refused is not None:
                return refused
            deployment_id = request.match['deployment_id']
            body = _body(request)
            data = body.get('data') if isinstance(body, dict) else None
            errors = self.patch_errors(deployment_id, data)
            if errors:
                return self._bad(errors)
            assert isinstance(data, dict)
            attributes = data['attributes']
            deployment = self.deployments.get(deployment_id)
            if deployment is None:
                return Reply(404, {'errors': ['Deployment not found']})
            if 'change_failure' in attributes:
                deployment.change_failure = attributes['change_failure']
            if attributes.get('remediation') is not None:
                deployment.remediation = dict(attributes['remediation'])
            deployment.patches.append(attributes)
            self.patches.append((deployment_id, attributes))
            return Reply(202, raw=b'')
