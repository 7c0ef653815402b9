# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The text view of the command line: the demo and the dry run for people, as tables and short lines.

`--json` prints the same results as they are; this module only lays them out.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from datadog_checks.pagerduty_dora.common.text import clip, one_line
from datadog_checks.pagerduty_dora.common.times import format_time

from .dry_run import FIRST_RUN_NOTE
from .results import METRIC_PREFIX
from .standalone import PROG

# The text view lists this many incidents, most recent first; `--json` lists them all.
TEXT_ROWS = 50
# The dry run from a clone: it sets up the clone's own environment, as `scripts/demo` does.
DRY_RUN_SCRIPT = 'scripts/dry-run conf.yaml'
TITLE_WIDTH = 34


def _duration(seconds: float | None) -> str:
    from datadog_checks.pagerduty_dora.datadog.events import format_duration

    return '-' if seconds is None else format_duration(seconds)


def _cell(text: str, width: int) -> str:
    """Text on one line, cut to `width` with `~` marking the cut."""
    return clip(one_line(text), width, mark='~')


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = '  ') -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in [headers, *rows]:
        lines.append(indent + '  '.join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return lines


def _incident_table(rows: list[dict], note: Callable[[dict], str]) -> list[str]:
    headers = ('#', 'title', 'status', 'rule', 'monitor', 'service', 'team', 'env', 'severity', 'restored in', 'note')
    cells = []
    for row in rows:
        mapping = row['mapping']
        cells.append(
            (
                str(row['number']),
                _cell(row['title'], TITLE_WIDTH),
                row['status'],
                mapping['rule'],
                str(mapping.get('monitor_id') or '-'),
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
    out = _demo_intro(result)
    out += _demo_run_lines(result['runs'])
    out += ['', 'Incidents after the last run (one row per incident; rule = the mapping rule that decided):']
    out += _incident_table(result['incidents'], _demo_note)
    out.append(_rules_line(result['rules']))
    dora = result['dora_failures']
    out += [
        '',
        'DORA failures (POST /api/v2/dora/failure): {} incidents, {} posts; an incident is sent again when it '
        'changes, under the same id.'.format(dora['count'], dora['posts']),
    ]
    out += _example_lines(dora['example'])
    events = result['events']
    out += [
        '',
        'Agent events: {} ({}):'.format(
            events['count'], ', '.join('{} {}'.format(k, v) for k, v in events['by_transition'].items())
        ),
    ]
    out += ['  ' + title for title in events['titles'][:12]]
    out += _demo_attribution_lines(result['attribution'])
    out += ['', 'Metrics submitted over the {} runs:'.format(len(result['runs']))]
    out += _metric_lines(result['metrics'])
    if result['warnings']:
        out += ['', 'Warnings:'] + ['  ' + w for w in result['warnings']]
    out += [
        '',
        'Next: see how your own incidents map, with a copy of your conf.yaml (nothing is sent, nothing stored):',
        '  {}   from a clone of the repository'.format(DRY_RUN_SCRIPT),
        '  {} --config conf.yaml --dry-run   where the integration is installed'.format(PROG),
    ]
    return '\n'.join(out) + '\n'


def _demo_intro(result: dict) -> list[str]:
    """What the demo is, where simulated time starts and the options of its instance."""
    options = result['options']
    return [
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


def _demo_run_lines(runs: list[dict]) -> list[str]:
    """Per run: the changes made in PagerDuty before it, then what it saw and sent."""
    out = []
    for run in runs:
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
    return out


def _demo_note(row: dict) -> str:
    """The note column of a demo incident row."""
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


def _demo_attribution_lines(attribution: list[dict]) -> list[str]:
    """The deployments the demo marked as change failures, each with its remediation."""
    out = ['', 'Change-failure attribution (attribute_change_failures: true; PATCH /api/v2/dora/deployments/{id}):']
    for item in attribution:
        out.append(
            '  {} ({} {} in {}) marked as a change failure, for {}'.format(
                item['deployment'], item['service'], item['version'], item['env'], item['incident'] or 'an incident'
            )
        )
        if item['remediation']:
            out.append('    remediation: {} by {}'.format(item['remediation']['type'], item['remediation']['id']))
    if not attribution:
        out.append('  none')
    return out


def _rules_line(rules: dict[str, int]) -> str:
    return '  Rules used: {}'.format(', '.join('{} {}'.format(k, v) for k, v in rules.items()))


def _example_lines(example: dict | None) -> list[str]:
    """A DORA failure payload, as JSON, when there is one."""
    if example is None:
        return []
    return ['  Example (times are Unix nanoseconds):'] + _json_block(example)


def render_dry_run(result: dict) -> str:
    """The dry run for people: the mapping of each incident and what the check would submit."""
    out = [
        'pagerduty_dora dry run: {} instance {} ({}{})'.format(
            result['config'],
            result['instance'],
            result['pagerduty_api_url'],
            ', env {}'.format(result['env']) if result['env'] else '',
        ),
        'Nothing was submitted and no state was stored.',
    ]
    if result['warnings']:
        # First, whatever follows: an unknown option name or a missing `env` may explain the rest.
        out += ['', 'Warnings (the Agent status page would show these):'] + ['  ' + w for w in result['warnings']]
    out += _dry_incident_lines(result)
    out += _catalog_file_lines(result.get('catalog_files') or [])
    out += _dry_dora_lines(result['dora_failures'])
    out += _unmapped_lines(result['unmapped_incidents'])
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
    out += ['', _datadog_line(result['datadog_api'])]
    out += _permission_lines(result.get('permissions') or [])
    return '\n'.join(out) + '\n'


def _permission_lines(rows: list[dict]) -> list[str]:
    """The permissions of `datadog_app_key` the configuration uses, each read once, and what lacks one."""
    if not rows:
        return []
    out = ['', 'Permissions of `datadog_app_key` this configuration uses (one read each, nothing written):']
    out += _table(
        ('permission', 'result', 'used by'),
        [(r['permission'], r['status'], '; '.join(r['features'])) for r in rows],
    )
    lacking = [r for r in rows if r['status'] in ('missing', 'refused')]
    if lacking:
        out.append(
            '  Missing: {}. See the README\'s "Application key permissions" for what stops without them.'.format(
                ', '.join('{} ({})'.format(r['permission'], r['detail']) for r in lacking)
            )
        )
    return out


def _dry_incident_lines(result: dict) -> list[str]:
    """The incidents the dry run saw, the most recent `TEXT_ROWS`, and whether the run stopped early."""
    rows = result['incidents']
    out = [
        '',
        'Incidents ({} seen: the open ones and the backfill window of this first run){}:'.format(
            len(rows), ', most recent {} shown; --json lists all'.format(TEXT_ROWS) if len(rows) > TEXT_ROWS else ''
        ),
    ]
    if rows:
        out += _incident_table(rows[:TEXT_ROWS], _dry_note)
        out.append(_rules_line(result['rules']))
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
    return out


def _dry_dora_lines(dora: dict) -> list[str]:
    """How many DORA failures the Agent would send, with an example; or that it sends none."""
    if not dora['enabled']:
        return ['', 'DORA failures: none would be sent (submit_dora_failures is false in this instance).']
    out = ['', 'DORA failures that would be sent (POST /api/v2/dora/failure): {}'.format(dora['count'])]
    return out + _example_lines(dora['example'])


def _unmapped_lines(unmapped: dict) -> list[str]:
    """The incidents `unmapped_incidents: skip` leaves out, when there are any."""
    if not unmapped['skipped']:
        return []
    out = [
        '',
        'Unmapped incidents not sent (unmapped_incidents: skip; they reached the fallback rule): {}'.format(
            unmapped['skipped']
        ),
    ]
    out += [
        '  #{} {} (PagerDuty service {})'.format(i['number'], _cell(i['title'], TITLE_WIDTH), i['pagerduty_service'])
        for i in unmapped['incidents'][:TEXT_ROWS]
    ]
    return out


def _datadog_line(datadog: dict) -> str:
    """What the dry run found of the Datadog API the Agent would send DORA failures to."""
    if not datadog['checked']:
        return 'Datadog API ({}): {}.'.format(datadog['url'], datadog['note'])
    if datadog.get('error'):
        return 'Datadog API ({}): {}.'.format(datadog['url'], datadog['error'])
    return 'Datadog API ({}): it answers (GET /api/v1/validate, nothing written); {}.'.format(
        datadog['url'], datadog['note']
    )


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
                _cell(item['title'], TITLE_WIDTH),
                item['outcome'] or '-',
                marked,
                fix,
                _cell(item['note'], 60) if item['note'] else '',
            )
        )
    if cells:
        out += _table(('#', 'title', 'outcome', 'would mark (id version finished)', 'remediation', 'note'), cells)
    return out


def _catalog_file_lines(files: list[dict]) -> list[str]:
    """The per-file part of the dry run, so a file that gives nothing is seen before the Agent runs."""
    if not files:
        return []
    cells = [(f.get('file') or f.get('pattern', ''), str(f['entries']), '; '.join(f['skipped']) or '-') for f in files]
    out = ['', 'Catalog files (entries each gave to the catalog, and why any were skipped):'] + _table(
        ('file', 'entries', 'skipped'), cells
    )
    # A misspelt key leaves its entry in the catalog without what the key held: said under the table.
    for f in files:
        out += ['  {}: {}'.format(f.get('file'), line) for line in f.get('unknown_keys') or []]
    return out


def _dry_note(row: dict) -> str:
    notes = ['not counted: ' + row['filtered_by']] if row['filtered_by'] else []
    if row.get('unmapped_skipped'):
        notes.append('not sent: unmapped')
    if row['priority'] is None:
        notes.append('no priority')
    return '; '.join(notes)
