# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Option names a configuration uses that the check does not know, with the closest known name.

The config models ignore keys they do not declare, so a typo (`backfil_days`, `urgency`) would
silently fall back to the default: `urgency: [high]` would count every urgency. These pure
functions find such names; the check shows them as warnings and the validators add them to the
error of an entry that is otherwise incomplete.

Imports run one way: this module reads the models' fields, and matches names with the models' own
`validators.closest`; the models never import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_origin

from datadog_checks.pagerduty_dora.config_models.instance import InstanceConfig
from datadog_checks.pagerduty_dora.config_models.shared import SharedConfig
from datadog_checks.pagerduty_dora.config_models.validators import closest

# Keys the Agent itself reads from an instance, beside the options of the check's specification.
AGENT_INSTANCE_KEYS = frozenset(
    ['name', 'namespace', 'loader', 'ha_enabled', 'no_index', 'check_tag_cardinality', 'process_isolation']
)
# Keys the Agent itself reads from `init_config`.
AGENT_INIT_CONFIG_KEYS = frozenset(['loader', 'min_collection_interval', 'process_isolation', 'profile_memory'])
# Names people carry over from other Datadog configurations, with what this check calls them instead.
KNOWN_MISTAKES = {
    'site': (
        'the check sends DORA failures to the Agent\'s `site`; for another Datadog site, set `datadog_api_url` '
        '(for example https://api.datadoghq.eu)'
    ),
    'api_key': (
        'did you mean `api_token` (the PagerDuty REST API key)? The Datadog API key, when it is not the '
        'Agent\'s, is `datadog_api_key`'
    ),
    'app_key': 'did you mean `datadog_app_key`?',
}


def _model_fields(model: Any) -> dict[str, Any]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _nested_model(annotation: Any) -> Any:
    """The pydantic model an option holds (directly, or as the items of a tuple), if any."""
    stack = [annotation]
    while stack:
        current = stack.pop()
        if hasattr(current, 'model_fields'):
            return current
        stack.extend(get_args(current))
    return None


def _holds_entries(annotation: Any) -> bool:
    """Whether an option holds a list of entries (a tuple of models), rather than one model."""
    stack = [annotation]
    while stack:
        current = stack.pop()
        if get_origin(current) is tuple:
            return True
        stack.extend(get_args(current))
    return False


def describe_unknown(name: str, known: Any, where: str) -> str:
    """`Unknown option ... ignored; did you mean ...?` for one name found in `where`."""
    suggestion = closest(name, known)
    hint = 'did you mean `{}`?'.format(suggestion) if suggestion else 'it is not an option of this check'
    if where == 'the instance' and name in KNOWN_MISTAKES:
        hint = KNOWN_MISTAKES[name]
    return 'Unknown option `{}` in {} is ignored: {}'.format(name, where, hint)


def unknown_keys(values: Any, known: Any) -> list[str]:
    """Keys of a mapping that are not in `known`, in the order written."""
    if not isinstance(values, Mapping):
        return []
    return [str(key) for key in values if key not in known]


def unknown_instance_options(instance: Any) -> list[str]:
    """One message per unknown option of an instance, including inside entries such as `service_overrides`."""
    fields = _model_fields(InstanceConfig)
    known = set(fields) | AGENT_INSTANCE_KEYS
    messages = [describe_unknown(key, fields, 'the instance') for key in unknown_keys(instance, known)]
    if not isinstance(instance, Mapping):
        return messages
    for option, field in sorted(fields.items()):
        model = _nested_model(field.annotation)
        value = instance.get(option)
        if model is None or value is None:
            continue
        entry_fields = _model_fields(model)
        if isinstance(value, Mapping) and _holds_entries(field.annotation):
            # A mapping where a list of entries belongs is refused as a whole; its keys are data, not options.
            continue
        if isinstance(value, Mapping):
            for key in unknown_keys(value, entry_fields):
                messages.append(describe_unknown(key, entry_fields, '`{}`'.format(option)))
        elif isinstance(value, (list, tuple)):
            for position, entry in enumerate(value, 1):
                for key in unknown_keys(entry, entry_fields):
                    messages.append(describe_unknown(key, entry_fields, '`{}` entry #{}'.format(option, position)))
    return messages


def unknown_init_config_options(init_config: Any) -> list[str]:
    """One message per unknown option of `init_config`."""
    fields = _model_fields(SharedConfig)
    known = set(fields) | AGENT_INIT_CONFIG_KEYS
    return [describe_unknown(key, fields, '`init_config`') for key in unknown_keys(init_config, known)]


def with_spelling_hints(message: str, instance: Any) -> str:
    """`api_token: Field required` becomes `... (the instance has `api_key`: did you mean `api_token`?)`.

    A required option spelled wrong is reported twice by the base check, as an unknown option and as a
    missing one; the one line a user reads (the service check, the dry run's error) must join the two.
    """
    fields = _model_fields(InstanceConfig)
    for key in unknown_keys(instance, set(fields) | AGENT_INSTANCE_KEYS):
        suggestion = 'api_token' if key == 'api_key' else closest(key, fields)
        missing = '{}: Field required'.format(suggestion)
        if suggestion and missing in message:
            message = message.replace(
                missing, '{} (the instance has `{}`: did you mean `{}`?)'.format(missing, key, suggestion), 1
            )
    return message


def configuration_message(text: str) -> str:
    """The base package's multi-line validation report as one line: `option: problem; option: problem`."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    if lines and lines[0].startswith('Detected '):
        parts, option = [], None
        for line in lines[1:]:
            if not line.startswith(' '):
                option = line.strip()
                continue
            problem = line.strip()
            if problem.startswith('Value error, '):
                problem = problem[len('Value error, ') :]
            parts.append('{}: {}'.format(option, problem) if option and option not in problem else problem)
        if parts:
            return '; '.join(parts)
    return '; '.join(line.strip() for line in lines)
