# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The messages of a refused key, rendered in one place, and what a DORA delivery's answer means."""

import pytest
import yaml

from datadog_checks.pagerduty_dora.cli.probes import PROBES
from datadog_checks.pagerduty_dora.common.errors import (
    AuthError,
    BudgetExhausted,
    ConnectionFailed,
    RateLimited,
    RequestRejected,
    TransientError,
)
from datadog_checks.pagerduty_dora.common.permissions import (
    DEPLOYMENTS_FORBIDDEN,
    FEATURES,
    catalog_refusal,
    datadog_refusal,
    deployments_refusal,
    dora_delivery_refusal,
    dora_removal_refusal,
    pagerduty_refusal,
    permissions_markdown,
    permissions_text,
    status_text,
)
from datadog_checks.pagerduty_dora.datadog.dora import (
    DELIVERED,
    DROPPED,
    KEY_REFUSED,
    OUT_OF_BUDGET,
    PAUSED,
    REMOVAL_REFUSED,
    STOPPING_VERDICTS,
    delivery_verdict,
)
from datadog_checks.pagerduty_dora.health import APP_KEY_PERMISSIONS

from ..paths import INTEGRATION, PACKAGE

MISSING = '{"errors":["Failed permission authorization checks"]}'


def refused(status, body='', api='datadog', endpoint=''):
    error = AuthError(api, 'answered {}'.format(status), status, body)
    error.endpoint = endpoint
    return error


class TestPagerDutyRefusal:
    """A refused `api_token` names the region to check (401) or the access the key lacks (403)."""

    @pytest.mark.parametrize(
        'url, region',
        [
            (
                'https://api.pagerduty.com',
                'or belongs to another region (EU accounts use https://api.eu.pagerduty.com)',
            ),
            (
                'https://api.eu.pagerduty.com/',
                'or belongs to the US service region (its URL is the default, https://api.pagerduty.com)',
            ),
        ],
        ids=['us', 'eu'],
    )
    def test_unauthorized(self, url, region):
        message = pagerduty_refusal(refused(401, api='pagerduty'), url)

        expected = 'PagerDuty rejected `api_token` (401 Unauthorized) at {}: the key is wrong or revoked, {}'
        assert message == expected.format(url, region)

    def test_forbidden(self):
        message = pagerduty_refusal(refused(403, api='pagerduty'), 'https://api.pagerduty.com')

        assert message.startswith('PagerDuty refused `api_token` access (403 Forbidden): pagerduty API: answered 403.')
        assert message.endswith('use a REST API key with read access (a read-only key is enough)')


class TestDatadogRefusal:
    """A refused Datadog key says which key, and the permission the endpoint needs when one does."""

    @pytest.mark.parametrize(
        'error, permission, start',
        [
            (refused(403), None, 'Datadog rejected the API key (403 Forbidden): check `datadog_api_key`'),
            (
                refused(403, MISSING, endpoint='/api/v2/team'),
                'teams_read',
                'Datadog refused /api/v2/team (403 Forbidden): the keys are valid, but the user or service '
                'account of `datadog_app_key` lacks the `teams_read` permission',
            ),
            (refused(401, endpoint='/api/v2/team'), 'teams_read', 'Datadog rejected the keys at /api/v2/team (401'),
        ],
        ids=['api-key', 'missing-permission', 'wrong-keys'],
    )
    def test_message(self, error, permission, start):
        assert datadog_refusal(error, permission).startswith(start)

    @pytest.mark.parametrize(
        'status, text', [(401, '401 Unauthorized'), (403, '403 Forbidden'), (407, '407')], ids=['401', '403', 'other']
    )
    def test_status_text(self, status, text):
        assert status_text(status) == text


class TestCatalogRefusal:
    """A refused catalog read names the request, and the permission only where it can be the cause."""

    def test_missing_permission(self):
        message = catalog_refusal(refused(403, MISSING), '/api/v2/team', 'teams_read')

        assert message == (
            'the Datadog API answered 403 to GET /api/v2/team: the keys are valid, but the user or service account '
            'of the application key (datadog_app_key) lacks the teams_read permission'
        )

    @pytest.mark.parametrize('status, named', [(401, False), (403, True)], ids=['401', 'bare-403'])
    def test_wrong_key(self, status, named):
        message = catalog_refusal(refused(status), '/api/v2/team', 'teams_read')

        assert 'answered {} to GET /api/v2/team'.format(status) in message
        assert message.endswith('the application key lacks the teams_read permission') is named


class TestDoraRefusals:
    """What the DORA delivery and attribution warn when Datadog refuses them."""

    def test_delivery(self):
        assert dora_delivery_refusal(refused(403), 7) == (
            'The DORA API refused the key (403): check `datadog_api_key` (or the Agent `api_key`) and that it '
            'belongs to the Datadog site of `datadog_api_url`; 7 failures wait for the next run'
        )

    def test_removal(self):
        assert dora_removal_refusal(refused(403), 'pagerduty-incident-P1') == (
            'Datadog refused to delete DORA failure pagerduty-incident-P1 (403): the application key of '
            '`datadog_app_key` needs the `dora_metrics_write` permission. Removals wait for the next run; '
            'collection and other deliveries go on'
        )

    def test_deployments(self):
        message = deployments_refusal(403)

        assert message.startswith('Datadog refused the DORA deployments API (403) for change-failure attribution')
        assert message.endswith('Attribution work is kept and retried on the next run')
        assert DEPLOYMENTS_FORBIDDEN.startswith('Datadog refused access to DORA deployments (403)')


class TestDeliveryVerdict:
    """Each answer to a DORA delivery means one thing for the queue; only three stop the flush."""

    @pytest.mark.parametrize(
        'error, removal, verdict',
        [
            (None, False, DELIVERED),
            (None, True, DELIVERED),
            (BudgetExhausted('datadog', 'used up'), False, OUT_OF_BUDGET),
            (TransientError('datadog', 'answered 503', 503), False, PAUSED),
            (RateLimited('datadog', 'rate limited', 429), False, PAUSED),
            (ConnectionFailed('datadog', 'cannot connect', 'dns'), True, PAUSED),
            (refused(403), False, KEY_REFUSED),
            (refused(403), True, REMOVAL_REFUSED),
            (RequestRejected('datadog', 'answered 400', 400), False, DROPPED),
        ],
        ids=['sent', 'removed', 'budget', 'server-error', 'rate-limited', 'no-answer', 'key', 'removal', 'rejected'],
    )
    def test_verdict(self, error, removal, verdict):
        assert delivery_verdict(error, removal=removal) == verdict

    def test_what_stops(self):
        assert set(STOPPING_VERDICTS) == {OUT_OF_BUDGET, PAUSED, KEY_REFUSED}


def flat(text: str) -> str:
    return ' '.join(text.split())


class TestOneTable:
    """One table of what `datadog_app_key` serves: the README and the configuration say it in the same words."""

    def test_every_permission_the_code_needs_is_in_the_table(self):
        in_table = {p for feature in FEATURES for p in feature.permissions}
        assert set(APP_KEY_PERMISSIONS.values()) == in_table
        assert set(PROBES) == in_table

    def test_readme(self):
        readme = (INTEGRATION / 'README.md').read_text(encoding='utf-8')
        assert permissions_markdown() in readme

    def test_spec_and_example(self):
        spec = yaml.safe_load((INTEGRATION / 'assets' / 'configuration' / 'spec.yaml').read_text(encoding='utf-8'))
        options = {o['name']: o for o in spec['files'][0]['options'][1]['options'] if 'name' in o}
        assert flat(permissions_text()) in flat(options['datadog_app_key']['description'])
        example = (PACKAGE / 'data' / 'conf.yaml.example').read_text()
        comments = ' '.join(line.strip().lstrip('#') for line in example.splitlines())
        assert flat(permissions_text()) in flat(comments)

    @pytest.mark.parametrize('feature', FEATURES, ids=[f.name for f in FEATURES])
    def test_each_row_says_what_happens_without(self, feature):
        assert feature.permissions and feature.without.endswith('.')
