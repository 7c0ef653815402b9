# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collector's memory between runs, composed of the values each part of the engine owns.

Each pass defines its own cursor and its stored form beside the rule that moves it (`feed_position.py`,
`reconcile.py`, `recheck.py`, `sweep.py`), each incident's record is `record.py`'s; this module puts them
together as one document of the Agent's persistent cache (`LAYOUT`), reads every layout this
project released by migrating it forward, and says what a damaged part costs: only that part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from datadog_checks.pagerduty_dora.common import codec
from datadog_checks.pagerduty_dora.common.documents import Damage, Layout, Part
from datadog_checks.pagerduty_dora.pagerduty.client import MAX_WINDOW

from . import feed_position
from . import reconcile as reconcile_cursor
from . import record as records
from . import sweep as sweep_cursor
from .feed_position import FEED, Feed
from .rebuild import REBUILD, Rebuild
from .recheck import RECHECK, Recheck
from .reconcile import RECONCILIATION, Reconciliation
from .record import RECORD, TAG_SETS, IncidentRecord, Records, tag_key
from .story import settled
from .sweep import CREATION_WINDOW, CreationWindow

# The layout written; earlier ones are migrated when read (see `LAYOUT`).
STATE_VERSION = 6


@dataclass
class CollectorState:
    # When collection went live (the first run): incidents created since are news.
    live_since: float | None = None
    # Whether a complete pass over the open incidents was made since going live: before it, an
    # open incident without a record may simply not have been met yet.
    baseline: bool = False
    # Every incident created before `swept_until` has been processed (None: nothing collected yet).
    swept_until: float | None = None
    # The sweep's creation-time window being paged (see `sweep.py`).
    sweep_window: CreationWindow | None = None
    # Width of the next creation-time window, learned from the totals PagerDuty reports.
    sweep_width: float = 0.0
    feed: Feed | None = None
    reconciliation: Reconciliation | None = None
    # While DORA delivery catches up on history it missed (it was turned off): the creation time
    # up to which history was re-sent, and where that re-sending ends.
    resend: CreationWindow | None = None
    resend_end: float | None = None
    # Whether the last run had DORA delivery on.
    delivering: bool = True
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    # PagerDuty's time and the Agent's at the end of the last run: how much time passed between two
    # runs, should the feed's stored position turn out ahead of PagerDuty's clock.
    last_run: tuple[float, float] | None = None
    # Incidents to read again by id: their DORA failure is outstanding but no longer queued.
    refetch: list[str] = field(default_factory=list)
    # Tag sets of the open-incident gauge last submitted, so that one that empties is sent as 0 once.
    gauged: list[list[str]] = field(default_factory=list)
    # After a rebuild from Datadog: the transition keys its events show reported, per incident
    # (until the feed is well past the rebuild), and when it was made (0 once history is compared).
    rebuilt: dict[str, list[str]] = field(default_factory=dict)
    rebuilt_at: float = 0.0
    # When (PagerDuty time) Datadog's open failures were last compared with PagerDuty.
    drift_at: float = 0.0
    # The share of a reconciliation page carried to the next run (see `reconcile.pages_per_run`).
    reconcile_credit: float = 0.0
    # The time of the latest event this instance sent (as Datadog dates it): a later one in Datadog
    # means another node ran since.
    last_event_at: float | None = None
    # A rebuild from Datadog waiting for its event search to catch up (see `recovery.py`).
    rebuild: Rebuild | None = None
    # Where records were lost to damage: before it, what their incidents did was reported already.
    reported_until: float | None = None
    # The daily pass over recently resolved incidents (see `recheck.py`).
    recheck: Recheck | None = None
    # The mapping tags records name for the open-incident gauge, by key (`IncidentRecord.tag_set`).
    tag_sets: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.records()

    def records(self) -> Records:
        """`incidents`, as the map that keeps what the per-run scans ask (a plain dict set in its place is taken in)."""
        incidents = self.incidents
        if type(incidents) is not Records:
            incidents = self.incidents = Records(incidents.items(), settled)
        return incidents

    def go_live(self, now: float | None) -> None:
        """Collection goes live at PagerDuty's time of its first answer: what happens from then on is news."""
        if self.live_since is None and now is not None:
            self.live_since = now
            self.feed = Feed(read_until=now)
            self.drift_at = now

    def dumps(self) -> str:
        return LAYOUT.encode({name: getattr(self, name) for name in LAYOUT.parts})

    @classmethod
    def loads(cls, text: str) -> CollectorState:
        """A stored state of any released layout, repaired where a part was damaged (see `read`)."""
        return cls.read(text)[0]

    @classmethod
    def read(cls, text: str) -> tuple[CollectorState, list[Damage]]:
        """A stored state of any released layout, and the damage reset on the way.

        A part absent from the document (one this layout added later) takes its default.

        Raises `documents.Unreadable` when the value is no state at all; a part out of its domain
        is reset alone and reported, and the rest of the state is repaired around it (`repair`).
        """
        values, damage = LAYOUT.decode(text)
        state = cls(**values)
        state.repair(damage)
        return state, damage

    def repair(self, damage: list[Damage]) -> None:
        """Make the state whole again around the parts that were reset (see `DAMAGE_COST`)."""
        parts = {d.part: d for d in damage}
        if 'incidents' in parts:
            # A record that cannot be read is read again by id: its incident's own log decides, and
            # what the record says was reported, where that much can be read, is not reported again.
            lost = parts['incidents']
            self.refetch = sorted(set(self.refetch) | set(lost.entries))
            if self.last_run is not None:
                self.reported_until = max(self.reported_until or 0.0, self.last_run[0])
            for key, stored in lost.stored.items():
                keys = records.reported_keys(stored)
                if keys:
                    self.rebuilt[key] = sorted(set(self.rebuilt.get(key, ())) | set(keys))
        if 'live_since' in parts:
            self.live_since = self.feed.read_until if self.feed is not None else self._last_known()
        if 'feed' in parts and self.live_since is not None:
            self.feed = Feed(read_until=max(self.live_since, self._last_known() or 0.0))
        if self.live_since is not None and self.feed is None:
            self.feed = Feed(read_until=self.live_since)

    def event_sent(self, dated: float | None) -> None:
        """An event dated `dated` was sent (None: none was): the latest tells another node's later events apart."""
        if dated is not None:
            self.last_event_at = dated if self.last_event_at is None else max(self.last_event_at, dated)

    def switch_delivery(self, delivering: bool, *, since: float, now: float) -> None:
        """Turning DORA delivery on after runs without it re-sends what those runs kept back, from `since`.

        Incidents with a record are wanted again by `Recovery.find_undelivered`; the others (history,
        and incidents resolved and forgotten meanwhile) are re-read by creation time up to now.
        """
        if delivering and not self.delivering and self.swept_until is not None:
            self.resend_end = max(since + 1, now)
            self.resend = CreationWindow(since=since, until=min(self.resend_end, since + MAX_WINDOW))
        self.delivering = delivering

    def prune(self, resolved_before: float, *, delivering: bool) -> None:
        """Forget resolved incidents resolved before then (or no longer wanted) whose failure is settled."""
        incidents = self.records()
        stale = [
            key
            for key in incidents.resolved_keys()
            for record in [incidents[key]]
            if (record.resolved_at or record.created_at) < resolved_before or not record.wanted
        ]
        unsettled = incidents.unsettled_keys() if delivering else set()
        for key in stale:
            if key not in unsettled:
                del incidents[key]

    def keep_tags(self, tags: list[str]) -> str:
        """The key a record names `tags` by ('' for none), the set kept in the table."""
        key = tag_key(tags)
        if key and key not in self.tag_sets:
            self.tag_sets[key] = tags
        return key

    def open_gauges(self) -> dict[tuple[str, ...], int]:
        """Wanted open incidents counted by (status, mapping tags); the table keeps only the sets they name.

        Only a wanted open record names a set (`story.recorded`), so that is what the table is kept for.
        """
        by_key = self.records().gauge_counts()
        named = {key for _, key in by_key}
        if len(named) < len(self.tag_sets):
            self.tag_sets = {key: tags for key, tags in self.tag_sets.items() if key in named}
        counts: Counter[tuple[str, ...]] = Counter()
        for (status, key), count in by_key.items():
            tags = self.tag_sets.get(key)
            if tags is not None:
                group = ('status:' + status, *tags)
                counts[group] += count
        return counts

    def undelivered(self) -> Iterator[str]:
        """The keys of records whose DORA failure is not settled, in the records' order."""
        incidents = self.records()
        return incidents.in_order(incidents.unsettled_keys())

    def _last_known(self) -> float | None:
        """The latest PagerDuty time the stored state shows collection reached, or None."""
        if self.last_run is not None:
            return self.last_run[0]
        return max((record.base.at for record in self.incidents.values()), default=self.live_since)


def damage_warning(damage: Damage) -> tuple[Any, ...]:
    """The warning (format and arguments) for a part of the stored state that was reset."""
    if damage.entries:
        return (
            '%d entries of `%s` of the stored collection state could not be read (%s) and were reset: %s',
            len(damage.entries),
            damage.part,
            next(iter(damage.entries.values())),
            DAMAGE_COST[damage.part],
        )
    return (
        'Part `%s` of the stored collection state could not be read (%s) and was reset: %s',
        damage.part,
        damage.reason,
        DAMAGE_COST[damage.part],
    )


def unreadable_warning(error: Exception, *, rebuilt: bool) -> tuple[Any, ...]:
    """The warning for a stored state that is no state at all: rebuilt from Datadog, or what is lost without it."""
    if rebuilt:
        return ('Stored collection state is unreadable (%s); it is rebuilt from what Datadog holds', error)
    return (
        'Stored collection state is unreadable (%s) and starts over: history is sent again as DORA failures '
        '(Datadog keeps one per incident), but changes since the last run get no event. Set `datadog_app_key` '
        'to have the check rebuild its state from Datadog instead',
        error,
    )


class RecordMap(codec.MapOf[IncidentRecord]):
    """The records, stored as `MapOf` stores them; the text of `Records` is kept until one changes."""

    def text(self, value: dict[str, IncidentRecord]) -> str:
        if isinstance(value, Records):
            return value.text(super().text)
        return super().text(value)


def _state_default(name: str) -> Callable[[], Any]:
    return lambda: getattr(CollectorState(), name)


# What the loss of each part costs, for the warning that names it.
DAMAGE_COST = {
    'live_since': 'collection goes on from the change feed\'s position',
    'baseline': 'the next pass over the open incidents is read whole',
    'swept_until': 'history is read again from `backfill_days` ago (DORA failures only; nothing is sent twice)',
    'sweep_window': 'the history window is planned again',
    'sweep_width': 'window widths are learned again',
    'feed': 'the change feed goes on from the end of the last run; a change between its real position and '
    'then is found by reconciliation',
    'reconciliation': 'the pass over the open incidents starts over',
    'resend': 'history kept back while DORA delivery was off is not re-sent',
    'resend_end': 'history kept back while DORA delivery was off is not re-sent',
    'delivering': 'DORA delivery is taken as on since the last run',
    'incidents': 'those incidents are read again by id, and their own logs decide what is news',
    'last_run': 'a stored position ahead of PagerDuty\'s clock is repaired by a day',
    'refetch': 'failures waiting to be read again by id are found by the next comparison',
    'gauged': 'an open-incident gauge that emptied meanwhile is not sent as 0',
    'rebuilt': 'transitions a rebuild found reported may be reported again',
    'rebuilt_at': 'the rebuild\'s history comparison is made again',
    'drift_at': 'the daily comparison with Datadog is made now',
    'reconcile_credit': 'reconciliation\'s pace is learned again',
    'last_event_at': 'a move of the check while this Agent was away is not noticed this time',
    'rebuild': 'the rebuild from Datadog is planned again',
    'reported_until': 'a transition of an incident whose record was lost before may be reported again',
    'recheck': 'resolved incidents are next read again a day from now, and one the check no longer holds that '
    'changed before then keeps its DORA failure',
    'tag_sets': 'open incidents are left out of the open-incident gauge until they are read again',
}

_PARTS: dict[str, codec.Domain] = {
    'live_since': codec.Optional(codec.TIME),
    'baseline': codec.FLAG,
    'swept_until': codec.Optional(codec.TIME),
    'sweep_window': codec.Optional(CREATION_WINDOW),
    'sweep_width': codec.AMOUNT,
    'feed': codec.Optional(FEED),
    'reconciliation': codec.Optional(RECONCILIATION),
    'resend': codec.Optional(CREATION_WINDOW),
    'resend_end': codec.Optional(codec.TIME),
    'delivering': codec.FLAG,
    'incidents': RecordMap(RECORD),
    'last_run': codec.Optional(codec.Pair(codec.TIME, codec.TIME)),
    'refetch': codec.ListOf(codec.TEXT),
    'gauged': codec.ListOf(codec.ListOf(codec.TEXT)),
    'rebuilt': codec.MapOf(codec.ListOf(codec.TEXT)),
    'rebuilt_at': codec.TIME,
    'drift_at': codec.TIME,
    # The share of a page carried over: below one, or it would have been read.
    'reconcile_credit': codec.Number(0.0, 1.0, 'share of a page'),
    'last_event_at': codec.Optional(codec.TIME),
    'rebuild': codec.Optional(REBUILD),
    'reported_until': codec.Optional(codec.TIME),
    'recheck': codec.Optional(RECHECK),
    'tag_sets': TAG_SETS,
}


def _each(document: dict[str, Any], name: str, upgrade: Callable[[Any], Any]) -> None:
    """Upgrade one part in place; a part that does not fit the old layout is left to be reported as damage."""
    if name in document:
        try:
            document[name] = upgrade(document[name])
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            pass


def _each_record(document: dict[str, Any], upgrade: Callable[[Any], Any]) -> None:
    def upgrade_all(raw: Any) -> Any:
        upgraded = {}
        for key, value in dict(raw).items():
            try:
                upgraded[key] = upgrade(value)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError):
                upgraded[key] = value
        return upgraded

    _each(document, 'incidents', upgrade_all)


def _from_layout_1(document: dict[str, Any]) -> dict[str, Any]:
    """Layout 1 (2026-11): no change feed (it listed every open incident each run), one window shape."""
    live_since = document.get('live_since')
    _each_record(document, records.from_layout_1)
    _each(document, 'window', sweep_cursor.window_from_layout_1)
    # Every open incident was read each run: the latest read is where the last run ended.
    seen = [r[9] for r in (document.get('incidents') or {}).values() if isinstance(r, list) and len(r) > 9]
    reached = max([t for t in seen if isinstance(t, (int, float))] + [live_since or 0])
    document.pop('open_scan', None)
    document.update(
        baseline=int(live_since is not None),
        feed=None if live_since is None else [reached, None, 0.0, {}],
        reconciliation=None,
        resend=None,
        resend_end=None,
        delivering=1,
    )
    return document


def _from_layout_2(document: dict[str, Any]) -> dict[str, Any]:
    """Layout 2 (2026-12-01): records without a story, a feed read oldest page first."""
    _each_record(document, records.from_layout_2)
    _each(document, 'feed', feed_position.from_layout_2)
    feed = document.get('feed')
    reached = feed[0] if isinstance(feed, list) and feed else 0.0
    document.update(last_run=None, refetch=[], gauged=[], rebuilt={}, rebuilt_at=0.0, drift_at=reached)
    document.setdefault('reconcile_credit', 0.0)
    return document


def _from_layout_3(document: dict[str, Any]) -> dict[str, Any]:
    """Layout 3 (2026-12-02): the reconciliation marked a window's end and a pass not started with -1."""
    _each(document, 'reconciliation', reconcile_cursor.from_layout_3)
    return document


def _from_layout_4(document: dict[str, Any]) -> dict[str, Any]:
    """Layout 4 (2026-12-07): each record kept its tags and when it was last confirmed (`checked_at`).

    The tags go to a table records name them from; a pass over the open incidents under way keeps
    the open records it met instead (those confirmed since it began).
    """
    raw = document.get('incidents')
    tag_sets: dict[str, Any] = {}
    checked = {key: records.checked_at_of(value) for key, value in raw.items()} if isinstance(raw, dict) else {}
    _each_record(document, lambda value: records.from_layout_4(value, tag_sets))
    document['tag_sets'] = tag_sets
    _each(document, 'reconciliation', lambda value: reconcile_cursor.from_layout_4(value, checked))
    return document


def _from_layout_5(document: dict[str, Any]) -> dict[str, Any]:
    """Layout 5 (2026-12-07): the sweep's cursor was stored as `horizon`, `window` and `width`."""
    for old, new in (('horizon', 'swept_until'), ('window', 'sweep_window'), ('width', 'sweep_width')):
        if old in document:
            document[new] = document.pop(old)
    return document


LAYOUT = Layout(
    STATE_VERSION,
    {name: Part(domain, _state_default(name), each=name == 'incidents') for name, domain in _PARTS.items()},
    {1: _from_layout_1, 2: _from_layout_2, 3: _from_layout_3, 4: _from_layout_4, 5: _from_layout_5},
)
