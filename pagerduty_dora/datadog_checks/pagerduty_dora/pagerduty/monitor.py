# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Incidents a Datadog monitor triggered: what PagerDuty holds of the monitor, and the mapping it decides.

Datadog's PagerDuty integration sends Events API v2 events with `client: Datadog`, a `client_url` to
the monitor (`https://app.datadoghq.com/monitors/<id>?group=env:prod,service:web`, or the older
`https://app.datadoghq.com/monitors#<id>?...&group=...`) and details holding the monitor's `tags` as
one comma-separated string. PagerDuty keeps the event on the incident's alerts (`body.cef_details`)
and on its first trigger log entry (`channel`). Everything here is pure and bounded: a source that is
not Datadog's, a URL to another host, a value Datadog never writes in a tag, a megabyte of tags, all
read as "no monitor" or as fewer tags, never as a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from datadog_checks.pagerduty_dora.common import codec

MONITOR_GROUP = 'monitor_group'
MONITOR_TAGS = 'monitor_tags'
MONITOR_RULES = (MONITOR_GROUP, MONITOR_TAGS)
# The `client` Datadog's integration sends (older integrations: `View in Datadog`), compared casefolded.
DATADOG_CLIENTS = frozenset(('datadog', 'view in datadog'))
# Hosts of Datadog's sites (app.datadoghq.com, us3/us5/ap1/ap2.datadoghq.com, app.datadoghq.eu,
# app.ddog-gov.com) and of custom subdomains on them.
DATADOG_DOMAINS = ('datadoghq.com', 'datadoghq.eu', 'ddog-gov.com')
# Datadog cuts a tag at 200 characters: a longer one is not a tag Datadog wrote.
MAX_TAG_LENGTH = 200
# How much of a `tags` string or a `client_url` is read at all.
MAX_TAGS_TEXT = 16 * 1024
MAX_URL_LENGTH = 8 * 1024
# Tags and group entries read; services kept for one incident (a DORA failure lists them all).
MAX_TAGS = 1000
MAX_SERVICES = 20
MAX_MONITOR_ID = 10**18
# What Datadog accepts in a tag value: letters, digits, `_ - : . /` (tags are lowercased by Datadog).
_TAG_VALUE = re.compile(r'[\w\-:./]+')
_MONITOR_PATH = re.compile(r'/monitors/(\d{1,18})/?')
_FRAGMENT = re.compile(r'(\d{1,18})(?:\?(.*))?', re.DOTALL)
KEYS = ('service', 'env', 'team')
VERSION = 'version'


@dataclass(frozen=True)
class MonitorAlert:
    """What one Datadog alert says of its monitor: its id, the alerted group (Multi Alert) and its tags."""

    monitor_id: int
    group: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonitorMapping:
    """The mapping an incident's first trigger decided, kept for the incident's whole life.

    `monitor_id` is None for an incident no Datadog monitor triggered; `rule` is '' when the monitor
    gave nothing to map by (the catalog rules decide alone). `services` are every service it names.
    `version` is the version the alert names (its group, else the monitor's single `version` tag): it
    maps nothing, and names the deployment attribution blames.
    """

    monitor_id: int | None = None
    rule: str = ''
    services: tuple[str, ...] = ()
    team: str | None = None
    env: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            'id': self.monitor_id,
            'rule': self.rule,
            'services': list(self.services),
            'team': self.team,
            'env': self.env,
            'version': self.version,
        }

    @classmethod
    def from_json(cls, raw: Any) -> MonitorMapping:
        """Read a stored value back; raises ValueError for anything `to_json` does not write."""
        if not isinstance(raw, Mapping):
            raise ValueError('monitor mapping is not an object')
        monitor_id = raw.get('id')
        if monitor_id is not None and not _is_monitor_id(monitor_id):
            raise ValueError('monitor id is not a positive integer')
        rule = raw.get('rule', '')
        if rule != '' and rule not in MONITOR_RULES:
            raise ValueError('unknown monitor rule')
        services = raw.get('services') or []
        if not isinstance(services, list) or len(services) > MAX_SERVICES:
            raise ValueError('monitor services are not a short list')
        optional = ('team', 'env', 'version')
        values = [tag_value(s) for s in services] + [tag_value(raw.get(k)) for k in optional if raw.get(k)]
        if any(v is None for v in values):
            raise ValueError('monitor mapping holds a value Datadog would not tag with')
        return cls(
            monitor_id=monitor_id,
            rule=rule if monitor_id is not None else '',
            services=tuple(services),
            team=raw.get('team') or None,
            env=raw.get('env') or None,
            # A mapping stored before versions were kept has none.
            version=raw.get('version') or None,
        )


NO_MONITOR = MonitorMapping()


def _is_monitor_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < MAX_MONITOR_ID


def tag_value(value: Any) -> str | None:
    """`value` stripped when Datadog could have written it as a tag value (≤ 200 characters of its charset)."""
    if not isinstance(value, str) or len(value) > MAX_TAG_LENGTH * 2:
        return None
    text = value.strip()
    return text if 0 < len(text) <= MAX_TAG_LENGTH and _TAG_VALUE.fullmatch(text) else None


def split_tag(tag: str) -> tuple[str, str] | None:
    """(key, value) of a `key:value` tag with a key this check maps by; None for any other."""
    key, sep, value = tag.partition(':')
    key = key.strip().lower()
    if not sep or key not in KEYS + (VERSION,):
        return None
    checked = tag_value(value)
    return (key, checked) if checked is not None else None


def parse_tags(value: Any) -> tuple[str, ...]:
    """The alert's `tags`: a comma-separated string (a list is read too), bounded; empty pieces dropped."""
    if isinstance(value, str):
        pieces = value[:MAX_TAGS_TEXT].split(',')
    elif isinstance(value, list):
        pieces = [v for v in value[:MAX_TAGS] if isinstance(v, str)]
    else:
        return ()
    tags = []
    for piece in pieces[:MAX_TAGS]:
        text = piece.strip()
        if text and len(text) <= MAX_TAG_LENGTH * 2:
            tags.append(text)
    return tuple(tags)


def is_datadog_host(host: str | None) -> bool:
    host = (host or '').lower().rstrip('.')
    return any(host == domain or host.endswith('.' + domain) for domain in DATADOG_DOMAINS)


def parse_monitor_url(url: Any) -> tuple[int, tuple[tuple[str, str], ...]] | None:
    """(monitor id, alerted group) of a Datadog monitor URL, in its current or older (`#<id>`) form; else None."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme != 'https' or parts.username or parts.password or not is_datadog_host(host):
        return None
    match = _MONITOR_PATH.fullmatch(parts.path)
    query = parts.query
    if match is None:
        fragment = _FRAGMENT.fullmatch(parts.fragment) if parts.path.rstrip('/') == '/monitors' else None
        if fragment is None:
            return None
        match, query = fragment, fragment.group(2) or ''
    monitor_id = int(match.group(1))
    if not _is_monitor_id(monitor_id):
        return None
    groups = parse_qs(query, max_num_fields=50).get('group') or ['']
    return monitor_id, parse_group(groups[0])


def parse_group(text: str) -> tuple[tuple[str, str], ...]:
    """The `key:value` entries of an alerted group (`env:prod,service:web`) this check maps by.

    A group value with a comma splits into pieces, the piece without a key is dropped; a value with a
    character Datadog never writes in a tag (`=`, a space...) is dropped.
    """
    found: list[tuple[str, str]] = []
    for piece in text[:MAX_TAGS_TEXT].split(',')[:MAX_TAGS]:
        entry = split_tag(piece)
        if entry is not None:
            found.append(entry)
    return tuple(found)


def _channel_part(source: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The level of `source` that holds `client` and `client_url`: itself, or its `cef_details`."""
    for candidate in (source, source.get('cef_details')):
        if isinstance(candidate, Mapping) and isinstance(candidate.get('client'), str):
            return candidate
    return None


def datadog_alert(source: Any) -> MonitorAlert | None:
    """The monitor behind an alert body or a trigger entry's channel; None unless Datadog's integration sent it.

    Both the `client` and a `client_url` to a monitor on a Datadog site are needed: other tools
    (Prometheus, Grafana, New Relic...) send their own clients, and a URL alone proves nothing.
    """
    if not isinstance(source, Mapping):
        return None
    part = _channel_part(source)
    if part is None or str(part.get('client')).strip().casefold() not in DATADOG_CLIENTS:
        return None
    parsed = parse_monitor_url(part.get('client_url'))
    if parsed is None:
        return None
    monitor_id, group = parsed
    tags: tuple[str, ...] = ()
    for holder in (part, source):
        details = holder.get('details')
        if isinstance(details, Mapping) and 'tags' in details:
            tags = parse_tags(details.get('tags'))
            break
    return MonitorAlert(monitor_id=monitor_id, group=group, tags=tags)


def _single(values: list[str]) -> str | None:
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else None


def decide(alert: MonitorAlert | None, monitor_tags: tuple[str, ...] | None = None) -> MonitorMapping:
    """The mapping a monitor gives an incident, as Datadog's own matching does.

    A Multi Alert group gives its `service`, `env` and `team`. What it lacks, and a monitor with no
    group, comes from the monitor's tags: `env` if there is a single `env` tag, every `service` tag
    (at most `MAX_SERVICES`), `team` if there is a single `team` tag. `monitor_tags` are the tags
    Datadog's API gives for the monitor, when read; the alert's own tags otherwise. The `version` comes the
    same way: the group's, else the monitor's single `version` tag.
    """
    if alert is None:
        return NO_MONITOR
    grouped: dict[str, str] = {}
    for key, value in alert.group:
        grouped.setdefault(key, value)
    tagged: dict[str, list[str]] = {key: [] for key in KEYS + (VERSION,)}
    for tag in alert.tags if monitor_tags is None else monitor_tags:
        entry = split_tag(tag)
        if entry is not None and entry[0] in tagged:
            tagged[entry[0]].append(entry[1])
    services = (grouped['service'],) if 'service' in grouped else tuple(dict.fromkeys(tagged['service']))
    env = grouped.get('env') or _single(tagged['env'])
    team = grouped.get('team') or _single(tagged['team'])
    version = grouped.get(VERSION) or _single(tagged[VERSION])
    rule = MONITOR_GROUP if any(k in grouped for k in KEYS) else MONITOR_TAGS if services or env or team else ''
    return MonitorMapping(alert.monitor_id, rule, services[:MAX_SERVICES], team, env, version)


def first_alert(alerts: Any) -> MonitorAlert | None:
    """The monitor of the oldest alert of a `GET /incidents/{id}/alerts` page: the one that triggered it."""
    if not isinstance(alerts, list):
        return None
    dated = [a for a in alerts if isinstance(a, Mapping)]
    dated.sort(key=lambda a: str(a.get('created_at') or ''))
    if not dated:
        return None
    body = dated[0].get('body')
    return datadog_alert(body)


class _Kept(codec.Domain['MonitorMapping | None']):
    """A kept monitor mapping as stored in an incident's record; one that cannot be read is decided again (None).

    Most incidents come from no monitor: that decision is stored as `0`, not as a whole mapping.
    """

    plain = False

    def encode(self, value: MonitorMapping | None) -> Any:
        if value is None:
            return None
        return _NONE_STORED if value == NO_MONITOR else value.to_json()

    def decode(self, raw: Any) -> MonitorMapping | None:
        if raw == _NONE_STORED and not isinstance(raw, bool):
            return NO_MONITOR
        try:
            return None if raw is None else MonitorMapping.from_json(raw)
        except (ValueError, TypeError, KeyError):
            return None


_NONE_STORED = 0


KEPT_MAPPING: codec.Domain[MonitorMapping | None] = _Kept()
