# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The dry run's reads with each permission of `datadog_app_key`: what each answer says of the permission."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from datadog_checks.pagerduty_dora.cli.probes import FAILED, GRANTED, MISSING, REFUSED, probe_permissions
from datadog_checks.pagerduty_dora.common.errors import (
    AuthError,
    BudgetExhausted,
    ConnectionFailed,
    RequestRejected,
    TransientError,
)

CONFIG = SimpleNamespace(datadog_app_key='k', submit_dora_failures=False, attribute_change_failures=False)


class AnsweringApi:
    """Datadog's API answering every probe with `error`, or accepting it when there is none."""

    def __init__(self, error):
        self.error = error
        self.reads = 0

    def start_run(self, deadline):
        pass

    def get(self, path, params, endpoint):
        self.reads += 1
        if self.error is not None:
            raise self.error

    def post(self, path, body, endpoint):
        # A listing of DORA failures: a POST that only reads.
        self.get(path, body, endpoint)


class TestProbeStatus:
    """A refused key says whether it lacks the permission or is wrong; any other failure says the probe failed."""

    @pytest.mark.parametrize(
        'error, status',
        [
            (None, GRANTED),
            (AuthError('datadog', 'forbidden', status=403, body='Failed permission authorization checks'), MISSING),
            (AuthError('datadog', 'forbidden', status=403, body='Forbidden'), REFUSED),
            (AuthError('datadog', 'unauthorized', status=401), REFUSED),
            (RequestRejected('datadog', 'bad request', status=400), FAILED),
            (RequestRejected('datadog', 'not found', status=404), FAILED),
            (TransientError('datadog', 'server error', status=503), FAILED),
            (ConnectionFailed('datadog', 'no answer', 'timeout'), FAILED),
            (BudgetExhausted('datadog', 'budget spent'), FAILED),
        ],
        ids=['granted', 'missing', 'bare-403', '401', '400', '404', '5xx', 'no-connection', 'budget'],
    )
    def test_status(self, error, status):
        api = AnsweringApi(error)
        rows = probe_permissions(api, CONFIG, lambda: 0.0)

        read = [row for row in rows if row['status'] != 'not checked']
        assert api.reads == len(read) >= 2
        assert {row['status'] for row in read} == {status}
        if error is not None and status == FAILED:
            assert {row['detail'] for row in read} == {str(error)}
