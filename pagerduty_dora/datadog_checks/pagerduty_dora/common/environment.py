# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the Agent's environment adds to the check's HTTP requests, read once instead of at every request."""

from __future__ import annotations

from typing import Any, Iterable

import requests
from requests.utils import get_environ_proxies, select_proxy


def read_environment_once(http: Any, base_urls: Iterable[str]) -> bool:
    """Stop `requests` reading the environment before every request, where one reading says the same.

    A `requests` session (with `trust_env`, its default) looks before every request for a proxy for
    the URL (the `*_PROXY` and `NO_PROXY` variables, and on macOS and Windows the system's settings),
    for a CA bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`) and for a `.netrc` file: about 50 us of
    CPU a request with a small environment, and more as it grows (a Kubernetes pod has variables for
    every service of its namespace). The Agent's environment does not change while it runs, so it is
    read here once, for the URLs of both APIs (`base_urls`). When it gives every URL the same proxies
    (none, or the same ones: `NO_PROXY` skips none of them or all), they join the wrapper's session
    below the Agent's own proxy settings, as `requests` would have added them at every request; then,
    unless it names a CA bundle for an https URL that the wrapper's options would not override, the
    session stops reading it. Each request then goes through the proxy, and is verified with the CA
    bundle, it was before; this is checked for every URL, and otherwise nothing changes.

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
    # What every request of the wrapper names: the Agent's proxy settings, the session's own.
    requested = session.proxies
    before = [_proxy_and_bundle(session, url, requested) for url in urls]
    found = [get_environ_proxies(url, no_proxy=(requested or {}).get('no_proxy')) for url in urls]
    if found and all(proxies == found[0] for proxies in found):
        session.proxies = {**found[0], **(requested or {})} or requested
    session.trust_env = False
    if [_proxy_and_bundle(session, url, requested) for url in urls] != before:
        session.trust_env, session.proxies = True, requested
        return False
    return True


def _proxy_and_bundle(session: requests.Session, url: str, requested: Any) -> tuple[Any, Any]:
    """The proxy a request to `url` naming the proxies `requested` goes through and, for https, its CA bundle."""
    found = session.merge_environment_settings(url, dict(requested or {}), None, session.verify, None)
    return select_proxy(url, found['proxies']), found['verify'] if url.startswith('https:') else None
