# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The health of a run, as the service checks users alert on report it.

`can_connect`, per API, says a key that is refused or an API that does not answer; `can_submit` says
what stops the check itself from submitting (an invalid configuration, a catalog source that never
loaded). One cause is one CRITICAL service check: the other says UNKNOWN, naming the one that is
CRITICAL. `Health` follows each API's requests through the hooks of its `ApiClient`, keeps the first
failure of each, and says what the run's error must be.
"""

from __future__ import annotations

from typing import Callable, Mapping

from datadog_checks.base import AgentCheck
from datadog_checks.pagerduty_dora.attribution.deployments import LIST_ENDPOINT, PATCH_ENDPOINT
from datadog_checks.pagerduty_dora.catalog.api import SCOPES
from datadog_checks.pagerduty_dora.collection.monitors import MONITOR_ENDPOINT
from datadog_checks.pagerduty_dora.collection.run import RunReport
from datadog_checks.pagerduty_dora.common.errors import ApiError, AuthError, ConnectionFailed
from datadog_checks.pagerduty_dora.common.http import ApiHooks
from datadog_checks.pagerduty_dora.common.permissions import datadog_refusal, pagerduty_refusal
from datadog_checks.pagerduty_dora.datadog.dora import REMOVAL_ENDPOINT
from datadog_checks.pagerduty_dora.datadog.readback import PERMISSIONS as READBACK_PERMISSIONS

APIS = ('pagerduty', 'datadog')
# The option behind each catalog source, as the user wrote it.
CATALOG_SOURCE_OPTIONS = {'files': '`catalog_files`', 'datadog_api': 'the Datadog Software Catalog (`datadog_app_key`)'}
# The permission of `datadog_app_key` each Datadog endpoint needs (the DORA failure endpoint needs none).
APP_KEY_PERMISSIONS = dict(
    SCOPES,
    **{
        LIST_ENDPOINT: 'dora_metrics_read',
        PATCH_ENDPOINT: 'dora_metrics_write',
        REMOVAL_ENDPOINT: 'dora_metrics_write',
    },
    **READBACK_PERMISSIONS,
)


def auth_message(error: AuthError, pagerduty_url: str) -> str:
    """What a refused key means for the service check: PagerDuty's `api_token`, or the Datadog keys and the
    permission the refused endpoint needs."""
    if error.api == 'pagerduty':
        return pagerduty_refusal(error, pagerduty_url)
    return datadog_refusal(error, APP_KEY_PERMISSIONS.get(error.endpoint))


def catalog_problem(unloaded: Mapping[str, str]) -> str:
    """Why nothing is submitted while catalog sources (source: reason) have never loaded."""
    causes = [
        '{} has never loaded ({})'.format(CATALOG_SOURCE_OPTIONS.get(source, source), reason)
        for source, reason in unloaded.items()
    ]
    return (
        'Nothing is submitted: {}; the check waits for every configured catalog source rather than send '
        'incidents mapped without it'.format('; '.join(causes) or 'a catalog source has never loaded')
    )


class Health:
    """Per run: whether each API answered, which refused a key, and the first failure of each.

    `check` submits the service checks and gauges; `tags(*extra)` are the instance's tags plus
    `extra`; `count(name, value, tags)` counts requests; `describe(error)` renders a refused key.
    """

    def __init__(
        self,
        check: AgentCheck,
        *,
        tags: Callable[..., list[str]],
        count: Callable[[str, float, list[str]], None],
        describe: Callable[[AuthError], str],
    ) -> None:
        self._check = check
        self._tags = tags
        self._count = count
        self._describe = describe
        # Per API: None until a request is made in a run, then whether one got an answer.
        self.reached: dict[str, bool | None] = {}
        self.denied: set[str] = set()
        # Per API: the first authentication or connection failure of the run, for the service check.
        self.failures: dict[str, str] = {}
        # Why the last run submitted nothing, for `can_submit` ('' when it could submit).
        self.submit_problem = ''

    def start_run(self) -> None:
        """Forget the last run's requests and failures."""
        self.reached = {'pagerduty': None, 'datadog': None}
        self.denied = set()
        self.failures = {}

    def hooks(self, api: str) -> ApiHooks:
        """The `on_request`, `on_rate_limited` and `on_failure` hooks of the `ApiClient` of `api`."""

        # The tags of each (endpoint, status class) met, formatted once rather than at every request.
        tags_of: dict[tuple[str, str], list[str]] = {}

        def on_request(endpoint: str, status_class: str) -> None:
            self.reached[api] = bool(self.reached[api]) or status_class != 'error'
            tags = tags_of.get((endpoint, status_class))
            if tags is None:
                tags = tags_of[endpoint, status_class] = [
                    'api:{}'.format(api),
                    'endpoint:{}'.format(endpoint),
                    'status_class:{}'.format(status_class),
                ]
            self._count('api.requests', 1, tags)

        def on_rate_limited(endpoint: str) -> None:
            self._count('api.rate_limited', 1, ['api:{}'.format(api), 'endpoint:{}'.format(endpoint)])

        def on_failure(error: ApiError) -> None:
            # The first authentication or connection failure of the run, whoever catches the error.
            # A monitor the key may not read is one warning of its own (`MonitorLookup`), not a failing API.
            if api in self.failures or error.endpoint == MONITOR_ENDPOINT:
                return
            if isinstance(error, AuthError):
                self.denied.add(api)
                self.failures[api] = self._describe(error)
            elif isinstance(error, ConnectionFailed):
                self.failures[api] = str(error)

        return ApiHooks(on_request, on_rate_limited, on_failure)

    def refused(self, error: AuthError) -> None:
        """A refused key ended the collection: its API is denied, and its first failure is this one."""
        self.denied.add(error.api)
        self.failures.setdefault(error.api, self._describe(error))

    def configuration_invalid(self, message: str, tags: list[str]) -> None:
        """One alert, naming the option: no API was tried, so neither can be said to be down."""
        self._check.service_check('can_submit', AgentCheck.CRITICAL, tags=tags, message=message)
        for api in APIS:
            self._check.service_check(
                'can_connect',
                AgentCheck.UNKNOWN,
                tags=tags + ['api:{}'.format(api)],
                message='Not tried: the configuration is invalid (see pagerduty_dora.can_submit)',
            )

    def report(self, report: RunReport | None, unloaded: Callable[[], Mapping[str, str]]) -> None:
        """Submit the run's `api.can_connect` gauges and both service checks.

        `unloaded()` names the catalog sources that never loaded, asked only when the catalog stopped the run.
        """
        for api, reached in self.reached.items():
            if reached is not None:
                value = 0 if api in self.denied or not reached else 1
                self._check.gauge('api.can_connect', value, tags=self._tags('api:{}'.format(api)))
        for api in APIS:
            failure = self.failures.get(api)
            self._check.service_check(
                'can_connect',
                AgentCheck.CRITICAL if failure else AgentCheck.OK,
                tags=self._tags('api:{}'.format(api)),
                message=failure or '',
            )
        self._report_submission(report, unloaded)

    def _report_submission(self, report: RunReport | None, unloaded: Callable[[], Mapping[str, str]]) -> None:
        """`can_submit`: CRITICAL when a catalog source that never loaded stops every submission.

        UNKNOWN while an API fails (`can_connect` is CRITICAL and says why, also when that failure is
        what keeps a catalog source from loading), OK otherwise.
        """
        self.submit_problem = ''
        stopped = report is not None and report.stopped == 'catalog'
        if self.failures:
            # The API failure is the cause, and `can_connect` its one alert.
            failing = ' and '.join('PagerDuty' if api == 'pagerduty' else 'Datadog' for api in self.failures)
            consequence = 'nothing is submitted until a catalog source loads' if stopped else 'not known'
            self._check.service_check(
                'can_submit',
                AgentCheck.UNKNOWN,
                tags=self._tags(),
                message='The {} API failed (see pagerduty_dora.can_connect): {}'.format(failing, consequence),
            )
        elif stopped:
            self.submit_problem = catalog_problem(unloaded())
            self._check.service_check('can_submit', AgentCheck.CRITICAL, tags=self._tags(), message=self.submit_problem)
        else:
            self._check.service_check('can_submit', AgentCheck.OK, tags=self._tags())

    def problems(self) -> list[str]:
        """What is CRITICAL after the run, which the run's error must say: API failures, then `can_submit`'s."""
        problems = [self.failures[api] for api in APIS if api in self.failures]
        if self.submit_problem:
            problems.append(self.submit_problem)
        return problems
