# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any, Iterator

import pytest

from .fakes.server import FakeServer, Reply, Request
from .harness import World
from .paths import TESTS

# The marker of the tests `scripts/test --fast` leaves out (`-m "not slow"`), chosen by their measured
# durations: whole modules mark themselves (`pytestmark`: fuzzing, the command line in subprocesses, the
# model, the engine's bursts, the wheel build, the three-year-old account); the heavy tests of otherwise
# quick modules are named here. CI runs them all.
SLOW_MARKER = 'slow: a test that takes long to run; `scripts/test --fast` leaves it out'
SLOW_TESTS = (
    'collection/test_end_to_end.py::TestScale::test_one_day_with_twelve_thousand_incidents',
    'collection/test_end_to_end.py::TestScale::test_backfill_spreads_over_runs_within_the_request_budget',
    'collection/test_monitor_mapping.py::TestCost::test_a_burst_read_in_one_go',
    'collection/test_state.py::TestRoundTrip::test_every_state_round_trips',
    'collection/test_state.py::TestWholeDocument::test_any_current_document_decodes_part_by_part',
    'collection/test_state_repair.py::TestEveryPart::test_no_run_error_and_every_transition_reported',
    'collection/test_records_index.py::test_kept_answers_equal_a_full_count',
    'collection/test_upgrades.py::TestUpgrade::test_only_changed_and_pending_failures_are_posted',
    'collection/test_upgrades.py::TestUpgrade::test_the_pending_failures_are_delivered',
    'repository/test_layout.py::TestImportPaths::test_no_name_is_imported_through_another_module',
    'common/test_pacing.py::TestRunTime::test_a_short_interval_stops_the_requests_at_half_of_it',
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', SLOW_MARKER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = '::'.join([item.path.relative_to(TESTS).as_posix()] + item.nodeid.split('::')[1:])
        if any(name == slow or name.startswith(slow + '::') or name.startswith(slow + '[') for slow in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


# Tokens shaped like real keys, so a test that looks for a leaked secret finds a distinctive string.
API_TOKEN = 'u+pdTestToken_x9Lk2QwErTy'
DATADOG_API_KEY = 'ddApiKeyForTests0123456789abcdef'

# `GET /incidents` of an account with no incident in scope, as PagerDuty answers it.
EMPTY_INCIDENTS = {'incidents': [], 'limit': 100, 'offset': 0, 'more': False, 'total': 0}


# `GET /log_entries` of an account where nothing happened.
EMPTY_LOG = {'log_entries': [], 'limit': 100, 'offset': 0, 'more': False, 'total': 0}


def _incidents(request: Request) -> Reply:
    return Reply(200, EMPTY_INCIDENTS)


def _log_entries(request: Request) -> Reply:
    return Reply(200, EMPTY_LOG)


def _dora_failure(request: Request) -> Reply:
    return Reply(202, {'data': {'id': 'accepted', 'type': 'dora_failure'}})


def quiet_account_routes() -> list[tuple[str, str, Any]]:
    """Routes of a loopback fake serving both APIs: a PagerDuty account with no incidents, a DORA API that accepts."""
    return [
        ('GET', '/incidents', _incidents),
        ('GET', '/log_entries', _log_entries),
        ('POST', '/api/v2/dora/failure', _dora_failure),
    ]


def make_instance(url: str, **options: Any) -> dict[str, Any]:
    """An instance whose PagerDuty and Datadog APIs are both the loopback fake at `url`."""
    instance: dict[str, Any] = {
        'api_token': API_TOKEN,
        'pagerduty_api_url': url,
        'datadog_api_url': url,
        'datadog_api_key': DATADOG_API_KEY,
    }
    instance.update(options)
    return instance


def assert_configuration_error(dd_run_check: Any, server: FakeServer, options: dict[str, Any], expected: str) -> None:
    """The first run of an instance with `options` fails with a `ConfigurationError` naming `expected`,
    before any request is made."""
    from datadog_checks.pagerduty_dora import PagerdutyDoraCheck

    check = PagerdutyDoraCheck('pagerduty_dora', {}, [make_instance(server.url, **options)])
    requests_before = len(server.requests)
    with pytest.raises(Exception) as raised:
        dd_run_check(check)
    report = str(raised.value)
    assert 'ConfigurationError' in report
    assert expected in report
    assert server.requests[requests_before:] == []


@pytest.fixture(scope='session')
def quiet_server() -> Iterator[FakeServer]:
    with FakeServer(quiet_account_routes()) as server:
        yield server


@pytest.fixture
def instance(quiet_server: FakeServer) -> dict[str, Any]:
    return make_instance(quiet_server.url)


@pytest.fixture
def simulated_run(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Runs of the check on simulated time: rate-limit waits pass at once and are recorded."""
    waits: list[float] = []
    monkeypatch.setattr(time, 'sleep', waits.append)
    return waits


@pytest.fixture
def world() -> Iterator[World]:
    """A simulated PagerDuty account and Datadog API on loopback, stopped after the test."""
    world = World()
    yield world
    world.close()


@pytest.fixture
def services(world):
    """Two services of one team in the simulated account: `checkout` and `billing`."""
    team = world.account.add_team('Payments')
    return {
        'checkout': world.account.add_service('Checkout API', team_ids=[team]),
        'billing': world.account.add_service('Billing', team_ids=[team]),
    }


def _is_loopback(host: Any) -> bool:
    text = host.decode('ascii', 'replace') if isinstance(host, bytes) else str(host)
    if text.strip('[]').lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(text.strip('[]')).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """No connection leaves loopback: a lookup of or a connection to any other host is refused and recorded.

    Tests of hostile URLs use it so that a regression is a failed assertion, never traffic on the network.
    """
    attempts: list[tuple[Any, Any]] = []
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            attempts.append((host, port))
            raise socket.gaierror(socket.EAI_NONAME, 'refused by the test: {!r} is not loopback'.format(host))
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(address[0]):
            attempts.append(tuple(address[:2]))
            raise ConnectionRefusedError('refused by the test: {!r} is not loopback'.format(address[0]))
        return real_create_connection(address, *args, **kwargs)

    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            attempts.append(tuple(address[:2]))
            raise ConnectionRefusedError('refused by the test: {!r} is not loopback'.format(address[0]))
        return real_connect(self, address)

    monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)
    monkeypatch.setattr(socket, 'create_connection', create_connection)
    monkeypatch.setattr(socket.socket, 'connect', connect)
    return attempts
