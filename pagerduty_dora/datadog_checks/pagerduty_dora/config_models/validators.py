# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Checks on instance options that the option types alone cannot express.

The generated `InstanceConfig` calls `instance_<option>(value, field=...)` with the raw value of each
option the user configured, before pydantic converts it. Each function returns the value (possibly
normalised) or raises `ValueError` with a message that names the option; the base check turns that
into the `ConfigurationError` raised at the first run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

URGENCIES = ('high', 'low')
BACKFILL_DAYS_MAX = 365
OVERRIDE_TARGETS = ('service', 'team', 'env')


def instance_api_token(value: Any, **kwargs: Any) -> Any:
    """Reject an empty or blank token; the value itself never appears in the message."""
    if isinstance(value, str) and not value.strip():
        raise ValueError('`api_token` must not be empty: set it to a PagerDuty REST API key')
    return value


def instance_pagerduty_api_url(value: Any, **kwargs: Any) -> Any:
    """Require an https URL with a host; plain http only for a loopback host."""
    return _check_api_url('pagerduty_api_url', value)


def instance_datadog_api_url(value: Any, **kwargs: Any) -> Any:
    """Require an https URL with a host; plain http only for a loopback host."""
    return _check_api_url('datadog_api_url', value)


def instance_backfill_days(value: Any, **kwargs: Any) -> Any:
    """Bound the history loaded on the first run to 0-365 days."""
    number = _as_int(value)
    if number is not None and not 0 <= number <= BACKFILL_DAYS_MAX:
        raise ValueError('`backfill_days` must be between 0 and {}, got {}'.format(BACKFILL_DAYS_MAX, number))
    return value


def instance_urgencies(value: Any, **kwargs: Any) -> Any:
    """Accept only PagerDuty's two urgencies, compared case-insensitively and returned lower-case."""
    if not isinstance(value, (list, tuple)):
        return value
    normalised = []
    for position, urgency in enumerate(value, 1):
        name = urgency.strip().lower() if isinstance(urgency, str) else urgency
        if name not in URGENCIES:
            raise ValueError(
                '`urgencies` entry #{} must be one of {}, got {!r}'.format(position, ' or '.join(URGENCIES), urgency)
            )
        normalised.append(name)
    return normalised


def instance_catalog_refresh_interval(value: Any, **kwargs: Any) -> Any:
    """A refresh interval of zero or less would re-read the catalog on every run, or never."""
    number = _as_int(value)
    if number is not None and number <= 0:
        raise ValueError('`catalog_refresh_interval` must be greater than 0 seconds, got {}'.format(number))
    return value


def instance_max_requests_per_run(value: Any, **kwargs: Any) -> Any:
    """A run must be allowed at least one request per API, or it could never make progress."""
    number = _as_int(value)
    if number is not None and number < 1:
        raise ValueError('`max_requests_per_run` must be at least 1, got {}'.format(number))
    return value


def instance_service_overrides(value: Any, **kwargs: Any) -> Any:
    """Each entry needs the PagerDuty service it matches and at least one of service, team, env."""
    if not isinstance(value, (list, tuple)):
        return value
    for position, entry in enumerate(value, 1):
        if not isinstance(entry, Mapping):
            continue
        if not _filled(entry.get('pagerduty_service')):
            raise ValueError(
                '`service_overrides` entry #{} needs `pagerduty_service` (a PagerDuty service ID, name or URL)'.format(
                    position
                )
            )
        if not any(_filled(entry.get(target)) for target in OVERRIDE_TARGETS):
            raise ValueError(
                '`service_overrides` entry #{} for {!r} needs at least one of {}'.format(
                    position, entry['pagerduty_service'], ', '.join('`{}`'.format(t) for t in OVERRIDE_TARGETS)
                )
            )
    return value


def instance_attribution_window(value: Any, **kwargs: Any) -> Any:
    """An attribution window of zero or less could never contain a deployment."""
    number = _as_int(value)
    if number is not None and number <= 0:
        raise ValueError('`attribution_window` must be greater than 0 seconds, got {}'.format(number))
    return value


def check_instance(model: Any) -> Any:
    """Cross-option checks, once every option has its final value."""
    if getattr(model, 'attribute_change_failures', False) and not getattr(model, 'datadog_app_key', None):
        raise ValueError(
            '`attribute_change_failures` needs `datadog_app_key`: set an application key whose user or '
            'service account has the `dora_metrics_read` and `dora_metrics_write` permissions, '
            'or set `attribute_change_failures` to false'
        )
    return model


def is_loopback_host(host: str) -> bool:
    """Whether `host` is `localhost` or an address in 127.0.0.0/8 or ::1."""
    host = host.strip('[]').lower()
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_api_url(option: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ('http', 'https') or not host:
        raise ValueError('`{}` must be a URL like https://<HOST>, got {!r}'.format(option, value))
    if parts.scheme == 'http' and not is_loopback_host(host):
        raise ValueError(
            '`{}` must use https (plain http is allowed only for a loopback host), got {!r}'.format(option, value)
        )
    return value


def _as_int(value: Any) -> int | None:
    """The integer a value will become, or None when pydantic should report the type error itself."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
