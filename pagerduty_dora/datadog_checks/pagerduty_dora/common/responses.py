# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Reading a streamed response within bounds: its size, the run deadline, and what an error keeps of it.

A broken or hostile server can send any amount, or trickle it; these read in chunks and stop at the
bound, so that no answer makes the Agent hold unbounded memory or wait past its run.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import DeadlineReached, TransientError, UnreadableResponse

# How much of an error body is kept for a log line.
ERROR_BODY_LIMIT = 1000
READ_CHUNK = 64 * 1024
# What is read of an accepted answer whose body is not used, so that its connection can be reused.
DRAIN_LIMIT = 64 * 1024


def read_body(response: Any, limit: int, *, api: str, endpoint: str, out_of_time: Callable[[], bool]) -> bytes:
    """The body, read in chunks; a body over `limit` bytes, or still arriving when `out_of_time()`, is an error."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UnreadableResponse(
                    api, '{} answered a body larger than {} MB; not read'.format(endpoint, limit // 2**20)
                )
            chunks.append(chunk)
            # A server that trickles a body never trips the socket timeout; the run deadline bounds it.
            if out_of_time():
                raise DeadlineReached(api, '{} body was still arriving at the run deadline'.format(endpoint))
    except (OSError, ValueError):
        # Requests raises its own (OSError or ValueError based) errors for a body cut short or undecodable.
        raise TransientError(api, '{} body was cut short or timed out'.format(endpoint)) from None
    return b''.join(chunks)


def drain(response: Any, out_of_time: Callable[[], bool]) -> None:
    """Read (and drop) a little of a body that is not used, so the connection can serve the next request."""
    try:
        size = 0
        for chunk in response.iter_content(READ_CHUNK):
            size += len(chunk)
            if size >= DRAIN_LIMIT or out_of_time():
                return
    except (OSError, ValueError):
        return


def error_body(response: Any) -> str:
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


def close(response: Any) -> None:
    """Give the connection back (a streamed response holds it until closed)."""
    try:
        response.close()
    except (OSError, AttributeError):
        pass
