# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What the Agent lends every part of the check, handed over as one value.

The persistent cache, the log, the status page's warnings, wall time and the check's count metric
come from the check; the parts that keep state or tell the user something take an `AgentServices`
rather than each callable on its own, so a new part needs no new wiring in the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


def _no_count(name: str, value: float, tags: list[str]) -> None:
    """A count metric nobody submits (parts used outside a check)."""


@dataclass(frozen=True)
class AgentServices:
    """The check's persistent cache, log, warnings, clock and count metric.

    `read_cache(key)` and `write_cache(key, value)` are the Agent's persistent cache of the instance;
    `warning(message, *args)` shows a %-style message on the Agent status page; `clock` is wall time
    (seconds since the epoch), since what it stamps is persisted across restarts;
    `count(name, value, tags)` submits a count metric (name without the integration prefix).
    """

    read_cache: Callable[[str], str]
    write_cache: Callable[[str, str], None]
    log: Any
    warning: Callable[..., None]
    count: Callable[[str, float, list[str]], None] = _no_count
    clock: Callable[[], float] = time.time
