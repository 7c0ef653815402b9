# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`--demo`: the real check, run several times on simulated time against the world of `demo/`, with
live changes in PagerDuty between runs; returns what each run saw and what was submitted."""

from __future__ import annotations

from collections import Counter
from typing import Any

from datadog_checks.pagerduty_dora.catalog.qualification import Qualification
from datadog_checks.pagerduty_dora.common.times import format_time

from .results import example_failure, incident_row, metric_summaries, rule_counts, transition_of
from .standalone import agent_stubs, collect, initialize, new_check

DEMO_RUNS = 4


def run_demo() -> dict[str, Any]:
    """Run the check `DEMO_RUNS` times against the demo world, with live changes between runs."""
    from datadog_checks.pagerduty_dora.demo import world as demo

    aggregator, datadog_agent = agent_stubs()
    aggregator.reset()
    datadog_agent.reset()
    with demo.DemoWorld() as world:
        instance = world.instance()
        check = _demo_check(world, instance)
        runs, mappings, warnings = _run_all(
            check, world, aggregator, change_offset=demo.CHANGE_DELAY - demo.RUN_INTERVAL
        )
        qualification = Qualification(urgencies=instance['urgencies'], priorities=None)
        rows = _incident_rows(mappings, world, aggregator.events, qualification, first_run_at=demo.START)
        events = list(aggregator.events)
        result = {
            'mode': 'demo',
            'start': format_time(demo.START),
            'options': {
                'env': instance['env'],
                'urgencies': instance['urgencies'],
                'backfill_days': instance['backfill_days'],
                'service_overrides': instance['service_overrides'],
            },
            'runs': runs,
            'incidents': rows,
            'rules': rule_counts(rows),
            'dora_failures': {
                'count': len(world.dora.failures),
                'posts': len(world.dora.posts),
                'rejected': len(world.dora.rejected),
                'example': example_failure(list(world.dora.failures.values())),
            },
            'events': {
                'count': len(events),
                # The event saying since when the instance is live has no transition: counted as `live`.
                'by_transition': dict(Counter(transition_of(e) or 'live' for e in events)),
                'titles': [e['msg_title'] for e in events],
                'example': next((e for e in events if transition_of(e)), None),
            },
            'attribution': _attribution(world, events),
            'metrics': metric_summaries(aggregator),
            'warnings': warnings,
        }
    return result


def _demo_check(world: Any, instance: dict) -> Any:
    """The check, configured with the demo's instance and running on the demo account's clock."""
    check = new_check({}, instance)
    # The check runs on the account's clock, so four runs five minutes apart take a second.
    check.clock = lambda: world.account.now
    check.monotonic = lambda: world.account.now
    initialize(check)
    if check.collector is not None:
        check.collector.preview(persist=True)
    return check


def _run_all(
    check: Any, world: Any, aggregator: Any, *, change_offset: float
) -> tuple[list[dict[str, Any]], dict[str, tuple[Any, Any]], list[str]]:
    """Each run's summary, every incident's latest mapping, and the warnings of all runs.

    Before every run but the first, the world makes its next changes; `change_offset` is when they
    happened, relative to the run that follows.
    """
    runs: list[dict[str, Any]] = []
    mappings: dict[str, tuple[Any, Any]] = {}
    warnings: list[str] = []
    for number in range(1, DEMO_RUNS + 1):
        changes = _apply_changes(world, number - 2, change_offset) if number > 1 else []
        events_before, posts_before = len(aggregator.events), len(world.dora.posts)
        collect(check)
        report = check.last_report
        run_warnings = check.get_warnings()
        warnings.extend(run_warnings)
        mappings.update(report.mappings)
        runs.append(
            {
                'run': number,
                'at': format_time(world.account.now),
                'first_run': number == 1,
                'changes': changes,
                'incidents_seen': len(report.mappings),
                # Events of transitions: the first run's live event is listed with the others at the end.
                'events': sum(1 for e in aggregator.events[events_before:] if transition_of(e)),
                'dora_posts': len(world.dora.posts) - posts_before,
                'warnings': run_warnings,
            }
        )
    return runs, mappings, warnings


def _apply_changes(world: Any, step: int, change_offset: float) -> list[dict[str, Any]]:
    """Make the world's changes of `step` in PagerDuty, and say what each was."""
    return [
        {
            'at': format_time(world.account.now + change_offset),
            'incident_number': world.demo.number(change.incident),
            'title': change.incident,
            'change': change.description,
        }
        for change, _incident_id in world.apply(step)
    ]


def _incident_rows(
    mappings: dict[str, tuple[Any, Any]],
    world: Any,
    events: list[dict],
    qualification: Qualification,
    *,
    first_run_at: float,
) -> list[dict[str, Any]]:
    """One row per incident, by number: its mapping, the transitions the runs saw, and its DORA failure."""
    from datadog_checks.pagerduty_dora.datadog.dora import failure_id

    transitions: dict[str, list[str]] = {}
    for event in events:
        transitions.setdefault(event['aggregation_key'], []).append(transition_of(event))
    rows = []
    for incident, mapping in sorted(mappings.values(), key=lambda pair: pair[0].number):
        row = incident_row(incident, mapping, filtered_by=qualification.filter_reason(incident))
        row['live_transitions'] = transitions.get(incident.id, [])
        row['reopened'] = 'reopened' in row['live_transitions']
        row['history'] = incident.resolved_at is not None and incident.resolved_at < first_run_at
        row['dora_failure'] = world.dora.failures.get(failure_id(incident.id))
        rows.append(row)
    return rows


def _attribution(world: Any, events: list[dict]) -> list[dict[str, Any]]:
    """The deployments the demo marked as change failures, the incident that caused it and the remediation."""
    marked = []
    for deployment in world.deployments.failed().values():
        incident = next((e['msg_title'] for e in events if '`{}`'.format(deployment.id) in e.get('msg_text', '')), None)
        marked.append(
            {
                'deployment': deployment.id,
                'service': deployment.service,
                'env': deployment.env,
                'version': deployment.version,
                'incident': incident,
                'remediation': dict(deployment.remediation) if deployment.remediation else None,
            }
        )
    return marked
