# (C) The pagerduty_dora Authors 2026-present
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
A deployment may carry a git commit (`git.commit_sha`, as the API renders it).
Requests need `DD-API-KEY` and `DD-APPLICATION-KEY`; reads need `dora_metrics_read`, the PATCH
`dora_metrics_write` (a 403 otherwise). Beyond the published rules the fake refuses attribute
names the API does not define, so a misspelt field fails a test instead of being ignored. It builds
on the demo's deployments API with permissions, validation and injected faults (`faults`, taken
after the permission check).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from datadog_checks.pagerduty_dora.demo.datadog import DEFAULT_LIMIT, Deployment, Deployments, parse_query, read_time

from .dora_api import datadog_fault
from .faults import Faults
from .server import BaseReply, Reply, Request

__all__ = ['READ', 'WRITE', 'DeploymentsState', 'FakeDeployment']

READ = Deployments.READ
WRITE = Deployments.WRITE
NOT_AUTHORIZED = {'errors': ['Failed permission authorization checks']}
LIST_TYPE = 'dora_deployments_list_request'
PATCH_TYPE = 'dora_deployment_patch_request'
LIST_ATTRIBUTES = {'from', 'to', 'limit', 'query', 'sort'}
PATCH_ATTRIBUTES = {'change_failure', 'remediation'}
REMEDIATION_FIELDS = {'id', 'type', 'version'}
REMEDIATION_TYPES = ('rollback', 'rollforward')
SORT_FIELDS = ('started_at', 'finished_at')
MAX_LIMIT = 1000
FAULT_KINDS = ('timeout',)  # named faults, besides any HTTP status


@dataclass
class FakeDeployment(Deployment):
    """A deployment as the API renders it, with its git commit when it has one."""

    commit: str | None = None

    def to_api(self) -> dict:
        rendered = super().to_api()
        if self.commit:
            rendered['attributes']['git'] = {'commit_sha': self.commit, 'repository_id': 'github.com/acme/app'}
        return rendered


class DeploymentsState(Deployments):
    """DORA deployments held by the fake, the PATCHes it accepted, and its faults."""

    def __init__(
        self, api_key: str, app_key: str, *, permissions: tuple[str, ...] = (READ, WRITE), timeout_delay: float = 2.0
    ) -> None:
        super().__init__(api_key, app_key)
        self.permissions = set(permissions)
        self.timeout_delay = timeout_delay
        self.faults = Faults(FAULT_KINDS)

    def _guard(self, request: Request, permission: str) -> BaseReply | None:
        refused = super()._guard(request, permission)
        if refused is not None:
            return refused
        if permission not in self.permissions:
            return Reply(403, NOT_AUTHORIZED)
        fault = self.faults.take(request)
        if fault is not None:
            exhausted = {'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': str(fault.reset)}
            return datadog_fault(fault, {}, exhausted, self.timeout_delay)
        return None

    def add(self, *args: Any, commit: str | None = None, **options: Any) -> str:
        """`Deployments.add`, with an optional git `commit`."""
        deployment_id = super().add(*args, **options)
        base = self.deployments[deployment_id]
        self.deployments[deployment_id] = FakeDeployment(
            **{f.name: getattr(base, f.name) for f in fields(Deployment)}, commit=commit
        )
        return deployment_id

    def search_errors(self, data: dict, attributes: Any) -> list[str]:
        if not isinstance(attributes, dict):
            return ['data.attributes: required object']
        errors = ['{}: unknown attribute'.format(n) for n in sorted(set(attributes) - LIST_ATTRIBUTES)]
        if data.get('type', LIST_TYPE) != LIST_TYPE:
            errors.append('data.type: must be {}'.format(LIST_TYPE))
        limit = attributes.get('limit', DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            errors.append('limit: must be an integer from 1 to {}'.format(MAX_LIMIT))
        for name in ('from', 'to'):
            if name in attributes and read_time(attributes[name]) is None:
                errors.append('{}: must be an RFC 3339 date-time with a time zone'.format(name))
        sort = attributes.get('sort', '-started_at')
        if not isinstance(sort, str) or sort.lstrip('-') not in SORT_FIELDS:
            errors.append('sort: unsupported sort {!r}'.format(sort))
        try:
            parse_query(attributes.get('query', ''))
        except ValueError as e:
            errors.append('query: {}'.format(e))
        return errors

    def patch_errors(self, deployment_id: str, data: Any) -> list[str]:
        if not isinstance(data, dict):
            return ['data: required object']
        errors = []
        if data.get('type') != PATCH_TYPE:
            errors.append('data.type: must be {}'.format(PATCH_TYPE))
        if data.get('id') != deployment_id:
            errors.append('data.id: must be the deployment id of the path')
        attributes = data.get('attributes')
        if not isinstance(attributes, dict):
            return errors + ['data.attributes: required object']
        errors.extend('{}: unknown attribute'.format(n) for n in sorted(set(attributes) - PATCH_ATTRIBUTES))
        if 'change_failure' in attributes and not isinstance(attributes['change_failure'], bool):
            errors.append('change_failure: must be a boolean')
        remediation = attributes.get('remediation')
        if remediation is not None:
            errors.extend(self._check_remediation(remediation, self.deployments.get(deployment_id)))
        return errors

    def _check_remediation(self, remediation: Any, deployment: Deployment | None) -> list[str]:
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
