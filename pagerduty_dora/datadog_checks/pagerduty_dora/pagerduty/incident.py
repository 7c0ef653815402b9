# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""PagerDuty incidents as plain values: parsing, timestamps and the fields that make a transition.

Parsing is where untrusted text is made safe once for every output: text fields are bounded and
cleaned of lone UTF-16 surrogates (which no UTF-8 encoder accepts), and an id that is not a clean
string makes the incident malformed, since an id is sent back in URLs, state, tags and log lines.

The common shapes take fast paths: an id of letters and digits, a short ASCII name, a plain dict. An
open incident read again exactly as it was (reconciliation reads each one every few minutes) is not
parsed again: the same `Incident` is given back. It is recognised by a SHA-256 digest of its JSON
(`json_format.encode_bytes`: orjson's bytes in one pass where installed).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from datadog_checks.pagerduty_dora.common import json_format
from datadog_checks.pagerduty_dora.common.text import UNSAFE_CATEGORIES, clean, shown
from datadog_checks.pagerduty_dora.common.times import parse_time

from .monitor import MonitorAlert, datadog_alert

STATUSES = ('triggered', 'acknowledged', 'resolved')
URGENCIES = ('high', 'low')
OPEN_STATUSES = ('triggered', 'acknowledged')
# PagerDuty ids are short; a longer one is not an id, and would be held in state and sent in tags.
MAX_ID_LENGTH = 128
MAX_INCIDENT_NUMBER = 2**63 - 1
# Bounds on text kept from an incident: a title or name can be megabytes long, and every output
# (event, DORA failure, tag) shows far less than this.
MAX_TITLE_LENGTH = 4096
MAX_NAME_LENGTH = 1024
# Open incidents remembered as last parsed (`parse_incident`); past this many the memory starts over.
MAX_REMEMBERED = 20000
# Teams met, each kept as one value: an account has far fewer teams than incidents.
TEAMS_KEPT = 1024
# What PagerDuty's ids look like: nothing in them to strip or refuse.
_PLAIN_ID = re.compile(r'[A-Za-z0-9]{1,%d}' % MAX_ID_LENGTH)


class MalformedIncident(ValueError):
    """Raised when a PagerDuty incident lacks a field the product cannot do without."""


@dataclass(frozen=True)
class Team:
    id: str
    name: str


@dataclass(frozen=True)
class Incident:
    """The fields of a PagerDuty incident that mapping and outputs use; times are UTC epoch seconds."""

    id: str
    number: int
    title: str
    status: str
    urgency: str
    created_at: float
    html_url: str
    service_id: str
    service_name: str
    service_url: str
    teams: tuple[Team, ...]
    priority: str | None
    acknowledged_at: float | None
    resolved_at: float | None
    last_status_change_at: float | None
    updated_at: float | None
    # Resolved by a merge into another incident, which carries the failure from then on.
    merged: bool = False
    # Whether the incident came with its whole first trigger log entry (`include[]=first_trigger_log_entries`),
    # and the Datadog monitor that entry names: with it, no other request says where the incident came from.
    trigger_known: bool = False
    trigger: MonitorAlert | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def _optional_time(value: Any) -> float | None:
    if value in (None, ''):
        return None
    try:
        return parse_time(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _bounded(value: Any, limit: int = MAX_NAME_LENGTH) -> str:
    if type(value) is str and len(value) <= limit and value.isascii():
        return value.strip()  # the common shape: no surrogate in ASCII, nothing to cut
    return _cut(value, limit)


def _cut(value: Any, limit: int) -> str:
    """A text field bounded to `limit` characters and cleaned, whatever its shape ('' for no text)."""
    return clean(value[: limit * 2].strip()[:limit]) if isinstance(value, str) else ''


def _mapping(value: Any) -> bool:
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _reference_name(reference: Any) -> str:
    if not _mapping(reference):
        return ''
    return _bounded(reference.get('name')) or _bounded(reference.get('summary'))


def _identifier(value: Any) -> str | None:
    """The id, stripped, or None unless it is a clean string of 1 to `MAX_ID_LENGTH` characters.

    Clean: no control, format, private-use or unassigned character, no line or paragraph separator,
    no lone surrogate. An id is written back into state, tags, DORA failure ids and log lines, where
    such a character would fail to encode or forge a line; PagerDuty's own ids are short alphanumerics.
    """
    if type(value) is str and _PLAIN_ID.fullmatch(value):
        return value  # the common shape: letters and digits only
    return _checked_identifier(value)


def _checked_identifier(value: Any) -> str | None:
    """`_identifier` of any value, character by character."""
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH * 2:
        return None
    text = value.strip()
    if not 0 < len(text) <= MAX_ID_LENGTH:
        return None
    if any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in text):
        return None
    return text


def _latest_acknowledgement(acknowledgements: Any) -> float | None:
    if not isinstance(acknowledgements, list):
        return None
    times = [_optional_time(ack.get('at')) for ack in acknowledgements if _mapping(ack)]
    known = [t for t in times if t is not None]
    return max(known) if known else None


# Open incidents by id: a digest of what each was last parsed from, and what it gave.
_remembered: dict[str, tuple[bytes, Incident]] = {}


def parse_incident(raw: Any) -> Incident:
    """Build an `Incident` from one element of PagerDuty's `incidents` array.

    An open incident exactly as it was last parsed (the same JSON) gives the same `Incident` again.
    Raises `MalformedIncident` naming the first field that is missing or unusable.
    """
    key = raw.get('id') if type(raw) is dict and raw.get('status') in OPEN_STATUSES else None
    if type(key) is not str:
        return _parse(raw)
    signature = _signature(raw)
    remembered = _remembered.get(key)
    if remembered is not None and remembered[0] == signature:
        return remembered[1]
    incident = _parse(raw)
    if len(_remembered) >= MAX_REMEMBERED:
        _remembered.clear()
    _remembered[key] = (signature, incident)
    return incident


def _signature(raw: dict) -> bytes:
    """A digest of the JSON of `raw`: the same for the same document, different for any change."""
    return hashlib.sha256(json_format.encode_bytes(raw)).digest()


def _parse(raw: Any) -> Incident:
    if not _mapping(raw):
        raise MalformedIncident('incident is not an object')
    incident_id = _identifier(raw.get('id'))
    if incident_id is None:
        raise MalformedIncident('missing id' if raw.get('id') is None else 'unusable id')
    status = raw.get('status')
    if status not in STATUSES:
        raise MalformedIncident('unknown status {}'.format(shown(status, 40)))
    number = raw.get('incident_number')
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_INCIDENT_NUMBER:
        raise MalformedIncident('missing incident_number')
    try:
        created_at = parse_time(raw.get('created_at'))
    except (TypeError, ValueError, OverflowError):
        raise MalformedIncident('missing or malformed created_at') from None
    listed_service = raw.get('service')
    service: Mapping[str, Any] = listed_service if _mapping(listed_service) else {}
    service_id = _identifier(service.get('id'))
    if service_id is None:
        raise MalformedIncident('missing service')
    urgency = raw.get('urgency')
    if urgency not in URGENCIES:
        urgency = 'high'
    teams = _teams(raw.get('teams'))
    priority = _reference_name(raw.get('priority')) or None
    resolved_at = _optional_time(raw.get('resolved_at'))
    last_change = _optional_time(raw.get('last_status_change_at'))
    if status == 'resolved' and resolved_at is None:
        resolved_at = last_change
    return Incident(
        id=incident_id,
        number=number,
        title=_bounded(raw.get('title'), MAX_TITLE_LENGTH) or _bounded(raw.get('summary'), MAX_TITLE_LENGTH),
        status=status,
        urgency=urgency,
        created_at=created_at,
        html_url=_bounded(raw.get('html_url'), MAX_TITLE_LENGTH),
        service_id=service_id,
        service_name=_reference_name(service),
        service_url=_bounded(service.get('html_url'), MAX_TITLE_LENGTH),
        teams=teams,
        priority=priority,
        acknowledged_at=_latest_acknowledgement(raw.get('acknowledgements')),
        resolved_at=resolved_at if status == 'resolved' else None,
        last_status_change_at=last_change,
        updated_at=_optional_time(raw.get('updated_at')),
        merged=status == 'resolved' and _is_merge(raw.get('resolve_reason')),
        **_first_trigger(raw.get('first_trigger_log_entry')),
    )


def _teams(listed: Any) -> tuple[Team, ...]:
    """The incident's teams with a usable id."""
    if not isinstance(listed, list):
        return ()
    teams = []
    for team in listed:
        if _mapping(team):
            team_id = _identifier(team.get('id'))
            if team_id is not None:
                teams.append(_team(team_id, _reference_name(team)))
    return tuple(teams)


@lru_cache(maxsize=TEAMS_KEPT)
def _team(team_id: str, name: str) -> Team:
    """The `Team` of this id and name: the same value for every incident of the team."""
    return Team(id=team_id, name=name)


def _first_trigger(entry: Any) -> dict[str, Any]:
    """`trigger_known` and `trigger`: whether the incident holds its whole first trigger entry (not a reference
    to it), and the Datadog monitor that entry names."""
    known = _mapping(entry) and entry.get('type') == 'trigger_log_entry'
    return {'trigger_known': known, 'trigger': datadog_alert(entry.get('channel')) if known else None}


def _is_merge(reason: Any) -> bool:
    return _mapping(reason) and reason.get('type') == 'merge_resolve_reason'
