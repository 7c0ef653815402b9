# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""One look at an incident, decided without I/O: what is news, what waits, and when its own log is needed."""

from __future__ import annotations

from dataclasses import replace

from datadog_checks.pagerduty_dora.collection.pages import DAY, OVERLAP
from datadog_checks.pagerduty_dora.collection.record import IncidentRecord
from datadog_checks.pagerduty_dora.collection.story import Context, ReadLog, Story, look, merged, settled
from datadog_checks.pagerduty_dora.datadog.marks import rejected
from datadog_checks.pagerduty_dora.pagerduty.incident import Incident, parse_incident
from datadog_checks.pagerduty_dora.pagerduty.transitions import Step, observed

from ..fakes.pagerduty import NOW, raw_incident

LIVE = NOW - DAY
# A run well after going live: the feed read up to an hour ago; this run reads from there.
LATER = Context(now=NOW, live_since=LIVE, read_start=NOW - 3600 - OVERLAP, feed_read_until=NOW - 3600, baseline=True)


def incident(created_at: float, status: str = 'triggered', **changes: object) -> Incident:
    raw = raw_incident(7, created_at, status)
    raw.update(changes)
    return parse_incident(raw)


def trigger(at: float) -> Step:
    return Step('L-trigger', at, 'trigger')


def resolve(at: float) -> Step:
    return Step('L-resolve', at, 'resolve')


def record(seen: Incident, at: float, *, wanted: bool = True) -> IncidentRecord:
    return IncidentRecord(
        status=seen.status,
        priority=seen.priority,
        urgency=seen.urgency,
        service_id=seen.service_id,
        service_name=seen.service_name,
        created_at=seen.created_at,
        resolved_at=seen.resolved_at,
        delivered='',
        acked=False,
        wanted=wanted,
        base=observed(seen, at),
        steps=[],
        emitted=[],
        counted=True,
    )


def kinds(story: Story | ReadLog | None) -> list[str]:
    assert isinstance(story, Story), story
    return [t.kind for t in story.new]


class TestFirstLook:
    """An incident without a record."""

    def test_one_born_where_the_feed_reads_is_news_from_its_trigger(self) -> None:
        born = incident(NOW - 600)
        story = look(born, None, [trigger(NOW - 600)], LATER, from_feed=True)
        assert kinds(story) == ['triggered']

    def test_one_born_before_the_feed_window_needs_its_own_log_first(self) -> None:
        old = incident(NOW - 2 * DAY, 'resolved', last_status_change_at='2026-11-20T09:59:00Z')
        steps = [resolve(NOW - 60)]
        assert look(old, None, steps, LATER, from_feed=True) == ReadLog(None)
        log = [trigger(NOW - 2 * DAY)]
        story = look(old, None, steps, LATER, from_feed=True, log=log)
        # What happened before this run's reading started is not news; the resolve is.
        assert kinds(story) == ['resolved']
        # The trigger lies before the feed's overlap: it is folded into the base the record keeps.
        assert isinstance(story, Story) and [s.id for s in story.steps] == ['L-resolve']
        assert story.base.status == 'triggered'

    def test_one_born_where_the_feed_reads_without_its_trigger_among_the_entries_needs_its_own_log(self) -> None:
        born = incident(NOW - 600, 'acknowledged', last_status_change_at='2026-11-20T09:50:05Z')
        # The newest of its entries: its trigger and first acknowledgement lie on an older page.
        newest = [Step('L-unack', NOW - 596, 'unacknowledge'), Step('L-ack2', NOW - 595, 'acknowledge')]
        assert look(born, None, newest, LATER, from_feed=True) == ReadLog(None)
        log = [trigger(NOW - 600), Step('L-ack1', NOW - 599, 'acknowledge'), *newest]
        story = look(born, None, newest, LATER, from_feed=True, log=log)
        assert isinstance(story, Story)
        assert [(t.kind, t.at, t.first) for t in story.new] == [
            ('triggered', NOW - 600, True),
            ('acknowledged', NOW - 599, True),
            ('unacknowledged', NOW - 596, True),
            ('acknowledged', NOW - 595, False),
        ]

    def test_one_met_by_reconciliation_that_the_feed_reports_is_left_to_the_feed(self) -> None:
        assert look(incident(NOW - 120), None, [], LATER, from_feed=False) is None

    def test_during_the_baseline_an_incident_is_taken_as_it_is(self) -> None:
        baseline = replace(LATER, baseline=False)
        story = look(incident(NOW - 2 * DAY), None, [], baseline, from_feed=False)
        assert kinds(story) == []
        assert isinstance(story, Story) and story.end.status == 'triggered'

    def test_after_the_baseline_an_unknown_open_incident_is_read_from_its_log(self) -> None:
        unknown = incident(NOW - 2 * DAY)
        assert look(unknown, None, [], LATER, from_feed=False) == ReadLog(None)
        story = look(unknown, None, [], LATER, from_feed=False, log=[trigger(NOW - 2 * DAY)])
        assert kinds(story) == []

    def test_what_datadog_shows_reported_is_not_news_after_a_rebuild(self) -> None:
        born = incident(NOW - 600)
        rebuilt = replace(LATER, reported=('trigger',))
        assert kinds(look(born, None, [trigger(NOW - 600)], rebuilt, from_feed=True)) == []

    def test_a_status_its_log_does_not_explain_yet_waits_for_a_later_look(self) -> None:
        acked = incident(NOW - 600, 'acknowledged', last_status_change_at='2026-11-20T09:59:30Z')
        quiet = replace(LATER, feed_read_until=None)
        assert look(acked, None, [trigger(NOW - 600)], quiet, from_feed=True) is None


class TestLaterLooks:
    """An incident with a record."""

    def test_a_change_the_feed_read_past_is_looked_up_in_the_incidents_log(self) -> None:
        seen = incident(NOW - 2 * DAY)
        kept = record(seen, NOW - 2 * DAY)
        resolved = incident(NOW - 2 * DAY, 'resolved', last_status_change_at='2026-11-20T08:00:00Z')
        asked = look(resolved, kept, [], LATER, from_feed=False)
        assert asked == ReadLog(kept.base.at)
        story = look(resolved, kept, [], LATER, from_feed=False, log=[resolve(NOW - 7200)])
        assert kinds(story) == ['resolved']
        assert isinstance(story, Story) and story.new[0].key == 'L-resolve'

    def test_a_change_not_even_the_log_explains_is_adopted_at_the_look(self) -> None:
        seen = incident(NOW - 2 * DAY)
        kept = record(seen, NOW - 2 * DAY)
        resolved = incident(NOW - 2 * DAY, 'resolved', last_status_change_at='2026-11-20T08:00:00Z')
        story = look(resolved, kept, [], LATER, from_feed=False, log=[])
        assert kinds(story) == ['resolved']
        assert isinstance(story, Story) and story.new[0].key.startswith('adopt:')
        assert story.steps == [] and story.base.status == 'resolved'

    def test_coming_back_into_scope_is_not_news(self) -> None:
        seen = incident(NOW - 2 * DAY)
        away = record(seen, NOW - 2 * DAY, wanted=False)
        story = look(
            seen, away, [resolve(NOW - 60), Step('L-again', NOW - 30, '', True, 'assign')], LATER, from_feed=True
        )
        assert kinds(story) == []

    def test_an_entry_read_twice_is_news_once(self) -> None:
        born = incident(NOW - 600)
        first = look(born, None, [trigger(NOW - 600)], LATER, from_feed=True)
        assert isinstance(first, Story)
        kept = replace(record(born, NOW - 300), base=first.base, steps=first.steps, emitted=sorted(first.emitted))
        assert kinds(look(born, kept, [trigger(NOW - 600)], LATER, from_feed=True)) == []


class TestHelpers:
    """The small rules the looks share."""

    def test_merged_keeps_the_first_of_each_entry_in_order(self) -> None:
        a, b, c = Step('a', 1.0), Step('b', 2.0), Step('c', 3.0)
        assert merged([a, b], [b, c, a]) == [a, b, c]

    def test_settled_when_datadog_holds_it_or_refused_it_for_good(self) -> None:
        assert settled('fp', 'fp') is True
        assert settled(rejected('fp'), 'fp') is True
        assert settled('', 'fp') is False
        assert settled('old', 'fp') is False
