# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Untrusted text (titles, names, error messages) made to fit on one line and in a given width."""

from __future__ import annotations

from typing import Any


def one_line(text: Any) -> str:
    """`text` with every run of whitespace, newlines included, as one space; None is empty."""
    return ' '.join(('' if text is None else str(text)).split())


def clip(text: str, limit: int, mark: str = '…') -> str:
    """`text` cut to at most `limit` characters, the last one `mark` when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + mark


def text_or_none(value: Any) -> str | None:
    """The string stripped, or None for a blank string or anything that is not a string."""
    return value.strip() if isinstance(value, str) and value.strip() else None
