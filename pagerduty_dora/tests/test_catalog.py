# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.pagerduty_dora.api import ApiClient
from datadog_checks.pagerduty_dora.catalog import (
    CACHE_KEY,
    CatalogStore,
    InvalidDefinition,
    parse_definition,
)
from datadog_checks.pagerduty_dora.mapping import Catalog, CatalogService, CatalogTeam, map_incident
from datadog_checks.pagerduty_dora.simulator.catalog_api import CatalogState, catalog_routes, v3_entity, v22_definition
from datadog_checks.pagerduty_dora.simulator.server import FakeServer, Reply

FIXTURES = Path(__file__).parent / 'fixtures' / 'catalog'
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
            read_cache=self.read_cache,
            write_cache=self.write_cache,
            log=LOG,
            warning=self.warning,
            clock=self.clock,
        )


def datadog_client(url: str, *, app_key: str | None = APP_KEY, max_requests: int = 100) -> ApiClient:
    headers = {'DD-API-KEY': API_KEY}
    if app_key is not None:
        headers['DD-APPLICATION-KEY'] = app_key
    return ApiClient(
        name='datadog',
        http=RequestsWrapper({}, {}),
        base_url=url,
        auth_headers=headers,
        max_requests=max_requests,
        log=LOG,
        sleep=lambda seconds: None,
        jitter=lambda: 0.0,
    )


def as_tuples(services) -> list[tuple]:
    return sorted((s.name, s.team, s.pagerduty_url) for s in services)


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    target = tmp_path / 'catalog'
    shutil.copytree(FIXTURES, target)
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
    ('v3.yaml', [('search', 'discovery', 'https://acme.pagerduty.com/service-directory/PSRC004')]),
    ('more/inventory.yml', [('inventory', 'warehouse', None)]),
]


class TestDefinitionFiles:
    """`catalog_files`: globs of YAML or JSON definitions of every schema version; bad ones skipped with a warning."""

    @pytest.mark.parametrize('name, expected', FILE_CASES, ids=['v2', 'v2.1', 'v2.2-json', 'v3-services-only', 'yml'])
    def test_schema_version(self, harness, name, expected):
        catalog = harness.store(files=[str(FIXTURES / name)]).current()
        assert as_tuples(catalog.services) == expected
        assert all(s.source == 'files' for s in catalog.services)
        assert harness.warnings == []

    def test_multi_document_skips_the_bad_document(self, harness):
        store = harness.store(files=[str(FIXTURES / 'multi.yaml')])
        catalog = store.current()
        assert [s.name for s in catalog.services] == ['notifications', 'sms-gateway']
        assert len(harness.warnings) == 1
        assert 'multi.yaml (document 2)' in harness.warnings[0]
        assert 'dd-service is missing' in harness.warnings[0]

    def test_broken_file_skipped_with_warning(self, harness):
        catalog = harness.store(files=[str(FIXTURES / '*.yaml')]).current()
        assert sorted(s.name for s in catalog.services) == [
            'ledger',
            'notifications',
            'payments-api',
            'search',
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
            'sms-gateway',
        ]
        assert store.counts() == {'files': 7}

    def test_pattern_that_never_matched_holds_everything_back(self, harness, catalog_dir):
        store = harness.store(files=[str(catalog_dir / 'nothing-*.yaml'), str(catalog_dir / 'v2.yaml')])
        assert store.current() is None
        assert len(harness.warnings) == 1
        assert 'nothing-*.yaml matched no file' in harness.warnings[0]

    def test_disappearing_file_keeps_last_good_copy(self, harness, tmp_path, catalog_dir):
        path = tmp_path / 'v2.yaml'
        shutil.copy(catalog_dir / 'v2.yaml', path)
        store = harness.store(files=[str(tmp_path / '*.yaml')])
        assert [s.name for s in store.current().services] == ['payments-api']
        path.unlink()
        harness.clock.now += 600
        assert [s.name for s in store.current().services] == ['payments-api']
        assert len(harness.warnings) == 1
        assert 'matched no file' in harness.warnings[0] and 'last good copy' in harness.warnings[0]

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
        assert 'cannot read' in harness.warnings[0] and 'v2.yaml' in harness.warnings[0]

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
        from .test_mapping import pd_incident

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
    def test_403_names_the_scope(self, harness, account, server, app_key, catalog_read, teams_read, scope):
        account.catalog_read = catalog_read
        account.teams_read = teams_read
        store = harness.store(api=datadog_client(server.url, app_key=app_key))
        assert store.current() is None
        assert store.counts() == {}
        assert len(harness.warnings) == 1
        assert 'never loaded' in harness.warnings[0]
        assert scope in harness.warnings[0] and '403' in harness.warnings[0]
        assert APP_KEY not in ' '.join(harness.warnings) and API_KEY not in ' '.join(harness.warnings)

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
        store = harness.store(api=datadog_client(server.url), files=[str(FIXTURES / 'v2_2.json')])
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
        store = harness.store(api=datadog_client(server.url), files=[str(FIXTURES / 'v2.yaml')])
        assert store.current() is None
        assert store.counts() == {'files': 1}

    def test_cache_round_trip(self, harness, account, server):
        first = harness.store(api=datadog_client(server.url)).current()
        saved = json.loads(harness.cache[CACHE_KEY])
        assert saved['sources']['datadog_api']['loaded_at'] == NOW
        assert saved['sources']['datadog_api']['count'] == 7
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
        assert json.loads(harness.cache[CACHE_KEY])['version'] == 1
