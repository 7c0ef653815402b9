# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Checks on instance options that the option types alone cannot express.

The generated `InstanceConfig` calls `instance_<option>(value, field=...)` with the raw value of each
option the user configured, before pydantic converts it. Each function returns the value (possibly
normalised) or raises `ValueError` with a message that names the option; the base check turns that
into the `ConfigurationError` raised at the first run.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from datadog_checks.pagerduty_dora.common.urls import UnsafeUrl, api_origin

URGENCIES = ('high', 'low')
UNMAPPED_INCIDENTS = ('send', 'skip')
# The words YAML 1.1 and the Agent read as booleans when they arrive as strings (quoted in the file).
BOOLEAN_WORDS = {'true': True, 'yes': True, 'on': True, 'false': False, 'no': False, 'off': False}
# Datadog keeps DORA events two years: older history would not be kept.
BACKFILL_DAYS_MAX = 730
RECHECK_RESOLVED_DAYS_MAX = 90
OVERRIDE_TARGETS = ('service', 'team', 'env')
# How alike a name must be to be suggested (difflib's ratio); lower suggests unrelated names.
SIMILARITY = 0.6
SERVICE_MESSAGE = (
    'this check tags every metric and event with the service each incident maps to, and a fixed '
    '`service` would attribute every incident to that one service'
)


def closest(name: str, known: Any) -> str | None:
    """The known name closest to `name`, or None when none is close enough.

    Here, below the models, so that the models' checks and `config.spelling` (which reads the models'
    fields) both suggest names the same way without importing each other.
    """
    found = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=SIMILARITY)
    return found[0] if found else None


def instance_api_token(value: Any, **kwargs: Any) -> Any:
    """Reject an empty or blank token; the value itself never appears in the message."""
    if isinstance(value, str) and not value.strip():
        raise ValueError('`api_token` must not be empty: set it to a PagerDuty REST API key')
    return value


def instance_pagerduty_api_url(value: Any, **kwargs: Any) -> Any:
    """Require an https URL with a host, read alike by every URL parser; plain http only for a loopback host.

    Unlike `datadog_api_url`, it has no meaning when unset other than its default: an empty value is refused.
    """
    if value is None:
        raise ValueError('`pagerduty_api_url` must be a URL, got none: leave it out for the default')
    return _check_api_url('pagerduty_api_url', value)


def instance_datadog_api_url(value: Any, **kwargs: Any) -> Any:
    """Require an https URL with a host, read alike by every URL parser; plain http only for a loopback host."""
    return _check_api_url('datadog_api_url', value)


def instance_backfill_days(value: Any, **kwargs: Any) -> Any:
    """Bound the history loaded on the first run to 0-730 days (as long as Datadog keeps DORA events)."""
    number = _integer('backfill_days', value, 'from 0 to {}'.format(BACKFILL_DAYS_MAX))
    if not 0 <= number <= BACKFILL_DAYS_MAX:
        raise ValueError('`backfill_days` must be between 0 and {}, got {}'.format(BACKFILL_DAYS_MAX, number))
    return value


def instance_recheck_resolved_days(value: Any, **kwargs: Any) -> Any:
    """Bound how long after its resolve an incident is read again to 0-90 days."""
    number = _integer('recheck_resolved_days', value, 'from 0 to {}'.format(RECHECK_RESOLVED_DAYS_MAX))
    if not 0 <= number <= RECHECK_RESOLVED_DAYS_MAX:
        raise ValueError(
            '`recheck_resolved_days` must be between 0 and {}, got {}'.format(RECHECK_RESOLVED_DAYS_MAX, number)
        )
    return value


def instance_urgencies(value: Any, **kwargs: Any) -> Any:
    """Accept only PagerDuty's two urgencies, compared case-insensitively and returned lower-case."""
    _require_list('urgencies', value, 'high, low or both')
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
    number = _integer('catalog_refresh_interval', value, 'of seconds greater than 0')
    if number <= 0:
        raise ValueError('`catalog_refresh_interval` must be greater than 0 seconds, got {}'.format(number))
    return value


def instance_max_requests_per_run(value: Any, **kwargs: Any) -> Any:
    """A run must be allowed at least one request per API, or it could never make progress."""
    number = _integer('max_requests_per_run', value, 'of at least 1')
    if number < 1:
        raise ValueError('`max_requests_per_run` must be at least 1, got {}'.format(number))
    return value


def instance_service_overrides(value: Any, **kwargs: Any) -> Any:
    """Each entry needs the PagerDuty service it matches and at least one of service, team, env."""
    if isinstance(value, Mapping):
        # `{PABC123: checkout}` is the usual first try; the fix must be entries that are valid as written.
        raise ValueError(
            '`service_overrides` must be a list of entries, got a mapping: write one entry per PagerDuty service, '
            'like `service_overrides: [{}]`'.format(_override_entries(value))
        )
    _require_list('service_overrides', value, 'entries like `{pagerduty_service: PABC123, service: checkout}`')
    if not isinstance(value, (list, tuple)):
        return value
    for position, entry in enumerate(value, 1):
        if not isinstance(entry, Mapping):
            raise ValueError(
                '`service_overrides` entry #{} must be a mapping like `{{pagerduty_service: PABC123, service: '
                'checkout}}`, got {!r}'.format(position, entry)
            )
        if not _filled(entry.get('pagerduty_service')):
            raise ValueError(
                '`service_overrides` entry #{} needs `pagerduty_service` (a PagerDuty service ID, name or URL)'.format(
                    position
                )
            )
        if not any(_filled(entry.get(target)) for target in OVERRIDE_TARGETS):
            raise ValueError(
                '`service_overrides` entry #{} for {!r} needs at least one of {}{}'.format(
                    position,
                    entry['pagerduty_service'],
                    ', '.join('`{}`'.format(t) for t in OVERRIDE_TARGETS),
                    _unknown_hint(entry, ('pagerduty_service',) + OVERRIDE_TARGETS),
                )
            )
    return value


def instance_service_ids(value: Any, **kwargs: Any) -> Any:
    """A single ID written without brackets would otherwise fail with a bare type error."""
    return _require_list('service_ids', value, 'PagerDuty service IDs')


def instance_team_ids(value: Any, **kwargs: Any) -> Any:
    """A single ID written without brackets would otherwise fail with a bare type error."""
    return _require_list('team_ids', value, 'PagerDuty team IDs')


def instance_priorities(value: Any, **kwargs: Any) -> Any:
    """A single priority written without brackets would otherwise fail with a bare type error."""
    return _require_list('priorities', value, 'PagerDuty priority names, or `none`')


def instance_catalog_files(value: Any, **kwargs: Any) -> Any:
    """A single path written without brackets would otherwise fail with a bare type error."""
    return _require_list('catalog_files', value, 'paths or glob patterns')


def instance_tags(value: Any, **kwargs: Any) -> Any:
    """Tags must be a list, and none may be `service:`: the check sets `service` per incident."""
    _require_list('tags', value, '`key:value` tags')
    if isinstance(value, (list, tuple)):
        for position, tag in enumerate(value, 1):
            if isinstance(tag, str) and tag.strip().lower().startswith('service:'):
                raise ValueError(
                    '`tags` entry #{} {!r} is not allowed: {}; remove it'.format(position, tag, SERVICE_MESSAGE)
                )
    return value


def instance_service(value: Any, **kwargs: Any) -> Any:
    """Refuse the `service` option, which would put one fixed `service` tag next to the mapped one."""
    return _refuse_service('`service`', value)


def shared_service(value: Any, **kwargs: Any) -> Any:
    """Refuse the `service` option of `init_config`, for the same reason as in an instance."""
    return _refuse_service('`service` in `init_config`', value)


def instance_severity_mapping(value: Any, **kwargs: Any) -> Any:
    """A mapping of priority names to severity names; a list is the usual mistake."""
    example = 'priority names to severities, like `{P1: SEV-1, P2: SEV-2}`'
    if value is not None and not isinstance(value, Mapping):
        raise ValueError('`severity_mapping` must map {}, got {!r}'.format(example, value))
    for priority, severity in (value or {}).items():
        if not isinstance(severity, str) or not severity.strip():
            raise ValueError('`severity_mapping` must map {}, got {!r} for {!r}'.format(example, severity, priority))
    return value


def instance_unmapped_incidents(value: Any, **kwargs: Any) -> Any:
    """`send` or `skip`, compared case-insensitively and returned lower-case."""
    name = value.strip().lower() if isinstance(value, str) else value
    if name not in UNMAPPED_INCIDENTS:
        raise ValueError('`unmapped_incidents` must be `send` or `skip`, got {!r}'.format(value))
    return name


def instance_submit_dora_failures(value: Any, **kwargs: Any) -> Any:
    """A boolean; the type error alone would not show the value received."""
    return _require_bool('submit_dora_failures', value)


def instance_collect_events(value: Any, **kwargs: Any) -> Any:
    """A boolean; the type error alone would not show the value received."""
    return _require_bool('collect_events', value)


def instance_attribute_change_failures(value: Any, **kwargs: Any) -> Any:
    """A boolean; the type error alone would not show the value received."""
    return _require_bool('attribute_change_failures', value)


def instance_min_collection_interval(value: Any, **kwargs: Any) -> Any:
    """Seconds between runs; zero or less would leave a run no time at all."""
    return _require_positive('min_collection_interval', value, 'seconds')


def instance_timeout(value: Any, **kwargs: Any) -> Any:
    """Seconds a request may take; the HTTP library refuses zero or less only when a request is made."""
    return _require_positive('timeout', value, 'seconds')


def instance_connect_timeout(value: Any, **kwargs: Any) -> Any:
    """Seconds to connect; zero or less would fail every request."""
    return _require_positive('connect_timeout', value, 'seconds')


def instance_read_timeout(value: Any, **kwargs: Any) -> Any:
    """Seconds to wait for an answer; zero or less would fail every request."""
    return _require_positive('read_timeout', value, 'seconds')


def shared_timeout(value: Any, **kwargs: Any) -> Any:
    """The `init_config` default for `timeout`, bounded like the instance option."""
    return _require_positive('timeout', value, 'seconds')


def instance_attribution_window(value: Any, **kwargs: Any) -> Any:
    """An attribution window of zero or less could never contain a deployment."""
    number = _integer('attribution_window', value, 'of seconds greater than 0')
    if number <= 0:
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


def _check_api_url(option: str, value: Any) -> Any:
    """The URL, stripped, when credentials may be sent to it (see `urls.api_origin`); else a ValueError."""
    if not isinstance(value, str):
        return value
    url = value.strip()
    try:
        api_origin(url)
    except UnsafeUrl as e:
        raise ValueError('`{}` {}, got {!r}'.format(option, e, value)) from None
    return url


def _as_int(value: Any) -> int | None:
    """The integer a value will become, or None when it is not a whole number."""
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


def _require_list(option: str, value: Any, accepted: str) -> Any:
    """A list option given a single value (`urgencies: high`) is refused with the fix, not a type error."""
    if value is not None and not isinstance(value, (list, tuple)):
        raise ValueError(
            '`{}` must be a list of {}, got {!r}: write it in brackets, like `{}: [{}]`'.format(
                option, accepted, value, option, value
            )
        )
    return value


def _require_bool(option: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.strip().lower()]
    raise ValueError('`{}` must be true or false, got {!r}'.format(option, value))


def _integer(option: str, value: Any, accepted: str) -> int:
    number = _as_int(value)
    if number is None:
        raise ValueError('`{}` must be a whole number {}, got {!r}'.format(option, accepted, value))
    return number


def _require_positive(option: str, value: Any, unit: str) -> Any:
    number = _as_float(value)
    if number is None:
        raise ValueError('`{}` must be a number of {} greater than 0, got {!r}'.format(option, unit, value))
    if number <= 0:
        raise ValueError('`{}` must be greater than 0 {}, got {}'.format(option, unit, _plain_number(number)))
    return value


def _refuse_service(where: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return value
    raise ValueError('{} must not be set, got {!r}: {}; remove it'.format(where, value, SERVICE_MESSAGE))


def _unknown_hint(entry: Mapping, known: tuple[str, ...]) -> str:
    """`(`servce` is not an option: did you mean `service`?)` for the unknown keys of an entry."""
    hints = []
    for key in entry:
        if key not in known:
            suggestion = closest(str(key), known)
            hints.append(
                '`{}` is not an option{}'.format(key, ': did you mean `{}`?'.format(suggestion) if suggestion else '')
            )
    return ' ({})'.format('; '.join(hints)) if hints else ''


def _override_entries(mapping: Mapping) -> str:
    """`{pagerduty_service: PABC123, service: checkout}, ...` for a mapping of PagerDuty services to services."""
    pairs = [(k, v) for k, v in mapping.items() if _filled(k) and _filled(v)]
    if len(pairs) != len(mapping) or not pairs:
        pairs = [('PABC123', 'checkout')]
    return ', '.join('{{pagerduty_service: {}, service: {}}}'.format(k.strip(), v.strip()) for k, v in pairs[:3])


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _plain_number(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
