# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Change-failure attribution's stored state: layout 1 becomes layout 2 (blames, remediations and work kept), and
a layout-2 document an earlier release wrote reads as it is, with the fields added since optional."""

from __future__ import annotations

import json

from datadog_checks.pagerduty_dora.attribution.decision import rollback_search, wanted_patch
from datadog_checks.pagerduty_dora.attribution.model import Facts
from datadog_checks.pagerduty_dora.attribution.state import CACHE_KEY, AttributionState, from_layout_1
from datadog_checks.pagerduty_dora.attribution.texts import Note
from datadog_checks.pagerduty_dora.common.services import AgentServices
from datadog_checks.pagerduty_dora.datadog.queue import QueueBounds

from ..paths import LAYOUT_SAMPLES


def services(cache: dict, warnings: list, now: float) -> AgentServices:
    """The cache, warnings and clock of a state read and written by the test."""
    return AgentServices(
        read_cache=lambda key: cache.get(key, ''),
        write_cache=cache.__setitem__,
        log=None,
        warning=lambda *args: warnings.append(args),
        clock=lambda: now,
    )


D2 = {'id': 'dep-D2', 'service': 'checkout', 'env': 'prod', 'version': '1.1', 'started_at': 100.0, 'finished_at': 160.0}
D5 = {'id': 'dep-D5', 'service': 'search', 'env': 'prod', 'version': '7', 'started_at': 300.0, 'finished_at': 360.0}
# As the releases of 2026-11-26 and 2026-12-01 stored it: every kind of record and of queued work.
LAYOUT_1 = {
    'version': 1,
    'incidents': {
        'PBLAMES': {'touched': 900.0, 'deployment': D2, 'previous_versions': [], 'since': 200.0, 'blamed': ['dep-D2']},
        'PALSO': {
            'touched': 950.0,
            'deployment': D2,
            'previous_versions': ['1.0'],
            'since': 210.0,
            'blamed': ['dep-D2'],
        },
        'PFIXED': {
            'touched': 990.0,
            'deployment': D5,
            'since': 400.0,
            'blamed': ['dep-D5'],
            'remediation': {'id': 'dep-D6', 'type': 'rollback'},
        },
        'PWAITING': {'touched': 995.0, 'waiting': True},
        'PNOTHING': {'touched': 999.0},
    },
    'pending': [
        [
            'attribute:PWAITING',
            995.0,
            {'kind': 'attribute', 'incident': 'PWAITING', 'service': 'billing', 'env': 'prod', 'reference': 500.0},
        ],
        ['remediate:PALSO', 996.0, {'kind': 'remediate', 'incident': 'PALSO', 'resolved_at': 700.0}],
        [
            'patch:dep-D2',
            997.0,
            {'kind': 'patch', 'deployment': 'dep-D2', 'body': {'data': {'attributes': {'change_failure': True}}}},
        ],
    ],
}


class TestLayout1:
    """Every record and every queued task of layout 1 has its layout-2 counterpart."""

    def test_blames_and_the_deployments_they_mark(self) -> None:
        migrated = from_layout_1(json.loads(json.dumps(LAYOUT_1)))
        incidents, deployments = migrated['incidents'], migrated['deployments']
        assert sorted(incidents) == ['PALSO', 'PBLAMES', 'PFIXED', 'PWAITING']
        assert {key: incidents[key].get('blames') for key in incidents} == {
            'PALSO': 'dep-D2',
            'PBLAMES': 'dep-D2',
            'PFIXED': 'dep-D5',
            'PWAITING': None,
        }
        assert deployments['dep-D2']['blamed_by'] == ['PBLAMES', 'PALSO']
        assert Facts.from_json(incidents['PBLAMES']['facts']).start == 200.0
        assert Facts.from_json(incidents['PWAITING']['facts']).services == ('billing',)
        assert incidents['PWAITING']['judged'] is False

    def test_a_recorded_remediation_is_not_sent_again(self) -> None:
        deployment = from_layout_1(json.loads(json.dumps(LAYOUT_1)))['deployments']['dep-D5']
        assert deployment['remediation']['id'] == 'dep-D6' and deployment['remediation']['type'] == 'rollback'
        assert wanted_patch(deployment) is None

    def test_queued_work_is_queued_again(self) -> None:
        migrated = from_layout_1(json.loads(json.dumps(LAYOUT_1)))
        assert {key: task['kind'] for key, _, task in migrated['pending']} == {
            'incident:PWAITING': 'incident',
            'remedy:dep-D2': 'remedy',
            'sync:dep-D2': 'sync',
        }
        # Its PATCH was still queued: Datadog may not hold the mark, so it is sent.
        assert wanted_patch(migrated['deployments']['dep-D2']) == {'change_failure': True}

    def test_the_state_reads_a_layout_1_document_and_writes_it_back_in_layout_2(self) -> None:
        cache = {CACHE_KEY: json.dumps(LAYOUT_1)}
        warnings: list[tuple] = []
        state = AttributionState(services(cache, warnings, now=1000.0), QueueBounds(max_items=100, max_age=86400.0))
        assert sorted(state.incidents()) == ['PALSO', 'PBLAMES', 'PFIXED', 'PWAITING']
        assert sorted(state.deployments()) == ['dep-D2', 'dep-D5']
        assert warnings == []
        state.save()
        assert json.loads(cache[CACHE_KEY])['version'] == 2


# What the release of 2026-12-02 (c16774c) stored in layout 2: an incident blaming dep-D2, one resolved
# that found no deployment, one not qualifying, one waiting for its settle time.
SAMPLE = LAYOUT_SAMPLES / 'layout3-c16774c-app-key.json'


class TestLayout2:
    """A layout-2 document written before rollbacks were searched and decisions kept untold is read as it is."""

    @staticmethod
    def state(cache: dict, warnings: list) -> AttributionState:
        return AttributionState(
            services(cache, warnings, now=1793621400.0), QueueBounds(max_items=100, max_age=86400.0)
        )

    def test_the_sample_reads_and_keeps_its_layout(self) -> None:
        stored = json.loads(SAMPLE.read_text(encoding='utf-8'))['cache'][CACHE_KEY]
        assert json.loads(stored)['version'] == 2
        cache: dict[str, str] = {CACHE_KEY: stored}
        warnings: list[tuple] = []
        state = self.state(cache, warnings)

        assert sorted(state.incidents()) == ['P0K9RW5', 'P0KV7I0', 'P0LGN3V', 'P0M22PQ']
        assert state.queue.keys() == ['incident:P0M22PQ']
        deployment = state.deployments()['dep-D2']
        assert deployment['blamed_by'] == ['P0K9RW5'] and wanted_patch(deployment) is None
        # Released now, the deployment that release marked is searched for a rollback before any set-back.
        released = dict(deployment, blamed_by=[])
        assert wanted_patch(released) is None
        assert rollback_search('dep-D2', released, 1793621400.0) is not None

        note = Note('no_deployment', '- **Change failure:** not attributed', 'not attributed', stands_alone=True)
        state.keep_untold('P0KV7I0', note.to_json())
        state.save()
        again = self.state(cache, warnings)
        assert json.loads(cache[CACHE_KEY])['version'] == 2
        assert again.incidents()['P0KV7I0']['untold'] == [note.to_json()]
        assert again.incidents()['P0K9RW5'] == state.incidents()['P0K9RW5']
        assert warnings == []
