# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A loopback fake of Datadog's `POST /api/v2/dora/failure`, validating payloads the way the real API does.

Serve it with `FakeServer(state.routes())`. It builds on the demo's intake with the API's rate
limit, `DELETE` of a failure, injected faults (`faults`) and validation. Beyond the published rules
it refuses attribute names the API does not define, so a misspelt field fails a test instead of
being silently ignored.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, TypeGuard

from datadog_checks.pagerduty_dora.demo.datadog import FAILURE_PATH, FORBIDDEN, DoraFailures

from .faults import Fault, Faults
from .server import Handler, Reply, Request

ID_PATTERN = re.compile(r'[A-Za-z0-9\-_.:]{16,128}')
TAG_PATTERN = re.compile(r'[^:\s][^:]*:.+', re.DOTALL)
MAX_CUSTOM_TAGS = 100
ATTRIBUTES = {
    'custom_tags',
    'env',
    'finished_at',
    'git',
    'id',
    'name',
    'services',
    'severity',
    'started_at',
    'team',
    'version',
}
STRING_ATTRIBUTES = ('env', 'name', 'severity', 'team', 'version')
FAULT_KINDS = ('timeout',)  # named faults, besides any HTTP status


def to_nanoseconds(value: int) -> int:
    """The API takes seconds, milliseconds or nanoseconds and tells them apart by magnitude."""
    if value < 10**11:
        return value * 10**9
    if value < 10**14:
        return value * 10**6
    return value


def validate(body: Any) -> list[str]:
    """The errors the API would answer a 400 with for this request body (empty when it is valid)."""
    if not isinstance(body, dict) or not isinstance(body.get('data'), dict):
        return ['data: required object']
    attributes = body['data'].get('attributes')
    if not isinstance(attributes, dict):
        return ['data.attributes: required object']
    errors = ['{}: unknown attribute'.format(name) for name in sorted(set(attributes) - ATTRIBUTES)]
    failure_id = attributes.get('id')
    if failure_id is not None and (not isinstance(failure_id, str) or not ID_PATTERN.fullmatch(failure_id)):
        errors.append('id: must be 16-128 characters of a-z, A-Z, 0-9, -, _, ., :')
    started_at = attributes.get('started_at')
    if not _is_int(started_at) or started_at <= 0:
        errors.append('started_at: required positive integer (Unix time in s, ms or ns)')
        started_at = None
    finished_at = attributes.get('finished_at')
    if finished_at is not None:
        if not _is_int(finished_at) or finished_at <= 0:
            errors.append('finished_at: must be a positive integer (Unix time in s, ms or ns)')
        elif started_at is not None and to_nanoseconds(finished_at) < to_nanoseconds(started_at):
            errors.append('finished_at: must not be before started_at')
    services = attributes.get('services')
    if services is not None and (
        not isinstance(services, list) or not all(isinstance(s, str) and s.strip() for s in services)
    ):
        errors.append('services: must be a list of service names')
        services = None
    team = attributes.get('team')
    if not services and not (isinstance(team, str) and team.strip()):
        errors.append('services or team: at least one is required')
    for name in STRING_ATTRIBUTES:
        if name in attributes and not isinstance(attributes[name], str):
            errors.append('{}: must be a string'.format(name))
    tags = attributes.get('custom_tags')
    if tags is not None:
        if not isinstance(tags, list):
            errors.append('custom_tags: must be a list')
        else:
            if len(tags) > MAX_CUSTOM_TAGS:
                errors.append('custom_tags: at most {} tags'.format(MAX_CUSTOM_TAGS))
            bad = [t for t in tags if not isinstance(t, str) or not TAG_PATTERN.fullmatch(t)]
            if bad:
                errors.append('custom_tags: tags must follow the key:value pattern: {!r}'.format(bad[:3]))
    git = attributes.get('git')
    if git is not None and not (
        isinstance(git, dict) and isinstance(git.get('commit_sha'), str) and isinstance(git.get('repository_url'), str)
    ):
        errors.append('git: must have commit_sha and repository_url')
    return errors


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class DoraState(DoraFailures):
    """What the fake DORA API has received, plus its faults and rate limit.

    `failures` holds the latest accepted attributes per failure id, `posts` every accepted one in
    order. With `rate_limit`, at most that many requests are answered per `period` seconds; every
    answer then carries `X-RateLimit-*` headers and the excess gets a 429, as Datadog does. Faults
    are taken after authentication and the rate limit.
    """

    def __init__(
        self,
        api_key: str,
        *,
        app_key: str | None = None,
        rate_limit: int | None = None,
        period: int = 60,
        accepted_status: int = 202,
        timeout_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api_key)
        # Deleting a failure needs an application key as well; without one configured, any is refused.
        self.app_key = app_key
        self.rate_limit = rate_limit
        self.period = period
        self.accepted_status = accepted_status
        self.timeout_delay = timeout_delay
        self.removed: list[str] = []
        self.faults = Faults(FAULT_KINDS)
        self._clock = clock
        self._window_start = clock()
        self._window_used = 0

    def routes(self) -> list[tuple[str, str, Handler]]:
        """Route tuples for `FakeServer`."""
        return super().routes() + [('DELETE', re.escape(FAILURE_PATH) + r'/(?P<id>[^/]+)', self.handle_delete)]

    def errors(self, body: Any) -> list[str]:
        return validate(body)

    def _admit(self, request: Request, *, app_key: bool = False) -> tuple[Reply | None, dict[str, str]]:
        """Authentication, rate limit and injected faults, shared by every route: a refusal, or the headers."""
        if request.headers.get('dd-api-key') != self.api_key:
            return Reply(403, FORBIDDEN), {}
        if app_key and (self.app_key is None or request.headers.get('dd-application-key') != self.app_key):
            return Reply(403, FORBIDDEN), {}
        limited = self._rate_limit()
        if limited is not None:
            return limited, {}
        headers = self._rate_headers()
        fault = self.faults.take(request)
        if fault is not None:
            return datadog_fault(fault, headers, self._exhausted_headers(), self.timeout_delay), headers
        return None, headers

    def handle_delete(self, request: Request) -> Reply:
        """`DELETE /api/v2/dora/failure/{id}`: 204 when it existed, 404 when it did not."""
        with self._lock:
            refused, headers = self._admit(request, app_key=True)
            if refused is not None:
                return refused
            failure_id = request.match['id']
            if self.failures.pop(failure_id, None) is None:
                return Reply(404, {'errors': ['Not Found']}, headers=headers)
            self.removed.append(failure_id)
            return Reply(204, headers=headers)

    def _rate_limit(self) -> Reply | None:
        if self.rate_limit is None:
            return None
        now = self._clock()
        if now - self._window_start >= self.period:
            self._window_start = now
            self._window_used = 0
        self._window_used += 1
        if self._window_used <= self.rate_limit:
            return None
        return Reply(429, {'errors': ['Too many requests']}, headers=self._exhausted_headers())

    def _reset(self) -> int:
        return max(1, int(self.period - (self._clock() - self._window_start) + 0.999))

    def _rate_headers(self) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        return {
            'X-RateLimit-Limit': str(self.rate_limit),
            'X-RateLimit-Remaining': str(max(0, self.rate_limit - self._window_used)),
            'X-RateLimit-Reset': str(self._reset()),
            'X-RateLimit-Period': str(self.period),
        }

    def _exhausted_headers(self) -> dict[str, str]:
        return {
            'X-RateLimit-Limit': str(self.rate_limit or 1),
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': str(self._reset()),
            'X-RateLimit-Period': str(self.period),
        }


def datadog_fault(fault: Fault, headers: dict[str, str], exhausted: dict[str, str], timeout_delay: float) -> Reply:
    """A fault as Datadog's API answers it: `timeout` is a 504 held back `timeout_delay` seconds, a 429
    carries the `exhausted` rate limit headers, any other status an `errors` list."""
    if fault.kind == 'timeout':
        return Reply(504, {'errors': ['Gateway Timeout']}, delay=timeout_delay)
    if fault.kind == '429':
        return Reply(429, {'errors': ['Too many requests']}, headers=dict(headers, **exhausted))
    status = int(fault.kind)
    message = 'Internal Server Error' if 500 <= status <= 504 else 'Injected error {}'.format(status)
    return Reply(status, {'errors': [message]}, headers=headers)
