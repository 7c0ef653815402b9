# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The one place where HTTP calls are made, counted, paced and turned into typed errors.

Both APIs the check talks to (PagerDuty's REST API and Datadog's API) go through `ApiClient`, so
they share one set of rules: a hard request budget per run, a run deadline that no wait may pass,
rate limits read from `ratelimit-*` / `X-RateLimit-*` headers, no redirects (credentials never
follow one), a base URL that every URL parser reads as the same host (`urls.api_origin`), and errors
split into the kinds the callers act on.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .urls import Origin, UnsafeUrl, api_origin

# Longest single wait for a rate limit window; PagerDuty's windows are one minute.
MAX_RATE_LIMIT_WAIT = 65.0
# Retries of one request after a 429, a 5xx or a connection failure, within the run deadline.
MAX_RETRIES = 3
BACKOFF_BASE = 1.0
# How much of an error body is kept for a log line.
ERROR_BODY_LIMIT = 1000
# The largest body read from one response. A full page of real PagerDuty incidents is well under a
# megabyte; without a bound, a broken or hostile server could make the Agent hold any amount in memory.
MAX_BODY_BYTES = 50 * 1024 * 1024
READ_CHUNK = 64 * 1024
# What is read of an accepted answer whose body is not used, so that its connection can be reused.
DRAIN_LIMIT = 64 * 1024
# Words of a 403 body that mean "valid key, missing permission" rather than "wrong key".
PERMISSION_WORDS = ('permission', 'scope', 'not authorized')

# What each cause of a connection failure means, and what to look at first.
CONNECTION_CAUSES = {
    'dns': 'the host name {host} does not resolve (DNS)',
    'refused': 'the connection to {host} was refused',
    'tls': 'the TLS handshake with {host} failed (certificate or protocol)',
    'timeout': 'no answer from {host} within the timeout',
    'proxy': 'the proxy failed or refused the connection to {host}',
    'network': 'the connection to {host} failed',
}
CONNECTION_HINTS = {
    'dns': 'if the Agent reaches the internet through a proxy, set the `proxy` option',
    'refused': 'if the Agent must go through a proxy, set the `proxy` option',
    'tls': 'check `tls_verify` and `tls_ca_cert`, and any proxy that intercepts TLS',
    'timeout': 'check that the Agent can reach the host (firewall, `proxy` option), or raise `timeout`',
    'proxy': 'check the `proxy` option (or set `skip_proxy: true` if the host is reachable directly)',
    'network': 'if the Agent must go through a proxy, set the `proxy` option',
}


class ApiError(Exception):
    """A request to one of the APIs failed; `api` names which, `endpoint` the request."""

    def __init__(self, api: str, message: str, status: int | None = None, body: str = '') -> None:
        super().__init__('{} API: {}'.format(api, message))
        self.api = api
        self.status = status
        self.body = body
        self.endpoint = ''


class AuthError(ApiError):
    """401 or 403: the key is wrong or lacks a permission. Not retried."""

    @property
    def missing_permission(self) -> bool:
        """Whether the API says the key is valid but lacks a permission, rather than wrong or revoked.

        Datadog answers 403 to both; only the body tells them apart (`Failed permission authorization
        checks` against a bare `Forbidden`).
        """
        body = (self.body or '').lower()
        return self.status == 403 and any(word in body for word in PERMISSION_WORDS)


class TransientError(ApiError):
    """Network failure, timeout, 5xx, an unreadable body: worth trying again on a later run."""


class UnreadableResponse(TransientError):
    """A 2xx whose body cannot be read as JSON (not JSON, nested too deeply, too large).

    Transient, since a proxy or a bad deploy can cause it; but a page that stays unreadable through
    retries will never read, and the caller may skip it rather than stop on it every run.
    """


class ConnectionFailed(TransientError):
    """No answer at all: DNS, refused connection, TLS, timeout or proxy; `cause` says which."""

    def __init__(self, api: str, message: str, cause: str) -> None:
        super().__init__(api, message)
        self.cause = cause


class RateLimited(TransientError):
    """429 whose wait would pass the run deadline, or that persisted through the retries."""


class DeadlineReached(TransientError):
    """A response was still arriving when the run reached its deadline: the run ends, work resumes next run."""


class RequestRejected(ApiError):
    """Any other 4xx: the request itself is wrong; retrying it would fail the same way."""


class BudgetExhausted(ApiError):
    """The run has made `max_requests_per_run` requests to this API; the rest waits for the next run."""


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any = None


@dataclass
class RunLimits:
    """Per-run bounds: how many requests are left and the monotonic time the run must end by.

    `stalled` names the callers that make no more requests in this run (see `ApiClient.stall`).
    """

    max_requests: int
    deadline: float
    used: int = 0
    blocked_until: float = 0.0
    stalled: set[str] = field(default_factory=set)


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def status_class(status: int | None) -> str:
    """`2xx`, `4xx`, `5xx`…, or `error` when no response came back."""
    return '{}xx'.format(status // 100) if status else 'error'


class ApiClient:
    """HTTP calls to one API through the check's HTTP wrapper, so `timeout`, `proxy` and TLS options apply.

    `auth_headers` are sent with every request and never logged. `on_request(endpoint, status_class)`
    is told of every attempt, `on_rate_limited(endpoint)` of every 429, so the caller can count them.
    `base_url` must pass `urls.api_origin` (https, or http to a loopback host; no credentials,
    backslash or anything URL parsers read apart): any other raises `UnsafeUrl`, before any request.
    """

    def __init__(
        self,
        *,
        name: str,
        http: Any,
        base_url: str,
        auth_headers: Mapping[str, str],
        max_requests: int,
        log: Any,
        on_request: Callable[[str, str], None] | None = None,
        on_rate_limited: Callable[[str], None] | None = None,
        on_failure: Callable[[ApiError], None] | None = None,
        url_hint: str = '',
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self._http = http
        try:
            self.origin = api_origin(base_url.strip() if isinstance(base_url, str) else base_url)
        except UnsafeUrl as e:
            raise UnsafeUrl('{} API: refusing the base URL {!r}: it {}'.format(name, base_url, e)) from None
        self.base_url = base_url.strip().rstrip('/')
        self._auth_headers = dict(auth_headers)
        self._secrets = _secret_values(self._auth_headers)
        self._max_requests = max_requests
        self._log = log
        self._on_request = on_request or (lambda endpoint, klass: None)
        self._on_rate_limited = on_rate_limited or (lambda endpoint: None)
        self._on_failure = on_failure or (lambda error: None)
        self._url_hint = url_hint
        self._clock = clock
        # Looked up at call time so that a simulated clock can stand in for the real one.
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._jitter = jitter
        self.limits = RunLimits(max_requests=max_requests, deadline=float('inf'))

    def start_run(self, deadline: float) -> None:
        """Reset the request budget for a new run that must end by `deadline` (monotonic seconds)."""
        blocked_until = self.limits.blocked_until
        self.limits = RunLimits(max_requests=self._max_requests, deadline=deadline, blocked_until=blocked_until)

    def stall(self, caller: str) -> None:
        """Note that `caller` (a queue of work, by name) makes no more requests until the next `start_run()`."""
        self.limits.stalled.add(caller)

    def stalled(self, caller: str) -> bool:
        """Whether `caller` stalled in this run; `start_run()` clears it."""
        return caller in self.limits.stalled

    def get(self, path: str, params: Any = None, endpoint: str | None = None) -> Response:
        return self.request('get', path, params=params, endpoint=endpoint)

    def post(self, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True) -> Response:
        return self.request('post', path, body=body, endpoint=endpoint, expect_json=expect_json)

    def patch(self, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True) -> Response:
        return self.request('patch', path, body=body, endpoint=endpoint, expect_json=expect_json)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        endpoint: str | None = None,
        expect_json: bool = True,
    ) -> Response:
        """Make one logical request (with bounded retries) and return its decoded JSON body.

        Raises an `ApiError` subclass, after telling `on_failure`; never returns a failed response. A
        2xx whose body is not JSON raises `UnreadableResponse`, unless `expect_json` is False: then the
        answer is a success whatever its body (`data` is None), which is what a write needs, since the
        status alone says whether it was accepted.
        """
        try:
            return self._request(method, path, params=params, body=body, endpoint=endpoint, expect_json=expect_json)
        except ApiError as e:
            e.endpoint = e.endpoint or endpoint or path
            self._on_failure(e)
            raise

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        endpoint: str | None = None,
        expect_json: bool = True,
    ) -> Response:
        endpoint = endpoint or path
        if path.startswith('/'):
            url = self.base_url + path
        elif path.startswith(('http://', 'https://')) and _origin_of(path) == self.origin:
            url = path
        else:
            # Credentials go to the configured host only, whatever path or URL a caller was handed.
            raise RequestRejected(self.name, '{} is not a path on the configured host; not requested'.format(endpoint))
        attempt = 0
        while True:
            self._wait_for_rate_limit_window(endpoint)
            self._take_budget(endpoint)
            try:
                response = self._send(method, url, params, body)
            except OSError as e:
                self._on_request(endpoint, 'error')
                error: ApiError = self._connection_failed(endpoint, url, e)
                if self._backoff(attempt, None, endpoint):
                    attempt += 1
                    continue
                raise error from None

            try:
                status = response.status_code
                self._on_request(endpoint, status_class(status))
                headers = response.headers
                self._note_rate_limit(headers)

                if status == 429:
                    self._on_rate_limited(endpoint)
                    reset = _number(_header(headers, 'ratelimit-reset', 'x-ratelimit-reset'))
                    if self._backoff(attempt, reset, endpoint):
                        attempt += 1
                        continue
                    raise RateLimited(self.name, '{} is rate limited; resuming next run'.format(endpoint), status)
                if status >= 500:
                    if self._backoff(attempt, None, endpoint):
                        attempt += 1
                        continue
                    raise TransientError(
                        self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response)
                    )
                if status in (401, 403):
                    raise AuthError(
                        self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response)
                    )
                if 300 <= status < 400:
                    raise RequestRejected(
                        self.name, '{} answered a redirect ({}), which is not followed'.format(endpoint, status), status
                    )
                if status >= 400:
                    raise RequestRejected(
                        self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response)
                    )
                if not expect_json:
                    self._drain(response)
                    return Response(status=status, headers=headers)
                return Response(status=status, headers=headers, data=self._decode(response, endpoint))
            finally:
                _close(response)

    def _connection_failed(self, endpoint: str, url: str, error: BaseException) -> ConnectionFailed:
        """The error for a request that got no answer: the URL, the cause, and what to check."""
        cause = connection_cause(error)
        host = urlsplit(url).hostname or url
        hints = [self._url_hint] if self._url_hint and cause in ('dns', 'refused', 'network') else []
        hints.append(CONNECTION_HINTS[cause])
        message = '{} failed: cannot connect to {}: {} ({}); {}'.format(
            endpoint, url, CONNECTION_CAUSES[cause].format(host=host), type(error).__name__, '; '.join(hints)
        )
        return ConnectionFailed(self.name, message, cause)

    def _send(self, method: str, url: str, params: Any, body: Any) -> Any:
        # Streamed, so that the body is read in bounded chunks (`_read`) rather than all at once.
        options: dict[str, Any] = {
            'extra_headers': self._auth_headers,
            'allow_redirects': False,
            'persist': True,
            'stream': True,
        }
        if params is not None:
            options['params'] = params
        if body is not None:
            options['data'] = json.dumps(body, separators=(',', ':'))
            options['extra_headers'] = dict(self._auth_headers, **{'Content-Type': 'application/json'})
        return getattr(self._http, method)(url, **options)

    def _read(self, response: Any, endpoint: str, limit: int) -> bytes:
        """The body, read in chunks; a body over `limit` bytes, or still arriving at the run deadline, is an error."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UnreadableResponse(
                        self.name, '{} answered a body larger than {} MB; not read'.format(endpoint, limit // 2**20)
                    )
                chunks.append(chunk)
                # A server that trickles a body never trips the socket timeout; the run deadline bounds it.
                if self._clock() > self.limits.deadline:
                    raise DeadlineReached(self.name, '{} body was still arriving at the run deadline'.format(endpoint))
        except (OSError, ValueError):
            # Requests raises its own (OSError or ValueError based) errors for a body cut short or undecodable.
            raise TransientError(self.name, '{} body was cut short or timed out'.format(endpoint)) from None
        return b''.join(chunks)

    def _decode(self, response: Any, endpoint: str) -> Any:
        content = self._read(response, endpoint, MAX_BODY_BYTES)
        if not content:
            return None
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            # ValueError covers text that is not JSON or not UTF-8, and integers past Python's digit limit.
            raise UnreadableResponse(self.name, '{} answered a body that is not valid JSON'.format(endpoint)) from None

    def _drain(self, response: Any) -> None:
        """Read (and drop) a little of a body that is not used, so the connection can serve the next request."""
        try:
            size = 0
            for chunk in response.iter_content(READ_CHUNK):
                size += len(chunk)
                if size >= DRAIN_LIMIT or self._clock() > self.limits.deadline:
                    return
        except (OSError, ValueError):
            return

    def redact(self, text: str) -> str:
        """`text` with every credential this client sends masked, for a server that echoes them back."""
        for secret in self._secrets:
            text = text.replace(secret, '********')
        return text

    def _error_body(self, response: Any) -> str:
        return self.redact(_body(response))

    def _take_budget(self, endpoint: str) -> None:
        if self.limits.used >= self.limits.max_requests:
            raise BudgetExhausted(
                self.name, 'reached max_requests_per_run ({}); resuming next run'.format(self.limits.max_requests)
            )
        self.limits.used += 1

    def _note_rate_limit(self, headers: Mapping[str, str]) -> None:
        remaining = _number(_header(headers, 'ratelimit-remaining', 'x-ratelimit-remaining'))
        reset = _number(_header(headers, 'ratelimit-reset', 'x-ratelimit-reset'))
        if remaining is not None and remaining <= 0 and reset is not None:
            self.limits.blocked_until = self._clock() + min(reset, MAX_RATE_LIMIT_WAIT)

    def _wait_for_rate_limit_window(self, endpoint: str) -> None:
        wait = self.limits.blocked_until - self._clock()
        if wait <= 0:
            return
        if self._clock() + wait > self.limits.deadline:
            raise RateLimited(
                self.name, '{} quota is used up until the next window; resuming next run'.format(endpoint)
            )
        self._pause(wait)

    def _backoff(self, attempt: int, reset: float | None, endpoint: str) -> bool:
        """Wait before a retry if one is allowed and fits before the deadline; say whether to retry."""
        if attempt >= MAX_RETRIES:
            return False
        if reset is not None:
            wait = min(max(reset, 0.0), MAX_RATE_LIMIT_WAIT) + self._jitter()
        else:
            wait = BACKOFF_BASE * (2**attempt) * (0.5 + self._jitter())
        if self._clock() + wait > self.limits.deadline:
            self._log.debug(
                '%s: not retrying %s, the wait of %.1fs would pass the run deadline', self.name, endpoint, wait
            )
            return False
        self._log.debug('%s: retrying %s in %.1fs', self.name, endpoint, wait)
        self._pause(wait)
        return True

    def _pause(self, seconds: float) -> None:
        self._sleep(seconds)


def _origin_of(url: str) -> Origin | None:
    try:
        return api_origin(url.split('?', 1)[0].split('#', 1)[0])
    except UnsafeUrl:
        return None


def _body(response: Any) -> str:
    """The start of an error body, for a log line; only that much is read."""
    try:
        raw = b''
        for chunk in response.iter_content(READ_CHUNK):
            raw += chunk
            if len(raw) >= ERROR_BODY_LIMIT * 4:
                break
    except (OSError, ValueError):
        return ''
    if not isinstance(raw, bytes):
        return ''
    return raw.decode(response.encoding or 'utf-8', errors='replace')[:ERROR_BODY_LIMIT]


def _error_chain(error: BaseException) -> list[BaseException]:
    """The error and every error it wraps (cause, context, arguments, a urllib3-style `reason`)."""
    seen: list[BaseException] = []
    stack: list[Any] = [error]
    while stack and len(seen) < 20:
        current = stack.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, 'reason', None), *current.args])
    return seen


def connection_cause(error: BaseException) -> str:
    """`dns`, `refused`, `tls`, `timeout`, `proxy` or `network` for an error raised before any answer.

    Read from the error's type names and the standard library errors it wraps, so that no HTTP
    library has to be imported here.
    """
    chain = _error_chain(error)
    names = {klass.__name__ for e in chain for klass in type(e).__mro__}
    if 'ProxyError' in names:
        return 'proxy'
    if 'SSLError' in names or any(isinstance(e, ssl.SSLError) for e in chain):
        return 'tls'
    if 'NameResolutionError' in names or any(isinstance(e, socket.gaierror) for e in chain):
        return 'dns'
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return 'refused'
    if names & {'Timeout', 'ConnectTimeout', 'ReadTimeout', 'ConnectTimeoutError', 'ReadTimeoutError'}:
        return 'timeout'
    if any(isinstance(e, TimeoutError) for e in chain):
        return 'timeout'
    return 'network'


def _secret_values(headers: Mapping[str, str]) -> list[str]:
    """The credentials in auth headers: each value, and the token of a `Token token=...` value; longest first."""
    found: set[str] = set()
    for name, value in headers.items():
        if not isinstance(value, str) or name.lower() in ('accept', 'content-type'):
            continue
        for candidate in (value, value.split()[-1] if value.split() else '', value.rsplit('=', 1)[-1]):
            # Short fragments would mask ordinary words; a real key is far longer than this.
            if len(candidate.strip()) >= 8:
                found.add(candidate.strip())
    return sorted(found, key=len, reverse=True)


def _close(response: Any) -> None:
    """Give the connection back (a streamed response holds it until closed)."""
    try:
        response.close()
    except (OSError, AttributeError):
        pass
