# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Make one stored-layout sample: run a past release's check against today's fakes and keep what it stored.

    python -m tests.layouts.sampler --release 4248c02 --checkout DIR --variant app-key --command '...'

Run from the `pagerduty_dora` folder with the current code importable: this process serves the
account of `world.Scenario` and the Datadog fakes on 127.0.0.1, and runs every check run of the
release in a child process (`runner.py`) whose `PYTHONPATH` starts with the release's checkout
(`DIR`, a worktree of that commit). Between runs it makes the scenario's changes; the persistent
cache goes from one child to the next through a file. `scripts/layout-samples` calls it for every
release and variant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..fakes.server import Reply, Request
from .world import RELEASES, STEPS, VARIANTS, Release, Scenario, cache_id, sample_path, tag_value

RUNNER = Path(__file__).with_name('runner.py')
FAILURE_PATH = '/api/v2/dora/failure'
# How long one check run may take before the sample is given up: a release that hangs is a failure.
RUN_TIMEOUT = 300
# Where a release keeps what is the Agent's rather than an instance's.
AGENT_WIDE = 'pagerduty_dora:identities_'


def _refuse_dora_posts(request: Request) -> Reply | None:
    if request.method == 'POST' and request.path == FAILURE_PATH:
        return Reply(503, {'errors': ['Service Unavailable']})
    return None


def _quiet_resets(server: Any) -> None:
    """Leave out the report of a connection reset: a child that exits drops its keep-alive connections."""
    http = server._server
    report = http.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionResetError):
            report(request, client_address)

    http.handle_error = handle_error


def run_release(checkout: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One run of the release's check in a child process, over the persistent cache of `job`."""
    package = checkout / 'pagerduty_dora'
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(package)] + os.environ.get('PYTHONPATH', '').split(os.pathsep))
    )
    with tempfile.TemporaryDirectory(prefix='layout-run-') as scratch:
        job_path, result_path = Path(scratch) / 'job.json', Path(scratch) / 'result.json'
        job_path.write_text(json.dumps(job), encoding='utf-8')
        subprocess.run(
            [sys.executable, str(RUNNER), str(job_path), str(result_path)],
            env=env,
            cwd=scratch,
            check=True,
            timeout=RUN_TIMEOUT,
        )
        result = json.loads(result_path.read_text(encoding='utf-8'))
    loaded_from = Path(result.pop('package')).resolve()
    if package.resolve() not in loaded_from.parents:
        raise RuntimeError('the run loaded {}, not the release at {}'.format(loaded_from, package))
    return result


def make_sample(release: Release, commit: str, checkout: Path, variant: str, command: str) -> dict[str, Any]:
    """Run the scenario with the release's code and return the sample of what it stored and sent."""
    scenario = Scenario()
    try:
        world = scenario.world
        _quiet_resets(world.pagerduty.server)
        _quiet_resets(world.datadog)
        instance = scenario.instance(variant)
        cache: dict[str, str] = {}
        runs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        patches: list[dict[str, Any]] = []
        used_ids = set()
        for number, step in enumerate(STEPS):
            scenario.replay(number + 1)
            posts, patched = len(world.dora.posts), len(world.deployments.patches)
            world.datadog.fault = _refuse_dora_posts if step.refuse_dora_posts else None
            try:
                result = run_release(checkout, {'now': scenario.account.now, 'instance': instance, 'cache': cache})
            finally:
                world.datadog.fault = None
            cache = result['cache']
            used_ids.add(result['cache_id'])
            # The Agent forwards a check's events to Datadog, where a later release may read them back.
            world.events.ingest(result['events'])
            runs.append({'step': step.name, 'at': scenario.account.now, 'error': result['error']})
            failures += [{'run': number, 'attributes': a} for a in world.dora.posts[posts:]]
            events += [
                {
                    'run': number,
                    'aggregation_key': e['aggregation_key'],
                    'transition': tag_value(e, 'transition'),
                    'attribution': tag_value(e, 'attribution'),
                    'event': e,
                }
                for e in result['events']
            ]
            patches += [
                {'run': number, 'deployment': d, 'attributes': a} for d, a in world.deployments.patches[patched:]
            ]
        (used_id,) = used_ids
        expected_id = cache_id(release.cache_id_scheme, instance)
        if used_id != expected_id:
            raise RuntimeError('the release used cache id {}, its scheme gives {}'.format(used_id, expected_id))
        prefix = result['prefix']
        # The Agent-wide list of identities (`lineage.py`, from layout 5 on) is keyed by the PagerDuty URL,
        # a loopback port that differs in every test run: it cannot follow the sample, and a check that
        # finds none only notes its own identity.
        foreign = sorted(key for key in cache if not key.startswith(prefix) and not key.startswith(AGENT_WIDE))
        if foreign:
            raise RuntimeError('cache entries outside the instance prefix {}: {}'.format(prefix, foreign))
        return {
            'release': {'commit': commit, 'date': release.date, 'label': release.label},
            'layouts': {
                'collector': release.collector,
                'attribution': release.attribution,
                'dora_pending': release.dora_pending,
                'catalog': release.catalog,
            },
            'variant': variant,
            'command': command,
            'instance': instance,
            'persistent_cache_id': used_id,
            'cache_id_scheme': release.cache_id_scheme,
            'cache': {key[len(prefix) :]: value for key, value in sorted(cache.items()) if key.startswith(prefix)},
            'clock': scenario.account.now,
            'roles': dict(scenario.roles),
            'runs': runs,
            'sent': {'dora_failures': failures, 'events': events, 'deployment_patches': patches},
        }
    finally:
        scenario.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--release', required=True, choices=[r.commit for r in RELEASES])
    parser.add_argument('--commit', help='the full commit id to record (default: --release)')
    parser.add_argument('--checkout', required=True, type=Path, help="a checkout of the release's commit")
    parser.add_argument('--variant', required=True, choices=sorted(VARIANTS))
    parser.add_argument('--command', required=True, help='the command that makes the samples, to record')
    args = parser.parse_args(argv)
    (release,) = [r for r in RELEASES if r.commit == args.release]
    sample = make_sample(release, args.commit or release.commit, args.checkout, args.variant, args.command)
    path = sample_path(release, args.variant)
    path.write_text(json.dumps(sample, indent=1, sort_keys=True, ensure_ascii=False) + '\n', encoding='utf-8')
    print('{}: {} cache entries, {} runs'.format(path.name, len(sample['cache']), len(sample['runs'])))


if __name__ == '__main__':
    main()
