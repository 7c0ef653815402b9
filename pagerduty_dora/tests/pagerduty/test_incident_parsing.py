# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Parsing's fast paths decide as the general path, and an open incident read again as it was is not parsed again."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datadog_checks.pagerduty_dora.pagerduty import incident as parsing
from datadog_checks.pagerduty_dora.pagerduty.incident import MAX_ID_LENGTH, MAX_NAME_LENGTH, parse_incident

from ..adversarial.test_properties import BASE_INCIDENT, incident_documents

PROFILE = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet='abcXYZ019 \t', max_size=MAX_ID_LENGTH + 3),
    st.text(alphabet='ab ', min_size=MAX_NAME_LENGTH - 2, max_size=MAX_NAME_LENGTH + 2),
    st.integers(),
    st.none(),
)


def open_incident(**changes: object) -> dict:
    return dict(copy.deepcopy(BASE_INCIDENT), status='triggered', resolved_at=None, **changes)


class TestFastPaths:
    """The shortcuts for the common shapes (plain ids, short ASCII names, plain dicts) decide as the general path."""

    @PROFILE
    @given(texts)
    def test_an_id(self, value: object) -> None:
        assert parsing._identifier(value) == parsing._checked_identifier(value)

    @PROFILE
    @given(texts, st.sampled_from([5, 40, MAX_NAME_LENGTH]))
    def test_a_name(self, value: object, limit: int) -> None:
        assert parsing._bounded(value, limit) == parsing._cut(value, limit)


class TestReadAgain:
    """An open incident exactly as it was last parsed gives the same `Incident`; any change is parsed anew."""

    def test_the_same_document_gives_the_same_incident(self) -> None:
        first = parse_incident(open_incident())
        assert parse_incident(open_incident()) is first

    def test_a_changed_document_is_parsed_again(self) -> None:
        first = parse_incident(open_incident())
        changed = parse_incident(open_incident(title='Checkout is down'))
        assert changed is not first and changed.title == 'Checkout is down'
        assert parse_incident(open_incident(urgency='low')).urgency == 'low'

    def test_resolved_incidents_are_not_remembered(self) -> None:
        document = dict(copy.deepcopy(BASE_INCIDENT), status='resolved')
        first = parse_incident(document)
        again = parse_incident(document)
        assert again == first and again is not first

    @PROFILE
    @given(incident_documents())
    def test_a_document_read_twice_parses_alike(self, document: dict) -> None:
        try:
            first = parse_incident(document)
        except parsing.MalformedIncident as e:
            reason = str(e)
            try:
                parse_incident(document)
            except parsing.MalformedIncident as again:
                assert str(again) == reason
            else:
                raise AssertionError('parsed the second time') from None
            return
        assert parse_incident(copy.deepcopy(document)) == first


class TestTeams:
    """An incident's teams: those with a usable id, in order, each team one value however many incidents name it."""

    def test_every_incident_of_a_team_holds_the_same_value(self) -> None:
        first = parse_incident(dict(BASE_INCIDENT, id='PFIRST1'))
        second = parse_incident(dict(BASE_INCIDENT, id='PSECOND'))
        assert first.teams == second.teams and first.teams[0] is second.teams[0]
        renamed = [{'id': 'PQ9K7I8', 'type': 'team_reference', 'summary': 'Payments and billing'}]
        assert parse_incident(dict(BASE_INCIDENT, teams=renamed)).teams[0].name == 'Payments and billing'

    @PROFILE
    @given(st.one_of(st.lists(st.one_of(st.fixed_dictionaries({'id': texts, 'summary': texts}), texts)), texts))
    @example([{'id': 'PQ9K7I8', 'summary': 'Payments'}, 'PQ9K7I8', {'id': None}, {'id': ' PB2 ', 'name': 'Billing'}])
    def test_teams_with_a_usable_id_in_order(self, listed: object) -> None:
        expected = (
            [
                (parsing._identifier(team.get('id')), parsing._reference_name(team))
                for team in listed
                if isinstance(team, dict) and parsing._identifier(team.get('id')) is not None
            ]
            if isinstance(listed, list)
            else []
        )
        assert [(team.id, team.name) for team in parsing._teams(listed)] == expected
