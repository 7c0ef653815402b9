# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What a refused key means and what to fix, rendered in one place for every output that says it.

A 401 or 403 reaches the user through a service check, a catalog warning, a DORA delivery warning or
an attribution note; each names what was attempted and the option or permission to look at. The
permission each endpoint needs is known to the module that calls it, so callers pass it in.

`FEATURES` is the one table of what `datadog_app_key` is used for: per feature, the permissions it
needs and what happens without them. The README's table, the configuration's description of
`datadog_app_key` and the dry run's permission check are all rendered from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import AuthError


@dataclass(frozen=True)
class Feature:
    """A feature that uses `datadog_app_key`: what turns it on, the permissions it needs, and what happens
    without them."""

    name: str
    enabled_by: str
    permissions: tuple[str, ...]
    without: str

    def used_by(self, *, app_key: bool, submit_dora_failures: bool, attribute_change_failures: bool) -> bool:
        """Whether a configuration with these settings uses this feature."""
        if self is ATTRIBUTION:
            return app_key and attribute_change_failures
        if not app_key:
            return False
        if self is REMOVALS:
            return submit_dora_failures
        return True


CATALOG = Feature(
    'Mapping from the Software Catalog',
    '`datadog_app_key`',
    ('apm_service_catalog_read', 'teams_read'),
    'The catalog never loads: nothing is submitted (`can_submit` CRITICAL) until it does. After a first '
    'load, its last good copy is used, with a warning.',
)
REBUILD = Feature(
    'Rebuild of an empty state, after a cluster check moved',
    '`datadog_app_key`',
    ('events_read', 'dora_metrics_read'),
    'The run starts as a first run: history is sent again as DORA failures, and transitions during the '
    'move are not reported as events. A warning says so.',
)
DRIFT = Feature(
    'Daily drift repair of DORA failures',
    '`datadog_app_key`',
    ('dora_metrics_read',),
    'Failures that disagree with PagerDuty are not repaired. A warning says so.',
)
REMOVALS = Feature(
    'Removal of the failure of an incident that left the scope, was merged or deleted',
    '`datadog_app_key` and `submit_dora_failures`',
    ('dora_metrics_write',),
    'The failure stays open in Datadog and its removal waits, with a warning and '
    '`pagerduty_dora.dora.errors` (`kind:removal_refused`). Collection and other deliveries go on.',
)
ATTRIBUTION = Feature(
    'Change-failure attribution',
    '`attribute_change_failures` and `datadog_app_key`',
    ('dora_metrics_read', 'dora_metrics_write'),
    'No deployment is marked: attribution work waits and is retried every run, with a warning.',
)
FEATURES = (CATALOG, REBUILD, DRIFT, REMOVALS, ATTRIBUTION)
# Said beside the table: the one output that needs no application key.
API_KEY_ONLY = (
    'DORA failures themselves need no application key: they are sent with `datadog_api_key` (or the '
    "Agent's `api_key`)."
)


def permissions_markdown() -> str:
    """The table of `FEATURES` in Markdown: feature, what turns it on, permissions, what happens without them."""
    lines = [
        '| feature | turned on by | permissions of `datadog_app_key` | without them |',
        '|---|---|---|---|',
    ]
    for feature in FEATURES:
        lines.append(
            '| {} | {} | {} | {} |'.format(
                feature.name,
                feature.enabled_by,
                ', '.join('`{}`'.format(p) for p in feature.permissions),
                feature.without,
            )
        )
    return '\n'.join(lines + ['', API_KEY_ONLY])


def permissions_text() -> str:
    """`FEATURES` as plain text, one paragraph per feature, for the configuration's description."""
    paragraphs = [
        '- {} ({}): {}. Without them: {}'.format(
            feature.name,
            feature.enabled_by,
            ', '.join('`{}`'.format(p) for p in feature.permissions),
            feature.without[:1].lower() + feature.without[1:],
        )
        for feature in FEATURES
    ]
    return '\n'.join(paragraphs + ['', API_KEY_ONLY])


US_PAGERDUTY_URL = 'https://api.pagerduty.com'
EU_PAGERDUTY_URL = 'https://api.eu.pagerduty.com'
UNAUTHORIZED_PAGERDUTY = 'PagerDuty rejected `api_token` (401 Unauthorized) at {}: the key is wrong or revoked, {}'
# Why attribution waits, in its notes and events: said the same way wherever it is shown.
DEPLOYMENTS_FORBIDDEN = (
    'Datadog refused access to DORA deployments (403); `datadog_app_key` needs the `dora_metrics_read` '
    'and `dora_metrics_write` permissions'
)


def status_text(status: int | None) -> str:
    """`401 Unauthorized`, `403 Forbidden`, or the bare status of any other refusal."""
    return '403 Forbidden' if status == 403 else '401 Unauthorized' if status == 401 else str(status)


def is_eu_pagerduty(url: str) -> bool:
    """Whether `url` is PagerDuty's EU service region."""
    return url.rstrip('/').lower() == EU_PAGERDUTY_URL


def pagerduty_refusal(error: AuthError, url: str) -> str:
    """PagerDuty refused `api_token` at `url`: a wrong key or another region (401), or no read access (403)."""
    if error.status == 401:
        region = (
            'or belongs to the US service region (its URL is the default, {})'.format(US_PAGERDUTY_URL)
            if is_eu_pagerduty(url)
            else 'or belongs to another region (EU accounts use {})'.format(EU_PAGERDUTY_URL)
        )
        return UNAUTHORIZED_PAGERDUTY.format(url, region)
    return (
        'PagerDuty refused `api_token` access (403 Forbidden): {}. The key is valid but lacks read access '
        'to incidents; use a REST API key with read access (a read-only key is enough)'.format(error)
    )


def datadog_refusal(error: AuthError, permission: str | None) -> str:
    """Datadog refused a request to `error.endpoint`, which needs `permission` of `datadog_app_key` (None: no
    application key is involved, so the API key is the one refused)."""
    status = status_text(error.status)
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


def catalog_refusal(error: AuthError, path: str, permission: str) -> str:
    """A 401 or 403 on `GET path` of the catalog, which needs `permission`.

    A 403 whose body names a failed permission check comes from valid keys that lack one permission.
    A 401, or a bare 403, comes from a wrong or revoked key (or keys of another Datadog site); since only
    the body tells the two 403s apart, a bare 403 also names the permission, as the second thing to check.
    """
    if error.missing_permission:
        return (
            'the Datadog API answered 403 to GET {}: the keys are valid, but the user or service account of the '
            'application key (datadog_app_key) lacks the {} permission'.format(path, permission)
        )
    message = (
        'the Datadog API answered {} to GET {}: the application key (datadog_app_key) or the API key '
        '(datadog_api_key) is wrong or revoked, or datadog_api_url is not your Datadog site'.format(error.status, path)
    )
    if error.status == 403:
        message += '; if both keys are right, the application key lacks the {} permission'.format(permission)
    return message


def dora_delivery_refusal(error: AuthError, pending: int) -> str:
    """The DORA failure endpoint refused the API key; `pending` failures wait."""
    return (
        'The DORA API refused the key ({}): check `datadog_api_key` (or the Agent `api_key`) and that it '
        'belongs to the Datadog site of `datadog_api_url`; {} failures wait for the next run'.format(
            error.status, pending
        )
    )


def dora_removal_refusal(error: AuthError, failure: str) -> str:
    """Deleting the DORA failure `failure` was refused: the application key lacks `dora_metrics_write`."""
    return (
        'Datadog refused to delete DORA failure {} ({}): the application key of `datadog_app_key` needs the '
        '`dora_metrics_write` permission. Removals wait for the next run; collection and other deliveries '
        'go on'.format(failure, error.status)
    )


def deployments_refusal(status: int | None) -> str:
    """The DORA deployments API refused change-failure attribution (`status`); its work is kept."""
    return (
        'Datadog refused the DORA deployments API ({}) for change-failure attribution: `datadog_app_key` must '
        'be set and its user or service account needs the `dora_metrics_read` permission (to search '
        'deployments) and `dora_metrics_write` (to mark them as change failures). Attribution work is kept '
        'and retried on the next run'.format(status)
    )
