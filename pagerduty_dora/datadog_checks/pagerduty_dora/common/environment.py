# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the Agent's environment adds to the check's HTTP requests, read once instead of at every request."""

from __future__ import annotations

from typing import Any, Iterable

import requests
from requests.utils import select_proxy


def read_environment_once(http: Any, base_urls: Iterable[str]) -> bool:
    """Stop `requests` reading the environment before every request, where what it reads changes nothing.

    A `requests` session (with `trust_env`, its default) looks before every request for a proxy for
    the URL (the `*_PROXY` and `NO_PROXY` variables, and on macOS and Windows the system's settings),
    for a CA bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`) and for a `.netrc` file: about 50 us of
    CPU a request with a small environment, and more as it grows (a Kubernetes pod has variables for
    every service of its namespace). The Agent's environment does not change while it runs, so it is
    read here once, for the URLs of both APIs (`base_urls`): when it changes neither the proxy nor
    (for https) the CA bundle that a request to any of them would use, the wrapper's session stops
    reading it, and sends what it sent before. Otherwise nothing changes.

    With the lookup off, a `.netrc` entry for an API's host is not read either, as it should not be:
    `requests` would send its login in place of the key this check sends. Returns whether the lookup
    was turned off. A session that cannot be made (a `tls_ciphers` that no cipher matches) is left to
    the first request, which reports why.
    """
    try:
        session = getattr(http, 'session', None)
    except (OSError, ValueError):
        return False
    if not isinstance(session, requests.Session) or not session.trust_env:
        return False
    urls = list(base_urls)
    read = [_proxy_and_bundle(session, url) for url in urls]
    session.trust_env = False
    if [_proxy_and_bundle(session, url) for url in urls] != read:
        session.trust_env = True
        return False
    return True


def _proxy_and_bundle(session: requests.Session, url: str) -> tuple[Any, Any]:
    """The proxy a request to `url` goes through and, for https, the CA bundle it verifies with.

    A request of the HTTP wrapper names the Agent's proxy settings (the session's), which the
    environment only completes.
    """
    found = session.merge_environment_settings(url, dict(session.proxies or {}), None, session.verify, None)
    return select_proxy(url, found['proxies']), found['verify'] if url.startswith('https:') else None
