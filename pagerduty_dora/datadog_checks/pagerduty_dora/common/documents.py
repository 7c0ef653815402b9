# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Versioned JSON documents, the form every value this check keeps in the Agent's persistent cache takes."""

from __future__ import annotations

import json
from typing import Any


def encode(version: int, fields: dict[str, Any]) -> str:
    """A cache value holding `fields` under layout `version`."""
    # ASCII escapes keep any lone surrogate a remote API sent writable as UTF-8.
    return json.dumps(dict(fields, version=version), separators=(',', ':'), check_circular=False)


def decode(raw: str, version: int) -> dict[str, Any]:
    """The document a cache value holds; raises ValueError when it is not one of layout `version`.

    A value written by another layout (an older release, or a damaged write) is refused whole, so
    that every reader can start over from a known state rather than act on half of one.
    """
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValueError('nested too deeply') from None
    if not isinstance(document, dict):
        raise ValueError('not a JSON object')
    if document.get('version') != version:
        raise ValueError('unknown layout version {!r}'.format(document.get('version')))
    return document
