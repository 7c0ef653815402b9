# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The parts of the check, each built from the instance's options it reads.

The check hands over what the Agent lends (its HTTP wrapper, persistent cache, log, warnings and
clocks, as `AgentServices`) and its health hooks; each builder here reads the options of its own
part, so the check only wires the parts together and reports how the run went.

Each reads the instance's config model: its defaults fill every option that has one, and its
validators refuse a value out of range or a null, so a builder takes such an option as given (a
`cast` says so to the type checker; `config_models/validators.py` says why each holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, cast

from pydantic import BaseModel

from datadog_checks.base.errors import ConfigurationError
from datadog_checks.pagerduty_dora.attribution.attributor import ChangeFailureAttribution
from datadog_checks.pagerduty_dora.attribution.decision import Rules
from datadog_checks.pagerduty_dora.catalog.mapping import Override, parse_overrides
from datadog_checks.pagerduty_dora.catalog.sources import CatalogStore
from datadog_checks.pagerduty_dora.collection.monitors import MonitorLookup
from datadog_checks.pagerduty_dora.collection.settings import Settings
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiHooks, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.common.permissions import EU_PAGERDUTY_URL, is_eu_pagerduty
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.config_models.instance import InstanceConfig
from datadog_checks.pagerduty_dora.datadog.dora import DoraDelivery
from datadog_checks.pagerduty_dora.pagerduty.client import auth_headers

try:
    import datadog_agent
except ImportError:  # outside the Agent
    from datadog_checks.base.stubs import datadog_agent

DEFAULT_SITE = 'datadoghq.com'
# Without `max_requests_per_run`, the share of `min_collection_interval` during which a run makes
# requests to each API (never past the run's deadline, see `check.RUN_TIME_SHARE`): the Agent's
# check runners are shared with other checks, and the rest of the run (the last page's processing,
# the state written) must end before the next run is due.
REQUEST_TIME_SHARE = 0.5
DATADOG_URL_HINT = 'check `datadog_api_url`, or the Agent `site` when it is unset'


class Clocks(NamedTuple):
    """The clock that bounds and paces runs (monotonic seconds), and the sleep that waits on it."""

    monotonic: Callable[[], float]
    sleep: Callable[[float], None]


def plain(value: Any) -> Any:
    """Config model values (frozen models, mapping proxies, tuples) as plain Python values."""
    if isinstance(value, BaseModel):
        return {k: plain(v) for k, v in value.model_dump().items()}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def pagerduty_url_hint(url: str) -> str:
    """What to check when PagerDuty does not answer: the EU URL only for an account not already on it."""
    if is_eu_pagerduty(url):
        return 'check `pagerduty_api_url` (this is the EU service region\'s URL; US accounts use the default)'
    return 'check `pagerduty_api_url` (EU accounts use {})'.format(EU_PAGERDUTY_URL)


def overrides_of(config: InstanceConfig) -> list[Override]:
    """`service_overrides`, parsed; an invalid one is a configuration error."""
    try:
        return parse_overrides(plain(config.service_overrides or []))
    except ValueError as e:
        raise ConfigurationError(str(e)) from None


def severity_mapping_of(config: InstanceConfig) -> dict[str, str] | None:
    """`severity_mapping` as a plain dict, or None when unset."""
    return plain(config.severity_mapping) if config.severity_mapping else None


def request_seconds(config: InstanceConfig) -> float:
    """How long a run makes requests to each API without `max_requests_per_run`: a share of the interval."""
    return float(cast(float, config.min_collection_interval)) * REQUEST_TIME_SHARE


def request_limits(config: InstanceConfig) -> RequestLimits:
    """What each run may request of either API: `max_requests_per_run`, or a share of the interval."""
    return RequestLimits(config.max_requests_per_run, request_seconds(config))


def pagerduty_client(config: InstanceConfig, http: Any, hooks: ApiHooks, log: Any, clocks: Clocks) -> ApiClient:
    """The client of PagerDuty's REST API: `pagerduty_api_url`, `api_token`, `max_requests_per_run`."""
    url = cast(str, config.pagerduty_api_url)
    target = ApiTarget('pagerduty', url, auth_headers(config.api_token), pagerduty_url_hint(url))
    return ApiClient(target, http, request_limits(config), log, hooks, Timing(clocks.monotonic, clocks.sleep))


def datadog_client(config: InstanceConfig, http: Any, hooks: ApiHooks, log: Any, clocks: Clocks) -> ApiClient:
    """The client of Datadog's API: `datadog_api_url` (or the Agent `site`), `datadog_api_key` (or the Agent
    `api_key`), `datadog_app_key`, `max_requests_per_run`."""
    site = datadog_agent.get_config('site') or DEFAULT_SITE
    headers = {'DD-API-KEY': config.datadog_api_key or datadog_agent.get_config('api_key') or ''}
    if config.datadog_app_key:
        headers['DD-APPLICATION-KEY'] = config.datadog_app_key
    target = ApiTarget('datadog', config.datadog_api_url or 'https://api.{}'.format(site), headers, DATADOG_URL_HINT)
    return ApiClient(target, http, request_limits(config), log, hooks, Timing(clocks.monotonic, clocks.sleep))


def catalog_store(config: InstanceConfig, datadog: ApiClient, services: AgentServices) -> CatalogStore:
    """The catalog: `catalog_files`, the Datadog API with `datadog_app_key`, `catalog_refresh_interval`."""
    return CatalogStore(
        api=datadog if config.datadog_app_key else None,
        files=list(config.catalog_files or ()),
        refresh_interval=cast(int, config.catalog_refresh_interval),
        services=services,
    )


def dora_delivery(config: InstanceConfig, datadog: ApiClient, services: AgentServices) -> DoraDelivery | None:
    """DORA failure delivery, or None without `submit_dora_failures`; removals need `datadog_app_key`."""
    if not config.submit_dora_failures:
        return None
    return DoraDelivery(datadog, services, can_remove=bool(config.datadog_app_key))


def monitor_lookup(config: InstanceConfig, datadog: ApiClient, services: AgentServices) -> MonitorLookup | None:
    """The monitor mapping step, or None with `monitor_mapping: false`; with `datadog_app_key` it reads monitors."""
    if config.monitor_mapping is False:
        return None
    return MonitorLookup(datadog if config.datadog_app_key else None, services.log, services.warning)


def attribution(
    config: InstanceConfig,
    datadog: ApiClient,
    pagerduty: ApiClient,
    services: AgentServices,
    event: Callable[[dict], None] | None,
) -> ChangeFailureAttribution | None:
    """Change-failure attribution, or None without `attribute_change_failures`; `event` submits its notes."""
    if not config.attribute_change_failures:
        return None
    window = cast(int, config.attribution_window)
    rules = Rules(window, config.attribution_min_severity, severity_mapping_of(config) or {})
    return ChangeFailureAttribution(datadog, pagerduty=pagerduty, rules=rules, services=services, event=event)


def settings(config: InstanceConfig, interval: float) -> Settings:
    """What the collection selects and how it maps: the scope, filters, `env`, overrides and backfill."""
    return Settings(
        backfill_days=cast(int, config.backfill_days),
        env=config.env,
        overrides=overrides_of(config),
        severity_mapping=severity_mapping_of(config),
        urgencies=list(config.urgencies) if config.urgencies else None,
        priorities=list(config.priorities) if config.priorities else None,
        service_ids=list(config.service_ids or ()),
        team_ids=list(config.team_ids or ()),
        unmapped_incidents=cast(str, config.unmapped_incidents),
        interval=interval,
        recheck_resolved_days=cast(int, config.recheck_resolved_days),
    )
