# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Agent events for incident transitions: one per transition, threaded per incident by `aggregation_key`.

One more event says since when an instance reports every transition (`build_live_event`): a trace
in Datadog's own terms, read back by a check moved to another node to know where to resume.

Change-failure attribution builds the lines it adds to an event's text (`notes`) itself. Every
value shown in a title or a text goes through `_md`, `_code` or `_link`, which make it one line of
literal Markdown in which no `@` can notify anyone (`text.no_mentions`).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Sequence

from datadog_checks.pagerduty_dora.common.text import clip, no_mentions, one_line
from datadog_checks.pagerduty_dora.common.times import format_time

if TYPE_CHECKING:
    from datadog_checks.pagerduty_dora.catalog.mapping import MappingResult
    from datadog_checks.pagerduty_dora.pagerduty.incident import Incident
    from datadog_checks.pagerduty_dora.pagerduty.transitions import Transition

EVENT_TYPE = 'pagerduty_dora'
SOURCE_TYPE_NAME = 'pagerduty_dora'

ALERT_TYPES = {
    'triggered': 'error',
    'reopened': 'error',
    'acknowledged': 'warning',
    'resolved': 'success',
}
KIND_LABELS = {
    'triggered': 'triggered',
    'acknowledged': 'acknowledged',
    'unacknowledged': 'unacknowledged',
    'resolved': 'resolved',
    'reopened': 'reopened',
    'priority_changed': 'priority changed',
    'urgency_changed': 'urgency changed',
    'service_changed': 'service changed',
}
CHANGE_LABELS = {
    'priority_changed': 'Priority',
    'urgency_changed': 'Urgency',
    'service_changed': 'PagerDuty service',
}

# Bounds on what one event carries: an incident title can be megabytes long.
TITLE_LIMIT = 100
TEXT_LIMIT = 4000
TEXT_TITLE_LIMIT = 300
NAME_LIMIT = 100
MAX_TEAMS_LISTED = 10
# Datadog does not accept events dated more than 18 hours in the past; an older transition (seen
# late, after the Agent was down) is dated now, and its real time stays in the text.
MAX_EVENT_AGE = 18 * 3600
# The tag of the event saying since when the instance reports every transition (epoch seconds).
LIVE_SINCE_TAG = 'pagerduty_dora_live_since'

_MARKDOWN_SPECIAL = re.compile(r'([\\`*_{}\[\]()<>#+|~!])')
_BLOCK_DELIMITER = re.compile(r'%{3,}')
_DURATION_UNITS = (('d', 86400), ('h', 3600), ('m', 60), ('s', 1))


def format_duration(seconds: float) -> str:
    """A duration for people: its two largest units, like `2d 3h`, `1h 5m`, `4m 10s`, `42s`, `1h`.

    Negative, non-finite or missing values read as `0s`; what is below the second unit is dropped, and
    so is a second unit of zero (`1h`, never `1h 0m`).
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 1:
        return '0s'
    remaining = int(seconds)
    for index, (unit, size) in enumerate(_DURATION_UNITS):
        if remaining < size:
            continue
        parts = ['{}{}'.format(remaining // size, unit)]
        if index + 1 < len(_DURATION_UNITS):
            next_unit, next_size = _DURATION_UNITS[index + 1]
            value = (remaining % size) // next_size
            if value:
                parts.append('{}{}'.format(value, next_unit))
        return ' '.join(parts)
    return '0s'


def _md(text: Any, limit: int = NAME_LIMIT) -> str:
    """Untrusted text as literal Markdown on one line (and never the `%%%` block delimiter nor a mention)."""
    clipped = clip(no_mentions(one_line(str(text))), limit)
    return _BLOCK_DELIMITER.sub('%%', _MARKDOWN_SPECIAL.sub(r'\\\1', clipped))


def _link(label: str, url: str) -> str:
    if url.startswith(('https://', 'http://')) and not any(c.isspace() for c in url):
        # Percent-encoded, `@` still means the same in a URL, and no longer names anyone to notify.
        target = url.replace('(', '%28').replace(')', '%29').replace('@', '%40')
        return '[{}]({})'.format(label, target)
    return label


def _code(value: Any) -> str:
    if not value:
        return '(none)'
    return '`{}`'.format(clip(no_mentions(one_line(str(value))), NAME_LIMIT).replace('`', "'"))


def _title(transition: Transition) -> str:
    incident = transition.incident
    head = '#{} {}'.format(incident.number, KIND_LABELS.get(transition.kind, transition.kind.replace('_', ' ')))
    if incident.priority:
        head = '[{}] {}'.format(clip(no_mentions(one_line(incident.priority)), 20), head)
    title = no_mentions(one_line(incident.title))
    return '{}: {}'.format(head, clip(title, TITLE_LIMIT)) if title else head


def _durations(transition: Transition) -> list[str]:
    incident = transition.incident
    elapsed = max(0.0, transition.at - incident.created_at)
    if transition.kind == 'resolved':
        return ['- **Time to restore:** {} ({} s)'.format(format_duration(elapsed), int(elapsed))]
    if transition.kind == 'acknowledged' and transition.first:
        return ['- **Time to acknowledge:** {} ({} s)'.format(format_duration(elapsed), int(elapsed))]
    return []


def _change(transition: Transition) -> list[str]:
    label = CHANGE_LABELS.get(transition.kind)
    if label is None:
        return []
    incident = transition.incident
    current = {
        'priority_changed': incident.priority,
        'urgency_changed': incident.urgency,
        'service_changed': incident.service_name,
    }[transition.kind]
    return [
        '- **{} changed:** {} → {}'.format(
            label, _md(transition.previous) if transition.previous else '(none)', _md(current) if current else '(none)'
        )
    ]


def _body(transition: Transition, mapping: MappingResult, late: bool, notes: Sequence[str] = ()) -> str:
    incident = transition.incident
    heading = '#{} {}'.format(incident.number, _md(incident.title, TEXT_TITLE_LIMIT) if incident.title.strip() else '')
    lines = ['### ' + _link(heading.strip(), incident.html_url), '']
    label = KIND_LABELS.get(transition.kind, transition.kind.replace('_', ' '))
    when = '- **{}** at {}'.format(label.capitalize(), format_time(transition.at))
    if late:
        when += ' (reported late: Datadog does not accept events more than 18 hours old)'
    lines.append(when)
    lines.append(
        '- **Status:** {} · **Urgency:** {} · **Priority:** {}'.format(
            _md(incident.status), _md(incident.urgency), _md(incident.priority) if incident.priority else '(none)'
        )
    )
    lines.extend(_durations(transition))
    lines.extend(_change(transition))
    lines.append(
        '- **PagerDuty service:** {}'.format(
            _link(_md(incident.service_name or incident.service_id), incident.service_url)
        )
    )
    if incident.teams:
        names = [_md(team.name or team.id) for team in incident.teams[:MAX_TEAMS_LISTED]]
        more = len(incident.teams) - MAX_TEAMS_LISTED
        if more > 0:
            names.append('and {} more'.format(more))
        lines.append('- **PagerDuty teams:** {}'.format(', '.join(names)))
    services = ', '.join(_code(name) for name in mapping.services[:MAX_TEAMS_LISTED]) or '(none)'
    lines.append(
        '- **Mapped by rule** {} to service {}, team {}, env {}, severity {}'.format(
            _code(mapping.rule), services, _code(mapping.team), _code(mapping.env), _code(mapping.severity)
        )
    )
    if mapping.monitor_id is not None:
        lines.append('- **Triggered by Datadog monitor** {}'.format(_code(str(mapping.monitor_id))))
    lines.extend(notes)
    body = '\n'.join(lines)
    wrapper = len('%%% \n') + len('\n %%%')
    return '%%% \n' + clip(body, TEXT_LIMIT - wrapper) + '\n %%%'


def build_event(
    transition: Transition, mapping: MappingResult, *, tags: list[str], now: float, notes: Sequence[str] = ()
) -> dict:
    """The Agent event (for `AgentCheck.event`) of one transition, mapped as `mapping` says.

    `timestamp` is when the transition happened in PagerDuty, unless that is more than 18 hours
    before `now`, the oldest an event can be dated; `tags` are used as given.
    """
    incident: Incident = transition.incident
    late = transition.at < now - MAX_EVENT_AGE
    return {
        'timestamp': int(now if late else transition.at),
        'event_type': EVENT_TYPE,
        'source_type_name': SOURCE_TYPE_NAME,
        'aggregation_key': incident.id,
        'alert_type': ALERT_TYPES.get(transition.kind, 'info'),
        'priority': 'normal',
        'msg_title': _title(transition),
        'msg_text': _body(transition, mapping, late, notes),
        'tags': list(tags),
    }


def build_live_event(live_since: float, *, key: str, tags: list[str], now: float) -> dict:
    """The event saying that the instance reports every transition since `live_since` (low priority, `info`).

    Dated `now`, the time up to which it speaks (Datadog refuses events older than 18 hours), and tagged
    with `live_since` (`LIVE_SINCE_TAG`, added here); `key` threads these events of one instance.
    """
    since = format_time(live_since)
    text = '\n'.join(
        [
            'This instance of the PagerDuty DORA check reports every transition of the incidents it collects '
            'since **{}**.'.format(since),
            '',
            'It sends this event when its collection goes live, and again after a day without any other event: '
            'a check moved to another Agent (a cluster check) reads it back with `datadog_app_key` to resume '
            'reporting where this one reported up to. No action is needed.',
        ]
    )
    return {
        'timestamp': int(now),
        'event_type': EVENT_TYPE,
        'source_type_name': SOURCE_TYPE_NAME,
        'aggregation_key': key,
        'alert_type': 'info',
        'priority': 'low',
        'msg_title': 'PagerDuty DORA collection live since {}'.format(since),
        'msg_text': '%%% \n' + text + '\n %%%',
        'tags': list(tags) + ['{}:{}'.format(LIVE_SINCE_TAG, int(live_since))],
    }
