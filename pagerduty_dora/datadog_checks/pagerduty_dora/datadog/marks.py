# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The marks DORA delivery keeps in the persistent cache, written and read here only.

A queued payload is a failure, or a removal keyed by `Mark.REMOVE`; a record's `delivered` (see
`collection/record.py`) is the fingerprint Datadog last accepted, `''` for none, that fingerprint
after `Mark.REJECTED`, or `Mark.DRIFTED` alone. Each mark's value is the text stored since the first
release, so what an earlier release stored reads the same.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Mapping


class Mark(StrEnum):
    """A mark of DORA delivery; its value is the text stored."""

    REMOVE = '__remove__'
    """The key of a queued removal, `{REMOVE: failure id}`: the incident's failure is deleted rather than updated."""

    REJECTED = '!'
    """Before a delivered fingerprint that Datadog refused for good (a 4xx): not sent again until it changes."""

    DRIFTED = '?'
    """The whole `delivered` of a record whose failure Datadog holds open although the record says otherwise
    (found by the daily drift check): whatever the incident wants now (its resolve, or a removal) is sent again."""


# The removal key as plain text: a queued payload is asked for it at every delivery, and an enum
# member's `value` is a descriptor read each time.
_REMOVE_KEY: str = Mark.REMOVE.value


def removal(failure_id: str) -> dict[str, str]:
    """The queued payload that deletes the failure `failure_id`."""
    return {_REMOVE_KEY: failure_id}


def removal_of(payload: Mapping[str, object]) -> str | None:
    """The failure id a queued removal deletes; None for a failure payload."""
    target = payload.get(_REMOVE_KEY)
    return None if target is None else str(target)


def is_removal(payload: Mapping[str, object]) -> bool:
    """Whether a queued payload is a removal rather than a failure."""
    return _REMOVE_KEY in payload


def rejected(fingerprint: str) -> str:
    """The `delivered` of a payload Datadog refused for good."""
    return Mark.REJECTED.value + fingerprint


def is_rejected(delivered: str) -> bool:
    """Whether a record's `delivered` is a payload Datadog refused for good."""
    return delivered.startswith(Mark.REJECTED.value)
