# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from datadog_checks.base import ConfigurationError
from datadog_checks.pagerduty_dora import PagerdutyDoraCheck
from datadog_checks.pagerduty_dora.config_models.instance import InstanceConfig

from ..conftest import API_TOKEN, DATADOG_API_KEY, assert_configuration_error, make_instance
from ..fakes.server import FakeServer
from ..paths import PACKAGE

CONF_EXAMPLE = PACKAGE / 'data' / 'conf.yaml.example'

# (instance options replacing the valid ones, text the error must contain); the option name comes first.
BAD_VALUES = [
    ({'api_token': ''}, '`api_token` must not be empty'),
    ({'api_token': '   '}, '`api_token` must not be empty'),
    ({'pagerduty_api_url': 'http://api.pagerduty.com'}, '`pagerduty_api_url` must use https'),
    ({'pagerduty_api_url': 'http://10.20.30.40:8080'}, '`pagerduty_api_url` must use https'),
    ({'pagerduty_api_url': 'api.pagerduty.com'}, '`pagerduty_api_url` must be a URL'),
    ({'pagerduty_api_url': 'ftp://api.pagerduty.com'}, '`pagerduty_api_url` must be a URL'),
    ({'pagerduty_api_url': None}, '`pagerduty_api_url` must be a URL, got none'),
    ({'datadog_api_url': 'http://api.datadoghq.com'}, '`datadog_api_url` must use https'),
    ({'datadog_api_url': 'http://127.0.0.1.example.com'}, '`datadog_api_url` must use https'),
    ({'datadog_api_url': 'https://'}, '`datadog_api_url` must be a URL'),
    ({'backfill_days': -1}, '`backfill_days` must be between 0 and 730, got -1'),
    ({'backfill_days': 731}, '`backfill_days` must be between 0 and 730, got 731'),
    ({'backfill_days': '800'}, '`backfill_days` must be between 0 and 730, got 800'),
    ({'recheck_resolved_days': -1}, '`recheck_resolved_days` must be between 0 and 90, got -1'),
    ({'recheck_resolved_days': 91}, '`recheck_resolved_days` must be between 0 and 90, got 91'),
    ({'urgencies': ['high', 'critical']}, "`urgencies` entry #2 must be one of high or low, got 'critical'"),
    ({'urgencies': ['']}, '`urgencies` entry #1 must be one of high or low'),
    ({'catalog_refresh_interval': 0}, '`catalog_refresh_interval` must be greater than 0'),
    ({'catalog_refresh_interval': -600}, '`catalog_refresh_interval` must be greater than 0'),
    ({'max_requests_per_run': 0}, '`max_requests_per_run` must be at least 1, got 0'),
    ({'max_requests_per_run': -5}, '`max_requests_per_run` must be at least 1, got -5'),
    ({'service_overrides': [{'service': 'checkout', 'team': 'payments'}]}, '#1 needs `pagerduty_service`'),
    ({'service_overrides': [{'pagerduty_service': ' ', 'service': 'checkout'}]}, '#1 needs `pagerduty_service`'),
    (
        {'service_overrides': [{'pagerduty_service': 'PABC123', 'env': 'prod'}, {'pagerduty_service': 'PDEF456'}]},
        "entry #2 for 'PDEF456' needs at least one of `service`, `team`, `env`",
    ),
    (
        {'service_overrides': [{'pagerduty_service': 'PABC123', 'service': '', 'team': None}]},
        "entry #1 for 'PABC123' needs at least one of `service`, `team`, `env`",
    ),
    ({'urgencies': 'high'}, "`urgencies` must be a list of high, low or both, got 'high'"),
    ({'priorities': 'P1'}, "`priorities` must be a list of PagerDuty priority names, or `none`, got 'P1'"),
    ({'service_ids': 'PABC123'}, "`service_ids` must be a list of PagerDuty service IDs, got 'PABC123'"),
    ({'severity_mapping': ['P1', 'P2']}, "`severity_mapping` must map priority names to severities"),
    ({'severity_mapping': {'P1': ''}}, "`severity_mapping` must map priority names to severities"),
    ({'timeout': -3}, '`timeout` must be greater than 0 seconds, got -3'),
    ({'timeout': 'soon'}, "`timeout` must be a number of seconds greater than 0, got 'soon'"),
    ({'min_collection_interval': -10}, '`min_collection_interval` must be greater than 0 seconds, got -10'),
    ({'tags': ['team:sre', 'service:checkout']}, "`tags` entry #2 'service:checkout' is not allowed"),
    ({'service': 'checkout'}, "`service` must not be set, got 'checkout'"),
    ({'submit_dora_failures': 'maybe'}, "`submit_dora_failures` must be true or false, got 'maybe'"),
    ({'unmapped_incidents': 'drop'}, "`unmapped_incidents` must be `send` or `skip`, got 'drop'"),
    ({'backfill_days': 'ten'}, "`backfill_days` must be a whole number from 0 to 730, got 'ten'"),
    (
        {'service_overrides': [{'pagerduty_service': 'PABC123', 'servce': 'checkout'}]},
        '(`servce` is not an option: did you mean `service`?)',
    ),
]
BAD_IDS = [
    'api_token-empty',
    'api_token-blank',
    'pagerduty_api_url-http-public-host',
    'pagerduty_api_url-http-private-address',
    'pagerduty_api_url-no-scheme',
    'pagerduty_api_url-ftp',
    'pagerduty_api_url-null',
    'datadog_api_url-http-public-host',
    'datadog_api_url-http-host-looking-like-loopback',
    'datadog_api_url-no-host',
    'backfill_days-negative',
    'backfill_days-above-730',
    'backfill_days-string-above-730',
    'recheck_resolved_days-negative',
    'recheck_resolved_days-above-90',
    'urgencies-unknown',
    'urgencies-empty-string',
    'catalog_refresh_interval-zero',
    'catalog_refresh_interval-negative',
    'max_requests_per_run-zero',
    'max_requests_per_run-negative',
    'service_overrides-no-pagerduty_service',
    'service_overrides-blank-pagerduty_service',
    'service_overrides-no-target',
    'service_overrides-empty-targets',
    'urgencies-not-a-list',
    'priorities-not-a-list',
    'service_ids-not-a-list',
    'severity_mapping-a-list',
    'severity_mapping-empty-severity',
    'timeout-negative',
    'timeout-not-a-number',
    'min_collection_interval-negative',
    'tags-service-tag',
    'service-option',
    'submit_dora_failures-not-a-boolean',
    'unmapped_incidents-unknown',
    'backfill_days-not-a-number',
    'service_overrides-misspelt-target',
]


def _load(instance: dict[str, Any]) -> InstanceConfig:
    """Validate an instance the way the check does at its first run, and return the model."""
    check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
    check.load_configuration_models()
    return check.config


class TestBadConfiguration:
    """Each bad value fails the first run with a ConfigurationError that names the option."""

    @pytest.mark.parametrize('options, expected', BAD_VALUES, ids=BAD_IDS)
    def test_first_run_fails(
        self, dd_run_check: Callable[..., Any], quiet_server: FakeServer, options: dict, expected: str
    ) -> None:
        assert_configuration_error(dd_run_check, quiet_server, options, expected)

    @pytest.mark.parametrize('options, expected', BAD_VALUES, ids=BAD_IDS)
    def test_model_raises_configuration_error(self, options: dict, expected: str) -> None:
        with pytest.raises(ConfigurationError, match='Detected 1 error') as raised:
            _load(make_instance('http://127.0.0.1:9', **options))
        assert expected in str(raised.value)

    def test_missing_api_token_names_it(self) -> None:
        instance = make_instance('http://127.0.0.1:9')
        del instance['api_token']
        with pytest.raises(ConfigurationError, match=r'(?s)api_token.*Field required'):
            _load(instance)

    @pytest.mark.parametrize(
        'options',
        [{'api_token': ''}, {'backfill_days': 999}, {'pagerduty_api_url': 'http://pagerduty.internal'}],
        ids=['empty-token', 'bad-backfill', 'bad-url'],
    )
    def test_secrets_stay_out_of_the_message(self, options: dict) -> None:
        with pytest.raises(ConfigurationError) as raised:
            _load(make_instance('http://127.0.0.1:9', **options))
        assert API_TOKEN not in str(raised.value)
        assert DATADOG_API_KEY not in str(raised.value)


def _taken_as_given() -> list[str]:
    """The options the check, its wiring and the dry run take as filled in: each `cast(type, config.<option>)`."""
    found = set()
    for path in (PACKAGE / 'wiring.py', PACKAGE / 'check.py', PACKAGE / 'cli' / 'dry_run.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'cast':
                value = node.args[1]
                if (
                    isinstance(value, ast.Attribute)
                    and isinstance(value.value, ast.Name)
                    and value.value.id == 'config'
                ):
                    found.add(value.attr)
    return sorted(found)


TAKEN_AS_GIVEN = _taken_as_given()


class TestOptionsTakenAsGiven:
    """What the wiring takes as filled in, the config model guarantees: its default when unset, never a null."""

    def test_the_wiring_takes_options_as_given(self) -> None:
        assert {'pagerduty_api_url', 'min_collection_interval', 'backfill_days', 'attribution_window'} <= set(
            TAKEN_AS_GIVEN
        )

    @pytest.mark.parametrize('option', TAKEN_AS_GIVEN)
    def test_unset_it_has_its_default(self, option: str) -> None:
        assert getattr(_load({'api_token': API_TOKEN}), option) is not None

    @pytest.mark.parametrize('option', TAKEN_AS_GIVEN)
    def test_set_to_null_it_is_refused_by_name(self, option: str) -> None:
        with pytest.raises(ConfigurationError, match='Detected 1 error') as raised:
            _load({'api_token': API_TOKEN, option: None})
        assert '`{}`'.format(option) in str(raised.value)


class TestGoodConfiguration:
    """Valid configurations load, with the defaults of the specification."""

    def test_defaults(self) -> None:
        config = _load({'api_token': API_TOKEN})

        assert config.api_token == API_TOKEN
        assert config.pagerduty_api_url == 'https://api.pagerduty.com'
        assert config.backfill_days == 30
        assert config.recheck_resolved_days == 14
        assert config.catalog_refresh_interval == 600
        # Unset: the runs pace themselves by the APIs' advertised limits and a share of the interval.
        assert config.max_requests_per_run is None
        assert config.submit_dora_failures is True
        assert config.collect_events is True
        assert config.min_collection_interval == 60
        unset = (
            'env',
            'service_ids',
            'team_ids',
            'urgencies',
            'priorities',
            'datadog_app_key',
            'catalog_files',
            'service_overrides',
            'severity_mapping',
            'datadog_api_url',
            'datadog_api_key',
            'service',
        )
        assert {name: getattr(config, name) for name in unset} == dict.fromkeys(unset)

    @pytest.mark.parametrize(
        'url',
        [
            'https://api.pagerduty.com',
            'https://api.eu.pagerduty.com/',
            'http://127.0.0.1:8080',
            'http://127.3.4.5',
            'http://localhost:9000',
            'http://LOCALHOST',
            'http://[::1]:8443',
        ],
        ids=[
            'https',
            'https-eu',
            'http-127.0.0.1',
            'http-127/8',
            'http-localhost',
            'http-localhost-upper',
            'http-ipv6',
        ],
    )
    def test_accepted_urls(self, url: str) -> None:
        config = _load({'api_token': API_TOKEN, 'pagerduty_api_url': url, 'datadog_api_url': url})
        assert (config.pagerduty_api_url, config.datadog_api_url) == (url, url)

    @pytest.mark.parametrize(
        'option, value, loaded',
        [
            ('backfill_days', 0, 0),
            ('backfill_days', 730, 730),
            ('recheck_resolved_days', 0, 0),
            ('recheck_resolved_days', 90, 90),
            ('catalog_refresh_interval', 1, 1),
            ('max_requests_per_run', 1, 1),
            ('urgencies', ['HIGH', ' low '], ('high', 'low')),
        ],
        ids=[
            'backfill-0',
            'backfill-730',
            'recheck-0',
            'recheck-90',
            'refresh-1s',
            'one-request',
            'urgencies-normalised',
        ],
    )
    def test_boundaries(self, option: str, value: Any, loaded: Any) -> None:
        config = _load({'api_token': API_TOKEN, option: value})
        assert getattr(config, option) == loaded

    def test_every_option(self) -> None:
        config = _load(
            {
                'api_token': API_TOKEN,
                'pagerduty_api_url': 'https://api.eu.pagerduty.com',
                'env': 'prod',
                'service_ids': ['PABC123', 'PDEF456'],
                'team_ids': ['PT4KHLK'],
                'urgencies': ['high'],
                'priorities': ['P1', 'none'],
                'backfill_days': 90,
                'datadog_app_key': 'appkey0123456789',
                'catalog_files': ['/etc/datadog-agent/catalog/*.yaml'],
                'catalog_refresh_interval': 300,
                'service_overrides': [
                    {'pagerduty_service': 'PABC123', 'service': 'checkout', 'team': 'payments'},
                    {'pagerduty_service': 'Search API', 'env': 'staging'},
                ],
                'severity_mapping': {'P1': 'SEV-1', 'P2': 'SEV-2'},
                'submit_dora_failures': False,
                'datadog_api_url': 'https://api.datadoghq.eu',
                'datadog_api_key': DATADOG_API_KEY,
                'collect_events': False,
                'max_requests_per_run': 100,
                'tags': ['team:sre'],
            }
        )
        assert config.service_overrides is not None
        assert [(o.pagerduty_service, o.service, o.team, o.env) for o in config.service_overrides] == [
            ('PABC123', 'checkout', 'payments', None),
            ('Search API', None, None, 'staging'),
        ]
        assert dict(config.severity_mapping or {}) == {'P1': 'SEV-1', 'P2': 'SEV-2'}
        assert (config.priorities, config.backfill_days, config.submit_dora_failures) == (('P1', 'none'), 90, False)

    def test_example_file_instance_loads(self) -> None:
        example = yaml.safe_load(CONF_EXAMPLE.read_text())
        (instance,) = example['instances']
        assert set(instance) == {'api_token'}
        config = _load(instance)
        assert config.pagerduty_api_url == 'https://api.pagerduty.com'

    def test_first_run_succeeds(self, dd_run_check: Callable[..., Any], instance: dict) -> None:
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [instance])
        dd_run_check(check)
        assert check.config.api_token == API_TOKEN


class TestUnknownOptions:
    """An option name the check does not know is a warning naming it and the closest known name."""

    @pytest.mark.parametrize(
        'options, expected',
        [
            (
                {'backfil_days': 7},
                'Unknown option `backfil_days` in the instance is ignored: did you mean `backfill_days`?',
            ),
            ({'urgency': ['high']}, 'Unknown option `urgency` in the instance is ignored: did you mean `urgencies`?'),
            (
                {'service_overrides': [{'pagerduty_service': 'PABC123', 'team': 'payments', 'servce': 'checkout'}]},
                'Unknown option `servce` in `service_overrides` entry #1 is ignored: did you mean `service`?',
            ),
            (
                {'zzqx_flag': True},
                'Unknown option `zzqx_flag` in the instance is ignored: it is not an option of this check',
            ),
        ],
        ids=['backfil_days', 'urgency', 'servce-in-service_overrides', 'nothing-close'],
    )
    def test_warned_once_per_check_instance(
        self, dd_run_check: Callable[..., Any], quiet_server: FakeServer, options: dict, expected: str
    ) -> None:
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [make_instance(quiet_server.url, **options)])
        dd_run_check(check)
        dd_run_check(check)
        assert [w for w in check.warnings if 'Unknown option' in w] == [expected]

    def test_init_config(self, dd_run_check: Callable[..., Any], quiet_server: FakeServer) -> None:
        check = PagerdutyDoraCheck('pagerduty_dora', {'timout': 5}, [make_instance(quiet_server.url)])
        dd_run_check(check)
        assert [w for w in check.warnings if 'Unknown option' in w] == [
            'Unknown option `timout` in `init_config` is ignored: did you mean `timeout`?'
        ]

    def test_known_options_give_no_warning(self, dd_run_check: Callable[..., Any], quiet_server: FakeServer) -> None:
        options = {
            'env': 'prod',
            'tags': ['team:sre'],
            'min_collection_interval': 30,
            'timeout': 5,
            'unmapped_incidents': 'skip',
            'service_overrides': [{'pagerduty_service': 'PABC123', 'service': 'checkout'}],
            'proxy': {'https': 'http://proxy.internal:3128', 'no_proxy': ['127.0.0.1']},
        }
        check = PagerdutyDoraCheck('pagerduty_dora', {}, [make_instance(quiet_server.url, **options)])
        dd_run_check(check)
        assert [w for w in check.warnings if 'Unknown option' in w] == []


def _imported_modules(path: Path) -> list[tuple[str, bool]]:
    """(module, at the top level) of every `from ... import` and `import` of a source file."""
    import ast

    tree = ast.parse(path.read_text(encoding='utf-8'))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append(('.' * node.level + (node.module or ''), id(node) in top))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, id(node) in top) for alias in node.names)
    return found


class TestSpellingImports:
    """The option-name suggestions and the config models import one way: spelling reads the models."""

    def test_validators_do_not_import_the_config_package(self) -> None:
        modules = _imported_modules(PACKAGE / 'config_models' / 'validators.py')
        assert [m for m, _ in modules if m.startswith('datadog_checks.pagerduty_dora.config.')] == []
        assert [m for m, top in modules if not top] == []

    def test_spelling_imports_the_models_at_the_top(self) -> None:
        modules = _imported_modules(PACKAGE / 'config' / 'spelling.py')
        assert [m for m, top in modules if not top] == []
        assert sorted(m for m, _ in modules if m.startswith('datadog_checks.pagerduty_dora.config_models')) == [
            'datadog_checks.pagerduty_dora.config_models.instance',
            'datadog_checks.pagerduty_dora.config_models.shared',
            'datadog_checks.pagerduty_dora.config_models.validators',
        ]

    def test_one_matcher(self) -> None:
        from datadog_checks.pagerduty_dora.config_models import validators

        # Spelling suggests with the models' matcher, imported from them, and has none of its own.
        spelling = (PACKAGE / 'config' / 'spelling.py').read_text(encoding='utf-8')
        assert 'from datadog_checks.pagerduty_dora.config_models.validators import closest' in spelling
        assert 'def closest(' not in spelling
        assert validators.closest('servce', ('service', 'team', 'env')) == 'service'
        assert validators.closest('zzqx', ('service', 'team', 'env')) is None
