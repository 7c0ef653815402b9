# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""`catalog_files` end to end: the check against the PagerDuty and DORA fakes, with definition files only.

The fixture files under `fixtures/catalog/estate` are written as repositories keep them (a v2.2
`service.datadog.yaml`, a v2.1 stream, a JSON definition, v3 `entity.datadog.yaml` files of several
kinds); the PagerDuty service ids in their URLs are replaced by the ids of the simulated account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from datadog_checks.pagerduty_dora.catalog.sources import SourceCopy
from datadog_checks.pagerduty_dora.check import NO_ENV_WARNING
from datadog_checks.pagerduty_dora.cli.dry_run import run_dry
from datadog_checks.pagerduty_dora.cli.render import render_dry_run
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..harness import DD_APP_KEY, World, catalog_copies, stored_catalog
from ..paths import FIXTURES

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')

ESTATE = FIXTURES / 'catalog' / 'estate'
REFRESH = 600

# The PagerDuty service behind each service id the fixture files name.
PAGERDUTY_SERVICES = {
    'PD7X2KQ': 'Payments API',
    'PSR4C9M': 'Search',
    'PSYS3LQ': 'Checkout platform',
    'PWRK8ZD': 'Checkout worker',
    'PQUE5NB': 'Order events',
    'PDB61TX': 'Orders database',
    'PAPI7HV': 'Checkout public API',
    'PFE29RC': 'Storefront',
    'PLIB4WS': 'HTTP client library',
}


class Estate:
    """A simulated PagerDuty account whose services the fixture files name, and a folder to put the files in."""

    def __init__(self, world: World, folder: Path) -> None:
        self.world = world
        self.folder = folder
        folder.mkdir()
        account = world.account
        ops = account.add_team('Ops')
        self.ids = {fixture: account.add_service(name, team_ids=[ops]) for fixture, name in PAGERDUTY_SERVICES.items()}
        # Matched by no URL and no catalog service name: only rules 3 and 4 can place these.
        self.ids['ledger-jobs'] = account.add_service('Ledger jobs', team_ids=[account.add_team('Billing')])
        self.ids['sre'] = account.add_service('SRE', team_ids=[ops])

    def install(self, *names: str) -> None:
        for name in names:
            text = (ESTATE / name).read_text(encoding='utf-8')
            for fixture, simulated in self.ids.items():
                text = text.replace('/service-directory/{}'.format(fixture), '/service-directory/{}'.format(simulated))
            (self.folder / name).write_text(text, encoding='utf-8')

    def pattern(self, glob: str = '*.yaml') -> str:
        return str(self.folder / glob)

    def incident(self, check: Any, run: Callable[[Any], list[str]], service: str) -> tuple[dict, list[str]]:
        """Trigger an incident on a PagerDuty service, run the check: its DORA failure and the run's warnings."""
        self.world.account.advance(60)
        incident = self.world.account.trigger(self.ids[service], 'Errors on {}'.format(service), priority='P2')
        self.world.account.advance(60)
        warnings = run(check)
        return self.world.dora.failures[failure_id(incident)], warnings


@pytest.fixture
def estate(world: World, tmp_path: Path) -> Estate:
    return Estate(world, tmp_path / 'catalog')


@pytest.fixture
def run(dd_run_check) -> Callable[[Any], list[str]]:
    """Run the check once and return the warnings of that run only."""

    def run_once(check: Any) -> list[str]:
        dd_run_check(check)
        # These instances have no `env` on purpose (their tags stay the catalog's); its warning is not theirs.
        return [w for w in check.get_warnings() if not w.startswith(NO_ENV_WARNING)]

    return run_once


def cached_files(check: Any) -> SourceCopy:
    """The files source as the check keeps it in the persistent cache, read by the catalog's own loader."""
    return stored_catalog(check)['files']


def mapped(failure: dict) -> tuple[Any, Any]:
    return failure.get('services'), failure.get('team')


def make_invalid(path: Path) -> None:
    path.write_text('schema-version: v2.2\ndd-service: [payments-api\nteam: payments\n', encoding='utf-8')


def make_empty(path: Path) -> None:
    path.write_text('', encoding='utf-8')


def make_unreadable(path: Path) -> None:
    # Permissions do not stop a test running as root; bytes that are not UTF-8 fail the read the same way.
    path.write_bytes(b'\xff\xfe\x00s\x00c\x00h\x00e\x00m\x00a')


def make_missing(path: Path) -> None:
    path.unlink()


DAMAGES = [
    (make_invalid, 'is not valid YAML or JSON'),
    (make_empty, 'holds no definition'),
    (make_unreadable, 'cannot be read'),
    (make_missing, 'is missing'),
]


class TestOneBadFile:
    """A file that was loaded once and turns bad keeps mapping its incidents, with a warning naming it."""

    @pytest.mark.parametrize('damage, problem', DAMAGES, ids=['invalid', 'empty', 'unreadable', 'missing'])
    def test_file_keeps_its_entries(self, world, estate, run, datadog_agent, damage, problem):
        estate.install('payments-api.yaml', 'search.yaml')
        options = {'catalog_files': [estate.pattern()], 'catalog_refresh_interval': REFRESH}
        check = world.check(**options)
        assert run(check) == []
        loaded_at = world.account.now
        cached = cached_files(check)
        assert cached.count == 2

        damage(estate.folder / 'payments-api.yaml')
        # The other file still refreshes while this one is bad.
        (estate.folder / 'search.yaml').write_text(
            (estate.folder / 'search.yaml').read_text(encoding='utf-8').replace('team: discovery', 'team: search-team'),
            encoding='utf-8',
        )
        world.account.advance(REFRESH)
        failure, warnings = estate.incident(check, run, 'PD7X2KQ')

        assert mapped(failure) == (['payments-api'], 'payments')
        payments = str(estate.folder / 'payments-api.yaml')
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith('Catalog file {} {}'.format(payments, problem))
        assert ' since 20' in warnings[0] and 'still using the 1 entry it gave at' in warnings[0]
        failure, _ = estate.incident(check, run, 'PSR4C9M')
        assert mapped(failure) == (['search'], 'search-team')
        after = cached_files(check)
        assert after.count == 2
        assert after.files[payments] == cached.files[payments]
        assert after.files[payments].loaded_at == loaded_at

        # An Agent restart while the file is still bad maps from the copy in the persistent cache.
        restarted = world.check(**options)
        failure, warnings = estate.incident(restarted, run, 'PD7X2KQ')
        assert mapped(failure) == (['payments-api'], 'payments')
        assert any(w.startswith('Catalog file {} {}'.format(payments, problem)) for w in warnings), warnings

    def test_persistent_cache_never_loses_entries_to_a_broken_file(self, world, estate, run, datadog_agent):
        estate.install('payments-api.yaml', 'search.yaml', 'entity.datadog.yaml')
        check = world.check(catalog_files=[estate.pattern()], catalog_refresh_interval=REFRESH)
        writes: list[SourceCopy] = []
        original = check.write_persistent_cache

        def recording(key: str, value: str) -> None:
            if key == 'catalog':
                writes.append(catalog_copies(value)['files'])
            original(key, value)

        check.write_persistent_cache = recording
        run(check)
        full = writes[-1].count
        assert full == 8
        folder = estate.folder
        steps = [
            lambda: make_invalid(folder / 'payments-api.yaml'),
            lambda: make_missing(folder / 'search.yaml'),
            # One broken document in a multi-document file: the entity it gave is kept.
            lambda: (folder / 'entity.datadog.yaml').write_text(
                (folder / 'entity.datadog.yaml').read_text(encoding='utf-8').replace('  name: orders-db\n', ''),
                encoding='utf-8',
            ),
            lambda: make_empty(folder / 'entity.datadog.yaml'),
        ]
        for step in steps:
            step()
            world.account.advance(REFRESH)
            run(check)
        assert len(writes) == 1 + len(steps)
        assert [w.count for w in writes] == [full] * len(writes)
        assert [len(w.files) for w in writes] == [3] * len(writes)

        # Once the files are good again, what they now hold replaces the kept copies.
        estate.install('payments-api.yaml', 'search.yaml')
        (folder / 'entity.datadog.yaml').write_text(
            (ESTATE / 'web.datadog.yaml').read_text(encoding='utf-8'), encoding='utf-8'
        )
        world.account.advance(REFRESH)
        assert run(check) == []
        assert writes[-1].count == 4


class TestPatterns:
    """A pattern that matches no file is a warning; the source waits only while no pattern gave a valid definition."""

    def test_pattern_matching_nothing_beside_one_that_matches(self, world, estate, run):
        estate.install('payments-api.yaml')
        check = world.check(catalog_files=[estate.pattern('*.yaml'), estate.pattern('*.json')])
        failure, warnings = estate.incident(check, run, 'PD7X2KQ')
        assert mapped(failure) == (['payments-api'], 'payments')
        assert warnings == ['catalog_files pattern {} matches no file'.format(estate.pattern('*.json'))]

    def test_nothing_is_submitted_until_a_pattern_gives_a_valid_definition(self, world, estate, run):
        (estate.folder / 'draft.json').write_text('{"schema-version": "v2.2", "team": "billing"}', encoding='utf-8')
        check = world.check(catalog_files=[estate.pattern('*.yaml'), estate.pattern('*.json')])
        world.account.advance(60)
        world.account.trigger(estate.ids['PD7X2KQ'], 'Early')
        # Nothing submitted is the run's error (`can_submit` CRITICAL), beside the warnings that say why.
        with pytest.raises(Exception, match='Nothing is submitted: `catalog_files` has never loaded'):
            run(check)
        warnings = check.get_warnings()
        assert world.dora.posts == []
        assert any('matches no file' in w and '*.yaml' in w for w in warnings), warnings
        assert any('draft.json: dd-service is missing' in w for w in warnings), warnings
        assert any('files has never loaded' in w for w in warnings), warnings

        estate.install('payments-api.yaml')
        world.account.advance(60)
        run(check)
        assert [mapped(f) for f in world.dora.failures.values()] == [(['payments-api'], 'payments')]


KINDS = [
    ('PQUE5NB', 'payments'),
    ('PDB61TX', 'dba'),
    ('PAPI7HV', 'payments'),
    ('PFE29RC', 'web'),
    ('PLIB4WS', 'platform'),
]


class TestEntityKinds:
    """v3 entities of every kind map by their PagerDuty URL to their owner; only services are sent as DORA services."""

    @pytest.mark.parametrize('service, team', KINDS, ids=['queue', 'datastore', 'api', 'frontend', 'library'])
    def test_owner_team_without_service(self, world, estate, run, aggregator, service, team):
        estate.install('entity.datadog.yaml', 'web.datadog.yaml')
        check = world.check(catalog_files=[estate.pattern()])
        failure, warnings = estate.incident(check, run, service)
        # The datastore's additional owner (payments) is not its team.
        assert mapped(failure) == (None, team)
        assert warnings == []
        aggregator.assert_metric_has_tag('pagerduty_dora.mapping.matches', 'mapping_rule:service_url_team', count=1)


class TestInheritFrom:
    """`metadata.inheritFrom` fills a missing owner and PagerDuty URL, along a chain of entities."""

    def test_owner_through_a_chain(self, world, estate, run):
        estate.install('entity.datadog.yaml')
        check = world.check(catalog_files=[estate.pattern()])
        # checkout-worker -> service:checkout-api -> system:checkout-platform (owner payments).
        failure, warnings = estate.incident(check, run, 'PWRK8ZD')
        assert mapped(failure) == (['checkout-worker'], 'payments')
        assert warnings == []

    def test_url_inherited_from_the_system(self, world, estate, run, aggregator):
        estate.install('entity.datadog.yaml')
        check = world.check(catalog_files=[estate.pattern()])
        # checkout-api takes the system's PagerDuty URL: two entities of one team behind it.
        failure, _ = estate.incident(check, run, 'PSYS3LQ')
        assert mapped(failure) == (None, 'payments')
        aggregator.assert_metric_has_tag('pagerduty_dora.mapping.matches', 'mapping_rule:service_url_team', count=1)


class TestTeamsFromFiles:
    """Without the Teams API, the team handles the files name are the Datadog teams rules 3 and 4 look for."""

    @pytest.mark.parametrize(
        'service, rule, team',
        [('ledger-jobs', 'team_name', 'billing'), ('sre', 'service_name_as_team', 'sre')],
        ids=['rule-3-team-of-definition', 'rule-4-additional-owner'],
    )
    def test_rule_fires_from_files_alone(self, world, estate, run, aggregator, service, rule, team):
        estate.install('entity.datadog.yaml', 'billing.json')
        check = world.check(catalog_files=[estate.pattern('*.yaml'), estate.pattern('*.json')])
        failure, warnings = estate.incident(check, run, service)
        assert mapped(failure) == (None, team)
        assert warnings == []
        aggregator.assert_metric_has_tag('pagerduty_dora.mapping.matches', 'mapping_rule:{}'.format(rule), count=1)

    def test_teams_api_wins(self, world, estate, run, aggregator):
        estate.install('entity.datadog.yaml', 'billing.json')
        world.catalog.teams.extend([('payments', 'Payments'), ('sre', 'Site Reliability')])
        check = world.check(
            catalog_files=[estate.pattern('*.yaml'), estate.pattern('*.json')], datadog_app_key=DD_APP_KEY
        )
        # `billing` is named in a file but is not a Datadog team: the PagerDuty team name is kept.
        failure, _ = estate.incident(check, run, 'ledger-jobs')
        assert mapped(failure) == (['Ledger jobs'], 'Billing')
        aggregator.assert_metric_has_tag('pagerduty_dora.mapping.matches', 'mapping_rule:fallback', count=1)


class TestDryRun:
    """`--dry-run` shows, per catalog file, how many entries it gave and why any were skipped."""

    def test_per_file_report(self, world, estate):
        estate.install('payments-api.yaml', 'entity.datadog.yaml')
        (estate.folder / 'draft.yaml').write_text(
            'schema-version: v2.2\ndd-service: ledger\n---\nschema-version: v2.2\nteam: billing\n', encoding='utf-8'
        )
        patterns = [estate.pattern('*.yaml'), estate.pattern('*.json')]
        result = run_dry({}, world.instance(catalog_files=patterns), 'conf.yaml', 0)
        assert result['catalog_files'] == [
            {'pattern': patterns[1], 'entries': 0, 'skipped': ['the pattern matches no file'], 'unknown_keys': []},
            {
                'file': str(estate.folder / 'draft.yaml'),
                'entries': 1,
                'skipped': ['document 2: dd-service is missing'],
                'unknown_keys': [],
            },
            {'file': str(estate.folder / 'entity.datadog.yaml'), 'entries': 6, 'skipped': [], 'unknown_keys': []},
            {'file': str(estate.folder / 'payments-api.yaml'), 'entries': 1, 'skipped': [], 'unknown_keys': []},
        ]
        text = render_dry_run(result)
        assert 'Catalog files (entries each gave to the catalog, and why any were skipped):' in text
        line = next(line for line in text.splitlines() if line.strip().startswith(str(estate.folder / 'draft.yaml')))
        assert line.split()[1:] == ['1', 'document', '2:', 'dd-service', 'is', 'missing']


class TestMisspeltKeys:
    """A definition with a key its schema does not define loads, and the key is warned about, per file."""

    def test_service_url_with_an_underscore(self, world, estate, run):
        estate.install('payments-api.yaml', 'search.yaml')
        payments = estate.folder / 'payments-api.yaml'
        payments.write_text(
            payments.read_text(encoding='utf-8').replace('service-url:', 'service_url:'), encoding='utf-8'
        )
        check = world.check(catalog_files=[estate.pattern()], catalog_refresh_interval=REFRESH)

        failure, warnings = estate.incident(check, run, 'PD7X2KQ')

        assert warnings == [
            'Catalog file {}: unknown key `service_url` in `integrations.pagerduty` of dd-service payments-api '
            '(schema v2.2) is ignored: did you mean `service-url`?'.format(payments)
        ]
        # Without its URL, the entry no longer maps by rule 1: the incident falls to another rule.
        assert mapped(failure) != (['payments-api'], 'payments')

    def test_dry_run_lists_them_under_the_file(self, world, estate):
        estate.install('payments-api.yaml')
        payments = estate.folder / 'payments-api.yaml'
        payments.write_text(payments.read_text(encoding='utf-8').replace('team:', 'teams:'), encoding='utf-8')

        result = run_dry({}, world.instance(catalog_files=[estate.pattern()]), 'conf.yaml', 0)

        (report,) = result['catalog_files']
        assert report['entries'] == 1
        assert report['unknown_keys'] == [
            'unknown key `teams` of dd-service payments-api (schema v2.2) is ignored: did you mean `team`?'
        ]
        assert '  {}: unknown key `teams`'.format(payments) in render_dry_run(result)
