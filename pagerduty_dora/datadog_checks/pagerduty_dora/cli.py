# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`python -m datadog_checks.pagerduty_dora`: the check without an Agent.

`--demo` runs the real check against a simulated PagerDuty account and Datadog API on loopback;
`--config conf.yaml --dry-run` runs one collection against a real account and prints the mapping of
every incident and what would be submitted, submitting nothing and storing nothing.

Outside the Agent, the base package sends every submission to its in-process stubs
(`datadog_checks.base.stubs`): metrics and events stay in this process, and the persistent cache is
a dictionary that disappears with it. This module reads those stubs to show what was submitted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from typing import Any, Callable, NoReturn, Sequence

import yaml

from .incident import format_time
from .options import configuration_message

PROG = 'python -m datadog_checks.pagerduty_dora'
EXIT_ERROR = 1
EXIT_USAGE = 2
SECRET_OPTIONS = ('api_token', 'datadog_api_key', 'datadog_app_key')
METRIC_PREFIX = 'pagerduty_dora.'
# The text view lists this many incidents, most recent first; `--json` lists them all.
TEXT_ROWS = 50
# The dry run previews attribution for at most this many incidents, within this many seconds.
ATTRIBUTION_ROWS = 50
ATTRIBUTION_SECONDS = 60.0
FALLBACK_RULE = 'fallback'
TITLE_WIDTH = 34
DEMO_RUNS = 4
FIRST_RUN_NOTE = (
    'A dry run is a first run (empty state): the Agent records what it finds on its first run and '
    'emits events and transition metrics only for changes it sees from its second run on.'
)

EPILOG = """\
modes:
  --demo                 run the real check 4 times on simulated time against a built-in PagerDuty
                         account and Datadog API served on 127.0.0.1; no credentials, no network
  --config FILE --dry-run
                         run one collection with instance N of a conf.yaml against the real APIs it
                         names; nothing is submitted (no DORA failures, no events, no metrics) and no
                         state is stored

examples:
  {prog} --demo
  {prog} --demo --json > demo.json
  {prog} --config /etc/datadog-agent/conf.d/pagerduty_dora.d/conf.yaml --dry-run
  {prog} --config conf.yaml --instance 1 --dry-run --json > mapping.json

exit status: 0 on success, 1 on an error (unreadable conf.yaml, no such instance, invalid option,
rejected credentials, unreachable API), 2 on a usage error. Errors are one line on stderr.
""".format(prog=PROG)


class CliError(Exception):
    """An error for the user: one line on stderr and exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other error of this command, instead of argparse's usage block.
        sys.stderr.write('{}: error: {} (see --help)\n'.format(self.prog, message))
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments; `--help` documents each with an example in the epilog."""
    parser = _Parser(
        prog=PROG,
        description=(
            'See pagerduty_dora work without an Agent: map PagerDuty incidents to Datadog services,\n'
            'teams and envs, and show the DORA failures, events and metrics the check would submit.'
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        '--demo',
        action='store_true',
        help='run against a built-in simulated PagerDuty account and Datadog API on 127.0.0.1 (no credentials)',
    )
    mode.add_argument(
        '--config',
        '-c',
        metavar='FILE',
        help="a check configuration file (the Agent's conf.d/pagerduty_dora.d/conf.yaml); needs --dry-run",
    )
    parser.add_argument(
        '--instance',
        '-i',
        metavar='N',
        type=int,
        default=0,
        help='with --config: which entry of `instances` to run, counted from 0 (default: 0)',
    )
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='with --config: collect once and show the mapping and what would be submitted, submitting nothing',
    )
    parser.add_argument('--json', action='store_true', help='print one JSON document instead of text')
    parser.add_argument('--verbose', '-v', action='store_true', help="show the check's log (debug level) on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None and not args.dry_run:
        parser.error('--config needs --dry-run: this command never submits anything')
    if args.demo and (args.dry_run or args.instance != 0):
        parser.error('--dry-run and --instance go with --config, not --demo')
    if args.instance < 0:
        parser.error('argument --instance: must be 0 or more, got {}'.format(args.instance))
    _configure_logging(args.verbose)
    secrets: list[str] = []
    try:
        if args.demo:
            result = run_demo()
            text = render_demo
        else:
            init_config, instance = load_conf(args.config, args.instance)
            secrets = [v for k, v in instance.items() if k in SECRET_OPTIONS and isinstance(v, str) and v]
            result = run_dry(init_config, instance, args.config, args.instance)
            text = render_dry_run
        output = json.dumps(result, indent=2, ensure_ascii=False) + '\n' if args.json else text(result)
        sys.stdout.write(_redact(output, secrets))
        return 0
    except CliError as e:
        sys.stderr.write('{}: error: {}\n'.format(PROG, _redact(_one_line(str(e)), secrets)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write('{}: interrupted\n'.format(PROG))
        return 130


# Agent stand-ins -------------------------------------------------------------------------------


def _agent_stubs() -> tuple[Any, Any]:
    """The base package's in-process aggregator and `datadog_agent`, which receive the check's submissions."""
    from datadog_checks.base.agent import AGENT_RUNNING, aggregator, datadog_agent

    if AGENT_RUNNING:
        raise CliError('this command runs outside the Agent; inside it, use `datadog-agent check pagerduty_dora`')
    # The stub aggregator refuses `service`, `env`... tags unless this is set; the check sets them on
    # purpose (they are the point of the mapping).
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    return aggregator, datadog_agent


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(levelname)s %(name)s: %(message)s')
    else:
        # Warnings the user must see are printed with the results; the log itself stays quiet.
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL)


def _new_check(init_config: dict, instance: dict) -> Any:
    from .check import PagerdutyDoraCheck

    return PagerdutyDoraCheck('pagerduty_dora', init_config, [instance])


def _initialize(check: Any) -> None:
    """Build the check the way its first run does, turning configuration problems into `CliError`."""
    from datadog_checks.base.errors import ConfigurationError

    try:
        check.run_check_initializations()
    except ConfigurationError as e:
        raise CliError('invalid configuration: {}'.format(configuration_message(str(e)))) from None
    except Exception as e:
        raise CliError('the check could not start: {}'.format(_one_line(str(e)) or type(e).__name__)) from None


def _collect(check: Any) -> None:
    """One collection run, as the Agent runs it; an error it reports becomes a `CliError`."""
    error = check.run()
    if error:
        try:
            message = json.loads(error)[0]['message']
        except (ValueError, LookupError, TypeError):
            message = error
        # This command runs once: there is no next run to resume in.
        message = _one_line(message).replace('; collection resumes next run', '')
        raise CliError(message)


def _one_line(text: str) -> str:
    return ' '.join(str(text).split())


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, '********')
    return text


# conf.yaml ------------------------------------------------------------------------------------


def load_conf(path: str, index: int) -> tuple[dict, dict]:
    """`init_config` and instance `index` of a conf.yaml, or a `CliError` that says what is wrong."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        raise CliError('{}: no such file'.format(path)) from None
    except IsADirectoryError:
        raise CliError('{}: is a directory, not a conf.yaml'.format(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CliError('cannot read {}: {}'.format(path, getattr(e, 'strerror', None) or e)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        # Only the problem and its position: YAML's own message quotes the file, which may hold keys.
        mark = getattr(e, 'problem_mark', None)
        problem = getattr(e, 'problem', None) or type(e).__name__
        where = ' at line {}, column {}'.format(mark.line + 1, mark.column + 1) if mark is not None else ''
        raise CliError('{} is not valid YAML: {}{}'.format(path, problem, where)) from None
    if not isinstance(data, dict):
        raise CliError('{} must be a YAML mapping with `init_config` and `instances`'.format(path))
    init_config = data.get('init_config') or {}
    if not isinstance(init_config, dict):
        raise CliError('{}: `init_config` must be a mapping (or empty)'.format(path))
    instances = data.get('instances')
    if not isinstance(instances, list) or not instances:
        raise CliError('{} has no instances: add an `instances` list with at least one instance'.format(path))
    if index >= len(instances):
        raise CliError(
            '{} has {} instance{} (0 to {}); there is no instance {}'.format(
                path, len(instances), '' if len(instances) == 1 else 's', len(instances) - 1, index
            )
        )
    instance = instances[index]
    if not isinstance(instance, dict):
        raise CliError('instance {} of {} must be a mapping of options'.format(index, path))
    for option in SECRET_OPTIONS:
        value = instance.get(option)
        if isinstance(value, str) and value.strip().startswith('ENC['):
            raise CliError(
                '`{}` is an ENC[] secret, which only the Agent can decrypt; for a dry run, use a copy of the '
                'file with the key itself'.format(option)
            )
    return init_config, instance


# What the stubs received ----------------------------------------------------------------------


def _transition(event: dict) -> str:
    return next((t.split(':', 1)[1] for t in event.get('tags', []) if t.startswith('transition:')), '')


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


def _incident_row(incident: Any, mapping: Any, *, filtered_by: str | None) -> dict[str, Any]:
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
            'services': list(mapping.services),
            'team': mapping.team,
            'env': mapping.env,
            'severity': mapping.severity,
        },
        'counted': filtered_by is None,
        'filtered_by': filtered_by,
    }


def _filtered_by(incident: Any, urgencies: Sequence[str] | None, priorities: Sequence[str] | None) -> str | None:
    """Why `urgencies` / `priorities` leave the incident out (None when it counts as a failure)."""
    from .mapping import passes_filters

    if passes_filters(incident, urgencies=urgencies, priorities=None):
        if passes_filters(incident, urgencies=None, priorities=priorities):
            return None
        return 'priority {}'.format(incident.priority or 'none')
    return '{} urgency'.format(incident.urgency)


def _rules(rows: list[dict]) -> dict[str, int]:
    from .mapping import RULES

    counts = Counter(r['mapping']['rule'] for r in rows)
    return {rule: counts[rule] for rule in RULES if counts[rule]}


def _example_failure(failures: list[dict]) -> dict | None:
    """The most telling payload: one with services, team and `finished_at`, else any."""
    for wanted in (('services', 'team', 'finished_at'), ('finished_at',), ()):
        for failure in failures:
            if all(key in failure for key in wanted):
                return failure
    return None


# --demo ----------------------------------------------------------------------------------------


def run_demo() -> dict[str, Any]:
    """Run the check `DEMO_RUNS` times against the demo world, with live changes between runs."""
    from .simulator import demo

    aggregator, datadog_agent = _agent_stubs()
    aggregator.reset()
    datadog_agent.reset()
    runs: list[dict[str, Any]] = []
    mappings: dict[str, tuple[Any, Any]] = {}
    warnings: list[str] = []
    with demo.DemoWorld() as world:
        instance = world.instance()
        check = _new_check({}, instance)
        # The check runs on the account's clock, so four runs five minutes apart take a second.
        check.clock = lambda: world.account.now
        check.monotonic = lambda: world.account.now
        _initialize(check)
        if check.collector is not None:
            check.collector.keep_mappings = True
        for number in range(1, DEMO_RUNS + 1):
            changes = []
            if number > 1:
                for change, _incident_id in world.apply(number - 2):
                    changes.append(
                        {
                            'at': format_time(world.account.now - demo.RUN_INTERVAL + demo.CHANGE_DELAY),
                            'incident_number': world.demo.number(change.incident),
                            'title': change.incident,
                            'change': change.description,
                        }
                    )
            events_before, posts_before = len(aggregator.events), len(world.dora.posts)
            _collect(check)
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
                    'events': len(aggregator.events) - events_before,
                    'dora_posts': len(world.dora.posts) - posts_before,
                    'warnings': run_warnings,
                }
            )
        first_run_at = demo.START
        transitions: dict[str, list[str]] = {}
        for event in aggregator.events:
            transitions.setdefault(event['aggregation_key'], []).append(_transition(event))
        rows = []
        for incident, mapping in sorted(mappings.values(), key=lambda pair: pair[0].number):
            row = _incident_row(incident, mapping, filtered_by=_filtered_by(incident, instance['urgencies'], None))
            row['live_transitions'] = transitions.get(incident.id, [])
            row['reopened'] = 'reopened' in row['live_transitions']
            row['history'] = incident.resolved_at is not None and incident.resolved_at < first_run_at
            row['dora_failure'] = world.dora.failures.get(_failure_id(incident.id))
            rows.append(row)
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
            'rules': _rules(rows),
            'dora_failures': {
                'count': len(world.dora.failures),
                'posts': len(world.dora.posts),
                'rejected': len(world.dora.rejected),
                'example': _example_failure(list(world.dora.failures.values())),
            },
            'events': {
                'count': len(events),
                'by_transition': dict(Counter(_transition(e) for e in events)),
                'titles': [e['msg_title'] for e in events],
                'example': events[0] if events else None,
            },
            'attribution': _demo_attribution(world, events),
            'metrics': metric_summaries(aggregator),
            'warnings': warnings,
        }
    return result


def _demo_attribution(world: Any, events: list[dict]) -> list[dict[str, Any]]:
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


def _failure_id(incident_id: str) -> str:
    from .dora import failure_id

    return failure_id(incident_id)


# --config --dry-run ---------------------------------------------------------------------------


def run_dry(init_config: dict, instance: dict, path: str, index: int) -> dict[str, Any]:
    """One collection for `instance`, with DORA delivery off and every persistent-cache write dropped."""
    from .dora import build_failure

    aggregator, datadog_agent = _agent_stubs()
    # The instance as written goes through the Agent's own validation first: the dry run refuses
    # what the Agent refuses, with the same message, before any option is turned off below.
    agent_check = _new_check(dict(init_config), dict(instance))
    agent_check.write_persistent_cache = _no_write
    _initialize(agent_check)
    agent_config = agent_check.config
    wanted_dora = bool(agent_config.submit_dora_failures)
    aggregator.reset()
    datadog_agent.reset()
    # A copy, so the instance shown in errors and the user's file stay as written.
    dry_instance = dict(instance, submit_dora_failures=False, attribute_change_failures=False)
    check = _new_check(dict(init_config), dry_instance)
    # Nothing a dry run sees may be stored: a later real run must start from what the Agent knows.
    check.write_persistent_cache = _no_write
    _initialize(check)
    if check.collector is not None:
        check.collector.persist = False
        check.collector.keep_mappings = True
    _collect(check)
    report = check.last_report
    warnings = check.get_warnings()
    _raise_on_auth_failure(aggregator, warnings)
    if report is None:
        raise CliError('the run produced no report')
    if report.stopped == 'catalog':
        raise CliError(
            'no catalog source loaded, so nothing would be mapped or submitted: {}'.format(
                '; '.join(warnings) or 'see --verbose'
            )
        )
    config = check.config
    urgencies = list(config.urgencies) if config.urgencies else None
    priorities = list(config.priorities) if config.priorities else None
    skip_unmapped = config.unmapped_incidents == 'skip'
    rows = []
    for incident, mapping in sorted(report.mappings.values(), key=lambda pair: -pair[0].created_at):
        row = _incident_row(incident, mapping, filtered_by=_filtered_by(incident, urgencies, priorities))
        row['unmapped_skipped'] = bool(row['counted'] and skip_unmapped and mapping.rule == FALLBACK_RULE)
        sent = row['counted'] and wanted_dora and not row['unmapped_skipped']
        row['dora_failure'] = build_failure(incident, mapping) if sent else None
        rows.append(row)
    failures = [r['dora_failure'] for r in rows if r['dora_failure'] is not None]
    unmapped = [r for r in rows if r['unmapped_skipped']]
    attribution = None
    if agent_config.attribute_change_failures:
        attribution = preview_attribution(check, agent_config, rows, report.mappings)
        warnings = warnings + [w for w in check.get_warnings() if w not in warnings]
    return {
        'mode': 'dry_run',
        'config': path,
        'instance': index,
        'pagerduty_api_url': config.pagerduty_api_url,
        'env': config.env,
        'first_run': True,
        'stopped': report.stopped,
        'pages': report.pages,
        'skipped': report.skipped,
        'incidents': rows,
        'rules': _rules(rows),
        'dora_failures': {
            'enabled': wanted_dora,
            'count': len(failures),
            'example': _example_failure(failures),
        },
        'unmapped_incidents': {
            'option': config.unmapped_incidents,
            'skipped': len(unmapped),
            'incidents': [
                {'number': r['number'], 'title': r['title'], 'pagerduty_service': r['pagerduty_service']}
                for r in unmapped
            ],
        },
        'attribution': attribution,
        'catalog_files': catalog_file_report(check),
        # The Agent would send these; here they stay in this process.
        'events': {
            'count': len(aggregator.events),
            'titles': [e['msg_title'] for e in aggregator.events],
            'note': FIRST_RUN_NOTE,
        },
        'metrics': metric_summaries(aggregator),
        'warnings': warnings,
    }


def preview_attribution(check: Any, config: Any, rows: list[dict], mappings: dict) -> dict[str, Any]:
    """Per counted incident, the deployment attribution would mark and the remediation it would record.

    Reads the DORA deployments API with the check's own Datadog client; nothing is written. The most
    recent `ATTRIBUTION_ROWS` incidents are previewed, to keep the number of searches bounded.
    """
    from .attribution import ChangeFailureAttribution

    assert config.attribution_window is not None
    attribution = ChangeFailureAttribution(
        check.datadog_api,
        window=config.attribution_window,
        min_severity=config.attribution_min_severity,
        read_cache=lambda key: '',
        write_cache=_no_write,
        log=check.log,
        count=lambda name, value, tags: None,
        warning=check.warning,
    )
    check.datadog_api.start_run(check.monotonic() + ATTRIBUTION_SECONDS)
    counted = [r for r in rows if r['counted'] and not r['unmapped_skipped']]
    previews = []
    for row in counted[:ATTRIBUTION_ROWS]:
        incident, mapping = mappings[row['id']]
        preview = attribution.preview(incident, mapping)
        row['attribution'] = preview
        previews.append(dict(preview, number=row['number'], title=row['title']))
    return {
        'window': config.attribution_window,
        'min_severity': config.attribution_min_severity,
        'previewed': len(previews),
        'not_previewed': max(0, len(counted) - len(previews)),
        'marked': sum(1 for p in previews if p['deployment']),
        'incidents': previews,
    }


def _no_write(key: str, value: str) -> None:
    """A persistent-cache write that stores nothing."""


def _raise_on_auth_failure(aggregator: Any, warnings: list[str]) -> None:
    """A rejected key is reported by the check as `api.can_connect` 0 and a warning: here it is an error."""
    for metric in aggregator.metrics(METRIC_PREFIX + 'api.can_connect'):
        if metric.value == 0:
            api = next((t.split(':', 1)[1] for t in metric.tags if t.startswith('api:')), 'the API')
            named = 'PagerDuty' if api == 'pagerduty' else 'Datadog'
            message = next((w for w in reversed(warnings) if named in w), None)
            raise CliError(message or 'could not connect to {} (api.can_connect is 0)'.format(named))


# Text rendering -------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    from .events import format_duration

    return '-' if seconds is None else format_duration(seconds)


def _clip(text: str, width: int) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + '~'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = '  ') -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in [headers, *rows]:
        lines.append(indent + '  '.join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return lines


def _incident_table(rows: list[dict], note: Callable[[dict], str]) -> list[str]:
    headers = ('#', 'title', 'status', 'rule', 'service', 'team', 'env', 'severity', 'restored in', 'note')
    cells = []
    for row in rows:
        mapping = row['mapping']
        cells.append(
            (
                str(row['number']),
                _clip(row['title'], TITLE_WIDTH),
                row['status'],
                mapping['rule'],
                ','.join(mapping['services']) or '-',
                mapping['team'] or '-',
                mapping['env'] or '-',
                mapping['severity'] or '-',
                _duration(row['time_to_restore']),
                note(row),
            )
        )
    return _table(headers, cells)


def _metric_lines(metrics: list[dict]) -> list[str]:
    cells = []
    for metric in metrics:
        if 'samples' in metric:
            values = metric['samples']
            timed = metric['name'].startswith(METRIC_PREFIX + 'incidents.time_to')
            shown = ', '.join(_duration(v) if timed else _number(v) for v in values[:6])
            value = 'samples: {}{}'.format(shown, ', ...' if len(values) > 6 else '')
        elif 'latest' in metric:
            series = ' (sum of {} series)'.format(metric['series']) if metric['series'] > 1 else ''
            value = 'latest: {}{}'.format(_number(metric['latest']), series)
        else:
            value = 'total: {}'.format(_number(metric['total']))
        cells.append((metric['name'], metric['type'], str(metric['submissions']), value))
    return _table(('metric', 'type', 'submitted', 'value'), cells)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else '{:.2f}'.format(value)


def _clock(iso: str) -> str:
    return iso[11:16]


def _json_block(value: Any, indent: str = '    ') -> list[str]:
    return [indent + line for line in json.dumps(value, indent=2, ensure_ascii=False).splitlines()]


def _plural(count: int, word: str) -> str:
    return '{} {}{}'.format(count, word, '' if count == 1 else 's')


def render_demo(result: dict) -> str:
    """The demo for people: the runs and changes, one row per incident, then what was submitted."""
    options = result['options']
    out = [
        'pagerduty_dora demo: the real check, run {} times against a simulated PagerDuty account'.format(
            len(result['runs'])
        ),
        'and Datadog API served on 127.0.0.1. No credentials; nothing leaves this machine.',
        'Simulated time starts {} UTC. Instance options: env {}, urgencies [{}],'.format(
            result['start'][:16].replace('T', ' '), options['env'], ', '.join(options['urgencies'])
        ),
        'backfill_days {}, service_overrides {}.'.format(
            options['backfill_days'],
            ', '.join('{} -> {}'.format(o['pagerduty_service'], o['service']) for o in options['service_overrides']),
        ),
        '',
    ]
    for run in result['runs']:
        if run['changes']:
            out.append('  {}  changes in PagerDuty:'.format(_clock(run['changes'][0]['at'])))
            for change in run['changes']:
                out.append('         #{} {}: {}'.format(change['incident_number'], change['title'], change['change']))
        summary = '{} seen, {}, {}'.format(
            _plural(run['incidents_seen'], 'incident'),
            _plural(run['dora_posts'], 'DORA failure post'),
            _plural(run['events'], 'event'),
        )
        if run['first_run']:
            summary += ' (a first run records history and open incidents; events start next run)'
        out.append('  {}  run {}: {}'.format(_clock(run['at']), run['run'], summary))
    out += ['', 'Incidents after the last run (one row per incident; rule = the mapping rule that decided):']

    def note(row: dict) -> str:
        notes = []
        if row['filtered_by']:
            notes.append('not counted: ' + row['filtered_by'])
        if row['reopened']:
            notes.append('reopened')
        if row['history']:
            notes.append('history: DORA only')
        if row['priority'] is None:
            notes.append('no priority')
        return '; '.join(notes)

    out += _incident_table(result['incidents'], note)
    out.append('  Rules used: {}'.format(', '.join('{} {}'.format(k, v) for k, v in result['rules'].items())))

    dora = result['dora_failures']
    out += [
        '',
        'DORA failures (POST /api/v2/dora/failure): {} incidents, {} posts; an incident is sent again when it '
        'changes, under the same id.'.format(dora['count'], dora['posts']),
    ]
    if dora['example'] is not None:
        out.append('  Example (times are Unix nanoseconds):')
        out += _json_block(dora['example'])
    events = result['events']
    out += [
        '',
        'Agent events: {} ({}):'.format(
            events['count'], ', '.join('{} {}'.format(k, v) for k, v in events['by_transition'].items())
        ),
    ]
    out += ['  ' + title for title in events['titles'][:12]]
    out += [
        '',
        'Change-failure attribution (attribute_change_failures: true; PATCH /api/v2/dora/deployments/{id}):',
    ]
    for item in result['attribution']:
        out.append(
            '  {} ({} {} in {}) marked as a change failure, for {}'.format(
                item['deployment'], item['service'], item['version'], item['env'], item['incident'] or 'an incident'
            )
        )
        if item['remediation']:
            out.append('    remediation: {} by {}'.format(item['remediation']['type'], item['remediation']['id']))
    if not result['attribution']:
        out.append('  none')
    out += ['', 'Metrics submitted over the {} runs:'.format(len(result['runs']))]
    out += _metric_lines(result['metrics'])
    if result['warnings']:
        out += ['', 'Warnings:'] + ['  ' + w for w in result['warnings']]
    out += [
        '',
        'Next: run `{} --config conf.yaml --dry-run` to see how your own incidents map.'.format(PROG),
    ]
    return '\n'.join(out) + '\n'


def render_dry_run(result: dict) -> str:
    """The dry run for people: the mapping of each incident and what the check would submit."""
    rows = result['incidents']
    out = [
        'pagerduty_dora dry run: {} instance {} ({}{})'.format(
            result['config'],
            result['instance'],
            result['pagerduty_api_url'],
            ', env {}'.format(result['env']) if result['env'] else '',
        ),
        'Nothing was submitted and no state was stored.',
        '',
        'Incidents ({} seen: the open ones and the backfill window of this first run){}:'.format(
            len(rows), ', most recent {} shown; --json lists all'.format(TEXT_ROWS) if len(rows) > TEXT_ROWS else ''
        ),
    ]
    if rows:
        out += _incident_table(rows[:TEXT_ROWS], _dry_note)
        out.append('  Rules used: {}'.format(', '.join('{} {}'.format(k, v) for k, v in result['rules'].items())))
    else:
        out.append('  none')
    if result['stopped']:
        out.append(
            '  The run stopped early ({}); the Agent would continue from there on its next run.'.format(
                result['stopped']
            )
        )
    if result['skipped']:
        out.append('  {} malformed incident(s) skipped (see warnings).'.format(result['skipped']))
    out += _catalog_file_lines(result.get('catalog_files') or [])
    dora = result['dora_failures']
    out.append('')
    if dora['enabled']:
        out.append('DORA failures that would be sent (POST /api/v2/dora/failure): {}'.format(dora['count']))
        if dora['example'] is not None:
            out.append('  Example (times are Unix nanoseconds):')
            out += _json_block(dora['example'])
    else:
        out.append('DORA failures: none would be sent (submit_dora_failures is false in this instance).')
    unmapped = result['unmapped_incidents']
    if unmapped['skipped']:
        out += [
            '',
            'Unmapped incidents not sent (unmapped_incidents: skip; they reached the fallback rule): {}'.format(
                unmapped['skipped']
            ),
        ]
        out += [
            '  #{} {} (PagerDuty service {})'.format(
                i['number'], _clip(i['title'], TITLE_WIDTH), i['pagerduty_service']
            )
            for i in unmapped['incidents'][:TEXT_ROWS]
        ]
    if result['attribution'] is not None:
        out += [''] + _attribution_lines(result['attribution'])
    events = result['events']
    if events['count']:
        out += ['', 'Agent events this run produced (kept in this process, not sent): {}'.format(events['count'])]
        out += ['  ' + title for title in events['titles'][:12]]
    else:
        out += ['', 'Agent events: none. ' + FIRST_RUN_NOTE]
    out += ['', 'Metrics this run produced (kept in this process, not sent):']
    out += _metric_lines(result['metrics']) if result['metrics'] else ['  none']
    if result['warnings']:
        out += ['', 'Warnings (the Agent status page would show these):'] + ['  ' + w for w in result['warnings']]
    return '\n'.join(out) + '\n'


def _attribution_lines(attribution: dict) -> list[str]:
    """The attribution preview: per incident, the deployment that would be marked and the remediation."""
    out = [
        'Change-failure attribution preview (deployments read, nothing written): {} of {} incidents would '
        'mark a deployment.'.format(attribution['marked'], attribution['previewed']),
        '  The Agent attributes incidents as they are triggered, from its second run on; history is not attributed.',
    ]
    if attribution['not_previewed']:
        out.append('  {} older incidents not previewed.'.format(attribution['not_previewed']))
    cells = []
    for item in attribution['incidents']:
        deployment = item['deployment']
        marked = '-'
        if deployment:
            marked = '{} {} {}'.format(
                deployment['id'], deployment['version'] or '-', format_time(deployment['finished_at'])
            )
        remediation = item['remediation']
        fix = '-'
        if remediation:
            fix = '{} by {} ({})'.format(
                remediation['type'], remediation['deployment']['id'], remediation['deployment']['version'] or '-'
            )
        cells.append(
            (
                str(item['number']),
                _clip(item['title'], TITLE_WIDTH),
                item['outcome'] or '-',
                marked,
                fix,
                _clip(item['note'], 60) if item['note'] else '',
            )
        )
    if cells:
        out += _table(('#', 'title', 'outcome', 'would mark (id version finished)', 'remediation', 'note'), cells)
    return out


def catalog_file_report(check: Any) -> list[dict[str, Any]]:
    """Per `catalog_files` file (and pattern matching none): the entries it gave and why any were skipped."""
    collector = getattr(check, 'collector', None)
    store = getattr(collector, 'catalog', None)
    return store.file_report() if store is not None else []


def _catalog_file_lines(files: list[dict]) -> list[str]:
    """The per-file part of the dry run, so a file that gives nothing is seen before the Agent runs."""
    if not files:
        return []
    cells = [(f.get('file') or f.get('pattern', ''), str(f['entries']), '; '.join(f['skipped']) or '-') for f in files]
    return ['', 'Catalog files (entries each gave to the catalog, and why any were skipped):'] + _table(
        ('file', 'entries', 'skipped'), cells
    )


def _dry_note(row: dict) -> str:
    notes = ['not counted: ' + row['filtered_by']] if row['filtered_by'] else []
    if row.get('unmapped_skipped'):
        notes.append('not sent: unmapped')
    if row['priority'] is None:
        notes.append('no priority')
    return '; '.join(notes)
