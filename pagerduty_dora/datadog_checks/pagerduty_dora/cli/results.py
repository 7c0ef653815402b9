# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a run outside the Agent saw and submitted, as plain data: the JSON the command prints, and what
its text view is rendered from. Shared by the demo and the dry run."""

from __future__ import annotations

from collections import Counter
from typing import Any

from datadog_checks.pagerduty_dora.catalog.mapping import RULES
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.readback import EventRecord

METRIC_PREFIX = 'pagerduty_dora.'


def transition_of(event: dict) -> str:
    """The `transition:` tag of an Agent event, empty when it has none.

    Read as the check reads its events back from Datadog (`EventRecord.transition`): one reader of the tag.
    """
    record = EventRecord(
        event_id='',  # an Agent event has no id until Datadog stores it
        incident_id=event.get('aggregation_key', ''),
        timestamp=event.get('timestamp', 0),
        tags=list(event.get('tags', [])),
        title=event.get('msg_title', ''),
        alert_type=event.get('alert_type', ''),
    )
    return record.transition or ''


def metric_summaries(aggregator: Any) -> list[dict[str, Any]]:
    """Per metric: its type, how many samples were submitted, and a total (counts), the latest value
    summed over series (gauges) or the samples (histograms)."""
    summaries = []
    for name in sorted(aggregator.metric_names):
        stubs = aggregator.metrics(name)
        if not stubs:
            continue
        kind = aggregator.METRIC_ENUM_MAP_REV.get(stubs[0].type, str(stubs[0].type))
        summary: dict[str, Any] = {'name': name, 'type': kind, 'submissions': len(stubs)}
        if kind == 'gauge':
            latest = {tuple(sorted(s.tags or ())): s.value for s in stubs}
            summary['latest'] = sum(latest.values())
            # Series last set to zero are gone (an incident no longer open), not worth counting.
            summary['series'] = sum(1 for value in latest.values() if value) or len(latest)
        elif kind == 'histogram':
            summary['samples'] = [s.value for s in stubs]
        else:
            summary['total'] = sum(s.value for s in stubs)
        summaries.append(summary)
    return summaries


def incident_row(incident: Any, mapping: Any, *, filtered_by: str | None) -> dict[str, Any]:
    """An incident and the mapping the check gave it, with whether it counts as a failure."""
    restore = None
    if incident.status == 'resolved' and incident.resolved_at is not None:
        restore = max(0.0, incident.resolved_at - incident.created_at)
    return {
        'id': incident.id,
        'number': incident.number,
        'title': incident.title,
        'status': incident.status,
        'urgency': incident.urgency,
        'priority': incident.priority,
        'url': incident.html_url,
        'pagerduty_service': incident.service_name,
        'pagerduty_teams': [t.name for t in incident.teams],
        'created_at': format_time(incident.created_at),
        'resolved_at': format_time(incident.resolved_at) if incident.resolved_at is not None else None,
        'time_to_restore': restore,
        'mapping': {
            'rule': mapping.rule,
            'monitor_id': mapping.monitor_id,
            'services': list(mapping.services),
            'team': mapping.team,
            'env': mapping.env,
            'severity': mapping.severity,
        },
        'counted': filtered_by is None,
        'filtered_by': filtered_by,
    }


def rule_counts(rows: list[dict]) -> dict[str, int]:
    """How many incident rows each mapping rule decided, in the order the rules are tried."""
    counts = Counter(r['mapping']['rule'] for r in rows)
    return {rule: counts[rule] for rule in RULES if counts[rule]}


def example_failure(failures: list[dict]) -> dict | None:
    """The most telling payload: one with services, team and `finished_at`, else any."""
    for wanted in (('services', 'team', 'finished_at'), ('finished_at',), ()):
        for failure in failures:
            if all(key in failure for key in wanted):
                return failure
    return None
