# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The typed errors of an API request, split into the kinds the callers act on.

What each kind means to a caller (retry next run, report the key, give up on the item, wait for the
next run) is said once, in `disposition.py`. A request that got no answer at all is a
`ConnectionFailed` naming its cause, read from the error the HTTP library raised without importing
that library.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

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
    """The run has spent its budget for this API; the rest waits for the next run.

    The budget is `max_requests_per_run` requests when set; otherwise the run's time for requests and
    the check's share of the rate limit the API advertises (`pacing.QUOTA_SHARE`).
    """


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


def connection_failed(api: str, endpoint: str, url: str, error: BaseException, url_hint: str = '') -> ConnectionFailed:
    """The error for a request that got no answer: the URL, the cause, and what to check.

    `url_hint` names the option behind the URL, shown when the host may be the wrong one.
    """
    cause = connection_cause(error)
    host = urlsplit(url).hostname or url
    hints = [url_hint] if url_hint and cause in ('dns', 'refused', 'network') else []
    hints.append(CONNECTION_HINTS[cause])
    message = '{} failed: cannot connect to {}: {} ({}); {}'.format(
        endpoint, url, CONNECTION_CAUSES[cause].format(host=host), type(error).__name__, '; '.join(hints)
    )
    return ConnectionFailed(api, message, cause)
