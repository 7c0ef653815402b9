# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The one place where HTTP calls are made, counted, paced and turned into typed errors.

Both APIs the check talks to (PagerDuty's REST API and Datadog's API) go through `ApiClient`, so
they share one set of rules: a budget per run (`max_requests_per_run` requests when set, otherwise a
share of the collection interval), a run deadline that no wait may pass, rate limits read from
`ratelimit-*` / `X-RateLimit-*` headers, no redirects (credentials never follow one), a base URL
that every URL parser reads as the same host (`urls.api_origin`), and errors split into the kinds
the callers act on.

**Pacing** (`pacing.py`). Before each request the client asks whether the run may make it: not
past its budget, and not while the API's advertised window is down to the share left to others;
then it waits for the window to reset when that comes within the run's time for requests, and
otherwise stops. Each stop is a `BudgetExhausted`, which every caller takes as "the rest waits for
the next run".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partialmethod
from typing import Any, Callable, Mapping

from . import json_format
from .errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    RateLimited,
    RequestRejected,
    TransientError,
    UnreadableResponse,
    connection_failed,
)
from .pacing import MAX_RATE_LIMIT_WAIT, REAL_TIME, Quota, RequestLimits, RunLimits, Timing, reset_of
from .responses import close, drain, error_body, read_body
from .urls import Origin, UnsafeUrl, api_origin

# Retries of one request after a 429, a 5xx or a connection failure, within the run deadline.
MAX_RETRIES = 3
BACKOFF_BASE = 1.0
# The largest body read from one response. A full page of real PagerDuty incidents is well under a
# megabyte; without a bound, a broken or hostile server could make the Agent hold any amount in memory.
MAX_BODY_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class _Retry:
    """An answer worth another attempt: a 429 (with the wait the server asked for, if it said) or a 5xx."""

    reset: float | None
    rate_limited: bool


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any = None


_STATUS_CLASSES = {klass: '{}xx'.format(klass) for klass in range(1, 10)}


def status_class(status: int | None) -> str:
    """`2xx`, `4xx`, `5xx`…, or `error` when no response came back."""
    if not status:
        return 'error'
    return _STATUS_CLASSES.get(status // 100) or '{}xx'.format(status // 100)


# What a caller makes of a 2xx body's bytes (JSON by default); raises `ValueError` for a body it cannot read.
BodyReader = Callable[[bytes], Any]


def _ignored(*args: Any) -> None:
    """A hook nobody listens to."""


@dataclass(frozen=True)
class ApiTarget:
    """Which API a client talks to: its `name` in messages and metrics, where, and as whom.

    `base_url` must pass `urls.api_origin` (https, or http to a loopback host; no credentials,
    backslash or anything URL parsers read apart). `auth_headers` are sent with every request and
    never logged. `url_hint` says what to check when the API does not answer.
    """

    name: str
    base_url: str
    auth_headers: Mapping[str, str]
    url_hint: str = ''


@dataclass(frozen=True)
class ApiHooks:
    """What a client tells its owner: `on_request(endpoint, status_class)` of every attempt,
    `on_rate_limited(endpoint)` of every 429, `on_failure(error)` of every error it raises."""

    on_request: Callable[[str, str], None] = _ignored
    on_rate_limited: Callable[[str], None] = _ignored
    on_failure: Callable[[ApiError], None] = _ignored


NO_HOOKS = ApiHooks()


class ApiClient:
    """HTTP calls to one API (`target`) through the check's HTTP wrapper, so `timeout`, `proxy` and TLS options apply.

    A `target` whose base URL does not pass `urls.api_origin` raises `UnsafeUrl`, before any request.
    `limits` cap or pace the requests of each run (see `RequestLimits`); `hooks` are told of every
    attempt, 429 and failure, so the owner can count them.
    """

    def __init__(
        self,
        target: ApiTarget,
        http: Any,
        limits: RequestLimits,
        log: Any,
        hooks: ApiHooks = NO_HOOKS,
        timing: Timing = REAL_TIME,
    ) -> None:
        self.name = name = target.name
        base_url = target.base_url
        self._http = http
        try:
            self.origin = api_origin(base_url.strip() if isinstance(base_url, str) else base_url)
        except UnsafeUrl as e:
            raise UnsafeUrl('{} API: refusing the base URL {!r}: it {}'.format(name, base_url, e)) from None
        self.base_url = base_url.strip().rstrip('/')
        self._auth_headers = dict(target.auth_headers)
        self._json_headers = dict(self._auth_headers, **{'Content-Type': 'application/json'})
        # Streamed, so that the body is read in bounded chunks (`read_body`) rather than all at once.
        self._options: dict[str, Any] = {
            'extra_headers': self._auth_headers,
            'allow_redirects': False,
            'persist': True,
            'stream': True,
        }
        self._secrets = _secret_values(self._auth_headers)
        self.request_limits = limits
        self._log = log
        self._on_request = hooks.on_request
        self._on_rate_limited = hooks.on_rate_limited
        self._on_failure = hooks.on_failure
        self._url_hint = target.url_hint
        self._clock = timing.clock
        # Looked up at call time so that a simulated clock can stand in for the real one.
        self._sleep = timing.sleep or (lambda seconds: time.sleep(seconds))
        self._jitter = timing.jitter
        self.limits = RunLimits(max_requests=limits.max_requests, deadline=float('inf'))
        self.quota = Quota()
        # The Agent retries a failed connection within the run; a one-shot caller (the dry run) turns
        # this off, so that an API that does not answer is told at once rather than after the backoff.
        self.retry_connection_failures = True

    def start_run(self, deadline: float) -> None:
        """Reset the request budget for a new run that must end by `deadline` (monotonic seconds)."""
        self.limits = self.request_limits.run(deadline, self._clock())

    def stall(self, caller: str) -> None:
        """Note that `caller` (a queue of work, by name) makes no more requests until the next `start_run()`."""
        self.limits.stalled.add(caller)

    def stalled(self, caller: str) -> bool:
        """Whether `caller` stalled in this run; `start_run()` clears it."""
        return caller in self.limits.stalled

    def get(
        self, path: str, params: Any = None, endpoint: str | None = None, read: BodyReader | None = None
    ) -> Response:
        """`GET path` (see `request`)."""
        return self.request('get', path, params=params, endpoint=endpoint, read=read)

    def send(
        self, method: str, path: str, body: Any, endpoint: str | None = None, *, expect_json: bool = True
    ) -> Response:
        """`body` as JSON to `path` with `method` (see `request`); `post` and `patch` are this one call."""
        return self.request(method, path, body=body, endpoint=endpoint, expect_json=expect_json)

    post = partialmethod(send, 'post')
    patch = partialmethod(send, 'patch')

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        endpoint: str | None = None,
        expect_json: bool = True,
        read: BodyReader | None = None,
    ) -> Response:
        """Make one logical request (with bounded retries) and return its decoded JSON body.

        Raises an `ApiError` subclass, after telling `on_failure`; never returns a failed response. A
        2xx whose body is not JSON raises `UnreadableResponse`, unless `expect_json` is False: then the
        answer is a success whatever its body (`data` is None), which is what a write needs, since the
        status alone says whether it was accepted. `read` turns a 2xx body's bytes into `data` instead
        of `json_format.decode` (a `ValueError` from it is the same `UnreadableResponse`).
        """
        reader = read or json_format.decode
        try:
            return self._request(
                method, path, params=params, body=body, endpoint=endpoint, read=reader if expect_json else None
            )
        except ApiError as e:
            e.endpoint = e.endpoint or endpoint or path
            self._on_failure(e)
            raise

    def _request(
        self, method: str, path: str, *, params: Any, body: Any, endpoint: str | None, read: BodyReader | None
    ) -> Response:
        """The attempts of one request: each paced and budgeted, retried while `_backoff` allows."""
        endpoint = endpoint or path
        url = self._url(path, endpoint)
        attempt = 0
        while True:
            self._pace(endpoint)
            try:
                response = self._send(method, url, params, body)
            except OSError as e:
                self._on_request(endpoint, 'error')
                error = connection_failed(self.name, endpoint, url, e, self._url_hint)
                if self.retry_connection_failures and self._backoff(attempt, None, endpoint):
                    attempt += 1
                    continue
                raise error from None
            try:
                retry = self._judge(response, endpoint)
                if retry is None:
                    return self._accepted(response, endpoint, read)
                if not self._backoff(attempt, retry.reset, endpoint):
                    raise self._gave_up(retry, response, endpoint)
                attempt += 1
            finally:
                close(response)

    def _url(self, path: str, endpoint: str) -> str:
        """The URL of `path`: a path on the base URL, or a URL already on the configured origin."""
        if path.startswith('/'):
            return self.base_url + path
        if path.startswith(('http://', 'https://')) and _origin_of(path) == self.origin:
            return path
        # Credentials go to the configured host only, whatever path or URL a caller was handed.
        raise RequestRejected(self.name, '{} is not a path on the configured host; not requested'.format(endpoint))

    def _judge(self, response: Any, endpoint: str) -> _Retry | None:
        """What an answer means: None for a success, a `_Retry` for a 429 or a 5xx; raises for any other failure."""
        status = response.status_code
        self._on_request(endpoint, status_class(status))
        self.quota.note(response.headers, self._clock())
        if status == 429:
            self._on_rate_limited(endpoint)
            reset = reset_of(response.headers)
            if reset is not None:
                self.quota.refused(reset, self._clock())
            return _Retry(reset, rate_limited=True)
        if status >= 500:
            return _Retry(None, rate_limited=False)
        if status in (401, 403):
            raise AuthError(self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response))
        if 300 <= status < 400:
            raise RequestRejected(
                self.name, '{} answered a redirect ({}), which is not followed'.format(endpoint, status), status
            )
        if status >= 400:
            raise RequestRejected(
                self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response)
            )
        return None

    def _gave_up(self, retry: _Retry, response: Any, endpoint: str) -> ApiError:
        """The error of a 429 or a 5xx that is not retried again (its body is read only now)."""
        status = response.status_code
        if retry.rate_limited:
            return RateLimited(self.name, '{} is rate limited; resuming next run'.format(endpoint), status)
        return TransientError(self.name, '{} answered {}'.format(endpoint, status), status, self._error_body(response))

    def _accepted(self, response: Any, endpoint: str, read: BodyReader | None) -> Response:
        """The `Response` of a 2xx: its body as `read` gives it, or none for a caller that only needs the status."""
        if read is None:
            drain(response, self._out_of_time)
            return Response(status=response.status_code, headers=response.headers)
        return Response(
            status=response.status_code, headers=response.headers, data=self._decode(response, endpoint, read)
        )

    def _send(self, method: str, url: str, params: Any, body: Any) -> Any:
        options = dict(self._options)
        if params is not None:
            options['params'] = params
        if body is not None:
            options['data'] = json_format.encode(body).encode('utf-8')
            options['extra_headers'] = self._json_headers
        return getattr(self._http, method)(url, **options)

    def _decode(self, response: Any, endpoint: str, read: BodyReader) -> Any:
        """A 2xx body as `read` gives it, read within `MAX_BODY_BYTES` (looked up at every call) and the deadline."""
        content = read_body(response, MAX_BODY_BYTES, api=self.name, endpoint=endpoint, out_of_time=self._out_of_time)
        if not content:
            return None
        try:
            return read(content)
        except (ValueError, RecursionError):
            # ValueError covers text that is not JSON or not UTF-8, and integers past Python's digit limit.
            raise UnreadableResponse(self.name, '{} answered a body that is not valid JSON'.format(endpoint)) from None

    def redact(self, text: str) -> str:
        """`text` with every credential this client sends masked, for a server that echoes them back."""
        for secret in self._secrets:
            text = text.replace(secret, '********')
        return text

    def _error_body(self, response: Any) -> str:
        return self.redact(error_body(response))

    def _out_of_time(self) -> bool:
        return self._clock() > self.limits.deadline

    def _pace(self, endpoint: str) -> None:
        """Take one request of the run's budget, waiting for the rate limit window where that fits.

        Raises `BudgetExhausted` when the run may make no more requests to this API.
        """
        limits, quota = self.limits, self.quota
        now = self._clock()
        spent = limits.spent(now)
        if spent:
            raise BudgetExhausted(self.name, spent)
        if quota.spent(now):
            if quota.resets_at > limits.requests_until:
                raise BudgetExhausted(
                    self.name, "{}, which is past this run's time; resuming next run".format(quota.describe(now))
                )
            self._log.debug('%s: waiting for the rate limit window of %s: %s', self.name, endpoint, quota.describe(now))
            self._sleep(quota.resets_at - now)
            quota.turned()
        limits.used += 1

    def _backoff(self, attempt: int, reset: float | None, endpoint: str) -> bool:
        """Wait before a retry if one is allowed and fits before the deadline; say whether to retry."""
        if attempt >= MAX_RETRIES:
            return False
        if reset is not None:
            wait = min(max(reset, 0.0), MAX_RATE_LIMIT_WAIT) + self._jitter()
        else:
            wait = BACKOFF_BASE * (2**attempt) * (0.5 + self._jitter())
        if self._clock() + wait > self.limits.requests_until:
            self._log.debug(
                "%s: not retrying %s, the wait of %.1fs would pass the run's time", self.name, endpoint, wait
            )
            return False
        self._log.debug('%s: retrying %s in %.1fs', self.name, endpoint, wait)
        self._sleep(wait)
        return True


def _origin_of(url: str) -> Origin | None:
    try:
        return api_origin(url.split('?', 1)[0].split('#', 1)[0])
    except UnsafeUrl:
        return None


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
