# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Agent check: builds the collection from the instance and reports its health where users alert.

Two service checks tell a user that something is not sent, each with the reason: `can_connect`, per
API, for a key that is refused or an API that does not answer; `can_submit` for what stops the check
itself from submitting (an invalid configuration, a catalog source that never loaded). One cause is
one CRITICAL service check: the other says UNKNOWN, naming the one that is CRITICAL. A run with a
CRITICAL service check ends with that error, after submitting what it could, so the status page,
`datadog-agent check` and the dry run give the same verdict.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from typing import Any, Callable

from datadog_checks.base import AgentCheck
from datadog_checks.base.errors import CheckException, ConfigurationError
from datadog_checks.pagerduty_dora.attribution.attributor import LIST_ENDPOINT, PATCH_ENDPOINT, ChangeFailureAttribution
from datadog_checks.pagerduty_dora.catalog.api import SCOPES
from datadog_checks.pagerduty_dora.catalog.mapping import parse_overrides
from datadog_checks.pagerduty_dora.catalog.sources import CatalogStore
from datadog_checks.pagerduty_dora.collection.collector import Collector, RunReport
from datadog_checks.pagerduty_dora.collection.settings import Settings
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiError, AuthError, ConnectionFailed, TransientError
from datadog_checks.pagerduty_dora.common.urls import UnsafeUrl
from datadog_checks.pagerduty_dora.config.scope import scope_warnings
from datadog_checks.pagerduty_dora.config.spelling import (
    configuration_message,
    unknown_init_config_options,
    unknown_instance_options,
    with_spelling_hints,
)
from datadog_checks.pagerduty_dora.datadog.dora import REMOVAL_ENDPOINT, DoraDelivery
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs, Submitters
from datadog_checks.pagerduty_dora.datadog.readback import PERMISSIONS as READBACK_PERMISSIONS
from datadog_checks.pagerduty_dora.datadog.readback import Readback
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient, auth_headers

from .config_models import ConfigMixin, defaults

try:
    import datadog_agent
except ImportError:  # outside the Agent
    from datadog_checks.base.stubs import datadog_agent

DEFAULT_SITE = 'datadoghq.com'
APIS = ('pagerduty', 'datadog')
EU_PAGERDUTY_URL = 'https://api.eu.pagerduty.com'
NO_ENV_WARNING = 'No `env` is set'
UNAUTHORIZED_PAGERDUTY = 'PagerDuty rejected `api_token` (401 Unauthorized) at {}: the key is wrong or revoked, {}'
# The option behind each catalog source, as the user wrote it.
CATALOG_SOURCE_OPTIONS = {'files': '`catalog_files`', 'datadog_api': 'the Datadog Software Catalog (`datadog_app_key`)'}
# The permission of `datadog_app_key` each Datadog endpoint needs (the DORA failure endpoint needs none).
APP_KEY_PERMISSIONS = dict(
    SCOPES,
    **{
        LIST_ENDPOINT: 'dora_metrics_read',
        PATCH_ENDPOINT: 'dora_metrics_write',
        REMOVAL_ENDPOINT: 'dora_metrics_write',
    },
    **READBACK_PERMISSIONS,
)
# The tag of every event naming the instance that sent it, so that a check can read its own back.
INSTANCE_TAG = 'pagerduty_dora_instance'
# Share of the collection interval a run may use, so that no run overlaps the next.
RUN_TIME_SHARE = 0.8


def _sorted_strings(value: Any) -> list[str]:
    """A list option as sorted strings, whatever the Agent handed over (a bad value fails validation later)."""
    return sorted(str(item) for item in value) if isinstance(value, (list, tuple)) else []


def pagerduty_url_hint(url: str) -> str:
    """What to check when PagerDuty does not answer: the EU URL only for an account not already on it."""
    if url.rstrip('/').lower() == EU_PAGERDUTY_URL:
        return 'check `pagerduty_api_url` (this is the EU service region\'s URL; US accounts use the default)'
    return 'check `pagerduty_api_url` (EU accounts use {})'.format(EU_PAGERDUTY_URL)


def _plain(value: Any) -> Any:
    """Config model values (frozen models, mapping proxies, tuples) as plain Python values."""
    if hasattr(value, 'model_dump'):
        return {k: _plain(v) for k, v in value.model_dump().items()}
    if hasattr(value, 'items'):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class PagerdutyDoraCheck(AgentCheck, ConfigMixin):
    """Polls PagerDuty for incidents and submits them as DORA failures, events and metrics."""

    __NAMESPACE__ = 'pagerduty_dora'

    def __init__(self, name, init_config, instances):
        super().__init__(name, init_config, instances)
        self.collector: Collector | None = None
        self.last_report: RunReport | None = None
        # Per API: None until a request is made in a run, then whether one got an answer.
        self._reached: dict[str, bool | None] = {}
        self._denied: set[str] = set()
        # Per API: the first authentication or connection failure of the run, for the service check.
        self._failures: dict[str, str] = {}
        # Why the last run submitted nothing, for the `can_submit` service check ('' when it could submit).
        self.submit_problem = ''
        # Warnings about PagerDuty services and teams the instance names that do not exist, repeated
        # every run until they are asked about again (every `catalog_refresh_interval`).
        self._scope_warnings: list[str] = []
        self._scope_checked_at: float | None = None
        # Wall and monotonic clocks of the collection; the demo and the tests run the check on
        # simulated time.
        self.clock = time.time
        self.monotonic = time.monotonic
        self.check_initializations.appendleft(self._warn_unknown_options)
        self.check_initializations.append(self._build)
        # A configuration error stops every initialization after it; the service check still says why.
        self.check_initializations = deque(self._reporting_configuration_errors(f) for f in self.check_initializations)

    def persistent_cache_id(self) -> str:
        """Key the stored state on what decides which incidents are collected and what is sent for them.

        Timeouts, tags and mapping can change without losing the cursor; another account, key,
        scope, filter, env or Datadog destination starts fresh, so two instances never share a state
        or a delivery queue. The token enters only as a hash.
        """
        # Read from the instance rather than the config models: the Agent may ask before they are loaded.
        instance = self.instance or {}
        token = str(instance.get('api_token') or '')
        identity = {
            'url': str(instance.get('pagerduty_api_url') or defaults.instance_pagerduty_api_url()).rstrip('/'),
            'token': hashlib.sha256(token.encode('utf-8')).hexdigest()[:16],
            'service_ids': _sorted_strings(instance.get('service_ids')),
            'team_ids': _sorted_strings(instance.get('team_ids')),
            'urgencies': _sorted_strings(instance.get('urgencies')),
            'priorities': _sorted_strings(instance.get('priorities')),
            'env': str(instance.get('env') or ''),
            'unmapped_incidents': str(instance.get('unmapped_incidents') or 'send'),
            'datadog_api_url': str(instance.get('datadog_api_url') or '').rstrip('/'),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode('utf-8')).hexdigest()[:32]

    def _warn_unknown_options(self) -> None:
        """Name every option the check does not know, with the closest known name: a typo is otherwise silent.

        Also an instance without `env`, whose failures, events and metrics would all be sent without one.
        """
        for message in unknown_init_config_options(self.init_config) + unknown_instance_options(self.instance):
            self.warning(message)
        instance = self.instance if isinstance(self.instance, dict) else {}
        if not str(instance.get('env') or '').strip():
            self.warning(
                '%s: every DORA failure, event and metric of this instance is sent without an env; set `env` '
                '(for example `env: prod`) to see the failures under their environment in DORA Metrics',
                NO_ENV_WARNING,
            )

    def _reporting_configuration_errors(self, initialization: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                initialization()
            except (ConfigurationError, UnsafeUrl) as e:
                detail = with_spelling_hints(configuration_message(str(e)), self.instance)
                message = 'Invalid configuration: {}'.format(detail)
                tags = self.instance.get('tags') if isinstance(self.instance, dict) else None
                plain_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
                # One alert, naming the option: no API was tried, so neither can be said to be down.
                self.service_check('can_submit', AgentCheck.CRITICAL, tags=plain_tags, message=message)
                for api in APIS:
                    self.service_check(
                        'can_connect',
                        AgentCheck.UNKNOWN,
                        tags=plain_tags + ['api:{}'.format(api)],
                        message='Not tried: the configuration is invalid (see pagerduty_dora.can_submit)',
                    )
                raise ConfigurationError(detail) from None

        return run

    def _build(self) -> None:
        config = self.config
        assert config.min_collection_interval is not None
        interval = float(config.min_collection_interval)
        self._run_seconds = max(5.0, interval * RUN_TIME_SHARE)
        # The config models fill every default in; these are only for the type checker.
        assert config.pagerduty_api_url is not None and config.max_requests_per_run is not None
        assert config.catalog_refresh_interval is not None and config.backfill_days is not None
        max_requests = config.max_requests_per_run
        self.outputs = outputs = Outputs(
            Submitters(event=self.event, count=self.count, gauge=self.gauge, histogram=self.histogram),
            instance_tags=list(config.tags or ()),
            collect_events=bool(config.collect_events),
            event_tags=[INSTANCE_TAG + ':' + self.persistent_cache_id()[:16]],
        )

        self.pagerduty_api = ApiClient(
            name='pagerduty',
            http=self.http,
            base_url=config.pagerduty_api_url,
            auth_headers=auth_headers(config.api_token),
            max_requests=max_requests,
            log=self.log,
            on_request=self._request_counter('pagerduty'),
            on_rate_limited=self._rate_limit_counter('pagerduty'),
            on_failure=self._failure_recorder('pagerduty'),
            url_hint=pagerduty_url_hint(config.pagerduty_api_url),
            clock=self.monotonic,
        )
        site = datadog_agent.get_config('site') or DEFAULT_SITE
        datadog_headers = {'DD-API-KEY': config.datadog_api_key or datadog_agent.get_config('api_key') or ''}
        if config.datadog_app_key:
            datadog_headers['DD-APPLICATION-KEY'] = config.datadog_app_key
        self.datadog_api = ApiClient(
            name='datadog',
            http=self.http,
            base_url=config.datadog_api_url or 'https://api.{}'.format(site),
            auth_headers=datadog_headers,
            max_requests=max_requests,
            log=self.log,
            on_request=self._request_counter('datadog'),
            on_rate_limited=self._rate_limit_counter('datadog'),
            on_failure=self._failure_recorder('datadog'),
            url_hint='check `datadog_api_url`, or the Agent `site` when it is unset',
            clock=self.monotonic,
        )

        catalog = CatalogStore(
            api=self.datadog_api if config.datadog_app_key else None,
            files=list(config.catalog_files or ()),
            refresh_interval=config.catalog_refresh_interval,
            read_cache=self.read_persistent_cache,
            write_cache=self.write_persistent_cache,
            log=self.log,
            warning=self.warning,
            clock=self.clock,
        )
        dora = None
        if config.submit_dora_failures:
            dora = DoraDelivery(
                self.datadog_api,
                read_cache=self.read_persistent_cache,
                write_cache=self.write_persistent_cache,
                log=self.log,
                warning=self.warning,
                count=self._count,
                clock=self.clock,
                can_remove=bool(config.datadog_app_key),
            )
        attribution = None
        if config.attribute_change_failures:
            assert config.attribution_window is not None
            attribution = ChangeFailureAttribution(
                self.datadog_api,
                pagerduty=self.pagerduty_api,
                window=config.attribution_window,
                min_severity=config.attribution_min_severity,
                severity_mapping=_plain(config.severity_mapping) if config.severity_mapping else None,
                read_cache=self.read_persistent_cache,
                write_cache=self.write_persistent_cache,
                log=self.log,
                count=self._count,
                warning=self.warning,
                event=(lambda payload: self.event(dict(payload, tags=outputs.tags(payload['tags']))))
                if config.collect_events
                else None,
                clock=self.clock,
            )
        try:
            overrides = parse_overrides(_plain(config.service_overrides or []))
        except ValueError as e:
            raise ConfigurationError(str(e)) from None
        settings = Settings(
            backfill_days=config.backfill_days,
            env=config.env,
            overrides=overrides,
            severity_mapping=_plain(config.severity_mapping) if config.severity_mapping else None,
            urgencies=list(config.urgencies) if config.urgencies else None,
            priorities=list(config.priorities) if config.priorities else None,
            service_ids=list(config.service_ids or ()),
            team_ids=list(config.team_ids or ()),
            unmapped_incidents=config.unmapped_incidents or 'send',
            interval=interval,
        )
        self.collector = Collector(
            PagerDutyClient(self.pagerduty_api, service_ids=settings.service_ids, team_ids=settings.team_ids),
            catalog=catalog,
            dora=dora,
            outputs=outputs,
            attribution=attribution,
            settings=settings,
            read_cache=self.read_persistent_cache,
            write_cache=self.write_persistent_cache,
            log=self.log,
            warning=self.warning,
            clock=self.clock,
            monotonic=self.monotonic,
            readback=Readback(self.datadog_api) if config.datadog_app_key else None,
            record_query='source:pagerduty_dora {}:{}'.format(INSTANCE_TAG, self.persistent_cache_id()[:16]),
        )

    def check(self, _):
        assert self.collector is not None
        deadline = self.monotonic() + self._run_seconds
        self.pagerduty_api.start_run(deadline)
        self.datadog_api.start_run(deadline)
        self._reached = {'pagerduty': None, 'datadog': None}
        self._denied = set()
        self._failures = {}
        self.last_report = None
        try:
            self._collect(deadline)
            self._verify_scope()
        finally:
            for api, reached in self._reached.items():
                if reached is not None:
                    self._can_connect(api, 0 if api in self._denied or not reached else 1)
            for api in APIS:
                failure = self._failures.get(api)
                self.service_check(
                    'can_connect',
                    AgentCheck.CRITICAL if failure else AgentCheck.OK,
                    tags=self._tags('api:{}'.format(api)),
                    message=failure or '',
                )
            self._report_submission()
            self.outputs.flush()
        # Everything the run could submit is submitted; what is CRITICAL makes the run an error too.
        problems = [self._failures[api] for api in APIS if api in self._failures]
        if self.submit_problem:
            problems.append(self.submit_problem)
        if problems:
            raise CheckException('; '.join(problems))

    def _report_submission(self) -> None:
        """`can_submit`: CRITICAL when a catalog source that never loaded stops every submission.

        UNKNOWN while an API fails (`can_connect` is CRITICAL and says why, also when that failure is
        what keeps a catalog source from loading), OK otherwise.
        """
        self.submit_problem = ''
        report = self.last_report
        stopped = report is not None and report.stopped == 'catalog'
        if self._failures:
            # The API failure is the cause, and `can_connect` its one alert.
            failing = ' and '.join('PagerDuty' if api == 'pagerduty' else 'Datadog' for api in self._failures)
            consequence = 'nothing is submitted until a catalog source loads' if stopped else 'not known'
            self.service_check(
                'can_submit',
                AgentCheck.UNKNOWN,
                tags=self._tags(),
                message='The {} API failed (see pagerduty_dora.can_connect): {}'.format(failing, consequence),
            )
        elif stopped:
            self.submit_problem = self._catalog_problem()
            self.service_check('can_submit', AgentCheck.CRITICAL, tags=self._tags(), message=self.submit_problem)
        else:
            self.service_check('can_submit', AgentCheck.OK, tags=self._tags())

    def _catalog_problem(self) -> str:
        store = getattr(self.collector, 'catalog', None)
        unloaded = store.unloaded() if store is not None and hasattr(store, 'unloaded') else {}
        causes = [
            '{} has never loaded ({})'.format(CATALOG_SOURCE_OPTIONS.get(source, source), reason)
            for source, reason in unloaded.items()
        ]
        return (
            'Nothing is submitted: {}; the check waits for every configured catalog source rather than send '
            'incidents mapped without it'.format('; '.join(causes) or 'a catalog source has never loaded')
        )

    def _verify_scope(self) -> None:
        """Warn about `service_overrides`, `service_ids` and `team_ids` that name nothing in PagerDuty.

        Asked again every `catalog_refresh_interval`, and only after a run PagerDuty answered; an error
        here changes nothing else (the service checks report the collection's own requests).
        """
        config = self.config
        names = bool(config.service_overrides or config.service_ids or config.team_ids)
        now = self.clock()
        due = self._scope_checked_at is None or now - self._scope_checked_at >= float(
            config.catalog_refresh_interval or 0
        )
        if names and due and self._reached.get('pagerduty') and 'pagerduty' not in self._failures:
            failures = dict(self._failures)
            try:
                self._scope_warnings = scope_warnings(
                    self.pagerduty_api,
                    parse_overrides(_plain(config.service_overrides or [])),
                    list(config.service_ids or ()),
                    list(config.team_ids or ()),
                )
                self._scope_checked_at = now
            except ApiError as e:
                self.log.debug('could not look up the PagerDuty services and teams the instance names: %s', e)
            finally:
                self._failures = failures
        for message in self._scope_warnings:
            self.warning(message)

    def _collect(self, deadline: float) -> None:
        assert self.collector is not None
        try:
            self.last_report = self.collector.run(deadline)
        except AuthError as e:
            self._denied.add(e.api)
            self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:auth'])
            # The run ends with this error (see `check`): nothing could be collected.
            self._failures.setdefault(e.api, self._auth_message(e))
        except TransientError as e:
            self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:transient'])
            raise CheckException('{}; collection resumes next run'.format(e)) from None
        except ApiError as e:
            self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:request'])
            raise CheckException(str(e)) from None

    def _auth_message(self, error: AuthError) -> str:
        if error.api == 'pagerduty':
            if error.status == 401:
                url = str(self.config.pagerduty_api_url)
                region = (
                    'or belongs to the US service region (its URL is the default, https://api.pagerduty.com)'
                    if url.rstrip('/').lower() == EU_PAGERDUTY_URL
                    else 'or belongs to another region (EU accounts use {})'.format(EU_PAGERDUTY_URL)
                )
                return UNAUTHORIZED_PAGERDUTY.format(url, region)
            return (
                'PagerDuty refused `api_token` access (403 Forbidden): {}. The key is valid but lacks read access '
                'to incidents; use a REST API key with read access (a read-only key is enough)'.format(error)
            )
        status = '403 Forbidden' if error.status == 403 else '401 Unauthorized' if error.status == 401 else error.status
        permission = APP_KEY_PERMISSIONS.get(error.endpoint)
        if permission is None:
            return (
                'Datadog rejected the API key ({}): check `datadog_api_key` (or the Agent `api_key`) and that '
                '`datadog_api_url` matches your Datadog site'.format(status)
            )
        if error.missing_permission:
            return (
                'Datadog refused {} ({}): the keys are valid, but the user or service account of `datadog_app_key` '
                'lacks the `{}` permission'.format(error.endpoint, status, permission)
            )
        return (
            'Datadog rejected the keys at {} ({}): `datadog_app_key` or `datadog_api_key` (or the Agent `api_key`) '
            'is wrong or revoked, or `datadog_api_url` is not your Datadog site. If both keys are right, the '
            'application key lacks the `{}` permission'.format(error.endpoint, status, permission)
        )

    def _failure_recorder(self, api: str) -> Callable[[ApiError], None]:
        """Keep the first authentication or connection failure of the run, whoever catches the error."""

        def on_failure(error: ApiError) -> None:
            if api in self._failures:
                return
            if isinstance(error, AuthError):
                self._denied.add(api)
                self._failures[api] = self._auth_message(error)
            elif isinstance(error, ConnectionFailed):
                self._failures[api] = str(error)

        return on_failure

    # Submission helpers handed to the modules, so none of them reaches into the check.

    def _tags(self, *extra: str) -> list[str]:
        return list(self.config.tags or ()) + list(extra)

    def _can_connect(self, api: str, value: int) -> None:
        self.gauge('api.can_connect', value, tags=self._tags('api:{}'.format(api)))

    def _request_counter(self, api: str):
        def on_request(endpoint: str, status_class: str) -> None:
            self._reached[api] = bool(self._reached[api]) or status_class != 'error'
            self._count(
                'api.requests',
                1,
                ['api:{}'.format(api), 'endpoint:{}'.format(endpoint), 'status_class:{}'.format(status_class)],
            )

        return on_request

    def _rate_limit_counter(self, api: str):
        def on_rate_limited(endpoint: str) -> None:
            self._count('api.rate_limited', 1, ['api:{}'.format(api), 'endpoint:{}'.format(endpoint)])

        return on_rate_limited

    def _count(self, name: str, value: float, tags: list[str] | None = None) -> None:
        self.outputs.count(name, value, list(tags or ()))
