# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Attribution benchmark: the rules side by side on one simulated account, scored against the truth.

Run from the integration folder with the test environment's Python:

    python -m tests.benchmarks.attribution_signals --days 7 --services 5 --seed 1

One account (PagerDuty services, their deployments in DORA Metrics, change events, incidents) is
generated once, with the deployment that really caused each incident known. The real check then
runs over it on simulated time, every `--interval` seconds, four times over the same account: with
and without PagerDuty relating change events to incidents, each with and without the `version` in
the alerts of the Datadog monitors that trigger incidents (without both, only "the latest deployment
in the window" can decide). Printed per rule:

- precision: of the deployments marked as change failures, the share that caused an incident;
- recall: of the deployments that caused an incident, the share marked;
- per incident: the share of incidents blaming exactly their cause (none for those no deployment caused);
- remediation: of the failed deployments marked, the share whose remediation is their real rollback.

What the account holds, all drawn from `--seed`: every service deploys at random (mean every
`--deploy-every` hours), each deployment sends PagerDuty a change event with its version (90 %),
a fifth reach Datadog one to four minutes late, `--bad` of them cause an incident 5 minutes to 4
hours later and are reverted (a redeploy of the version before them) 20 to 60 minutes into it,
while the service's other releases go on; a third of the incidents are caused by no deployment.
PagerDuty's own correlation relates the cause's change event as `intelligent` to 70 % of caused
incidents, a random recent change to 10 % of the others, and the most recent change of the
service to every incident (as `most_recent`).

A share of the incidents (`--monitors`, drawn apart so the rest of the account is the same whatever
it is) is triggered by a Datadog monitor: a Multi Alert monitor grouped by `service`, `env`, `team`
and `version`, whose alerted group names a version. With `--named running` (the default) it is the
version of the service's latest deployment that finished before the incident (the version that
runs, and errs, when the monitor alerts), whatever caused it; with `--named cause` a caused incident
names the version of its cause (a monitor that watches one release, as a deployment's canary or
regression monitor does) and the others the running version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

HOUR = 3600.0
MINUTE = 60.0


@dataclass
class Plan:
    """What happens on the account, in time order, and the truth to score against."""

    services: list[str]
    # (time, kind, payload) for: deploy (reported to Datadog), change event, trigger, resolve.
    steps: list[tuple[float, str, dict]] = field(default_factory=list)
    # incident key -> id of the deployment that caused it (None: no deployment did).
    causes: dict[str, str | None] = field(default_factory=dict)
    # failed deployment id -> id of the rollback that remediated it.
    rollbacks: dict[str, str] = field(default_factory=dict)


def plan_account(args: argparse.Namespace, start: float) -> Plan:
    rng = random.Random(args.seed)
    services = ['svc-{}'.format(n) for n in range(args.services)]
    plan = Plan(services)
    end = start + args.days * 86400
    for service in services:
        at, number, previous = start + rng.uniform(0, args.deploy_every * HOUR), 0, None
        while at < end:
            number += 1
            version = '{}.{}'.format(service, number)
            deployment = '{}-d{}'.format(service, number)
            _deploy(plan, rng, service, deployment, version, at)
            if rng.random() < args.bad and previous is not None:
                incident_at = at + rng.uniform(5 * MINUTE, 4 * HOUR)
                key = '{}-i{}'.format(service, number)
                plan.causes[key] = deployment
                rollback_at = incident_at + rng.uniform(20 * MINUTE, 60 * MINUTE)
                rollback = deployment + '-rollback'
                # A revert to the version before the bad one; the service's other releases go on meanwhile.
                _deploy(plan, rng, service, rollback, previous, rollback_at)
                plan.rollbacks[deployment] = rollback
                relate = 'cause' if rng.random() < 0.7 else None
                trigger = {'key': key, 'service': service, 'relate': relate, 'cause': deployment, 'version': version}
                plan.steps.append((incident_at, 'trigger', trigger))
                plan.steps.append((rollback_at + rng.uniform(1, 10) * MINUTE, 'resolve', {'key': key}))
            at += rng.expovariate(1 / (args.deploy_every * HOUR))
            previous = version
        # Incidents no deployment caused: half as many as the caused ones, on average.
        for n in range(int(args.days * 24 / args.deploy_every * args.bad / 2) + 1):
            incident_at = start + rng.uniform(2 * HOUR, args.days * 86400)
            key = '{}-x{}'.format(service, n)
            plan.causes[key] = None
            relate = 'random' if rng.random() < 0.1 else None
            trigger = {'key': key, 'service': service, 'relate': relate, 'cause': None}
            plan.steps.append((incident_at, 'trigger', trigger))
            plan.steps.append((incident_at + rng.uniform(10, 90) * MINUTE, 'resolve', {'key': key}))
    plan.steps.sort(key=lambda step: step[0])
    _name_versions(plan, args)
    return plan


def _name_versions(plan: Plan, args: argparse.Namespace) -> None:
    """Which incidents a Datadog monitor triggers, and the version its alerted group names (see the module doc)."""
    rng = random.Random('monitors-{}'.format(args.seed))
    deployed: dict[str, list[tuple[float, str]]] = {name: [] for name in plan.services}
    for _, kind, payload in plan.steps:
        if kind == 'deploy':
            deployed[payload['service']].append((payload['finished'], payload['version']))
    for at, kind, payload in plan.steps:
        if kind != 'trigger' or rng.random() >= args.monitors:
            continue
        running = [version for finished, version in sorted(deployed[payload['service']]) if finished <= at]
        if args.named == 'cause' and payload['cause']:
            payload['named'] = payload['version']
        elif running:
            payload['named'] = running[-1]


def _deploy(plan: Plan, rng: random.Random, service: str, deployment: str, version: str, finished: float) -> None:
    late = rng.uniform(1, 4) * MINUTE if rng.random() < 0.2 else 0.0
    payload = {'service': service, 'id': deployment, 'version': version, 'finished': finished}
    plan.steps.append((finished + late, 'deploy', payload))
    if rng.random() < 0.9:
        plan.steps.append((finished + rng.uniform(0, 30), 'change', dict(payload)))


def monitor_event(plan: Plan, payload: dict, with_version: bool) -> dict | None:
    """What the Datadog monitor that triggers the incident sends PagerDuty; None for an incident no monitor triggers."""
    from datadog_checks.pagerduty_dora.demo.rendering import datadog_event

    if 'named' not in payload:
        return None
    group = ['env:prod', 'service:' + payload['service'], 'team:team']
    if with_version:
        group.append('version:' + payload['named'])
    return datadog_event(1000 + plan.services.index(payload['service']), group)


def run_rule(
    args: argparse.Namespace, plan: Plan, start: float, with_change_events: bool, with_version: bool
) -> dict[str, Any]:
    """Run the check over the planned account; return what Datadog holds and what each incident blames."""
    from datadog_checks.base.stubs import aggregator, datadog_agent
    from datadog_checks.pagerduty_dora.attribution.attributor import ChangeFailureAttribution

    from ..fakes.change_events import ChangeEvents
    from ..fakes.pagerduty import PagerDutyAccount
    from ..harness import DD_APP_KEY, World

    aggregator.reset()
    datadog_agent.reset()
    world = World(account=PagerDutyAccount(now=start), rate_limit=10**9)
    try:
        account = world.account
        changes = ChangeEvents.install(world.pagerduty)
        changes.enabled = with_change_events
        team = account.add_team('Team')
        pd_services = {name: account.add_service(name, team_ids=[team]) for name in plan.services}
        instance = {
            'datadog_app_key': DD_APP_KEY,
            'attribute_change_failures': True,
            'attribution_window': args.window,
            'env': 'prod',
            'backfill_days': 0,
            'collect_events': False,
            'max_requests_per_run': 2000,
            'service_overrides': [{'pagerduty_service': pd_services[n], 'service': n} for n in plan.services],
        }
        check = world.check(**instance)
        incidents: dict[str, str] = {}
        change_ids: dict[str, str] = {}
        recent_changes: dict[str, list[str]] = {n: [] for n in plan.services}
        steps = list(plan.steps)
        end = start + args.days * 86400 + 6 * HOUR
        now, runs, errors = start, 0, 0
        while now <= end:
            while steps and steps[0][0] <= now:
                at, kind, payload = steps.pop(0)
                account.now = at
                if kind == 'deploy':
                    world.deployments.add(
                        payload['service'],
                        'prod',
                        payload['version'],
                        payload['finished'],
                        deployment_id=payload['id'],
                        duration=120,
                    )
                elif kind == 'change':
                    event = changes.send(
                        pd_services[payload['service']],
                        'Deploy {} {}'.format(payload['service'], payload['version']),
                        at=payload['finished'],
                        custom_details={'version': payload['version'], 'pipeline': 'ci'},
                    )
                    change_ids[payload['id']] = event
                    recent_changes[payload['service']].append(event)
                elif kind == 'trigger':
                    alert = monitor_event(plan, payload, with_version)
                    incident = account.trigger(
                        pd_services[payload['service']], payload['key'], priority='P1', event=alert
                    )
                    incidents[payload['key']] = incident
                    if payload['relate'] == 'cause' and payload['cause'] in change_ids:
                        changes.relate(incident, change_ids[payload['cause']], 'intelligent')
                    elif payload['relate'] == 'random' and recent_changes[payload['service']]:
                        pick = random.Random(payload['key']).choice(recent_changes[payload['service']][-5:])
                        changes.relate(incident, pick, 'intelligent')
                else:
                    account.resolve(incidents[payload['key']])
            account.now = now
            if check.run():
                errors += 1
            runs += 1
            now += args.interval
        assert check.collector is not None
        attribution = check.collector.attribution
        assert isinstance(attribution, ChangeFailureAttribution)
        blamed = {}
        for key, incident in incidents.items():
            found = attribution.attribution_of(incident)
            blamed[key] = found.id if found else None
        remediations = {d.id: (d.remediation or {}).get('id') for d in world.deployments.deployments.values()}
        return {
            'failed': set(world.deployments.failed()),
            'blamed': blamed,
            'remediations': remediations,
            'runs': runs,
            'errors': errors,
        }
    finally:
        world.close()


def score(plan: Plan, result: dict[str, Any]) -> dict[str, Any]:
    caused = {cause for cause in plan.causes.values() if cause}
    marked = result['failed']
    right = marked & caused
    per_incident = sum(1 for key, cause in plan.causes.items() if result['blamed'].get(key) == cause)
    remediated = sum(1 for d in right if result['remediations'].get(d) == plan.rollbacks.get(d))
    return {
        'precision': round(len(right) / len(marked), 3) if marked else None,
        'recall': round(len(right) / len(caused), 3) if caused else None,
        'marked': len(marked),
        'caused': len(caused),
        'marked_and_caused': len(right),
        'incidents': len(plan.causes),
        'incidents_blaming_their_cause': round(per_incident / len(plan.causes), 3),
        'remediation_is_the_rollback': round(remediated / len(right), 3) if right else None,
        'runs': result['runs'],
        'failed_runs': result['errors'],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--days', type=float, default=7)
    parser.add_argument('--services', type=int, default=5)
    parser.add_argument('--deploy-every', type=float, default=3.0, help='mean hours between deployments')
    parser.add_argument('--bad', type=float, default=0.15, help='share of deployments that cause an incident')
    parser.add_argument('--window', type=int, default=86400, help='attribution_window, seconds')
    parser.add_argument('--interval', type=float, default=300.0, help='seconds between runs')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--monitors', type=float, default=0.6, help='share of incidents a Datadog monitor triggers')
    parser.add_argument(
        '--named', choices=('running', 'cause'), default='running', help='the version the monitor alert names'
    )
    args = parser.parse_args()
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    # Rate-limit waits pass at once: the account runs on simulated time.
    time.sleep = lambda seconds: None
    start = 1793620800.0
    plan = plan_account(args, start)
    report: dict[str, Any] = {'options': vars(args)}
    rules = (
        ('monitor_version_then_change_events_then_latest', True, True),
        ('change_events_then_latest', True, False),
        ('monitor_version_then_latest', False, True),
        ('latest_deployment_only', False, False),
    )
    report['incidents_from_monitors'] = sum(1 for _, kind, p in plan.steps if kind == 'trigger' and 'named' in p)
    report['naming_their_cause'] = sum(
        1
        for _, kind, p in plan.steps
        if kind == 'trigger' and 'named' in p and p['cause'] and p['named'] == p['version']
    )
    for name, with_events, with_version in rules:
        began = time.process_time()
        result = run_rule(args, plan, start, with_events, with_version)
        report[name] = dict(score(plan, result), cpu_seconds=round(time.process_time() - began, 1))
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
