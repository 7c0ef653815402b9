# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Looks at rest: an incident read again as it was, under the same catalog, changes nothing.

Most looks at an idle account find nothing new: reconciliation reads every open incident every ten
minutes, the recheck reads resolved ones again. A look that leaves its record at rest is remembered
(`AtRest`), and the next look at the same incident, without log entries, is answered from it: no
story replayed, no mapping, no DORA payload built or fingerprinted, no record encoded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
from datadog_checks.pagerduty_dora.catalog.model import Catalog
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

from .record import IncidentRecord
from .story import settled

# Rests of records forgotten since are dropped once there are this many more rests than records.
SPARE_RESTS = 1000


@dataclass(frozen=True, eq=False)
class AtRest:
    """A look that left its record at rest: the same incident under the same catalog would change nothing.

    At rest, the record's story has no steps and ends in the incident's status, and Datadog holds
    the failure the record wants (or DORA delivery is off). The record is marked with the rest
    (`codec.Kept.mark`): setting any field of it (a delivery, a removal, another look) ends the rest.
    The mapping and what it decided are kept for what a look at rest still does (attribution's judgement).
    """

    incident: Incident
    catalog: Catalog
    mapping: MappingResult
    wanted: bool


class Rests:
    """The last look at rest of each incident, by id.

    Without DORA delivery (`delivering` false) a look queues nothing, whatever Datadog holds.
    """

    def __init__(self, *, delivering: bool) -> None:
        self._delivering = delivering
        self._by_id: dict[str, AtRest] = {}
        self._catalog: Catalog | None = None

    def catalog(self, catalog: Catalog) -> Catalog:
        """The catalog to look with: the one the rests were taken under while `catalog` equals it (once a run)."""
        if self._catalog is None or (catalog is not self._catalog and catalog != self._catalog):
            self._catalog = catalog
        return self._catalog

    def find(self, incident: Incident, record: IncidentRecord, catalog: Catalog) -> AtRest | None:
        """The rest a look at `incident` would end in again, or None when it must be looked at in full."""
        rest = self._by_id.get(incident.id)
        if (
            rest is None
            or not record.marked(rest)
            or rest.catalog is not catalog
            or not (rest.incident is incident or rest.incident == incident)
        ):
            return None
        return rest

    def keep(
        self,
        incident: Incident,
        record: IncidentRecord,
        catalog: Catalog,
        decided: tuple[MappingResult, bool],
        records: Mapping[str, IncidentRecord],
    ) -> None:
        """Remember the rest of a look that left `record` at rest (and the mapping and `wanted` it `decided`)."""
        unsettled = self._delivering and not settled(record.delivered, record.desired)
        if record.steps or record.base.status != incident.status or unsettled:
            self._by_id.pop(incident.id, None)
            return
        rest = AtRest(incident, catalog, *decided)
        record.mark(rest)
        self._by_id[incident.id] = rest
        if len(self._by_id) > len(records) + SPARE_RESTS:
            self._by_id = {key: rest for key, rest in self._by_id.items() if key in records}
