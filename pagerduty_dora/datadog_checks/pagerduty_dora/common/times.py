# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Timestamps in and out: what PagerDuty and Datadog send, and the one form the check sends back.

Every time inside the check is UTC epoch seconds (a float).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

# Times outside [1970, 9999) cannot be rendered back (`format_time`) nor sent to the DORA API.
EARLIEST_TIME = 0.0
LATEST_TIME = 253370764800.0  # 9999-01-01T00:00:00Z
# Python reads at most microseconds; the DORA API may render nanoseconds.
_FRACTION = re.compile(r'(\.\d{6})\d+')


def parse_time(value: Any) -> float:
    """Parse a PagerDuty ISO 8601 timestamp into UTC epoch seconds.

    PagerDuty renders times with an explicit offset (`Z` or `+02:00`). A timestamp without one is
    ambiguous (the account time zone); the client always asks for UTC, so a naive value is read as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError('not a timestamp: {!r}'.format(value))
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    epoch = parsed.timestamp()
    if not EARLIEST_TIME <= epoch < LATEST_TIME:
        raise ValueError('timestamp out of range: {!r}'.format(value))
    return epoch


def format_time(epoch: float) -> str:
    """Render epoch seconds as an explicit-UTC ISO 8601 timestamp, the only form the client sends."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_api_time(value: Any) -> float | None:
    """A DORA API timestamp (RFC 3339 string, or Unix time in s, ms or ns) as epoch seconds; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value < 10**11:
            return float(value)
        if value < 10**14:
            return value / 1e3
        return value / 1e9
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    # Python reads at most microseconds; the API may render nanoseconds.
    text = _FRACTION.sub(r'\1', text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()
