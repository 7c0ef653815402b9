# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What collection asks of the parts it is handed, each typed by the little it uses of them.

- `Log`: the check's log;
- `CatalogSource`: the catalog as it stands this run (`catalog/sources.py`, `CatalogStore`);
- `DoraQueue`: DORA failure delivery (`datadog/dora.py`, `DoraDelivery`);
- `Attribution`: change-failure attribution (`attribution/attributor.py`, `ChangeFailureAttribution`).

A test hands the collector any value that does these: nothing else is called on it. Which of them an
instance turned on is `run.Features`.
"""

from __future__ import annotations

from typing import Any, Container, Protocol, Sequence

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition


class Log(Protocol):
    """The check's log, as collection writes to it."""

    def debug(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...


class CatalogSource(Protocol):
    """The catalog each run maps with, and how many entries each of its sources gave."""

    def current(self) -> Catalog | None: ...

    def counts(self) -> dict[str, int]: ...


class DoraQueue(Protocol):
    """DORA failure delivery: a queue per incident, flushed to Datadog, reporting what Datadog accepted."""

    @property
    def can_remove(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    def queued(self, incident_id: str) -> str | None: ...

    def enqueue(self, incident_id: str, attributes: dict, known: str | None = None) -> None: ...

    def discard(self, incident_id: str) -> None: ...

    def remove(self, incident_id: str) -> None: ...

    def flush(self) -> None: ...

    def take_outcomes(self, wanted: Container[str] | None = None) -> list[tuple[str, str]]: ...

    def save(self) -> None: ...


class Attribution(Protocol):
    """Change-failure attribution: told of every look at an incident, and of an incident that went away."""

    def observe(
        self, incident: Incident, mapping: MappingResult, wanted: bool, transitions: Sequence[Transition] = ()
    ) -> dict[int, str]: ...

    def gone(self, incident_id: str, why: str = ...) -> None: ...

    def flush(self) -> None: ...

    def save(self) -> None: ...
