# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What attribution tells people (notes, its own events) and how it counts and hands them out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from datadog_checks.pagerduty_dora.attribution import model, texts
from datadog_checks.pagerduty_dora.attribution.model import Deployment
from datadog_checks.pagerduty_dora.attribution.reporting import METRIC, Reporter, preview_result
from datadog_checks.pagerduty_dora.attribution.state import AttributionState
from datadog_checks.pagerduty_dora.attribution.texts import Note
from datadog_checks.pagerduty_dora.common.permissions import deployments_refusal
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.queue import QueueBounds

# 2026-11-26T12:00:00Z
T0 = 1795694400.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
FAILED = Deployment('dep-1', 'checkout', 'prod', 'v2', T0 - 2 * HOUR, T0 - HOUR)
FIX = Deployment('dep-2', 'checkout', 'prod', 'v1', T0 - 10 * MINUTE, T0 - 5 * MINUTE)


class TestNotes:
    """Each decision's line, exactly; untrusted values stay inside one code span."""

    def test_code(self):
        assert texts.code('a`b\nc') == "`a'b c`"
        assert texts.code('') == '(none)'

    def test_blamed(self):
        search = {'signal': model.LATEST_DEPLOYMENT, 'service': 'checkout', 'env': 'prod', 'related': 2}
        note = texts.blamed_note(FAILED, 1, search, DAY)
        decided = (
            'decided by the latest deployment of `checkout` in env `prod` finished in the 1d before the incident '
            'started (2 related change event(s) matched none of them)'
        )
        assert note == Note(
            model.ATTRIBUTED,
            '- **Change failure:** deployment `dep-1` of `checkout` in env `prod`, version `v2`, finished at '
            '2026-11-26T11:00:00Z marked as a change failure (already a change failure: blamed by 1 other '
            'incident(s)); ' + decided,
            decided,
            stands_alone=True,
        )

    def test_blamed_by_the_monitor_version(self):
        search = {'signal': model.MONITOR_VERSION, 'basis': 'version', 'version': 'v2`x', 'related': 1}
        decided = texts.signal_text(search, DAY)
        assert decided == "decided by version `v2'x` named by the Datadog monitor that triggered the incident"
        assert texts.blamed_note(FAILED, 0, search, DAY).line.endswith('marked as a change failure; ' + decided)

    @pytest.mark.parametrize(
        'left, tail',
        [
            (0, '; set back (`change_failure: false`): no other qualifying incident blames it'),
            (2, '; it stays a change failure, blamed by 2 other incident(s)'),
        ],
        ids=['last', 'others-left'],
    )
    def test_released(self, left, tail):
        note = texts.released_note(model.UNMARKED, 'dep-1', model.MERGED, left)
        text = 'deployment `dep-1` no longer blamed by this incident (it was merged into another incident)' + tail
        assert note == Note(model.UNMARKED, '- **Change failure:** ' + text, text, stands_alone=True)

    @pytest.mark.parametrize(
        'record, why',
        [
            (
                {'rolled_back': FIX.to_json()},
                'deployment `dep-2` of `checkout` in env `prod`, version `v1`, finished at 2026-11-26T11:55:00Z '
                'rolled it back, and Datadog marks a rolled-back deployment itself',
            ),
            (
                {'remediation': {'id': 'dep-2', 'type': model.ROLLFORWARD, 'deployment': FIX.to_json()}},
                'its rollforward by deployment `dep-2` of `checkout` in env `prod`, version `v1`, finished at '
                '2026-11-26T11:55:00Z is recorded, and Datadog may have marked it by its own rules',
            ),
            (
                {'rollback_refused': 400},
                'the DORA deployments search for a rollback of it was rejected (400), so one cannot be ruled out',
            ),
        ],
        ids=['rolled-back', 'remediation-recorded', 'search-rejected'],
    )
    def test_kept(self, record, why):
        note = texts.kept_note('dep-1', model.DELETED, record)
        text = 'deployment `dep-1` no longer blamed by this incident (it was deleted); it stays a change failure, '
        assert note == Note(model.KEPT, '- **Change failure:** ' + text + 'not set back: ' + why, note.plain, True)
        assert note.plain == text + 'not set back: ' + why

    def test_remediated(self):
        note = texts.remediated_note(FIX, model.ROLLBACK, 'dep-1', FAILED)
        assert note.plain == (
            'rollback by deployment `dep-2` of `checkout` in env `prod`, version `v1`, finished at '
            '2026-11-26T11:55:00Z, recorded for failed deployment `dep-1` (55m after it finished)'
        )
        assert (note.outcome, note.stands_alone, note.line) == (
            model.REMEDIATED,
            True,
            '- **Remediation:** ' + note.plain,
        )

    @pytest.mark.parametrize(
        'forbidden, remedy, outcome, line',
        [
            (True, False, model.FORBIDDEN, '- **Change failure:** pending: ' + texts.FORBIDDEN_REASON),
            (False, True, model.DEFERRED, '- **Remediation:** pending: ' + texts.UNAVAILABLE_REASON),
        ],
        ids=['forbidden', 'unavailable-remedy'],
    )
    def test_deferred(self, forbidden, remedy, outcome, line):
        note = texts.deferred_note(forbidden, remedy)
        assert (note.outcome, note.line, note.stands_alone) == (outcome, line, False)

    def test_waiting_and_not_found(self):
        assert texts.waiting_note(T0 + 300, 300).plain == (
            'judged at 2026-11-26T12:05:00Z (5m after the incident started), so that deployments reported late are seen'
        )
        assert texts.no_deployment_note('checkout', 'prod', DAY, T0).line == (
            '- **Change failure:** not attributed: no deployment of `checkout` in env `prod` finished in the 1d before '
            '2026-11-26T12:00:00Z'
        )

    def test_own_event(self):
        notes = [Note('', 'one', ''), Note(model.REMEDIATED, 'two', '', stands_alone=True)]
        event = texts.own_event('Q1', {'number': 7, 'tags': ['service:checkout']}, notes, T0 + 0.5)
        assert event == {
            'timestamp': int(T0),
            'event_type': 'pagerduty_dora',
            'source_type_name': 'pagerduty_dora',
            'aggregation_key': 'Q1',
            'alert_type': 'info',
            'priority': 'normal',
            'msg_title': '#7 change failure: remediation recorded',
            'msg_text': '%%% \n### PagerDuty incident #7\n\none\ntwo\n %%%',
            'tags': ['service:checkout', 'attribution:remediated'],
        }


class Rig:
    """A reporter with its counts, warnings and events kept."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, float, list[str]]] = []
        self.warnings: list[str] = []
        self.events: list[dict] = []
        log = SimpleNamespace(warning=lambda *a: None)
        self.cache: dict[str, str] = {}
        self.state = TestState.state(self.cache)
        services = AgentServices(
            read_cache=lambda key: self.cache.get(key, ''),
            write_cache=self.cache.__setitem__,
            log=log,
            warning=self.warnings.append,
            count=lambda *a: self.counts.append(a),
            clock=lambda: T0,
        )
        self.reporter = Reporter(self.state, services, self.events.append)


def look(*kinds: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(kind=kind) for kind in kinds]


class TestReporter:
    """Notes go into the look's event, or into attribution's own event at the end of the run."""

    def test_lines_go_to_the_last_transition_that_carries_them(self):
        rig = Rig()
        rig.reporter.note('Q1', Note('', 'a', ''))
        rig.reporter.note('Q1', Note('', 'b', ''))
        assert rig.reporter.lines_for('Q1', look('triggered', 'acknowledged', 'resolved', 'acknowledged'), True) == {
            2: 'a\nb'
        }
        assert rig.reporter.lines_for('Q1', look('triggered'), True) == {}

    def test_lines_that_stand_alone_without_an_event_get_their_own(self):
        rig = Rig()
        rig.state.incidents()['Q1'] = {'number': 3}
        rig.reporter.note('Q1', Note('', 'waits', ''))
        rig.reporter.note('Q1', Note(model.ATTRIBUTED, 'marked', '', stands_alone=True))
        assert rig.reporter.lines_for('Q1', look(), True) == {}
        rig.reporter.end_run()
        assert [e['msg_title'] for e in rig.events] == ['#3 change failure: deployment marked as a change failure']
        assert 'waits' not in rig.events[0]['msg_text']
        rig.reporter.end_run()
        assert len(rig.events) == 1

    def test_a_look_that_tells_them_leaves_nothing_untold(self):
        rig = Rig()
        rig.state.incidents()['Q1'] = {'number': 3}
        rig.reporter.note('Q1', Note(model.NO_DEPLOYMENT, 'none found', '', stands_alone=True))
        assert rig.state.incidents()['Q1']['untold'] == [
            {'outcome': model.NO_DEPLOYMENT, 'line': 'none found', 'plain': ''}
        ]
        assert rig.reporter.lines_for('Q1', look('triggered'), True) == {0: 'none found'}
        assert 'untold' not in rig.state.incidents()['Q1']
        rig.reporter.end_run()
        assert rig.events == []

    def test_counts_and_warnings(self):
        rig = Rig()
        rig.reporter.outcome('Q1', model.ATTRIBUTED, ['signal:change_event'])
        rig.reporter.forbidden(403)
        rig.reporter.warn_once('priorities', 'once')
        rig.reporter.warn_once('priorities', 'once')
        assert rig.counts == [
            (METRIC, 1, ['outcome:attributed', 'signal:change_event']),
            (METRIC, 1, ['outcome:forbidden']),
        ]
        assert rig.warnings == [deployments_refusal(403), 'once']

    def test_preview_result(self):
        record = {'blames': 'dep-1', 'search': {'signal': model.CHANGE_EVENT, 'basis': 'commit'}}
        deployments = {
            'dep-1': {
                'deployment': FAILED.to_json(),
                'remediation': {'id': 'dep-2', 'type': 'rollback', 'deployment': FIX.to_json()},
            }
        }
        notes = [Note('', 'line', 'first'), Note('', 'line', ''), Note('', 'line', 'second')]
        assert preview_result(record, deployments, notes, ['no_deployment']) == {
            'outcome': model.ATTRIBUTED,
            'deployment': FAILED.to_json(),
            'signal': model.CHANGE_EVENT,
            'basis': 'commit',
            'remediation': {'type': 'rollback', 'deployment': FIX.to_json()},
            'note': 'first; second',
        }
        assert preview_result({}, {}, [], [model.NO_ENV])['outcome'] == model.NO_ENV


class TestState:
    """Records a damaged cache cannot give back are dropped when read."""

    @staticmethod
    def state(cache: dict) -> AttributionState:
        services = AgentServices(
            read_cache=lambda key: cache.get(key, ''),
            write_cache=cache.__setitem__,
            log=None,
            warning=lambda *a: None,
            clock=lambda: T0,
        )
        return AttributionState(services, QueueBounds(max_items=10, max_age=DAY))

    def test_unreadable_records_are_dropped(self):
        cache: dict[str, str] = {}
        first = self.state(cache)
        facts = {'start': T0, 'services': ['checkout'], 'env': 'prod'}
        first.incidents().update({'Q1': {'facts': facts}, 'Q2': {'facts': 'damaged'}, 'Q3': 'damaged'})
        first.deployments().update({'dep-1': {'deployment': FAILED.to_json()}, 'dep-2': {'deployment': {'id': 3}}})
        first.touch(first.incidents()['Q1'])
        first.save()
        again = self.state(cache)
        assert sorted(again.incidents()) == ['Q1']
        assert again.incidents()['Q1'] == {'facts': facts, 'touched': T0}
        assert sorted(again.deployments()) == ['dep-1']
        assert again.priorities() == {}
