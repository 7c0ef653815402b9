# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Which identities ran on this node for one PagerDuty API, so that an edited instance is told from a shard.

An instance's memory is keyed on its identity (`identity.py`), so an instance whose `service_ids`
(or any other option of its identity) was edited finds nothing and starts a new collection. From
inside the instance, that looks like a second instance (a shard) added beside the first one. The
difference shows over time: a shard's sibling keeps running, an edited instance's old identity
stops. So every run records, in one entry of the Agent's persistent cache outside any instance's key
(one per PagerDuty API URL), the identities seen on this node with their options and last run.

An identity met for the first time notes the others that ran within a day before it (`before`).
Each is judged once it had the time to run again (its interval and `GRACE`): one that ran since is a
shard, forgotten as a candidate; one that did not was replaced by this instance, which is told once
(`Change`) and remembers it (`previous`) so that a rebuild from Datadog also reads what it sent.
A cluster check that moved here while another left looks the same on this Agent: where Datadog holds
events of the new identity itself, it ran elsewhere before, and the check `disown`s the verdict.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from . import identity
from .common import codec
from .common.documents import Layout, Part, Unreadable

DAY = 86400.0
# An identity that ran within this long before a new one is a candidate for what the new one replaced.
CANDIDATE_WINDOW = DAY
# How long, beyond its interval, a candidate may take to run again before it is taken as stopped.
GRACE = 300.0
# Identities not seen for this long are forgotten; at most `MAX_IDENTITIES` are kept.
RETENTION = 30 * DAY
MAX_IDENTITIES = 100
SECRET = 'api_token'

# Checks of one Agent run in threads of one process: the entry is read, changed and written under this lock.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Options:
    """The options that make an identity, in the order a warning names them; the key enters only as a hash."""

    pagerduty_api_url: str
    api_token: str
    service_ids: list[str]
    team_ids: list[str]
    urgencies: list[str]
    priorities: list[str]
    datadog_api_url: str


OPTIONS = tuple(f.name for f in fields(Options))


@dataclass
class Seen:
    """One identity as this Agent saw it run (Agent times): its options and interval, its first and last run,
    the identities that ran within a day before its first (`before`, still undecided) and those it replaced."""

    options: Options
    interval: float
    first: float
    last: float
    before: list[str] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)


_NAMES = codec.ListOf(codec.TEXT)
SEEN: codec.Struct[Seen] = codec.Struct(
    Seen,
    None,
    options=codec.Struct(
        Options,
        None,
        pagerduty_api_url=codec.TEXT,
        api_token=codec.TEXT,
        service_ids=_NAMES,
        team_ids=_NAMES,
        urgencies=_NAMES,
        priorities=_NAMES,
        datadog_api_url=codec.TEXT,
    ),
    interval=codec.AMOUNT,
    first=codec.TIME,
    last=codec.TIME,
    before=_NAMES,
    previous=_NAMES,
)
# One document per PagerDuty API URL: the identities seen, by cache id; a damaged one is dropped alone.
LAYOUT = Layout(1, {'identities': Part(codec.MapOf(SEEN), dict, each=True)}, {})


def options(instance: dict[str, Any]) -> Options:
    """The identity options of `instance` as the registry keeps them (sorted lists, the key as a hash)."""
    account = identity.account(instance)
    return Options(
        pagerduty_api_url=account['url'],
        api_token=account['token'],
        service_ids=account['service_ids'],
        team_ids=account['team_ids'],
        urgencies=identity.sorted_strings(instance.get('urgencies')),
        priorities=identity.sorted_strings(instance.get('priorities')),
        datadog_api_url=str(instance.get('datadog_api_url') or '').rstrip('/'),
    )


def registry_key(instance: dict[str, Any]) -> str:
    """The persistent cache key of the registry of the instance's PagerDuty API URL (no instance prefix)."""
    url = identity.account(instance)['url']
    return 'pagerduty_dora:identities_' + hashlib.sha256(url.encode('utf-8')).hexdigest()[:32]


@dataclass
class Change:
    """This instance replaced `previous`: the identity options that differ, as (option, before, after)."""

    previous: str
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)

    def names(self) -> str:
        return ', '.join('`{}`'.format(name) for name, _, _ in self.changed)

    def describe(self) -> str:
        """The options that changed, old -> new (a changed key is named, never shown)."""
        parts = []
        for name, before, after in self.changed:
            if name == SECRET:
                parts.append('`{}` (another key)'.format(name))
            else:
                parts.append('`{}` {} -> {}'.format(name, _shown(before), _shown(after)))
        return '; '.join(parts)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return '[{}]'.format(', '.join(value)) if value else '(all)'
    return value or '(default)'


class Lineage:
    """This instance's entry in the registry of its PagerDuty API, and what it replaced.

    `read_raw` and `write_raw` are the Agent's persistent cache calls on whole keys.
    """

    def __init__(
        self,
        instance: dict[str, Any],
        cache_id: str,
        interval: float,
        read_raw: Callable[[str], str],
        write_raw: Callable[[str, str], None],
    ) -> None:
        self._key = registry_key(instance)
        self._options = options(instance)
        self.cache_id = cache_id
        self._interval = interval
        self._read_raw = read_raw
        self._write_raw = write_raw
        # Identities this one replaced, and whether some candidate is still undecided.
        self.previous: list[str] = []
        self.undecided = False

    def ran(self, now: float) -> list[Change]:
        """Record a run of this identity at `now` (the Agent's clock); the replacements decided by it."""
        with _LOCK:
            identities = self._load()
            mine = identities.get(self.cache_id)
            if mine is None:
                before = sorted(key for key, seen in identities.items() if now - seen.last <= CANDIDATE_WINDOW)
                mine = identities[self.cache_id] = Seen(self._options, self._interval, now, now, before)
            mine.last, mine.interval, mine.options = now, self._interval, self._options
            changes = self._judge(mine, identities, now)
            self._prune(identities, now)
            self._save(identities)
        self.previous = list(mine.previous)
        self.undecided = bool(mine.before)
        return changes

    def disown(self, previous: str) -> None:
        """`previous` was not replaced by this identity after all (this one ran on another Agent before)."""
        with _LOCK:
            identities = self._load()
            mine = identities.get(self.cache_id)
            if mine is not None:
                mine.previous = [key for key in mine.previous if key != previous]
                self._save(identities)
        self.previous = [key for key in self.previous if key != previous]

    def _save(self, identities: dict[str, Seen]) -> None:
        self._write_raw(self._key, LAYOUT.encode({'identities': identities}))

    def _judge(self, mine: Seen, identities: dict[str, Seen], now: float) -> list[Change]:
        """Decide each candidate that had the time to run again: a shard if it ran, replaced if it did not."""
        changes = []
        waiting = []
        for key in mine.before:
            other = identities.get(key)
            if other is None or other.last >= mine.first:
                continue
            if now - mine.first <= other.interval + GRACE:
                waiting.append(key)
                continue
            changes.append(Change(key, _differences(other.options, self._options)))
            mine.previous = sorted(set(mine.previous) | {key})
            del identities[key]
        mine.before = waiting
        return changes

    def _load(self) -> dict[str, Seen]:
        """The identities stored; a damaged one is dropped (it is met again as new), a damaged list started again."""
        raw = self._read_raw(self._key)
        if not raw:
            return {}
        try:
            values, _ = LAYOUT.decode(raw)
        except Unreadable:
            return {}
        return values['identities']

    def _prune(self, identities: dict[str, Seen], now: float) -> None:
        for key in [k for k, seen in identities.items() if now - seen.last > RETENTION]:
            del identities[key]
        for key in sorted(identities, key=lambda k: identities[k].last)[:-MAX_IDENTITIES]:
            del identities[key]


def _differences(before: Options, after: Options) -> list[tuple[str, Any, Any]]:
    return [
        (name, getattr(before, name), getattr(after, name))
        for name in OPTIONS
        if getattr(before, name) != getattr(after, name)
    ]
