# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""What change-failure attribution tells people: the lines of incident events, its own events, its warnings.

Every decision that people should know of becomes a `Note`: a Markdown line for the incident's
event, the same in plain text (for logs and the dry run), and whether it stands alone: a decision
(a change of a deployment in Datadog, a deployment kept, a search or a remediation that found
nothing) that gets an event of its own when no event of the incident carries it.
Every untrusted value is shown through `code()`, one inline code span that cannot break the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from datadog_checks.pagerduty_dora.common.permissions import DEPLOYMENTS_FORBIDDEN
from datadog_checks.pagerduty_dora.common.text import clip, one_line
from datadog_checks.pagerduty_dora.common.times import format_time
from datadog_checks.pagerduty_dora.datadog.events import format_duration

from . import model
from .eligibility import mapped_services
from .model import Deployment, Facts

EVENT_TYPE = 'pagerduty_dora'

# The refusal, as the reason a decision waits, in an incident's event.
FORBIDDEN_REASON = DEPLOYMENTS_FORBIDDEN
UNAVAILABLE_REASON = 'an API could not be used now (budget, timeout or error); retried on the next run'
NO_PRIORITIES_MESSAGE = (
    '`attribution_min_severity` is set, but PagerDuty did not list the account\'s priorities '
    '(GET /priorities: {status}); {consequence}'
)
UNKNOWN_MINIMUM_MESSAGE = (
    '`attribution_min_severity` {minimum!r} is neither a priority of the PagerDuty account ({names}) nor a '
    'severity `severity_mapping` gives one: no incident is attributed'
)
# The title of attribution's own event, by the outcome of its last line.
SUMMARIES = {
    model.ATTRIBUTED: 'deployment marked as a change failure',
    model.UNMARKED: 'deployment set back',
    model.RELEASED: 'deployment no longer blamed by this incident',
    model.REMEDIATED: 'remediation recorded',
    model.KEPT: 'deployment kept as a change failure',
    model.NO_DEPLOYMENT: 'no deployment found',
    model.NO_REMEDIATION: 'no remediation recorded',
    model.REJECTED: 'search rejected',
}


@dataclass(frozen=True)
class Note:
    """One line for an incident's event, and whether it stands alone (see the module)."""

    outcome: str
    line: str
    plain: str
    stands_alone: bool = False

    def to_json(self) -> dict:
        """Its stored form, kept until an event told it: only notes that stand alone are stored."""
        return {'outcome': self.outcome, 'line': self.line, 'plain': self.plain}

    @classmethod
    def from_json(cls, raw: Any) -> Note:
        """A stored note again; raises `ValueError` for what a damaged cache holds."""
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ('outcome', 'line', 'plain')):
            raise ValueError('not a note')
        return cls(raw['outcome'], raw['line'], raw['plain'], stands_alone=True)


def code(value: Any) -> str:
    """Untrusted text as one inline code span (it cannot close the span, nor run on several lines)."""
    return '`{}`'.format(clip(one_line(str(value)), 100).replace('`', "'")) if value else '(none)'


def change_failure_line(text: str) -> str:
    """A line of the incident's event about the deployment it blames."""
    return '- **Change failure:** ' + text


def remediation_line(text: str) -> str:
    """A line of the incident's event about the remediation of the deployment it blames."""
    return '- **Remediation:** ' + text


def deployment_text(deployment: Deployment) -> str:
    """A deployment named for people: id, service, env, version and finish time."""
    return 'deployment {} of {} in env {}, version {}, finished at {}'.format(
        code(deployment.id),
        code(deployment.service),
        code(deployment.env),
        code(deployment.version),
        format_time(deployment.finished_at),
    )


def signal_text(search: Mapping[str, Any], window: float) -> str:
    """Which signal decided a blame, for people."""
    if search.get('signal') == model.MONITOR_VERSION:
        return 'decided by version {} named by the Datadog monitor that triggered the incident'.format(
            code(search.get('version'))
        )
    if search.get('signal') == model.CHANGE_EVENT:
        return "decided by PagerDuty's related change event {} (matched by {})".format(
            code(search.get('event')), search.get('basis')
        )
    text = 'decided by the latest deployment of {} in env {} finished in the {} before the incident started'.format(
        code(search.get('service')), code(search.get('env')), format_duration(window)
    )
    related = search.get('related')
    if related:
        text += ' ({} related change event(s) matched none of them)'.format(related)
    return text


def refusal_text(outcome: str, facts: Facts, min_severity: str | None) -> str:
    """Why an incident blames no deployment now, for a `disqualification()` outcome."""
    services = mapped_services(facts)
    return {
        model.DELETED: 'the incident was deleted in PagerDuty',
        model.OUT_OF_SCOPE: 'the incident left `service_ids`/`team_ids`',
        model.MERGED: 'the incident was merged into another incident, which carries the failure',
        model.FILTERED: 'the incident is left out by the `urgencies`/`priorities` filters or `unmapped_incidents`',
        model.UNMAPPED: (
            "no catalog rule mapped the incident (its service name is PagerDuty's), and only mapped services are "
            'attributed'
        ),
        model.BELOW_SEVERITY: "priority {} is below `attribution_min_severity` {} in the account's order".format(
            code(facts.priority), code(min_severity)
        ),
        model.NO_SERVICE: 'the incident maps to no Datadog service, and deployments are matched by service',
        model.SEVERAL_SERVICES: 'the incident maps to several services ({})'.format(
            ', '.join(code(s) for s in services[:10])
        ),
        model.NO_ENV: (
            'the incident has no env (set `env`, or `env` in `service_overrides`), and deployments are matched by env'
        ),
    }.get(outcome, outcome)


def release_text(why: str) -> str:
    """Why an incident stopped blaming its deployment, for a `release` of `next_step()`."""
    return {
        model.MOVED: 'it now maps to another service or env',
        model.REATTRIBUTED: 'a deployment reported later decides now',
        model.DELETED: 'it was deleted',
        model.OUT_OF_SCOPE: 'it left `service_ids`/`team_ids`',
        model.MERGED: 'it was merged into another incident',
        model.FILTERED: 'it is left out by the filters',
        model.UNMAPPED: 'it is no longer mapped by a catalog rule',
        model.BELOW_SEVERITY: 'its priority is now below `attribution_min_severity`',
        model.NO_SERVICE: 'it maps to no service now',
        model.SEVERAL_SERVICES: 'it maps to several services now',
        model.NO_ENV: 'it has no env now',
    }.get(why, why)


# The notes of each decision -----------------------------------------------------------------------

REOPENED = Note('', change_failure_line('still attributed: a reopen is the same failure'), '')


def refused_note(reason: str, facts: Facts, min_severity: str | None) -> Note:
    """The incident does not qualify (`reason`, a `disqualification()` outcome)."""
    text = refusal_text(reason, facts, min_severity)
    return Note(reason, change_failure_line('not attributed: ' + text), text)


def waiting_note(due: float, settle: float) -> Note:
    """The incident's first search waits for the settle time."""
    text = 'judged at {} ({} after the incident started), so that deployments reported late are seen'.format(
        format_time(due), format_duration(settle)
    )
    return Note('', change_failure_line(text), text)


def search_rejected_note(status: int | None) -> Note:
    """Datadog rejected the blame search."""
    text = 'the DORA deployments search was rejected ({})'.format(status)
    return Note(model.REJECTED, change_failure_line('not attributed: ' + text), text, stands_alone=True)


def no_deployment_note(service: str, env: str, window: float, start: float) -> Note:
    """The blame search found no deployment in the window."""
    text = 'no deployment of {} in env {} finished in the {} before {}'.format(
        code(service), code(env), format_duration(window), format_time(start)
    )
    return Note(model.NO_DEPLOYMENT, change_failure_line('not attributed: ' + text), text, stands_alone=True)


def blamed_note(found: Deployment, others: int, search: Mapping[str, Any], window: float) -> Note:
    """The incident blames `found`, which `others` other incidents blamed already."""
    decided = signal_text(search, window)
    also = ' (already a change failure: blamed by {} other incident(s))'.format(others) if others else ''
    line = change_failure_line('{} marked as a change failure{}; {}'.format(deployment_text(found), also, decided))
    return Note(model.ATTRIBUTED, line, decided, stands_alone=True)


def released_note(outcome: str, deployment_id: str | None, why: str, left: int) -> Note:
    """The incident no longer blames the deployment (`why`); `left` other incidents still do."""
    text = 'deployment {} no longer blamed by this incident ({})'.format(code(deployment_id), release_text(why))
    if left:
        text += '; it stays a change failure, blamed by {} other incident(s)'.format(left)
    else:
        text += '; set back (`change_failure: false`): no other qualifying incident blames it'
    return Note(outcome, change_failure_line(text), text, stands_alone=True)


def kept_note(deployment_id: str, why: str, deployment: Mapping[str, Any]) -> Note:
    """The last incident blaming the deployment stopped (`why`), and it is kept: someone else may have marked it."""
    text = 'deployment {} no longer blamed by this incident ({}); it stays a change failure, not set back: {}'.format(
        code(deployment_id), release_text(why), kept_text(deployment)
    )
    return Note(model.KEPT, change_failure_line(text), text, stands_alone=True)


def kept_text(deployment: Mapping[str, Any]) -> str:
    """Why a deployment no incident blames stays a change failure (`decision.kept_by_others()`), for people."""
    rollback = deployment.get('rolled_back')
    if rollback:
        return '{} rolled it back, and Datadog marks a rolled-back deployment itself'.format(
            deployment_text(Deployment.from_json(rollback))
        )
    remediation = deployment.get('remediation')
    if remediation:
        return 'its {} by {} is recorded, and Datadog may have marked it by its own rules'.format(
            remediation['type'], deployment_text(Deployment.from_json(remediation['deployment']))
        )
    return 'the DORA deployments search for a rollback of it was rejected ({}), so one cannot be ruled out'.format(
        deployment.get('rollback_refused')
    )


def remediation_known_note(deployment_id: str, remediation: Mapping[str, Any]) -> Note:
    """The blamed deployment's remediation was recorded before."""
    fix = Deployment.from_json(remediation['deployment'])
    text = 'already recorded for deployment {}: {} by {}'.format(
        code(deployment_id), remediation['type'], deployment_text(fix)
    )
    return Note('', remediation_line(text), text)


def remedy_rejected_note(status: int | None) -> Note:
    """Datadog rejected the remediation search."""
    text = 'not recorded: the DORA deployments search was rejected ({})'.format(status)
    return Note(model.REJECTED, remediation_line(text), text, stands_alone=True)


def no_remediation_note(deployment_id: str, failed: Deployment) -> Note:
    """No later deployment remediates the failed one."""
    text = (
        'none recorded for deployment {}: no later deployment of {} in env {} that does not redeploy {} '
        'finished before the resolve'.format(
            code(deployment_id), code(failed.service), code(failed.env), code(failed.version)
        )
    )
    return Note(model.NO_REMEDIATION, remediation_line(text), text, stands_alone=True)


def remediated_note(fix: Deployment, kind: str, deployment_id: str, failed: Deployment) -> Note:
    """`fix` is recorded as the `kind` (rollback, rollforward) of the failed deployment."""
    text = '{} by {}, recorded for failed deployment {} ({} after it finished)'.format(
        kind, deployment_text(fix), code(deployment_id), format_duration(fix.finished_at - failed.finished_at)
    )
    return Note(model.REMEDIATED, remediation_line(text), text, stands_alone=True)


def deferred_note(forbidden: bool, remedy: bool) -> Note:
    """A task waits for a later run: Datadog refused the keys (`forbidden`), or an API cannot be used now."""
    text = FORBIDDEN_REASON if forbidden else UNAVAILABLE_REASON
    line = (remediation_line if remedy else change_failure_line)('pending: ' + text)
    return Note(model.FORBIDDEN if forbidden else model.DEFERRED, line, text)


def own_event(incident_id: str, record: Mapping[str, Any], notes: Sequence[Note], now: float) -> dict:
    """Attribution's own event for decisions no event of the incident carried, threaded with the incident's."""
    number = record.get('number', '?')
    summary = SUMMARIES.get(notes[-1].outcome, 'attribution changed')
    body = '\n'.join(['### PagerDuty incident #{}'.format(number), ''] + [n.line for n in notes])
    return {
        'timestamp': int(now),
        'event_type': EVENT_TYPE,
        'source_type_name': EVENT_TYPE,
        'aggregation_key': incident_id,
        'alert_type': 'info',
        'priority': 'normal',
        'msg_title': '#{} change failure: {}'.format(number, summary),
        'msg_text': '%%% \n' + clip(body, 3900) + '\n %%%',
        'tags': list(record.get('tags') or []) + ['attribution:' + notes[-1].outcome],
    }
