# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The check run in this process, without an Agent, the way the Agent runs it.

Outside the Agent, the base package sends every submission to its in-process stubs
(`datadog_checks.base.stubs`): metrics and events stay in this process, and the persistent cache is
a dictionary that disappears with it. The command line's modes read those stubs to show what was
submitted. What goes wrong becomes a `CliError`: one line for the user, not a traceback.
"""

from __future__ import annotations

import json
import os
from typing import Any

from datadog_checks.pagerduty_dora.common.text import one_line
from datadog_checks.pagerduty_dora.config.spelling import configuration_message

PROG = 'python -m datadog_checks.pagerduty_dora'


class CliError(Exception):
    """An error for the user: one line on stderr and exit status 1.

    `warnings` are what the check warned about before the error (an unknown option name, a missing
    `env`): they are printed first, since they may be the cause.
    """

    def __init__(self, message: str, warnings: list[str] | None = None) -> None:
        super().__init__(message)
        self.warnings = list(warnings or ())


def agent_stubs() -> tuple[Any, Any]:
    """The base package's in-process aggregator and `datadog_agent`, which receive the check's submissions."""
    from datadog_checks.base.agent import AGENT_RUNNING, aggregator, datadog_agent

    if AGENT_RUNNING:
        raise CliError('this command runs outside the Agent; inside it, use `datadog-agent check pagerduty_dora`')
    # The stub aggregator refuses `service`, `env`... tags unless this is set; the check sets them on
    # purpose (they are the point of the mapping).
    os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', 'true')
    return aggregator, datadog_agent


def agent_settings(datadog_agent: Any) -> None:
    """The Agent's `api_key` and `site`, from the environment variables the Agent itself reads.

    Outside the Agent there is no datadog.yaml: without `DD_API_KEY`, an instance that relies on the
    Agent's key has none here, and the dry run says it could not check it.
    """
    for variable, option in (('DD_API_KEY', 'api_key'), ('DD_SITE', 'site')):
        value = os.environ.get(variable, '').strip()
        if value:
            datadog_agent._config[option] = value


def new_check(init_config: dict, instance: dict) -> Any:
    from datadog_checks.pagerduty_dora.check import PagerdutyDoraCheck

    return PagerdutyDoraCheck('pagerduty_dora', init_config, [instance])


def initialize(check: Any) -> None:
    """Build the check the way its first run does, turning configuration problems into `CliError`."""
    from datadog_checks.base.errors import ConfigurationError

    try:
        check.run_check_initializations()
    except ConfigurationError as e:
        raise CliError(
            'invalid configuration: {}'.format(configuration_message(str(e))), check.get_warnings()
        ) from None
    except Exception as e:
        raise CliError(
            'the check could not start: {}'.format(one_line(str(e)) or type(e).__name__), check.get_warnings()
        ) from None


def collect(check: Any) -> None:
    """One collection run, as the Agent runs it; an error it reports becomes a `CliError`."""
    error = check.run()
    if error:
        try:
            message = json.loads(error)[0]['message']
        except (ValueError, LookupError, TypeError):
            message = error
        # This command runs once: there is no next run to resume in.
        message = one_line(str(message)).replace('; collection resumes next run', '')
        raise CliError(message, check.get_warnings())


def no_write(key: str, value: str) -> None:
    """A persistent-cache write that stores nothing."""
