# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which incidents the check collects: the one statement of the rule the collector and the dry run share.

An incident is collected when it passes the `urgencies` and `priorities` filters and is not an
unmapped incident (one the fallback rule decided) under `unmapped_incidents: skip`. The collector
counts, sends and forgets by this rule, and the dry run explains it row by row; one policy keeps
the preview true to what the Agent does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from datadog_checks.pagerduty_dora.pagerduty.incident import Incident

from .mapping import MappingResult, passes_filters

# The last rule of `mapping.RULES`: what decides an incident no other rule maps.
FALLBACK_RULE = 'fallback'
# The `unmapped_incidents` value that leaves unmapped incidents out.
SKIP = 'skip'


@dataclass(frozen=True)
class Qualification:
    """The `urgencies`, `priorities` and `unmapped_incidents` options, as the rule they make.

    None or an empty list means no filter (see `mapping.passes_filters`).
    """

    urgencies: Sequence[str] | None
    priorities: Sequence[str] | None
    unmapped_incidents: str = 'send'

    def filter_reason(self, incident: Incident) -> str | None:
        """Why the filters leave the incident out (`low urgency`, `priority P3`, `priority none`), else None.

        The urgency is reported first when both filters leave it out.
        """
        if not passes_filters(incident, urgencies=self.urgencies, priorities=None):
            return '{} urgency'.format(incident.urgency)
        if not passes_filters(incident, urgencies=None, priorities=self.priorities):
            return 'priority {}'.format(incident.priority or 'none')
        return None

    def skips_unmapped(self, mapping: MappingResult) -> bool:
        """Whether `unmapped_incidents: skip` leaves out an incident mapped as `mapping` (the fallback rule)."""
        return self.unmapped_incidents == SKIP and mapping.rule == FALLBACK_RULE

    def qualifies(self, incident: Incident, mapping: MappingResult) -> bool:
        """Whether the incident is collected: it passes the filters and is not a skipped unmapped incident."""
        if not passes_filters(incident, urgencies=self.urgencies, priorities=self.priorities):
            return False
        return not self.skips_unmapped(mapping)
