# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Service definitions read into catalog entries: every schema version, merged, with `inheritFrom` resolved.

Pure functions of the documents: the files source and the Datadog API source both parse with them,
and the catalog merges what they give with them. `CatalogSourceError` is what either source raises
when it cannot be read as a whole.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

from datadog_checks.pagerduty_dora.common.text import for_log, shown, text_or_none

from .model import CatalogService, CatalogTeam, name_key

# The keys each known schema defines (DataDog/schema, service-catalog/), at the levels that decide a
# mapping: a misspelt one (`service_url:` for `service-url:`) is ignored like any unknown key, and its
# incidents fall to another rule, so it is worth a warning. `spec` and `extensions` vary by kind and
# are free-form: not checked.
_V2_COMMON = ('schema-version', 'dd-service', 'team', 'contacts', 'links', 'tags', 'integrations', 'extensions')
_V2_1_COMMON = _V2_COMMON + ('application', 'description', 'lifecycle', 'tier')
V2_KEYS = {
    'v2': frozenset(_V2_COMMON + ('dd-team', 'docs', 'repos')),
    'v2.1': frozenset(_V2_1_COMMON),
    'v2.2': frozenset(_V2_1_COMMON + ('languages', 'type', 'ci-pipeline-fingerprints')),
}
V2_INTEGRATION_KEYS = frozenset(['pagerduty', 'opsgenie'])
V2_PAGERDUTY_KEYS = frozenset(['service-url'])
V3_KEYS = frozenset(['apiVersion', 'kind', 'metadata', 'spec', 'integrations', 'datadog', 'extensions'])
V3_METADATA_KEYS = frozenset(
    [
        'name',
        'displayName',
        'namespace',
        'id',
        'owner',
        'additionalOwners',
        'description',
        'links',
        'contacts',
        'tags',
        'inheritFrom',
        'managed',
    ]
)
V3_INTEGRATION_KEYS = frozenset(['pagerduty', 'opsgenie', 'jiraServiceManagementOps', 'sentry', 'terraform'])
V3_PAGERDUTY_KEYS = frozenset(['serviceURL'])
# How alike a key must be to a known one to be suggested (as for the check's own options).
KEY_SIMILARITY = 0.6


class InvalidDefinition(ValueError):
    """A service definition that cannot be read; the message says why."""


class CatalogSourceError(Exception):
    """A catalog source could not be read as a whole; the message is safe to show a user."""


def _optional_text(mapping: Mapping[str, Any], key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidDefinition('{} must be a string'.format(where))
    return text_or_none(value)


def _v2_pagerduty_url(integrations: Any) -> str | None:
    if integrations is None:
        return None
    if not isinstance(integrations, Mapping):
        raise InvalidDefinition('integrations must be a mapping')
    pagerduty = integrations.get('pagerduty')
    if pagerduty is None:
        return None
    # v2 writes the URL as a string, v2.1 and v2.2 as `service-url` in a mapping; accept either in
    # every version, since files converted by hand often keep the older form.
    if isinstance(pagerduty, str):
        return text_or_none(pagerduty)
    if isinstance(pagerduty, Mapping):
        return _optional_text(pagerduty, 'service-url', 'integrations.pagerduty.service-url')
    raise InvalidDefinition('integrations.pagerduty must be a URL or a mapping with service-url')


def _additional_owners(value: Any) -> tuple[str, ...]:
    """The team handles of v3 `metadata.additionalOwners` (`[{name: <team>, type: <role>}]`)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidDefinition('metadata.additionalOwners must be a list')
    owners: list[str] = []
    for position, owner in enumerate(value):
        # The schema's form is a mapping with `name`; a bare handle is what people write by hand.
        handle = owner.get('name') if isinstance(owner, Mapping) else owner
        if not isinstance(handle, str):
            raise InvalidDefinition('metadata.additionalOwners[{}] must be a team name'.format(position))
        handle = text_or_none(handle)
        if handle and handle not in owners:
            owners.append(handle)
    return tuple(owners)


def parse_definition(document: Any, source: str) -> list[CatalogService]:
    """The entities one definition declares (schema v2, v2.1, v2.2, or a v3 entity of any kind).

    Raises `InvalidDefinition` when the document is not a definition or lacks its name.
    """
    if not isinstance(document, Mapping):
        raise InvalidDefinition('not a mapping')
    if 'apiVersion' in document:
        return [_v3_entity(document, source)]
    return [_v2_service(document, source)]


def unknown_keys(document: Any) -> list[str]:
    """What a definition of a known schema holds that its schema does not define, with the closest known key.

    One line per unknown key, naming where it is and the entity; empty for a document of no known schema
    (`parse_definition` says what is wrong with it) or one whose keys are all known.
    """
    if not isinstance(document, Mapping):
        return []
    if 'apiVersion' in document:
        if not str(document.get('apiVersion')).strip().startswith('v3'):
            return []
        metadata = document.get('metadata')
        name = metadata.get('name') if isinstance(metadata, Mapping) else None
        entity = 'entity {}:{}'.format(for_log(str(document.get('kind'))), for_log(str(name)))
        levels = [
            ('', document, V3_KEYS),
            ('metadata', metadata, V3_METADATA_KEYS),
            ('integrations', document.get('integrations'), V3_INTEGRATION_KEYS),
            ('integrations.pagerduty', _get(document, 'integrations', 'pagerduty'), V3_PAGERDUTY_KEYS),
        ]
        schema = 'v3'
    else:
        version = document.get('schema-version')
        if not isinstance(version, str) or version not in V2_KEYS:
            return []
        schema = version
        entity = 'dd-service {}'.format(for_log(str(document.get('dd-service'))))
        levels = [
            ('', document, V2_KEYS[schema]),
            ('integrations', document.get('integrations'), V2_INTEGRATION_KEYS),
            ('integrations.pagerduty', _get(document, 'integrations', 'pagerduty'), V2_PAGERDUTY_KEYS),
        ]
    found = []
    for where, mapping, known in levels:
        if not isinstance(mapping, Mapping):
            continue
        for key in mapping:
            if key in known:
                continue
            suggestion = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=KEY_SIMILARITY)
            found.append(
                'unknown key `{}`{} of {} (schema {}) is ignored: {}'.format(
                    for_log(str(key), 100),
                    ' in `{}`'.format(where) if where else '',
                    entity,
                    schema,
                    'did you mean `{}`?'.format(suggestion[0]) if suggestion else 'the schema has no such key',
                )
            )
    return found


def _get(document: Mapping[str, Any], *keys: str) -> Any:
    """`document[keys[0]][keys[1]]...`, or None where a level is missing or not a mapping."""
    value: Any = document
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _v3_entity(document: Mapping[str, Any], source: str) -> CatalogService:
    """A v3 entity (`apiVersion: v3`, any `kind`): its name, owners, `inheritFrom` and PagerDuty service URL."""
    api_version = document.get('apiVersion')
    if not isinstance(api_version, str) or not api_version.strip().startswith('v3'):
        # Shown bounded: a YAML alias can make a value of a few bytes print as gigabytes.
        raise InvalidDefinition('unsupported apiVersion {}'.format(shown(api_version)))
    kind = document.get('kind')
    if not isinstance(kind, str) or not kind.strip():
        raise InvalidDefinition('kind is missing' if kind is None else 'kind must be a non-empty string')
    metadata = document.get('metadata')
    if not isinstance(metadata, Mapping):
        raise InvalidDefinition('metadata must be a mapping')
    name = _optional_text(metadata, 'name', 'metadata.name')
    if name is None:
        raise InvalidDefinition('metadata.name is missing')
    owner = _optional_text(metadata, 'owner', 'metadata.owner')
    owners = _additional_owners(metadata.get('additionalOwners'))
    inherit_from = _optional_text(metadata, 'inheritFrom', 'metadata.inheritFrom')
    return CatalogService(
        name=name,
        team=owner,
        pagerduty_url=_v3_pagerduty_url(document.get('integrations')),
        source=source,
        kind=name_key(kind),
        owners=owners,
        inherit_from=inherit_from,
    )


def _v3_pagerduty_url(integrations: Any) -> str | None:
    """`integrations.pagerduty.serviceURL` of a v3 entity, None when it has none."""
    if integrations is None:
        return None
    if not isinstance(integrations, Mapping):
        raise InvalidDefinition('integrations must be a mapping')
    pagerduty = integrations.get('pagerduty')
    if pagerduty is None:
        return None
    if not isinstance(pagerduty, Mapping):
        raise InvalidDefinition('integrations.pagerduty must be a mapping with serviceURL')
    return _optional_text(pagerduty, 'serviceURL', 'integrations.pagerduty.serviceURL')


def _v2_service(document: Mapping[str, Any], source: str) -> CatalogService:
    """A service definition of schema v2, v2.1 or v2.2: `dd-service`, its team and PagerDuty service URL."""
    version = document.get('schema-version')
    if version not in ('v2', 'v2.1', 'v2.2'):
        if version is None:
            raise InvalidDefinition('neither schema-version nor apiVersion is set')
        raise InvalidDefinition('unsupported schema-version {}'.format(shown(version)))
    name = _optional_text(document, 'dd-service', 'dd-service')
    if name is None:
        raise InvalidDefinition('dd-service is missing')
    # `dd-team` is v2's experimental link to Datadog Teams; `team` is the field every version has.
    team = _optional_text(document, 'team', 'team') or _optional_text(document, 'dd-team', 'dd-team')
    return CatalogService(
        name=name, team=team, pagerduty_url=_v2_pagerduty_url(document.get('integrations')), source=source
    )


def entity_key(service: CatalogService) -> tuple[str, str]:
    """What makes two entries the same entity: kind and name, compared as `name_key` compares them."""
    return service.kind, name_key(service.name)


def merge_services(groups: Iterable[Iterable[CatalogService]]) -> tuple[CatalogService, ...]:
    """One entry per entity (kind and name): the first definition wins, later ones fill only what it lacks.

    The same service is often declared more than once (a v2.2 definition and its v3 entity, or a file
    and the API); counting it twice would make rule 1 see two services behind one URL.
    """
    merged: dict[tuple[str, str], CatalogService] = {}
    for group in groups:
        for service in group:
            key = entity_key(service)
            known = merged.get(key)
            if known is None:
                merged[key] = service
                continue
            filled = dataclasses.replace(
                known,
                team=known.team or service.team,
                pagerduty_url=known.pagerduty_url or service.pagerduty_url,
                owners=known.owners or service.owners,
                inherit_from=known.inherit_from or service.inherit_from,
            )
            if filled != known:
                merged[key] = filled
    return tuple(merged.values())


def merge_teams(groups: Iterable[Iterable[CatalogTeam]]) -> tuple[CatalogTeam, ...]:
    merged: dict[str, CatalogTeam] = {}
    for group in groups:
        for team in group:
            merged.setdefault(name_key(team.handle), team)
    return tuple(merged.values())


def _reference(text: str) -> tuple[str, str] | None:
    """`<kind>:<name>` (or `<kind>:<namespace>/<name>`) as an entity key, or None if it is not one."""
    kind, colon, name = text.partition(':')
    name = name.rsplit('/', 1)[-1]
    if not colon or not name_key(kind) or not name_key(name):
        return None
    return name_key(kind), name_key(name)


def resolve_inheritance(services: Sequence[CatalogService]) -> tuple[tuple[CatalogService, ...], list[str]]:
    """Fill each entity's missing owner and PagerDuty URL from the entity its `inheritFrom` names.

    Chains are followed (a queue inheriting from a service inheriting from a system), within the
    entities given. Returns the entities, in order, and what could not be followed: an unknown
    entity, a reference that is not `<kind>:<name>`, or a cycle (whose entities keep their own fields).
    """
    index = {entity_key(s): s for s in services}
    resolved: dict[tuple[str, str], CatalogService] = {}
    problems: list[str] = []

    def target(key: tuple[str, str]) -> tuple[str, str] | None:
        service = index[key]
        if service.inherit_from is None or (service.team and service.pagerduty_url):
            return None
        reference = _reference(service.inherit_from)
        if reference is None:
            problems.append(
                'catalog entity {}:{} has inheritFrom {}, which is not <kind>:<name>'.format(
                    for_log(service.kind), for_log(service.name), shown(service.inherit_from)
                )
            )
            return None
        if reference not in index:
            problems.append(
                'catalog entity {}:{} inherits from {}, which no catalog source defines'.format(
                    for_log(service.kind), for_log(service.name), for_log(service.inherit_from)
                )
            )
            return None
        return reference

    for start in index:
        # Walk the chain without recursion (chains can be long), then resolve it from its far end.
        chain: list[tuple[str, str]] = []
        node: tuple[str, str] | None = start
        parent: CatalogService | None = None
        while node is not None:
            if node in resolved:
                parent = resolved[node]
                break
            if node in chain:
                cycle = chain[chain.index(node) :]
                problems.append(
                    'catalog entities {} inherit from each other in a cycle'.format(
                        for_log(', '.join('{}:{}'.format(index[k].kind, index[k].name) for k in cycle), 1000)
                    )
                )
                break
            chain.append(node)
            node = target(node)
        for key in reversed(chain):
            own = index[key]
            if parent is not None and own.inherit_from is not None:
                own = dataclasses.replace(
                    own, team=own.team or parent.team, pagerduty_url=own.pagerduty_url or parent.pagerduty_url
                )
            resolved[key] = own
            parent = own
    return tuple(resolved[entity_key(s)] for s in index.values()), problems


def file_teams(services: Iterable[CatalogService]) -> tuple[CatalogTeam, ...]:
    """The team handles definition files name (`team`, `owner`, `additionalOwners`), as known teams.

    Without the Teams API these are the only Datadog team names the check can know, and a handle
    written in a definition is one a person chose to name a team by.
    """
    teams: list[CatalogTeam] = []
    for service in services:
        for handle in (service.team, *service.owners):
            if handle and handle.strip():
                teams.append(CatalogTeam(handle=handle.strip(), name=handle.strip()))
    return merge_teams([teams])
