# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The Agent check: wires the parts of the collection together and reports the health of each run.

The parts are built from the instance by `wiring`, each reading its own options; `health` turns
what the run's requests met into the `can_connect` and `can_submit` service checks. A run with a
CRITICAL service check ends with that error, after submitting what it could, so the status page,
`datadog-agent check` and the dry run give the same verdict.
"""

from __future__ import annotations

import time
from typing import Callable, cast

from datadog_checks.base import AgentCheck
from datadog_checks.base.agent import datadog_agent
from datadog_checks.base.errors import CheckException, ConfigurationError
from datadog_checks.pagerduty_dora.catalog.sources import CatalogStore
from datadog_checks.pagerduty_dora.collection.collector import Collector
from datadog_checks.pagerduty_dora.collection.run import Features, RunReport
from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.environment import read_environment_once
from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.common.urls import UnsafeUrl
from datadog_checks.pagerduty_dora.config.scope import scope_warnings
from datadog_checks.pagerduty_dora.config.spelling import (
    configuration_message,
    unknown_init_config_options,
    unknown_instance_options,
    with_spelling_hints,
)
from datadog_checks.pagerduty_dora.datadog.outputs import Outputs, Submitters
from datadog_checks.pagerduty_dora.datadog.readback import Readback
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient

from . import identity, wiring
from .config_models import ConfigMixin
from .health import Health, auth_message
from .lineage import Change, Lineage

NO_ENV_WARNING = 'No `env` is set'
# The tag of every event naming the instance that sent it, so that a check can read its own back.
INSTANCE_TAG = 'pagerduty_dora_instance'
# Share of the collection interval a run may use, so that no run overlaps the next.
RUN_TIME_SHARE = 0.8
IDENTITY_CHANGED = (
    'This instance replaces another one of the same PagerDuty API on this Agent, which stopped running: its '
    'identity changed ({}). A new collection starts under the new identity; '
)
REBUILT_FROM_DATADOG = (
    "with `datadog_app_key` it is rebuilt from Datadog, from what the previous identity sent too, so no event or "
    'history is sent twice for the incidents collected before'
)
STARTED_OVER = (
    'without `datadog_app_key`, history is sent again as DORA failures (Datadog keeps one per incident) and events '
    'start from now: transitions between the last run of the previous identity and this one get none'
)


class PagerdutyDoraCheck(AgentCheck, ConfigMixin):
    """Polls PagerDuty for incidents and submits them as DORA failures, events and metrics."""

    __NAMESPACE__ = 'pagerduty_dora'
    # Built by the last of `check_initializations`, which the base class runs to success before any `check()`.
    collector: Collector
    catalog: CatalogStore

    def __init__(self, name, init_config, instances):
        super().__init__(name, init_config, instances)
        self._memory: identity.Memory | None = None
        self.last_report: RunReport | None = None
        self.health = Health(self, tags=self._tags, count=self._count, describe=self._auth_message)
        # Warnings about PagerDuty services and teams the instance names that do not exist, repeated
        # every run until they are asked about again (every `catalog_refresh_interval`).
        self._scope_warnings: list[str] = []
        self._scope_checked_at: float | None = None
        # Wall and monotonic clocks of the collection, and the wait for a rate limit window; the demo,
        # the tests and the benchmarks run the check on simulated time.
        self.clock = time.time
        self.monotonic = time.monotonic
        self.sleep: Callable[[float], None] = lambda seconds: time.sleep(seconds)
        self.check_initializations.appendleft(self._warn_unknown_options)
        self.check_initializations.append(self._build)

    def persistent_cache_id(self) -> str:
        """Key the stored state on the instance's identity: what it collects, and where it sends it (`identity.py`)."""
        # Read from the instance rather than the config models: the Agent may ask before they are loaded.
        return identity.cache_id(self.instance if isinstance(self.instance, dict) else {})

    @property
    def memory(self) -> identity.Memory:
        """The persistent cache of this instance, found again where an earlier release stored it."""
        if self._memory is None:
            namespace = ':'.join(self.check_id.split(':')[:-1])
            self._memory = identity.Memory(
                self.read_persistent_cache,
                lambda key, value: self.write_persistent_cache(key, value),
                datadog_agent.read_persistent_cache,
                lambda cache_id: '{}:{}_'.format(namespace, cache_id),
                identity.earlier_cache_ids(self.instance if isinstance(self.instance, dict) else {}),
            )
        return self._memory

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

    def run_check_initializations(self) -> None:
        """The base class's initializations, retried at each run until they succeed; a configuration error also
        turns `can_submit` CRITICAL with the option it names (the config models could not be loaded: the raw
        instance gives the tags)."""
        try:
            super().run_check_initializations()
        except (ConfigurationError, UnsafeUrl) as e:
            detail = with_spelling_hints(configuration_message(str(e)), self.instance)
            tags = self.instance.get('tags') if isinstance(self.instance, dict) else None
            plain_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            self.health.configuration_invalid('Invalid configuration: {}'.format(detail), plain_tags)
            raise ConfigurationError(detail) from None

    def _services(self) -> AgentServices:
        """What the Agent lends the parts: the persistent cache, the log, warnings, wall time, count metrics."""
        return AgentServices(
            read_cache=self.memory.read,
            write_cache=self.write_persistent_cache,
            log=self.log,
            warning=self.warning,
            count=self._count,
            clock=self.clock,
        )

    def _build(self) -> None:
        config = self.config
        # The config model fills its default in (and refuses a value that is not a positive number).
        interval = float(cast(float, config.min_collection_interval))
        self._run_seconds = max(5.0, interval * RUN_TIME_SHARE)
        instance_id = self.persistent_cache_id()[:16]
        self.outputs = outputs = Outputs(
            Submitters(event=self.event, count=self.count, gauge=self.gauge, histogram=self.histogram),
            instance_tags=list(config.tags or ()),
            collect_events=bool(config.collect_events),
            event_tags=[INSTANCE_TAG + ':' + instance_id],
        )
        hooks = self.health.hooks
        clocks = wiring.Clocks(self.monotonic, self.sleep)
        self.pagerduty_api = wiring.pagerduty_client(config, self.http, hooks('pagerduty'), self.log, clocks)
        self.datadog_api = wiring.datadog_client(config, self.http, hooks('datadog'), self.log, clocks)
        if read_environment_once(self.http, (self.pagerduty_api.base_url, self.datadog_api.base_url)):
            self.log.debug("The environment's proxies and CA bundle for the APIs: read once, not at every request")
        services = self._services()
        self.catalog = catalog = wiring.catalog_store(config, self.datadog_api, services)
        dora = wiring.dora_delivery(config, self.datadog_api, services)
        attribution = wiring.attribution(
            config,
            self.datadog_api,
            self.pagerduty_api,
            services,
            (lambda payload: self.event(dict(payload, tags=outputs.tags(payload['tags']))))
            if config.collect_events
            else None,
        )
        settings = wiring.settings(config, interval)
        self.collector = Collector(
            PagerDutyClient(
                self.pagerduty_api,
                service_ids=settings.service_ids,
                team_ids=settings.team_ids,
                clock=lambda: self.clock(),
            ),
            catalog=catalog,
            outputs=outputs,
            settings=settings,
            services=services,
            monotonic=self.monotonic,
            features=Features(
                dora=dora,
                attribution=attribution,
                readback=Readback(self.datadog_api) if config.datadog_app_key else None,
                record_query=self._record_query([]),
                monitors=wiring.monitor_lookup(config, self.datadog_api, services),
            ),
        )
        self.lineage = Lineage(
            self.instance,
            self.persistent_cache_id(),
            interval,
            datadog_agent.read_persistent_cache,
            datadog_agent.write_persistent_cache,
        )

    def _record_query(self, previous: list[str]) -> str:
        """The event search for what this instance sent: events of the release before carry that release's
        instance tag, and those of an identity it replaced (`previous`, cache ids) that identity's."""
        tags = identity.instance_tags(self.instance) + [cache_id[:16] for cache_id in previous]
        return 'source:pagerduty_dora {}:({})'.format(INSTANCE_TAG, ' OR '.join(tags))

    def _follow_lineage(self) -> None:
        """Record this run in the Agent's list of identities; warn once about an identity this instance replaced."""
        if not self.collector.persist:
            return
        for change in self.lineage.ran(self.clock()):
            if self.collector.recovery.found_own:
                # Datadog holds events of this identity itself: a cluster check moved here, not an edit.
                self.lineage.disown(change.previous)
            else:
                self._identity_changed(change)
        self.collector.recovery.inherit(self._record_query(self.lineage.previous), undecided=self.lineage.undecided)

    def _identity_changed(self, change: Change) -> None:
        self._count('identity.changed', 1, ['option:{}'.format(name) for name, _, _ in change.changed])
        then = REBUILT_FROM_DATADOG if self.config.datadog_app_key else STARTED_OVER
        self.warning((IDENTITY_CHANGED + then).format(change.describe()))

    def check(self, _):
        deadline = self.monotonic() + self._run_seconds
        self.pagerduty_api.start_run(deadline)
        self.datadog_api.start_run(deadline)
        self.health.start_run()
        self.last_report = None
        try:
            self._follow_lineage()
            self._collect(deadline)
            self._verify_scope()
        finally:
            self.health.report(self.last_report, self.catalog.unloaded)
            self.outputs.flush()
        # Everything the run could submit is submitted; what is CRITICAL makes the run an error too.
        problems = self.health.problems()
        if problems:
            raise CheckException('; '.join(problems))

    @property
    def submit_problem(self) -> str:
        """Why the last run submitted nothing, as `can_submit` said it ('' when it could submit)."""
        return self.health.submit_problem

    def _verify_scope(self) -> None:
        """Warn about `service_overrides`, `service_ids` and `team_ids` that name nothing in PagerDuty.

        Asked again every `catalog_refresh_interval`, and only after a run PagerDuty answered; an error
        here changes nothing else (the service checks report the collection's own requests).
        """
        config = self.config
        health = self.health
        names = bool(config.service_overrides or config.service_ids or config.team_ids)
        now = self.clock()
        due = self._scope_checked_at is None or now - self._scope_checked_at >= float(
            config.catalog_refresh_interval or 0
        )
        if names and due and health.reached.get('pagerduty') and 'pagerduty' not in health.failures:
            failures = dict(health.failures)
            try:
                self._scope_warnings = scope_warnings(
                    self.pagerduty_api,
                    wiring.overrides_of(config),
                    list(config.service_ids or ()),
                    list(config.team_ids or ()),
                )
                self._scope_checked_at = now
            except ApiError as e:
                self.log.debug('could not look up the PagerDuty services and teams the instance names: %s', e)
            finally:
                health.failures = failures
        for message in self._scope_warnings:
            self.warning(message)

    def _collect(self, deadline: float) -> None:
        """One collection run; an error that ends it is counted by its disposition (`common/disposition.py`)."""
        try:
            self.last_report = self.collector.run(deadline)
        except ApiError as e:
            disposition = dispose(e)
            if disposition is Disposition.FIX_KEY:
                self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:auth'])
                # The run ends with this error (see `check`): nothing could be collected.
                self.health.refused(cast(AuthError, e))
            elif disposition.failed_for_now:
                self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:transient'])
                raise CheckException('{}; collection resumes next run'.format(e)) from None
            else:
                self._count('api.errors', 1, ['api:{}'.format(e.api), 'kind:request'])
                raise CheckException(str(e)) from None

    def _auth_message(self, error: AuthError) -> str:
        """What a refused key means and what to fix, for the service check and the dry run."""
        return auth_message(error, str(self.config.pagerduty_api_url))

    def _tags(self, *extra: str) -> list[str]:
        return list(self.config.tags or ()) + list(extra)

    def service_check(self, name, status, tags=None, hostname=None, message=None, raw=False):
        """Every service check names its instance (`pagerduty_dora_instance:<id>`): the recommended monitors group
        by it rather than by host, so that a cluster check that moves to another node keeps its group."""
        tags = list(tags or ()) + ['{}:{}'.format(INSTANCE_TAG, self.persistent_cache_id()[:16])]
        return super().service_check(name, status, tags=tags, hostname=hostname, message=message, raw=raw)

    def _count(self, name: str, value: float, tags: list[str] | None = None) -> None:
        self.outputs.count(name, value, list(tags or ()))
