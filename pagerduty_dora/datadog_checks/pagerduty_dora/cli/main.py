# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`python -m datadog_checks.pagerduty_dora`: the check without an Agent.

`--demo` runs the real check against a simulated PagerDuty account and Datadog API on loopback;
`--config conf.yaml --dry-run` runs one collection against a real account and prints the mapping of
every incident and what would be submitted, submitting nothing and storing nothing.

This module reads the arguments and the conf.yaml, runs the mode (`demo_run.py`, `dry_run.py`) and
prints its result as JSON or as text (`render.py`), with every error as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import NoReturn, Sequence

import yaml

from datadog_checks.pagerduty_dora.common.text import one_line

from .demo import run_demo
from .dry_run import run_dry
from .probes import missing
from .render import render_demo, render_dry_run
from .standalone import PROG, CliError

EXIT_ERROR = 1
EXIT_USAGE = 2
SECRET_OPTIONS = ('api_token', 'datadog_api_key', 'datadog_app_key')

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
  {prog} --config conf.yaml --dry-run --strict

the dry run checks the Datadog API DORA failures would be sent to (GET /api/v1/validate, which
writes nothing), and reads once with each permission of `datadog_app_key` the instance uses. Outside
the Agent it reads the Agent's `api_key` and `site` from DD_API_KEY and DD_SITE, for an instance
without `datadog_api_key`.

exit status: 0 on success, 1 on an error (unreadable conf.yaml, no such instance, invalid option,
rejected credentials, unreachable API, nothing that could be submitted: whenever the Agent would
report a CRITICAL service check; with --strict, also any warning, such as a misspelled option name,
which the Agent ignores, and a permission `datadog_app_key` lacks), 2 on a usage error. Errors are
one line on stderr, after the warnings of the check (`warning:` lines), which come first. When
PagerDuty answered, the mapping is printed even if the Datadog API then fails.
""".format(prog=PROG)


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
    parser.add_argument(
        '--strict',
        action='store_true',
        help='with --config: exit 1 when the check warns, e.g. of a misspelled option name the Agent would ignore',
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
    if args.demo and (args.dry_run or args.instance != 0 or args.strict):
        parser.error('--dry-run, --instance and --strict go with --config, not --demo')
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
        sys.stdout.write(redact(output, secrets))
        error = verdict(result, strict=args.strict)
        if error:
            # After the report: what PagerDuty gave is shown even when the Agent would report an error.
            sys.stderr.write('{}: error: {}\n'.format(PROG, redact(one_line(error), secrets)))
            return EXIT_ERROR
        return 0
    except CliError as e:
        # What the check warned about comes first: an unknown option name may be why the run failed.
        for warning in e.warnings:
            sys.stderr.write('{}: warning: {}\n'.format(PROG, redact(one_line(warning), secrets)))
        sys.stderr.write('{}: error: {}\n'.format(PROG, redact(one_line(str(e)), secrets)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write('{}: interrupted\n'.format(PROG))
        return 130


def verdict(result: dict, *, strict: bool) -> str | None:
    """The error of a run that collected: what the Agent would report as CRITICAL, or, with `--strict`, a warning."""
    if result.get('error'):
        return result['error']
    if not strict:
        return None
    warnings = result.get('warnings') or []
    if warnings:
        return '--strict: the check warned {} time{} (see the warnings above); the Agent would run it'.format(
            len(warnings), '' if len(warnings) == 1 else 's'
        )
    lacking = missing(result.get('permissions') or [])
    if lacking:
        return '--strict: `datadog_app_key` lacks {} (see the permissions above); the Agent would run it'.format(
            ', '.join('`{}`'.format(p) for p in lacking)
        )
    return None


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(levelname)s %(name)s: %(message)s')
    else:
        # Warnings the user must see are printed with the results; the log itself stays quiet.
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL)


# A secret is masked where it stands whole: not inside a longer word of these characters, so a short
# key (`k`) leaves `backfill` and `api_token` as written. A key of `_MASKED_ANYWHERE` characters or
# more is masked wherever it appears, since no other word holds it by chance.
_WORD_CHARACTER = r'[\w+-]'
_MASKED_ANYWHERE = 12


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every occurrence of a secret value, as a whole value, replaced by `********`."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MASKED_ANYWHERE:
            text = text.replace(secret, '********')
        else:
            pattern = r'(?<!{0}){1}(?!{0})'.format(_WORD_CHARACTER, re.escape(secret))
            text = re.sub(pattern, '********', text)
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
