# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which Datadog monitor triggered an incident, and what it maps the incident to: decided once, at its first look.

The incident's trigger entry holds, in its channel, the event Datadog's integration sent. The
account's log and an incident's own log are read with their channels, and the incident lists embed
the first trigger entry (`include[]=first_trigger_log_entries`): where one of them showed it, nothing
more is asked. Otherwise (an incident whose later entries the log showed first) its oldest alert is
read, one request inside the run's PagerDuty budget.
With `datadog_app_key`, the monitor itself (`GET /api/v1/monitor/{id}`, permission `monitors_read`)
gives its tags where the alerted group does not give service, env and team; a monitor that is gone,
or a key without the permission, leaves the alert's own tags to decide.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from datadog_checks.pagerduty_dora.common.disposition import Disposition, dispose
from datadog_checks.pagerduty_dora.common.errors import ApiError
from datadog_checks.pagerduty_dora.common.http import ApiClient
from datadog_checks.pagerduty_dora.common.permissions import status_text
from datadog_checks.pagerduty_dora.pagerduty.client import PagerDutyClient
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
from datadog_checks.pagerduty_dora.pagerduty.monitor import (
    KEYS,
    MonitorAlert,
    MonitorMapping,
    decide,
    first_alert,
    parse_tags,
    split_tag,
)

from .ports import Log

MONITOR_ENDPOINT = 'monitor'
# Monitors read from Datadog remembered in one run (several incidents often come from one monitor).
MAX_MONITORS_KEPT = 1000
# A Multi Alert monitor's query groups by tags: `... by {service,env} > 1`.
_GROUPED_QUERY = re.compile(r'\bby\s*\{[^}]*\}')
# What the incident's alerts answered that no retry would read: it is mapped without its monitor.
NEVER_READ = (Disposition.UNREADABLE, Disposition.GONE, Disposition.GIVE_UP)
MONITORS_FORBIDDEN = (
    'Datadog refused GET /api/v1/monitor/{id} (%s): the user or service account of `datadog_app_key` lacks the '
    '`monitors_read` permission. Incidents from Datadog monitors are mapped by the tags their alerts carry'
)


class MonitorLookup:
    """Decides the monitor mapping of incidents; `datadog` is the Datadog API client with `datadog_app_key`, or None."""

    def __init__(self, datadog: ApiClient | None, log: Log, warning: Callable[..., None]) -> None:
        self.datadog = datadog
        self.log = log
        self._warning = warning
        # The tags of the monitors read from Datadog in this run, by id (None: the alert's tags decide).
        self._known: dict[int, tuple[str, ...] | None] = {}

    def start_run(self) -> None:
        """Monitors are read again each run: their tags may change for the incidents to come."""
        self._known = {}

    def decide(self, client: PagerDutyClient, incident: Incident) -> MonitorMapping:
        """The mapping the monitor that triggered `incident` gives it (`NO_MONITOR` when none did)."""
        if incident.trigger_known:
            alert = incident.trigger
        elif incident.id in client.triggers:
            alert = client.triggers[incident.id]
        else:
            alert = first_alert(self._alerts(client, incident))
        if alert is None:
            return decide(None)
        grouped = {key for key, _ in alert.group}
        monitor_tags = None if grouped >= set(KEYS) else self._monitor_tags(alert)
        mapping = decide(alert, monitor_tags)
        self.log.debug(
            'Incident %s comes from Datadog monitor %d (mapping_rule=%s)', incident.id, alert.monitor_id, mapping.rule
        )
        return mapping

    def _alerts(self, client: PagerDutyClient, incident: Incident) -> list[Any]:
        """The incident's first alerts; none when PagerDuty answers what can never be read (a retry would fail the
        same way), so that one incident cannot hold the collection back. A transient failure ends the run."""
        try:
            return client.incident_alerts(incident.id)
        except ApiError as e:
            if dispose(e) not in NEVER_READ:
                raise
            self.log.debug('Alerts of incident %s could not be read (%s); no monitor mapping', incident.id, e)
            return []

    def _monitor_tags(self, alert: MonitorAlert) -> tuple[str, ...] | None:
        """The monitor's tags as Datadog's API gives them; None where the alert's own tags must do."""
        api = self.datadog
        if api is None or api.stalled(MONITOR_ENDPOINT):
            return None
        known = self._known
        if alert.monitor_id in known:
            return known[alert.monitor_id]
        path = '/api/v1/monitor/{}'.format(alert.monitor_id)
        try:
            data = api.get(path, endpoint=MONITOR_ENDPOINT).data
        except ApiError as e:
            disposition = dispose(e)
            if disposition in (Disposition.WAIT, Disposition.PAUSE):
                # The run ends; the incident is decided on the next one, with the monitor's tags.
                raise
            if disposition is Disposition.FIX_KEY:
                # Asked again next run; until then every incident is mapped by its alert's tags.
                api.stall(MONITOR_ENDPOINT)
                self._warning(MONITORS_FORBIDDEN, status_text(e.status))
                return None
            if disposition.failed_for_now:
                self.log.debug('Datadog monitor %d could not be read (%s); mapping by its alert', alert.monitor_id, e)
                return None
            # Refused for good, mostly GONE (the monitor was deleted since it alerted): its alert's tags decide.
            self.log.debug('Datadog monitor %d answered %s; mapping by its alert', alert.monitor_id, e.status)
            tags = None
        else:
            tags = monitor_tags(data)
        if len(known) >= MAX_MONITORS_KEPT:
            known.clear()
        known[alert.monitor_id] = tags
        return tags


def monitor_tags(data: Any) -> tuple[str, ...] | None:
    """The tags of a `GET /api/v1/monitor/{id}` answer, bounded; None for an answer that is not a monitor.

    A Multi Alert monitor (its query groups `by {...}`) keeps only tags that are not grouped by: the
    group of each alert decides those.
    """
    if not isinstance(data, dict) or not isinstance(data.get('tags'), list):
        return None
    tags = parse_tags(data['tags'])
    query = data.get('query')
    grouped = _GROUPED_QUERY.search(query[:4096]) if isinstance(query, str) else None
    if grouped is None:
        return tags
    by = {piece.strip().lower() for piece in grouped.group(0).partition('{')[2].rstrip('}').split(',')}
    return tuple(tag for tag in tags if (split_tag(tag) or ('', ''))[0] not in by)
