# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty's ids and JSON, for a simulated account: what an incident or a log entry looks like in
REST API v2. The demo's account and the tests' fake both render through `Renderer`, so they speak the
same JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote

STATUSES = ('triggered', 'acknowledged', 'resolved')
URGENCIES = ('high', 'low')
PRIORITY_NAMES = ('P1', 'P2', 'P3', 'P4', 'P5')
LOG_ENTRY_TYPES = (
    'trigger_log_entry',
    'assign_log_entry',
    'notify_log_entry',
    'acknowledge_log_entry',
    'unacknowledge_log_entry',
    'resolve_log_entry',
    'priority_change_log_entry',
    'urgency_change_log_entry',
)
LOG_SUMMARIES = (
    'Triggered through the API.',
    'Assigned to Alex Responder.',
    'Notified Alex Responder by push notification.',
    'Acknowledged by Alex Responder.',
    'Unacknowledged due to timeout.',
    'Resolved by Alex Responder.',
    'Priority changed by Alex Responder.',
    'Urgency changed by Alex Responder.',
)
# Log entry kinds, indexes into LOG_ENTRY_TYPES.
TRIGGER, ASSIGN, NOTIFY, ACK, UNACK, RESOLVE, PRIORITY, URGENCY = range(len(LOG_ENTRY_TYPES))

# PagerDuty-style ids: 'P' + 6 of [0-9A-Z], from an invertible permutation of a number, so an
# incident id decodes back to its number without an id -> incident map.
_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'
_ID_SPACE = 36**6
_ID_FACTOR = 1000003  # prime, so coprime with 36: the permutation is invertible
_ID_INVERSE = pow(_ID_FACTOR, -1, _ID_SPACE)
_ID_SHIFT = 48271
# Entities other than incidents number from here, so their ids never decode to an incident.
ENTITY_BASE = {'service': 10**9, 'team': 11 * 10**8, 'priority': 12 * 10**8, 'policy': 13 * 10**8, 'user': 14 * 10**8}


def encode_id(number: int, prefix: str = 'P') -> str:
    value = (number * _ID_FACTOR + _ID_SHIFT) % _ID_SPACE
    chars = []
    for _ in range(6):
        value, digit = divmod(value, 36)
        chars.append(_ALPHABET[digit])
    return prefix + ''.join(reversed(chars))


def decode_id(text: str, prefix: str = 'P') -> int | None:
    if len(text) != 7 or not text.startswith(prefix):
        return None
    value = 0
    for char in text[1:]:
        digit = _ALPHABET.find(char)
        if digit < 0:
            return None
        value = value * 36 + digit
    return ((value - _ID_SHIFT) * _ID_INVERSE) % _ID_SPACE


def priorities() -> list[tuple[str, str]]:
    """(id, name) of an account's priorities, P1 first."""
    return [(encode_id(ENTITY_BASE['priority'] + i), name) for i, name in enumerate(PRIORITY_NAMES)]


RESPONDER = (encode_id(ENTITY_BASE['user']), 'Alex Responder')


@dataclass
class IncidentFacts:
    """What PagerDuty's JSON of an incident is made of; times already rendered, None when absent."""

    number: int
    title: str
    status: str
    urgency: str
    priority: tuple[str, str] | None  # (id, name)
    created: str | None
    updated: str | None
    changed: str | None
    acked: str | None
    resolved: str | None
    service: int  # index of the account's service
    merged_into: tuple[int, str] | None = None  # (number, title) of the incident it was merged into
    # The Events API v2 fields the monitoring tool sent (`client`, `client_url`, `details`); None: made by hand.
    event: dict[str, Any] | None = None


def datadog_event(
    monitor_id: int,
    group: Sequence[str] = (),
    tags: Sequence[str] = (),
    *,
    legacy: bool = False,
    site: str = 'app.datadoghq.com',
) -> dict[str, Any]:
    """What Datadog's PagerDuty integration sends for an alert of monitor `monitor_id` on the alerted `group`.

    `legacy` writes the older `client_url` (`/monitors#<id>?...&group=...`).
    """
    query = 'group=' + quote(','.join(group), safe='') if group else ''
    if legacy:
        url = 'https://{}/monitors#{}?to_ts=1793620800000&{}&from_ts=1793619600000'.format(site, monitor_id, query)
    else:
        url = 'https://{}/monitors/{}{}'.format(site, monitor_id, '?' + query if query else '')
    details = {
        'event_type': 'query_alert_monitor',
        'monitor_state': 'Triggered',
        'org': 'Acme',
        'priority': 'P2',
        'query': 'avg(last_5m):avg:trace.http.request.errors{*} by {service,env} > 5',
        'tags': ','.join(tags),
    }
    return {'client': 'Datadog', 'client_url': url, 'details': details}


class Renderer:
    """PagerDuty's JSON for the objects of an account, as served at `api_url`.

    `services` are the account's `{'id', 'name', 'team_ids'}` and `team_names` maps team ids to names.
    """

    def __init__(self, subdomain: str, api_url: str, services: list[dict[str, Any]], team_names: dict[str, str]):
        self.subdomain = subdomain
        self.api_url = api_url
        self.services = services
        self.team_names = team_names

    def html_url(self, path: str) -> str:
        return 'https://{}.pagerduty.com/{}'.format(self.subdomain, path)

    def reference(self, kind: str, entity_id: str, name: str, path: str, html_url: str | None) -> dict:
        return {
            'id': entity_id,
            'type': kind + '_reference',
            'summary': name,
            'self': '{}/{}/{}'.format(self.api_url, path, entity_id),
            'html_url': html_url,
        }

    def service(self, service: int) -> dict:
        data = self.services[service]
        url = self.html_url('service-directory/' + data['id'])
        return self.reference('service', data['id'], data['name'], 'services', url)

    def teams(self, service: int) -> list[dict]:
        return [
            self.reference('team', team_id, self.team_names[team_id], 'teams', self.html_url('teams/' + team_id))
            for team_id in self.services[service]['team_ids']
        ]

    def user(self) -> dict:
        user_id, name = RESPONDER
        return self.reference('user', user_id, name, 'users', self.html_url('users/' + user_id))

    def incident_reference(self, number: int, title: str) -> dict:
        incident_id = encode_id(number)
        url = self.html_url('incidents/' + incident_id)
        return self.reference('incident', incident_id, '[#{}] {}'.format(number, title), 'incidents', url)

    def priority(self, priority: tuple[str, str] | None) -> dict | None:
        """An incident's `priority`, from its (id, name); None when it has none."""
        if priority is None:
            return None
        priority_id, priority_name = priority
        return {
            'id': priority_id,
            'type': 'priority',
            'summary': priority_name,
            'self': '{}/priorities/{}'.format(self.api_url, priority_id),
            'html_url': None,
            'name': priority_name,
        }

    def escalation_policy(self, service: int) -> dict:
        """The reference to the escalation policy of the account's service `service`."""
        policy_id = encode_id(ENTITY_BASE['policy'] + service)
        return self.reference(
            'escalation_policy',
            policy_id,
            '{} escalation'.format(self.services[service]['name']),
            'escalation_policies',
            self.html_url('escalation_policies/' + policy_id),
        )

    def trigger_channel(self, facts: IncidentFacts) -> dict:
        """The channel of the incident's trigger entry: the event that opened it, as PagerDuty keeps it."""
        event = facts.event
        if event is None:
            return {'type': 'api'}
        cef: dict[str, Any] = {
            'client': event.get('client'),
            'client_url': event.get('client_url'),
            'contexts': [],
            'description': facts.title,
            'details': event.get('details'),
            'severity': 'error',
            'version': '1.0',
        }
        return dict(cef, type='api', summary=facts.title, cef_details=cef)

    def first_trigger(self, facts: IncidentFacts, incident: dict) -> dict:
        """The incident's first trigger entry, as `include[]=first_trigger_log_entries` embeds it."""
        entry = self.log_entry(facts.number, TRIGGER, facts.created, facts.service, facts.title, incident)
        entry['channel'] = self.trigger_channel(facts)
        return entry

    def alerts(self, facts: IncidentFacts) -> list[dict]:
        """The incident's alerts (`GET /incidents/{id}/alerts`): the event that opened it; none when made by hand."""
        if facts.event is None:
            return []
        alert_id = encode_id(facts.number, prefix='A')
        channel = self.trigger_channel(facts)
        return [
            {
                'id': alert_id,
                'type': 'alert',
                'summary': facts.title,
                'self': '{}/alerts/{}'.format(self.api_url, alert_id),
                'html_url': self.html_url('alerts/' + alert_id),
                'created_at': facts.created,
                'status': 'resolved' if facts.status == 'resolved' else 'triggered',
                'alert_key': '{:032x}'.format(facts.number * 2654435761 % 2**128),
                'service': self.service(facts.service),
                'incident': self.incident_reference(facts.number, facts.title),
                'suppressed': False,
                'severity': 'error',
                'body': {'type': 'alert_body', 'contexts': [], 'details': channel['details'], 'cef_details': channel},
            }
        ]

    def incident(self, facts: IncidentFacts, with_trigger: bool = False) -> dict:
        """The incident, as `GET /incidents` lists it (with its first trigger entry when asked)."""
        incident_id, number, status = encode_id(facts.number), facts.number, facts.status
        # PagerDuty lists acknowledgements and assignments of open incidents only: a resolved
        # incident no longer says whether or when it was acknowledged.
        acknowledgements, assignments = [], []
        if status == 'acknowledged':
            acknowledgements = [{'at': facts.acked, 'acknowledger': self.user()}]
        if status != 'resolved':
            assignments = [{'at': facts.changed, 'assignee': self.user()}]
        resolve_reason = None
        if facts.merged_into is not None and status == 'resolved':
            resolve_reason = {'type': 'merge_resolve_reason', 'incident': self.incident_reference(*facts.merged_into)}
        rendered = {
            'id': incident_id,
            'type': 'incident',
            'summary': '[#{}] {}'.format(number, facts.title),
            'self': '{}/incidents/{}'.format(self.api_url, incident_id),
            'html_url': self.html_url('incidents/' + incident_id),
            'incident_number': number,
            'title': facts.title,
            'description': facts.title,
            'created_at': facts.created,
            'updated_at': facts.updated,
            'status': status,
            'incident_key': '{:032x}'.format(number * 2654435761 % 2**128),
            'service': self.service(facts.service),
            'assignments': assignments,
            'assigned_via': 'escalation_policy',
            'last_status_change_at': facts.changed,
            'last_status_change_by': self.service(facts.service) if status == 'triggered' else self.user(),
            'first_trigger_log_entry': None,
            'alert_counts': {
                'all': 1,
                'triggered': 0 if status == 'resolved' else 1,
                'resolved': 1 if status == 'resolved' else 0,
            },
            'is_mergeable': True,
            'escalation_policy': self.escalation_policy(facts.service),
            'teams': self.teams(facts.service),
            'pending_actions': [],
            'acknowledgements': acknowledgements,
            'alert_grouping': None,
            'urgency': facts.urgency,
            'priority': self.priority(facts.priority),
            'resolved_at': facts.resolved,
            'resolve_reason': resolve_reason,
            'conference_bridge': None,
            'incident_type': {'name': 'incident_default'},
        }
        if with_trigger:
            rendered['first_trigger_log_entry'] = self.first_trigger(
                facts, self.incident_reference(number, facts.title)
            )
        return rendered

    def log_entry(self, sequence: int, kind: int, at: str | None, service: int, title: str, incident: dict) -> dict:
        """A log entry; `incident` is the incident's reference, or the whole incident when included."""
        incident_id, entry_id = incident['id'], encode_id(sequence, prefix='R')
        if kind == TRIGGER or kind == ASSIGN:
            agent, channel = self.service(service), {'type': 'api'}
        elif kind == UNACK:
            agent, channel = None, {'type': 'timeout'}
        else:
            agent, channel = self.user(), {'type': 'web_trigger' if kind == NOTIFY else 'web_ui'}
        entry = {
            'id': entry_id,
            'type': LOG_ENTRY_TYPES[kind],
            'summary': LOG_SUMMARIES[kind],
            'self': '{}/log_entries/{}'.format(self.api_url, entry_id),
            'html_url': self.html_url('incidents/{}/log_entries/{}'.format(incident_id, entry_id)),
            'created_at': at,
            'agent': agent,
            'channel': channel,
            'service': self.service(service),
            'incident': incident,
            'teams': self.teams(service),
            'contexts': [],
        }
        if kind == TRIGGER:
            entry['event_details'] = {'description': title}
        if kind == ASSIGN:
            entry['assignees'] = [self.user()]
        if kind == NOTIFY:
            entry['user'] = self.user()
        return entry
