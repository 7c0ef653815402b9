# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`--config conf.yaml --dry-run`: one collection against the real APIs an instance names, with
nothing submitted and nothing stored; returns the mapping of every incident and what the Agent would
have sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from datadog_checks.pagerduty_dora.catalog.qualification import Qualification

from .probes import probe_permissions
from .results import METRIC_PREFIX, example_failure, incident_row, metric_summaries, rule_counts
from .standalone import CliError, agent_settings, agent_stubs, collect, initialize, new_check, no_write

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.check import PagerdutyDoraCheck
    from datadog_checks.pagerduty_dora.config_models.instance import InstanceConfig

# The dry run previews attribution for at most this many incidents, within this many seconds.
ATTRIBUTION_ROWS = 50
ATTRIBUTION_SECONDS = 60.0
# Datadog's API key check (read-only), and how long the dry run waits for it.
VALIDATE_PATH = '/api/v1/validate'
VALIDATE_SECONDS = 30.0
FIRST_RUN_NOTE = (
    'A dry run is a first run (empty state): the Agent records what it finds on its first run and '
    'emits events and transition metrics only for changes it sees from its second run on.'
)


def run_dry(init_config: dict, instance: dict, path: str, index: int) -> dict[str, Any]:
    """One collection for `instance`, with DORA delivery off and every persistent-cache write dropped."""
    aggregator, datadog_agent = agent_stubs()
    agent_config = _agent_config(init_config, instance, aggregator, datadog_agent)
    wanted_dora = bool(agent_config.submit_dora_failures)
    check = _dry_check(init_config, instance)
    # A run the Agent would end with an error (a CRITICAL service check) is an error here, with its message.
    collect(check)
    report = check.last_report
    warnings = check.get_warnings()
    _raise_on_critical(aggregator, warnings)
    if report is None:
        raise CliError('the run produced no report', warnings)
    datadog = check_datadog_api(check, agent_config)
    # Read with `datadog_app_key` once per permission the configuration uses, when the API answers at all.
    permissions = [] if datadog.get('error') else probe_permissions(check.datadog_api, agent_config, check.monotonic)
    config = check.config
    qualification = qualification_of(config)
    rows = incident_rows(report.mappings, qualification, wanted_dora=wanted_dora)
    attribution = None
    if agent_config.attribute_change_failures and not datadog.get('error'):
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
        'rules': rule_counts(rows),
        'dora_failures': _dora_failures(rows, wanted_dora),
        'unmapped_incidents': _unmapped_incidents(rows, qualification.unmapped_incidents),
        'attribution': attribution,
        'datadog_api': datadog,
        'permissions': permissions,
        'catalog_files': catalog_file_report(check),
        # The Agent would send these; here they stay in this process.
        'events': {
            'count': len(aggregator.events),
            'titles': [e['msg_title'] for e in aggregator.events],
            'note': FIRST_RUN_NOTE,
        },
        'metrics': metric_summaries(aggregator),
        'warnings': warnings,
        # What the Agent would report as CRITICAL after this collection (the Datadog API refused or silent).
        'error': datadog.get('error'),
    }


def _agent_config(init_config: dict, instance: dict, aggregator: Any, datadog_agent: Any) -> InstanceConfig:
    """The instance as written, through the Agent's own validation; the stubs are left empty after it.

    The dry run refuses what the Agent refuses, with the same message, before any option is turned off.
    """
    agent_settings(datadog_agent)
    agent_check = new_check(dict(init_config), dict(instance))
    agent_check.write_persistent_cache = no_write
    initialize(agent_check)
    aggregator.reset()
    datadog_agent.reset()
    agent_settings(datadog_agent)
    return agent_check.config


def _dry_check(init_config: dict, instance: dict) -> PagerdutyDoraCheck:
    """The check that collects: DORA delivery and attribution off, nothing it sees stored."""
    # A copy, so the instance shown in errors and the user's file stay as written.
    dry_instance = dict(instance, submit_dora_failures=False, attribute_change_failures=False)
    check = new_check(dict(init_config), dry_instance)
    # Nothing a dry run sees may be stored: a later real run must start from what the Agent knows.
    check.write_persistent_cache = no_write
    # Built by `initialize`, or it raised.
    initialize(check)
    check.collector.preview(persist=False)
    # One attempt per connection: an API that does not answer is told now, not after the Agent's backoff.
    for client in (check.pagerduty_api, check.datadog_api):
        client.retry_connection_failures = False
    return check


def qualification_of(config: InstanceConfig) -> Qualification:
    """The collection rule of an instance's `urgencies`, `priorities` and `unmapped_incidents`."""
    return Qualification(
        urgencies=list(config.urgencies) if config.urgencies else None,
        priorities=list(config.priorities) if config.priorities else None,
        # The config model fills its default in (and refuses a value other than `send` or `skip`).
        unmapped_incidents=cast(str, config.unmapped_incidents),
    )


def incident_rows(mappings: dict, qualification: Qualification, *, wanted_dora: bool) -> list[dict[str, Any]]:
    """One row per incident, most recent first: its mapping, why it is left out, and the DORA failure sent."""
    from datadog_checks.pagerduty_dora.datadog.dora import build_failure

    rows = []
    for incident, mapping in sorted(mappings.values(), key=lambda pair: -pair[0].created_at):
        row = incident_row(incident, mapping, filtered_by=qualification.filter_reason(incident))
        row['unmapped_skipped'] = bool(row['counted'] and qualification.skips_unmapped(mapping))
        sent = wanted_dora and qualification.qualifies(incident, mapping)
        row['dora_failure'] = build_failure(incident, mapping) if sent else None
        rows.append(row)
    return rows


def _dora_failures(rows: list[dict], wanted_dora: bool) -> dict[str, Any]:
    """How many DORA failures the Agent would send, with the most telling one."""
    failures = [r['dora_failure'] for r in rows if r['dora_failure'] is not None]
    return {'enabled': wanted_dora, 'count': len(failures), 'example': example_failure(failures)}


def _unmapped_incidents(rows: list[dict], option: str) -> dict[str, Any]:
    """The incidents `unmapped_incidents: skip` leaves out (they reached the fallback rule)."""
    unmapped = [r for r in rows if r['unmapped_skipped']]
    return {
        'option': option,
        'skipped': len(unmapped),
        'incidents': [
            {'number': r['number'], 'title': r['title'], 'pagerduty_service': r['pagerduty_service']} for r in unmapped
        ],
    }


def preview_attribution(
    check: PagerdutyDoraCheck, config: InstanceConfig, rows: list[dict], mappings: dict
) -> dict[str, Any]:
    """Per counted incident, the deployment attribution would mark and the remediation it would record.

    Reads the DORA deployments API with the check's own Datadog client; nothing is written. The most
    recent `ATTRIBUTION_ROWS` incidents are previewed, to keep the number of searches bounded.
    """
    from datadog_checks.pagerduty_dora.attribution.attributor import ChangeFailureAttribution
    from datadog_checks.pagerduty_dora.attribution.decision import Rules
    from datadog_checks.pagerduty_dora.common.services import AgentServices

    # The config model fills the window's default in (and refuses a value that is not a positive number).
    window = cast(int, config.attribution_window)
    attribution = ChangeFailureAttribution(
        check.datadog_api,
        pagerduty=check.pagerduty_api,
        rules=Rules(window, config.attribution_min_severity, dict(config.severity_mapping or {})),
        services=AgentServices(read_cache=lambda key: '', write_cache=no_write, log=check.log, warning=check.warning),
        dry_run=True,
    )
    check.datadog_api.start_run(check.monotonic() + ATTRIBUTION_SECONDS)
    check.pagerduty_api.start_run(check.monotonic() + ATTRIBUTION_SECONDS)
    counted = [r for r in rows if r['counted'] and not r['unmapped_skipped']]
    previews = []
    for row in counted[:ATTRIBUTION_ROWS]:
        incident, mapping = mappings[row['id']]
        preview = attribution.preview(incident, mapping)
        row['attribution'] = preview
        previews.append(dict(preview, number=row['number'], title=row['title']))
    return {
        'window': window,
        'min_severity': config.attribution_min_severity,
        'previewed': len(previews),
        'not_previewed': max(0, len(counted) - len(previews)),
        'marked': sum(1 for p in previews if p['deployment']),
        # Every PATCH the Agent would send for these incidents, in order (marks and remediations).
        'would_patch': [
            {'deployment': deployment, 'attributes': body['data']['attributes']}
            for deployment, body in attribution.would_patch
        ],
        'incidents': previews,
    }


def catalog_file_report(check: PagerdutyDoraCheck) -> list[dict[str, Any]]:
    """Per `catalog_files` file (and pattern matching none): the entries it gave and why any were skipped."""
    return check.catalog.file_report()


def _raise_on_critical(aggregator: Any, warnings: list[str]) -> None:
    """A CRITICAL service check is the Agent's alert: here it is an error, with the service check's message."""
    from datadog_checks.base import AgentCheck

    for name in ('can_connect', 'can_submit'):
        for service_check in aggregator.service_checks(METRIC_PREFIX + name):
            if service_check.status == AgentCheck.CRITICAL:
                raise CliError(service_check.message or '{} is CRITICAL'.format(METRIC_PREFIX + name), warnings)


def check_datadog_api(check: PagerdutyDoraCheck, config: InstanceConfig) -> dict[str, Any]:
    """Whether the Datadog API answers and accepts the API key DORA failures would be sent with.

    `GET /api/v1/validate` checks an API key and writes nothing. The Agent would send DORA failures
    with `datadog_api_key`, or its own `api_key` (read here from `DD_API_KEY`); without either the
    API is only checked to answer. A refused key or an API that does not answer is an error, as it
    is for the Agent (the `can_connect` service check of `api:datadog`).
    """
    from datadog_checks.base.stubs import datadog_agent
    from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
    from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError

    url = check.datadog_api.base_url
    if not config.submit_dora_failures and not config.datadog_app_key:
        return {'url': url, 'checked': False, 'key_checked': False, 'note': 'not used by this instance'}
    key = config.datadog_api_key or datadog_agent.get_config('api_key')
    check.datadog_api.start_run(check.monotonic() + VALIDATE_SECONDS)
    try:
        check.datadog_api.get(VALIDATE_PATH, endpoint='validate')
    except ApiError as e:
        if dispose(e) is not Disposition.FIX_KEY:
            return {'url': url, 'checked': True, 'key_checked': False, 'error': str(e)}
        if key:
            return {'url': url, 'checked': True, 'key_checked': True, 'error': check._auth_message(cast(AuthError, e))}
        return {
            'url': url,
            'checked': True,
            'key_checked': False,
            'note': (
                'the Agent would send DORA failures with its own `api_key`, which a dry run cannot read: set '
                'DD_API_KEY in the environment (or `datadog_api_key` in this copy of conf.yaml) to check it'
            ),
        }
    return {'url': url, 'checked': True, 'key_checked': True, 'note': 'the API key is accepted'}
