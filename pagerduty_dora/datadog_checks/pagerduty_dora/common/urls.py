# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""API base URLs the credentials may be sent to, checked by a grammar both URL parsers read alike.

The check's options are read with the standard library (`urllib.parse`), but requests are sent by
the Agent's HTTP wrapper, which parses URLs with urllib3. The two disagree on some URLs:
`http://evil.example:80\\@127.0.0.1` is a loopback host to one and `evil.example` to the other, so
a check made with the first would send the keys over plain http to a host it never approved. A
base URL is therefore held to a small grammar (`scheme://host[:port][/path]`, printable ASCII, no
credentials, backslash, query or fragment) on which the parsers cannot differ, and is then parsed
by both and refused unless they agree. The options' validators and `ApiClient` both use it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_HOST_LABEL = r'[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?'
_BASE_URL = re.compile(
    r'(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://'
    r'(?P<host>\[[0-9A-Fa-f:.]+\]|{label}(?:\.{label})*\.?)'
    r'(?::(?P<port>[0-9]{{1,5}}))?'
    r"(?P<path>/[A-Za-z0-9._~!$&'()*+,;=:%/-]*)?".format(label=_HOST_LABEL)
)
SCHEMES = ('http', 'https')
EXAMPLE = 'https://<HOST>'


class UnsafeUrl(ValueError):
    """A URL that must not receive credentials; the message says why, without the URL."""


@dataclass(frozen=True)
class Origin:
    """Where requests to a base URL go: scheme, lower-case host (IPv6 without brackets) and port."""

    scheme: str
    host: str
    port: int | None


def is_loopback_host(host: str) -> bool:
    """Whether `host` is `localhost` or an address in 127.0.0.0/8 or ::1."""
    host = host.strip('[]').lower()
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_origin(url: Any) -> Origin:
    """The origin of an API base URL that credentials may be sent to; raises `UnsafeUrl` saying why not.

    Accepted: `https://<HOST>[:<PORT>][/<PATH>]`, and `http://` only for a loopback host (`localhost`,
    127.0.0.0/8, `[::1]`). Refused: anything else, and in particular credentials (`user@`), backslashes,
    whitespace, control or non-ASCII characters, a query or a fragment.
    """
    if not isinstance(url, str):
        raise UnsafeUrl('must be a URL like {}'.format(EXAMPLE))
    if any(not ' ' < c < '\x7f' for c in url):
        raise UnsafeUrl(
            'must be a URL like {} without whitespace, control or non-ASCII characters '
            '(write an international host name in its xn-- form)'.format(EXAMPLE)
        )
    if '\\' in url:
        raise UnsafeUrl('must not contain a backslash, which URL parsers read differently')
    if '@' in url:
        raise UnsafeUrl('must not contain credentials or an `@`: the keys are sent in headers, never in the URL')
    if '?' in url or '#' in url:
        raise UnsafeUrl('must be a base URL, without a query (`?`) or a fragment (`#`)')
    found = _BASE_URL.fullmatch(url)
    if found is None or found['scheme'].lower() not in SCHEMES:
        raise UnsafeUrl('must be a URL like {}'.format(EXAMPLE))
    port = int(found['port']) if found['port'] else None
    if port is not None and not 0 < port < 65536:
        raise UnsafeUrl('must have a port from 1 to 65535')
    host = found['host'].lower()
    if host.startswith('['):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UnsafeUrl('must have a valid IPv6 address between brackets') from None
    origin = Origin(found['scheme'].lower(), host.strip('[]'), port)
    _same_for_every_parser(url, origin)
    if origin.scheme == 'http' and not is_loopback_host(origin.host):
        raise UnsafeUrl('must use https (plain http is allowed only for a loopback host)')
    return origin


def _same_for_every_parser(url: str, origin: Origin) -> None:
    """Refuse the URL unless the standard library and urllib3 (which sends) read the same origin in it."""
    parts = urlsplit(url)
    read = [(parts.scheme.lower(), (parts.hostname or '').lower(), parts.port, parts.username)]
    try:
        from urllib3.util import parse_url
    except ImportError:  # pragma: no cover - the Agent always ships urllib3
        parse_url = None
    if parse_url is not None:
        try:
            sent = parse_url(url)
        except ValueError:
            raise UnsafeUrl('must be a URL like {}'.format(EXAMPLE)) from None
        read.append(((sent.scheme or '').lower(), (sent.host or '').lower().strip('[]'), sent.port, sent.auth))
    expected = (origin.scheme, origin.host, origin.port, None)
    if any(reading != expected for reading in read):
        raise UnsafeUrl('must be a URL like {} that every URL parser reads the same way'.format(EXAMPLE))
