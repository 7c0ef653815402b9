# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The plain data the demo and the dry run are rendered from: what an Agent event's tags say."""

from __future__ import annotations

import pytest

from datadog_checks.pagerduty_dora.cli.results import transition_of


class TestTransitionOf:
    """The transition an Agent event reports is its `transition:` tag, read as the check reads it back."""

    @pytest.mark.parametrize(
        'event, expected',
        [
            ({'tags': ['env:prod', 'transition:resolved'], 'aggregation_key': 'PINC001'}, 'resolved'),
            ({'tags': ['transition:triggered', 'transition:resolved']}, 'triggered'),
            ({'tags': ['pagerduty_transition:PLOG001', 'transition:acknowledged']}, 'acknowledged'),
            ({'tags': ['transition:a:b']}, 'a:b'),
            ({'tags': ['pagerduty_transition:PLOG001', 'env:prod']}, ''),
            ({'tags': []}, ''),
            ({}, ''),
        ],
        ids=['among-tags', 'first-wins', 'not-the-identity-tag', 'value-with-colon', 'none', 'no-tags', 'no-tags-key'],
    )
    def test_transition(self, event, expected):
        assert transition_of(event) == expected
