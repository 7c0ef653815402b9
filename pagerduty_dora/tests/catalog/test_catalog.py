# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.catalog.definitions import (
    InvalidDefinition,
    parse_definition,
    resolve_inheritance,
    unknown_keys,
)
from datadog_checks.pagerduty_dora.catalog.files import read_definitions_file
from datadog_checks.pagerduty_dora.catalog.mapping import map_incident
from datadog_checks.pagerduty_dora.catalog.model import Catalog, CatalogService, CatalogTeam
from datadog_checks.pagerduty_dora.catalog.sources import CACHE_KEY, CatalogStore
from datadog_checks.pagerduty_dora.common.http import ApiClient, ApiTarget
from datadog_checks.pagerduty_dora.common.pacing import RequestLimits, Timing
from datadog_checks.pagerduty_dora.common.services import AgentServices

from ..fakes.catalog_api import CatalogState, catalog_routes, v3_entity, v22_definition
from ..fakes.server import FakeServer, Reply
from ..harness import catalog_copies
from ..paths import FIXTURES

CATALOG_FIXTURES = FIXTURES / 'catalog'
API_KEY = 'fake-dd-api-key'
APP_KEY = 'fake-dd-app-key'
LOG = logging.getLogger('test_catalog')
NOW = 1795687200.0  # 2026-11-26T10:00:00Z


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """A `CatalogStore`'s collaborators: a cache dict, recorded warnings and a fake clock."""

    def __init__(self, cache: dict[str, str] | None = None) -> None:
        self.cache: dict[str, str] = {} if cache is None else cache
        self.warnings: list[str] = []
        self.cache_reads = 0
        self.clock = Clock()

    def read_cache(self, key: str) -> str:
        self.cache_reads += 1
        return self.cache.get(key, '')

    def write_cache(self, key: str, value: str) -> None:
        self.cache[key] = value

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)

    def store(
        self, *, api: ApiClient | None = None, files: Sequence[str] = (), refresh_interval: float = 600
    ) -> CatalogStore:
        return CatalogStore(
            api=api,
            files=list(files),
            refresh_interval=refresh_interval,
            services=AgentServices(
                read_cache=self.read_cache,
                write_cache=self.write_cache,
                log=LOG,
                warning=self.warning,
                clock=self.clock,
            ),
        )


def datadog_client(url: str, *, app_key: str | None = APP_KEY, max_requests: int = 100) -> ApiClient:
    headers = {'DD-API-KEY': API_KEY}
    if app_key is not None:
        headers['DD-APPLICATION-KEY'] = app_key
    return ApiClient(
        ApiTarget('datadog', url, headers),
        RequestsWrapper({}, {}),
        RequestLimits(max_requests),
        LOG,
        timing=Timing(sleep=lambda seconds: None, jitter=lambda: 0.0),
    )


def as_tuples(services) -> list[tuple]:
    return sorted((s.name, s.team, s.pagerduty_url) for s in services)


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    target = tmp_path / 'catalog'
    # The estate files belong to the end-to-end tests, which install them one by one.
    shutil.copytree(CATALOG_FIXTURES, target, ignore=shutil.ignore_patterns('estate'))
    return target


@pytest.fixture
def account() -> CatalogState:
    return CatalogState(
        definitions=[
            v22_definition('checkout', 'Web Frontend', 'https://acme.pagerduty.com/service-directory/PCHK003'),
            v22_definition('cart', 'web'),
            # Also a v3 entity below: the two must merge into one service.
            v22_definition('search', None, 'https://acme.pagerduty.com/service-directory/PSRC004'),
        ],
        entities=[
            v3_entity('search', 'search-team'),
            v3_entity('ledger', 'payments', 'https://acme.eu.pagerduty.com/service-directory/PLED002'),
            v3_entity('orders-db', 'payments', kind='datastore'),
        ],
        teams=[('web', 'Web Frontend'), ('payments', 'Payments Platform'), ('search-team', 'Search')],
        api_key=API_KEY,
        app_key=APP_KEY,
    )


@pytest.fixture
def server(account: CatalogState) -> Iterator[FakeServer]:
    with FakeServer(catalog_routes(account)) as fake:
        yield fake


FILE_CASES = [
    ('v2.yaml', [('payments-api', 'payments', 'https://acme.eu.pagerduty.com/service-directory/PPAY001')]),
    ('v2_1.yaml', [('ledger', 'Payments Platform', 'https://acme.pagerduty.com/service-directory/PLED002')]),
    ('v2_2.json', [('checkout', 'web', 'https://acme.pagerduty.com/service-directory/PCHK003')]),
    (
        'v3.yaml',
        [
            ('search', 'discovery', 'https://acme.pagerduty.com/service-directory/PSRC004'),
            ('search-index', 'discovery', 'https://acme.pagerduty.com/service-directory/PSRC004'),
        ],
    ),
    ('more/inventory.yml', [('inventory', 'warehouse', None)]),
]


class TestDefinitionFiles:
    """`catalog_files`: globs of YAML or JSON definitions of every schema version; bad ones skipped with a warning."""

    @pytest.mark.parametrize('name, expected', FILE_CASES, ids=['v2', 'v2.1', 'v2.2-json', 'v3-every-kind', 'yml'])
    def test_schema_version(self, harness, name, expected):
        catalog = harness.store(files=[str(CATALOG_FIXTURES / name)]).current()
        assert as_tuples(catalog.services) == expected
        assert all(s.source == 'files' for s in catalog.services)
        assert harness.warnings == []

    def test_multi_document_skips_the_bad_document(self, harness):
        store = harness.store(files=[str(CATALOG_FIXTURES / 'multi.yaml')])
        catalog = store.current()
        assert [s.name for s in catalog.services] == ['notifications', 'sms-gateway']
        assert len(harness.warnings) == 1
        assert 'multi.yaml (document 2)' in harness.warnings[0]
        assert 'dd-service is missing' in harness.warnings[0]

    def test_broken_file_skipped_with_warning(self, harness):
        catalog = harness.store(files=[str(CATALOG_FIXTURES / '*.yaml')]).current()
        assert sorted(s.name for s in catalog.services) == [
            'ledger',
            'notifications',
            'payments-api',
            'search',
            'search-index',
            'sms-gateway',
        ]
        broken = [w for w in harness.warnings if 'broken.yaml' in w]
        assert len(broken) == 1 and 'not valid YAML or JSON' in broken[0]

    def test_globs_recursive_and_merged(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / '**' / '*.y*ml'), str(catalog_dir / '*.json')])
        catalog = store.current()
        assert sorted(s.name for s in catalog.services) == [
            'checkout',
            'inventory',
            'ledger',
            'notifications',
            'payments-api',
            'search',
            'search-index',
            'sms-gateway',
        ]
        assert store.counts() == {'files': 8}

    def test_pattern_that_matches_nothing_is_a_warning(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / 'nothing-*.yaml'), str(catalog_dir / 'v2.yaml')])
        assert [s.name for s in store.current().services] == ['payments-api']
        assert harness.warnings == ['catalog_files pattern {} matches no file'.format(catalog_dir / 'nothing-*.yaml')]

    def test_no_pattern_matching_is_never_loaded(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / 'nothing-*.yaml')])
        assert store.current() is None
        assert len(harness.warnings) == 2
        assert 'nothing-*.yaml matches no file' in harness.warnings[0]
        assert 'files has never loaded' in harness.warnings[1]

    def test_disappearing_file_keeps_last_good_copy(self, harness, tmp_path, catalog_dir):
        path = tmp_path / 'v2.yaml'
        shutil.copy(catalog_dir / 'v2.yaml', path)
        store = harness.store(files=[str(tmp_path / '*.yaml')])
        assert [s.name for s in store.current().services] == ['payments-api']
        path.unlink()
        harness.clock.now += 600
        assert [s.name for s in store.current().services] == ['payments-api']
        assert harness.warnings == [
            'catalog_files pattern {} matches no file'.format(tmp_path / '*.yaml'),
            'Catalog file {} is missing since 2026-11-26T10:10:00Z; still using the 1 entry it gave at '
            '2026-11-26T10:00:00Z'.format(path),
        ]

    def test_json_list_of_definitions(self, harness, tmp_path):
        path = tmp_path / 'services.json'
        path.write_text(
            json.dumps([v22_definition('a', 'x'), v3_entity('b', 'y', 'https://acme.pagerduty.com/services/PB1')])
        )
        catalog = harness.store(files=[str(path)]).current()
        assert as_tuples(catalog.services) == [('a', 'x', None), ('b', 'y', 'https://acme.pagerduty.com/services/PB1')]

    def test_unreadable_file_keeps_last_good_copy(self, harness, catalog_dir):
        path = catalog_dir / 'v2.yaml'
        store = harness.store(files=[str(path)])
        assert [s.name for s in store.current().services] == ['payments-api']
        path.write_bytes(b'\xff\xfe not utf-8')
        harness.clock.now += 600
        assert [s.name for s in store.current().services] == ['payments-api']
        assert len(harness.warnings) == 1
        assert harness.warnings[0].startswith('Catalog file {} cannot be read ('.format(path))

    @pytest.mark.parametrize(
        'document, message',
        [
            ('just text', 'not a mapping'),
            ({'dd-service': 'x'}, 'neither schema-version nor apiVersion'),
            ({'schema-version': 'v1', 'info': {'dd-service': 'x'}}, "unsupported schema-version 'v1'"),
            ({'schema-version': 'v2.2', 'dd-service': 'x', 'team': 7}, 'team must be a string'),
            ({'schema-version': 'v2.1', 'dd-service': 'x', 'integrations': {'pagerduty': 5}}, 'integrations.pagerduty'),
            ({'apiVersion': 'v3', 'kind': 'service', 'metadata': {'owner': 'x'}}, 'metadata.name is missing'),
            ({'apiVersion': 'v2', 'kind': 'service', 'metadata': {'name': 'x'}}, "unsupported apiVersion 'v2'"),
            (
                {
                    'apiVersion': 'v3',
                    'kind': 'service',
                    'metadata': {'name': 'x'},
                    'integrations': {'pagerduty': 'https://x'},
                },
                'serviceURL',
            ),
        ],
        ids=[
            'not-mapping',
            'no-version',
            'v1',
            'team-not-string',
            'pagerduty-wrong-type',
            'v3-no-name',
            'bad-api-version',
            'v3-url-string',
        ],
    )
    def test_invalid_definition(self, document, message):
        with pytest.raises(InvalidDefinition, match=message):
            parse_definition(document, 'files')

    @pytest.mark.parametrize(
        'document, expected',
        [
            ({'schema-version': 'v2', 'dd-service': ' a ', 'dd-team': 'core'}, ('a', 'core', None)),
            (
                {
                    'schema-version': 'v2.2',
                    'dd-service': 'a',
                    'integrations': {'pagerduty': 'https://acme.pagerduty.com/services/P1'},
                },
                ('a', None, 'https://acme.pagerduty.com/services/P1'),
            ),
            ({'apiVersion': 'v3', 'kind': 'Service', 'metadata': {'name': 'a'}}, ('a', None, None)),
        ],
        ids=['v2-dd-team', 'v2.2-string-url-tolerated', 'v3-kind-case'],
    )
    def test_tolerated_forms(self, document, expected):
        (service,) = parse_definition(document, 'files')
        assert (service.name, service.team, service.pagerduty_url) == expected


class TestDatadogApiSource:
    """The Datadog API source end to end against the loopback fake of the catalog and team endpoints."""

    def test_loads_and_merges(self, harness, server):
        store = harness.store(api=datadog_client(server.url))
        catalog = store.current()
        assert as_tuples(catalog.services) == [
            ('cart', 'web', None),
            ('checkout', 'Web Frontend', 'https://acme.pagerduty.com/service-directory/PCHK003'),
            ('ledger', 'payments', 'https://acme.eu.pagerduty.com/service-directory/PLED002'),
            ('search', 'search-team', 'https://acme.pagerduty.com/service-directory/PSRC004'),
        ]
        assert sorted(catalog.teams, key=lambda t: t.handle) == [
            CatalogTeam('payments', 'Payments Platform'),
            CatalogTeam('search-team', 'Search'),
            CatalogTeam('web', 'Web Frontend'),
        ]
        assert store.counts() == {'datadog_api': 7}
        assert harness.warnings == []
        requests = [(r.path, r.headers.get('dd-application-key')) for r in server.requests]
        assert requests == [
            ('/api/v2/catalog/entity', APP_KEY),
            ('/api/v2/services/definitions', APP_KEY),
            ('/api/v2/team', APP_KEY),
        ]
        assert server.requests[0].query == {
            'filter[kind]': ['service'],
            'include': ['schema'],
            'page[offset]': ['0'],
            'page[limit]': ['100'],
        }
        assert server.requests[1].query == {'schema_version': ['v2.2'], 'page[size]': ['100'], 'page[number]': ['0']}

    def test_mapping_uses_the_team_handle(self, harness, server):
        from ..catalog.test_mapping import pd_incident

        catalog = harness.store(api=datadog_client(server.url)).current()
        result = map_incident(pd_incident(service_url='https://acme.pagerduty.com/services/PCHK003'), catalog)
        assert (result.rule, result.services, result.team) == ('service_url', ('checkout',), 'web')

    @pytest.mark.parametrize(
        'count, pages',
        [(0, 1), (99, 1), (100, 2), (250, 3)],
        ids=['empty', 'short-first-page', 'exact-page-then-empty', 'three-pages'],
    )
    def test_definitions_paging(self, harness, account, server, count, pages):
        account.definitions = [v22_definition('svc-{:03d}'.format(i), 'web') for i in range(count)]
        account.entities = []
        catalog = harness.store(api=datadog_client(server.url)).current()
        assert len(catalog.services) == count
        numbers = [r.arg('page[number]') for r in server.requests if r.path == '/api/v2/services/definitions']
        assert numbers == [str(n) for n in range(pages)]
        sizes = {r.arg('page[size]') for r in server.requests if r.path == '/api/v2/services/definitions'}
        assert sizes == {'100'}

    def test_entities_follow_links_next(self, harness, account, server):
        account.entities = [v3_entity('e-{:03d}'.format(i), 'web') for i in range(230)]
        account.definitions = []
        catalog = harness.store(api=datadog_client(server.url)).current()
        assert len(catalog.services) == 230
        offsets = [r.arg('page[offset]') for r in server.requests if r.path == '/api/v2/catalog/entity']
        assert offsets == ['0', '100', '200']

    def test_teams_paging(self, harness, account, server):
        account.teams = [('team-{:03d}'.format(i), 'Team {}'.format(i)) for i in range(150)]
        catalog = harness.store(api=datadog_client(server.url)).current()
        assert len(catalog.teams) == 150
        numbers = [r.arg('page[number]') for r in server.requests if r.path == '/api/v2/team']
        assert numbers == ['0', '1']

    def test_server_ignoring_page_number_does_not_loop(self, harness, account, server):
        account.definitions = [v22_definition('svc-{:03d}'.format(i)) for i in range(100)]

        def first_page_only(request):
            if request.path == '/api/v2/services/definitions':
                request.query['page[number]'] = ['0']
            return None

        server.fault = first_page_only
        catalog = harness.store(api=datadog_client(server.url)).current()
        assert len(catalog.services) == 100 + 2
        assert server.count('GET', '/api/v2/services/definitions') == 2

    @pytest.mark.parametrize(
        'app_key, catalog_read, teams_read, scope',
        [
            (None, True, True, 'apm_service_catalog_read'),
            ('wrong-key', True, True, 'apm_service_catalog_read'),
            (APP_KEY, False, True, 'apm_service_catalog_read'),
            (APP_KEY, True, False, 'teams_read'),
        ],
        ids=['no-app-key', 'wrong-app-key', 'no-catalog-permission', 'no-teams-permission'],
    )
    def test_bare_403_names_the_keys_then_the_scope(
        self, harness, account, server, app_key, catalog_read, teams_read, scope
    ):
        # The simulator answers a bare `Forbidden` in every case, as Datadog does for a wrong key.
        account.catalog_read = catalog_read
        account.teams_read = teams_read
        store = harness.store(api=datadog_client(server.url, app_key=app_key))
        assert store.current() is None
        assert store.counts() == {}
        assert len(harness.warnings) == 1
        warning = harness.warnings[0]
        assert 'never loaded' in warning and '403' in warning
        assert 'wrong or revoked' in warning and 'keys are valid' not in warning
        assert 'if both keys are right, the application key lacks the {} permission'.format(scope) in warning
        assert APP_KEY not in ' '.join(harness.warnings) and API_KEY not in ' '.join(harness.warnings)

    def test_401_is_a_wrong_or_revoked_key(self, harness, server):
        server.fault = lambda request: Reply(401, {'errors': ['Unauthorized']})
        store = harness.store(api=datadog_client(server.url, app_key='revoked-key'))
        assert store.current() is None
        assert len(harness.warnings) == 1
        warning = harness.warnings[0]
        assert 'answered 401 to GET /api/v2/catalog/entity' in warning
        assert 'datadog_app_key' in warning and 'wrong or revoked' in warning
        # A key that does not authenticate at all holds no permission worth naming.
        assert 'permission' not in warning and 'apm_service_catalog_read' not in warning
        assert 'revoked-key' not in warning and API_KEY not in warning

    @pytest.mark.parametrize(
        'path, scope',
        [('/api/v2/catalog/entity', 'apm_service_catalog_read'), ('/api/v2/team', 'teams_read')],
        ids=['catalog', 'teams'],
    )
    def test_403_naming_a_failed_permission_is_a_missing_permission(self, harness, server, path, scope):
        def refuse(request):
            if request.path == path:
                return Reply(403, {'errors': ['Failed permission authorization checks']})
            return None

        server.fault = refuse
        store = harness.store(api=datadog_client(server.url))
        assert store.current() is None
        assert len(harness.warnings) == 1
        warning = harness.warnings[0]
        assert 'answered 403 to GET {}'.format(path) in warning
        assert 'the keys are valid' in warning
        assert 'lacks the {} permission'.format(scope) in warning
        assert 'wrong or revoked' not in warning
        assert APP_KEY not in warning and API_KEY not in warning

    def test_bad_entity_skipped_with_warning(self, harness, account, server):
        account.entities.append({'apiVersion': 'v3', 'kind': 'service', 'metadata': {'name': 'bad', 'owner': ['x']}})
        catalog = harness.store(api=datadog_client(server.url)).current()
        assert 'bad' not in {s.name for s in catalog.services}
        assert len(catalog.services) == 4
        assert harness.warnings == ['Skipping catalog entity bad from the Datadog API: metadata.owner must be a string']

    def test_unexpected_body_is_a_failure(self, harness, server):
        server.fault = lambda request: Reply(200, {'services': []}) if request.path == '/api/v2/team' else None
        store = harness.store(api=datadog_client(server.url))
        assert store.current() is None
        assert 'without a data list' in harness.warnings[0]

    def test_budget_exhausted_is_a_failure(self, harness, account, server):
        account.definitions = [v22_definition('svc-{:03d}'.format(i)) for i in range(250)]
        store = harness.store(api=datadog_client(server.url, max_requests=3))
        assert store.current() is None
        assert 'max_requests_per_run' in harness.warnings[0]

    def test_merged_with_files(self, harness, server):
        store = harness.store(api=datadog_client(server.url), files=[str(CATALOG_FIXTURES / 'v2_2.json')])
        catalog = store.current()
        # The file's checkout (team web) wins over the API's (team Web Frontend): files merge first.
        checkout = [s for s in catalog.services if s.name == 'checkout']
        assert checkout == [
            CatalogService('checkout', 'web', 'https://acme.pagerduty.com/service-directory/PCHK003', 'files')
        ]
        assert len(catalog.services) == 4
        assert store.counts() == {'files': 1, 'datadog_api': 7}


class TestRefreshAndCache:
    """Refresh on an interval; last good copy on failure; None while never loaded; the cached copy survives restarts."""

    def test_no_sources_is_an_empty_catalog(self, harness):
        store = harness.store()
        assert store.current() == Catalog()
        assert store.counts() == {}
        assert harness.cache == {} and harness.cache_reads == 0

    def test_refresh_interval_honoured(self, harness, server):
        store = harness.store(api=datadog_client(server.url), refresh_interval=600)
        store.current()
        assert len(server.requests) == 3
        harness.clock.now += 599
        store.current()
        assert len(server.requests) == 3
        harness.clock.now += 1
        store.current()
        assert len(server.requests) == 6

    def test_refresh_picks_up_changes(self, harness, account, server):
        store = harness.store(api=datadog_client(server.url), refresh_interval=600)
        assert len(store.current().services) == 4
        account.definitions.append(v22_definition('new-service', 'web'))
        harness.clock.now += 300
        assert len(store.current().services) == 4
        harness.clock.now += 300
        assert len(store.current().services) == 5

    def test_cache_read_lazily(self, harness, server):
        store = harness.store(api=datadog_client(server.url))
        assert harness.cache_reads == 0
        store.current()
        store.current()
        assert harness.cache_reads == 1

    def test_last_good_copy_used_with_warning(self, harness, account, server):
        store = harness.store(api=datadog_client(server.url), refresh_interval=600)
        first = store.current()
        account.app_key = 'rotated'
        harness.clock.now += 600
        assert store.current() == first
        assert len(harness.warnings) == 1
        warning = harness.warnings[0]
        assert 'could not be refreshed since 2026-11-26T10:10:00Z' in warning
        assert 'loaded at 2026-11-26T10:00:00Z' in warning
        assert 'apm_service_catalog_read' in warning
        assert store.counts() == {'datadog_api': 7}

    def test_failed_refresh_retried_soon_and_recovers(self, harness, account, server):
        store = harness.store(api=datadog_client(server.url), refresh_interval=600)
        account.teams_read = False
        assert store.current() is None
        assert server.count('GET') == 3
        harness.clock.now += 10
        assert store.current() is None
        assert server.count('GET') == 3
        account.teams_read = True
        harness.clock.now += 20
        assert len(store.current().services) == 4
        assert server.count('GET') == 6

    def test_transient_error_uses_last_good(self, harness, server):
        store = harness.store(api=datadog_client(server.url), refresh_interval=600)
        first = store.current()
        server.fault = lambda request: Reply(503, {'errors': ['Service Unavailable']})
        harness.clock.now += 600
        assert store.current() == first
        assert 'answered 503' in harness.warnings[0]

    def test_never_loaded_source_blocks_even_when_another_loaded(self, harness, account, server):
        account.catalog_read = False
        store = harness.store(api=datadog_client(server.url), files=[str(CATALOG_FIXTURES / 'v2.yaml')])
        assert store.current() is None
        assert store.counts() == {'files': 1}

    def test_cache_round_trip(self, harness, account, server):
        first = harness.store(api=datadog_client(server.url)).current()
        saved = catalog_copies(harness.cache[CACHE_KEY])['datadog_api']
        assert (saved.loaded_at, saved.count) == (NOW, 7)
        assert APP_KEY not in harness.cache[CACHE_KEY]

        account.catalog_read = False
        restarted = Harness(cache=harness.cache)
        restarted.clock.now = NOW + 3600
        store = restarted.store(api=datadog_client(server.url))
        catalog = store.current()
        assert catalog == first
        assert store.counts() == {'datadog_api': 7}
        assert 'loaded at 2026-11-26T10:00:00Z' in restarted.warnings[0]

    def test_cache_of_other_settings_ignored(self, harness, server):
        harness.store(api=datadog_client(server.url)).current()
        server.fault = lambda request: Reply(503, {'errors': ['Service Unavailable']})
        # The same site falls back on its cached copy; another site (another base URL) must not be
        # mapped with a copy read from elsewhere.
        same_site = Harness(cache=harness.cache).store(api=datadog_client(server.url))
        assert len(same_site.current().services) == 4
        other_site = Harness(cache=harness.cache).store(api=datadog_client(server.url + '/eu'))
        assert other_site.current() is None

    @pytest.mark.parametrize(
        'raw',
        [
            '{not json',
            '[]',
            '{"version": 99, "sources": {}}',
            '{"version": 1, "sources": []}',
            '{"version": 1, "sources": {"datadog_api": {"loaded_at": "yesterday", "services": [], "teams": []}}}',
            '{"version": 1, "sources": {"datadog_api": {"loaded_at": 1, "services": [["a"]], "teams": []}}}',
        ],
        ids=['not-json', 'not-an-object', 'other-version', 'sources-not-object', 'bad-loaded-at', 'bad-service'],
    )
    def test_corrupted_cache(self, harness, account, server, caplog, raw):
        harness.cache[CACHE_KEY] = raw
        account.catalog_read = False
        caplog.set_level(logging.WARNING, logger=LOG.name)
        store = harness.store(api=datadog_client(server.url))
        assert store.current() is None
        assert any('cannot be decoded' in r.getMessage() for r in caplog.records)
        account.catalog_read = True
        harness.clock.now += 600
        assert len(store.current().services) == 4
        assert len(catalog_copies(harness.cache[CACHE_KEY])['datadog_api'].services) == 4


ENTITIES = CATALOG_FIXTURES / 'estate' / 'entity.datadog.yaml'


def entity(kind: str, name: str, owner: str | None = None, url: str | None = None, inherit: str | None = None):
    return CatalogService(name, owner, url, 'files', kind=kind, inherit_from=inherit)


class TestEntities:
    """v3 entities of every kind, their additional owners and `inheritFrom`, as read from files."""

    def test_every_kind_is_read(self, harness):
        catalog = harness.store(files=[str(ENTITIES)]).current()
        kinds = {(s.kind, s.name): (s.team, s.owners) for s in catalog.services}
        assert kinds == {
            ('system', 'checkout-platform'): ('payments', ('sre',)),
            ('service', 'checkout-api'): ('payments', ()),
            ('service', 'checkout-worker'): ('payments', ()),
            ('queue', 'order-events'): ('payments', ()),
            ('datastore', 'orders-db'): ('dba', ('payments',)),
            ('api', 'checkout-public-api'): ('payments', ()),
        }
        # Only services are found by name: a datastore's name is not a DORA service.
        assert [s.name for s in catalog.services_named('orders-db')] == []
        assert [s.name for s in catalog.services_named('checkout-api')] == ['checkout-api']
        assert harness.warnings == []

    def test_same_name_in_two_kinds_stays_two_entities(self, harness, tmp_path):
        path = tmp_path / 'entities.yaml'
        path.write_text(
            '---\n'.join(
                json.dumps(e) + '\n'
                for e in (v3_entity('orders', 'payments'), v3_entity('orders', 'dba', kind='datastore'))
            )
        )
        catalog = harness.store(files=[str(path)]).current()
        assert sorted((s.kind, s.team) for s in catalog.services) == [('datastore', 'dba'), ('service', 'payments')]

    @pytest.mark.parametrize(
        'metadata, expected',
        [
            ({'additionalOwners': [{'name': 'sre', 'type': 'operator'}, 'dba', {'name': ' '}]}, ('sre', 'dba')),
            ({'additionalOwners': []}, ()),
            ({'inheritFrom': 'system:checkout'}, 'system:checkout'),
        ],
        ids=['additional-owners-both-forms', 'no-additional-owners', 'inherit-from'],
    )
    def test_v3_metadata(self, metadata, expected):
        (service,) = parse_definition(
            {'apiVersion': 'v3', 'kind': 'queue', 'metadata': dict(metadata, name='q', owner='payments')}, 'files'
        )
        assert (service.kind, service.team) == ('queue', 'payments')
        assert (service.inherit_from if 'inheritFrom' in metadata else service.owners) == expected

    @pytest.mark.parametrize(
        'document, message',
        [
            ({'apiVersion': 'v3', 'metadata': {'name': 'x'}}, 'kind is missing'),
            ({'apiVersion': 'v3', 'kind': ['queue'], 'metadata': {'name': 'x'}}, 'kind must be'),
            (
                {'apiVersion': 'v3', 'kind': 'queue', 'metadata': {'name': 'x', 'additionalOwners': 'sre'}},
                'additionalOwners must be a list',
            ),
            (
                {'apiVersion': 'v3', 'kind': 'queue', 'metadata': {'name': 'x', 'additionalOwners': [{'type': 'a'}]}},
                r'additionalOwners\[0\] must be a team name',
            ),
            (
                {'apiVersion': 'v3', 'kind': 'queue', 'metadata': {'name': 'x', 'inheritFrom': {'kind': 'system'}}},
                'inheritFrom must be a string',
            ),
        ],
        ids=['no-kind', 'kind-not-string', 'owners-not-list', 'owner-without-name', 'inherit-not-string'],
    )
    def test_invalid_v3(self, document, message):
        with pytest.raises(InvalidDefinition, match=message):
            parse_definition(document, 'files')

    URL = 'https://acme.pagerduty.com/service-directory/PSYS001'

    @pytest.mark.parametrize(
        'entities, expected, problem',
        [
            (
                [
                    entity('service', 'worker', url=URL + 'W', inherit='service:api'),
                    entity('service', 'api', inherit='system:platform'),
                    entity('system', 'platform', 'payments', URL),
                ],
                {'worker': ('payments', URL + 'W'), 'api': ('payments', URL), 'platform': ('payments', URL)},
                None,
            ),
            (
                [
                    entity('queue', 'q', 'queue-team', inherit='System:default/Platform'),
                    entity('system', 'platform', 'p', URL),
                ],
                {'q': ('queue-team', URL), 'platform': ('p', URL)},
                None,
            ),
            (
                [entity('service', 'a', inherit='service:ghost')],
                {'a': (None, None)},
                'catalog entity service:a inherits from service:ghost, which no catalog source defines',
            ),
            (
                [entity('service', 'a', inherit='platform'), entity('system', 'platform', 'p', URL)],
                {'a': (None, None), 'platform': ('p', URL)},
                "catalog entity service:a has inheritFrom 'platform', which is not <kind>:<name>",
            ),
            (
                [
                    entity('service', 'a', inherit='service:b'),
                    entity('service', 'b', 'team-b', inherit='service:c'),
                    entity('service', 'c', url=URL, inherit='service:a'),
                ],
                {'a': ('team-b', URL), 'b': ('team-b', URL), 'c': (None, URL)},
                'catalog entities service:a, service:b, service:c inherit from each other in a cycle',
            ),
        ],
        ids=['chain', 'own-fields-win-and-namespace', 'unknown-entity', 'not-a-reference', 'cycle'],
    )
    def test_inheritance(self, entities, expected, problem):
        resolved, problems = resolve_inheritance(entities)
        assert {s.name: (s.team, s.pagerduty_url) for s in resolved} == expected
        assert problems == ([problem] if problem else [])

    def test_inheritance_across_sources(self, harness, server, tmp_path):
        path = tmp_path / 'worker.yaml'
        path.write_text(
            json.dumps(
                {'apiVersion': 'v3', 'kind': 'service', 'metadata': {'name': 'w', 'inheritFrom': 'service:ledger'}}
            )
        )
        catalog = harness.store(api=datadog_client(server.url), files=[str(path)]).current()
        (worker,) = [s for s in catalog.services if s.name == 'w']
        assert (worker.team, worker.pagerduty_url) == (
            'payments',
            'https://acme.eu.pagerduty.com/service-directory/PLED002',
        )


class TestKnownTeams:
    """Rules 3 and 4 know the Datadog teams: the Teams API's when configured, else the handles the files name."""

    def test_files_name_the_teams(self, harness):
        catalog = harness.store(files=[str(ENTITIES), str(CATALOG_FIXTURES / 'v2_1.yaml')]).current()
        assert sorted(t.handle for t in catalog.teams) == ['Payments Platform', 'dba', 'payments', 'sre']
        assert catalog.find_team('SRE') == 'sre'
        assert catalog.find_team('payments platform') == 'Payments Platform'

    def test_teams_api_wins(self, harness, server):
        catalog = harness.store(api=datadog_client(server.url), files=[str(ENTITIES)]).current()
        assert sorted(t.handle for t in catalog.teams) == ['payments', 'search-team', 'web']
        assert catalog.find_team('sre') is None


class TestFilesKeptPerFile:
    """Each file keeps its last good copy; the store's report says what each file gave."""

    def test_broken_document_keeps_the_entry_it_gave(self, harness, tmp_path):
        path = tmp_path / 'multi.yaml'
        shutil.copy(CATALOG_FIXTURES / 'multi.yaml', path)
        store = harness.store(files=[str(path)])
        assert [s.name for s in store.current().services] == ['notifications', 'sms-gateway']
        harness.warnings.clear()
        text = path.read_text().replace('dd-service: sms-gateway', 'dd-service: [sms-gateway]')
        path.write_text(text + '---\nschema-version: v2.2\ndd-service: push\nteam: comms\n')
        harness.clock.now += 600
        assert sorted(s.name for s in store.current().services) == ['notifications', 'push', 'sms-gateway']
        assert harness.warnings[-1] == (
            'Catalog file {} has invalid definitions since 2026-11-26T10:10:00Z; still using 1 entry it gave at '
            '2026-11-26T10:00:00Z and no longer gives'.format(path)
        )
        assert 'multi.yaml (document 3): dd-service must be a string' in harness.warnings[-2]

    def test_file_that_shrinks_cleanly_is_replaced(self, harness, tmp_path):
        path = tmp_path / 'multi.yaml'
        path.write_text(
            (CATALOG_FIXTURES / 'v2.yaml').read_text() + '---\n' + (CATALOG_FIXTURES / 'v2_1.yaml').read_text()
        )
        store = harness.store(files=[str(path)])
        assert len(store.current().services) == 2
        shutil.copy(CATALOG_FIXTURES / 'v2.yaml', path)
        harness.clock.now += 600
        assert [s.name for s in store.current().services] == ['payments-api']
        assert harness.warnings == []

    def test_file_back_after_missing(self, harness, tmp_path):
        path = tmp_path / 'v2.yaml'
        shutil.copy(CATALOG_FIXTURES / 'v2.yaml', path)
        store = harness.store(files=[str(tmp_path / '*.yaml')])
        store.current()
        path.unlink()
        harness.clock.now += 600
        store.current()
        path.write_text((CATALOG_FIXTURES / 'v2.yaml').read_text().replace('team: payments', 'team: treasury'))
        harness.warnings.clear()
        harness.clock.now += 600
        assert [(s.name, s.team) for s in store.current().services] == [('payments-api', 'treasury')]
        assert harness.warnings == []

    def test_report_per_file(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / '*.yaml'), str(catalog_dir / '*.toml')])
        store.current()
        (catalog_dir / 'v2.yaml').write_text('')
        harness.clock.now += 600
        store.current()
        report = {
            Path(row.get('file') or row.get('pattern')).name: (row['entries'], row['skipped'])
            for row in store.file_report()
        }
        assert report == {
            'broken.yaml': (0, [report['broken.yaml'][1][0]]),
            'multi.yaml': (2, ['document 2: dd-service is missing']),
            'v2.yaml': (
                1,
                [
                    'file holds no definition since 2026-11-26T10:10:00Z; '
                    'using the 1 entry it gave at 2026-11-26T10:00:00Z'
                ],
            ),
            'v2_1.yaml': (1, []),
            'v3.yaml': (2, []),
            '*.toml': (0, ['the pattern matches no file']),
        }
        assert report['broken.yaml'][1][0].startswith('file is not valid YAML or JSON (')
        assert store.file_report()[0] == {
            'pattern': str(catalog_dir / '*.toml'),
            'entries': 0,
            'skipped': ['the pattern matches no file'],
            'unknown_keys': [],
        }

    def test_cache_restores_every_file(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / '*.yaml')])
        first = store.current()
        saved = catalog_copies(harness.cache[CACHE_KEY])['files']
        assert saved.count == 6
        assert sorted(Path(p).name for p in saved.files) == ['multi.yaml', 'v2.yaml', 'v2_1.yaml', 'v3.yaml']
        # The services of a files source are stored once, in the copies of its files.
        assert json.loads(harness.cache[CACHE_KEY])['sources']['files']['services'] == []

        for path in catalog_dir.glob('*.yaml'):
            path.unlink()
        restarted = Harness(cache=harness.cache)
        restarted.clock.now = NOW + 3600
        store = restarted.store(files=[str(catalog_dir / '*.yaml')])
        assert store.current() == first
        assert len([w for w in restarted.warnings if 'is missing since 2026-11-26T11:00:00Z' in w]) == 4
        assert catalog_copies(harness.cache[CACHE_KEY])['files'].count == 6

    def test_cache_written_before_files_were_kept_apart_is_ignored(self, harness, catalog_dir):
        harness.cache[CACHE_KEY] = json.dumps(
            {
                'version': 1,
                'sources': {
                    'files': {
                        'loaded_at': NOW,
                        'count': 1,
                        'fingerprint': 'files:' + json.dumps([str(catalog_dir / 'v2.yaml')]),
                        'services': [['stale', None, None]],
                        'teams': [],
                    }
                },
            }
        )
        (catalog_dir / 'v2.yaml').unlink()
        store = harness.store(files=[str(catalog_dir / 'v2.yaml')])
        assert store.current() is None


class TestUnknownKeys:
    """A key a known schema does not define is named, with the closest known key; known keys never are."""

    @pytest.mark.parametrize(
        'path',
        sorted(p for p in CATALOG_FIXTURES.rglob('*') if p.is_file()),
        ids=lambda p: str(p.relative_to(CATALOG_FIXTURES)),
    )
    def test_written_as_the_schemas_say(self, path):
        assert read_definitions_file(str(path)).unknown_keys == ()

    @pytest.mark.parametrize(
        'document, expected',
        [
            (
                {
                    'schema-version': 'v2.2',
                    'dd-service': 'checkout',
                    'integrations': {'pagerduty': {'service_url': 'u'}},
                },
                'unknown key `service_url` in `integrations.pagerduty` of dd-service checkout (schema v2.2) is '
                'ignored: did you mean `service-url`?',
            ),
            (
                {'schema-version': 'v2.1', 'dd-service': 'checkout', 'teams': 'web'},
                'unknown key `teams` of dd-service checkout (schema v2.1) is ignored: did you mean `team`?',
            ),
            (
                {'schema-version': 'v2', 'dd-service': 'checkout', 'integration': {'pagerduty': 'u'}},
                'unknown key `integration` of dd-service checkout (schema v2) is ignored: did you mean `integrations`?',
            ),
            (
                {'schema-version': 'v2.1', 'dd-service': 'checkout', 'integrations': {'pager-duty': 'u'}},
                'unknown key `pager-duty` in `integrations` of dd-service checkout (schema v2.1) is ignored: did you '
                'mean `pagerduty`?',
            ),
            (
                {'apiVersion': 'v3', 'kind': 'service', 'metadata': {'name': 'api', 'ownr': 'web'}},
                'unknown key `ownr` in `metadata` of entity service:api (schema v3) is ignored: did you mean `owner`?',
            ),
            (
                {
                    'apiVersion': 'v3',
                    'kind': 'queue',
                    'metadata': {'name': 'jobs'},
                    'integrations': {'pagerduty': {'serviceUrl': 'u'}},
                },
                'unknown key `serviceUrl` in `integrations.pagerduty` of entity queue:jobs (schema v3) is ignored: '
                'did you mean `serviceURL`?',
            ),
            (
                {'apiVersion': 'v3', 'kind': 'service', 'metadata': {'name': 'api'}, 'zzz': 1},
                'unknown key `zzz` of entity service:api (schema v3) is ignored: the schema has no such key',
            ),
        ],
        ids=[
            'v2.2-service_url',
            'v2.1-teams',
            'v2-integration',
            'v2.1-pager-duty',
            'v3-ownr',
            'v3-serviceUrl',
            'v3-far',
        ],
    )
    def test_misspelt(self, document, expected):
        assert unknown_keys(document) == [expected]

    @pytest.mark.parametrize(
        'document',
        [
            {'schema-version': 'v1', 'info': {'dd-service': 'x'}},
            {'apiVersion': 'v2', 'kind': 'service'},
            ['not', 'a', 'mapping'],
            {'schema-version': 'v2.2', 'dd-service': 'x', 'extensions': {'anything': 1}, 'integrations': 'u'},
        ],
        ids=['unknown-schema', 'unknown-api-version', 'not-a-mapping', 'free-form-parts'],
    )
    def test_nothing_to_say(self, document):
        assert unknown_keys(document) == []
