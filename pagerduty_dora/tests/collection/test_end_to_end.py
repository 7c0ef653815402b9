# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The collection engine end to end: the check against loopback fakes of PagerDuty and Datadog."""

import random
from collections import Counter

import pytest

from datadog_checks.dev.utils import get_metadata_metrics
from datadog_checks.pagerduty_dora.datadog.dora import failure_id

from ..fakes.pagerduty import PagerDutyAccount
from ..fakes.server import FakeServer, Reply
from ..harness import DAY, DD_APP_KEY, START, World, event_keys, transition_of

pytestmark = pytest.mark.usefixtures('datadog_agent', 'simulated_run')


def kinds(aggregator):
    return sorted(transition_of(e) for e in aggregator.events)


class TestLifecycle:
    """Each transition of an incident is seen once, in the run after it happens."""

    def test_trigger_ack_resolve(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        assert aggregator.events == []

        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Checkout latency above SLO', priority='P1')
        world.account.advance(60)
        dd_run_check(check)
        assert kinds(aggregator) == ['triggered']
        event = aggregator.events[0]
        assert event['aggregation_key'] == incident
        assert event['alert_type'] == 'error'
        assert event['timestamp'] == int(world.account.now - 60)
        aggregator.assert_metric('pagerduty_dora.incidents.triggered', value=1, count=1)
        aggregator.assert_metric(
            'pagerduty_dora.incidents.open',
            value=1,
            tags=[
                'status:triggered',
                'service:Checkout API',
                'team:Payments',
                'severity:P1',
                'urgency:high',
                'pagerduty_service:Checkout API',
                'pagerduty_team:Payments',
            ],
        )

        aggregator.reset()
        world.account.acknowledge(incident)
        world.account.advance(300)
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(check)
        assert kinds(aggregator) == ['acknowledged', 'resolved']
        aggregator.assert_metric('pagerduty_dora.incidents.time_to_acknowledge', value=60, count=1)
        aggregator.assert_metric('pagerduty_dora.incidents.time_to_restore', value=360, count=1)
        aggregator.assert_metric('pagerduty_dora.api.can_connect', value=1, tags=['api:pagerduty'])
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)

        failure = world.dora.failures[failure_id(incident)]
        assert failure['finished_at'] - failure['started_at'] == 360 * 10**9
        assert failure['severity'] == 'P1'

        aggregator.reset()
        world.account.advance(60)
        dd_run_check(check)
        assert aggregator.events == []
        aggregator.assert_metric('pagerduty_dora.incidents.open', count=0, value=1)

    def test_reopen_of_a_twenty_day_old_incident(self, world, services, dd_run_check, aggregator):
        old = world.account.trigger(services['billing'], 'Invoices stuck', created_at=START - 20 * DAY)
        world.account.now = START - 20 * DAY + 3600
        world.account.resolve(old)
        world.account.now = START
        check = world.check(backfill_days=7)
        dd_run_check(check)
        assert aggregator.events == []

        world.account.advance(120)
        world.account.reopen(old)
        world.account.advance(60)
        dd_run_check(check)
        assert kinds(aggregator) == ['reopened']
        assert world.dora.failures[failure_id(old)].get('finished_at') is None

    def test_reopen_of_a_pruned_incident(self, world, services, dd_run_check, aggregator, datadog_agent):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Queue backlog')
        world.account.advance(600)
        world.account.resolve(incident)
        world.account.advance(60)
        dd_run_check(check)
        assert kinds(aggregator) == ['resolved', 'triggered']
        assert incident in check.collector.state.incidents

        world.account.advance(10 * DAY)
        dd_run_check(check)
        assert incident not in check.collector.state.incidents

        aggregator.reset()
        world.account.reopen(incident)
        world.account.advance(60)
        dd_run_check(world.check())
        assert kinds(aggregator) == ['reopened']

    def test_priority_change_of_an_open_incident(self, world, services, dd_run_check, aggregator):
        incident = world.account.trigger(services['checkout'], 'Error rate', priority='P3')
        world.account.advance(1)
        check = world.check(severity_mapping={'P1': 'critical', 'P3': 'minor'})
        dd_run_check(check)
        assert world.dora.failures[failure_id(incident)]['severity'] == 'minor'

        world.account.advance(60)
        world.account.set_priority(incident, 'P1')
        world.account.advance(60)
        dd_run_check(check)
        assert kinds(aggregator) == ['priority_changed']
        assert world.dora.failures[failure_id(incident)]['severity'] == 'critical'
        assert len(world.dora.posts) == 2


class TestLongStories:
    """A new incident with more log entries between two runs than a page holds is told from its trigger on."""

    @staticmethod
    def flapping(world, services, cycles):
        """An incident acknowledged a second after its trigger, then `cycles` times unacknowledged and taken again.

        With its trigger and assignment that makes 3 + 2 * `cycles` overview entries, one a second; returns
        its id and the (timestamp, transition) of the events its story should give, in order.
        """
        incident = world.account.trigger(services['checkout'], 'Flapping')
        created = int(world.account.created_at(incident))
        world.account.advance(1)
        world.account.acknowledge(incident)
        story = [(created, 'triggered'), (created + 1, 'acknowledged')]
        for n in range(cycles):
            world.account.advance(1)
            world.account.unacknowledge(incident)
            world.account.advance(1)
            world.account.acknowledge(incident)
            story += [(created + 2 + 2 * n, 'unacknowledged'), (created + 3 + 2 * n, 'acknowledged')]
        world.account.advance(60)
        return incident, story

    @staticmethod
    def told(aggregator):
        """(timestamp, transition) of the events sent so far, in the order sent, and the times to acknowledge."""
        events = [(e['timestamp'], transition_of(e)) for e in aggregator.events]
        samples = [m.value for m in aggregator.metrics('pagerduty_dora.incidents.time_to_acknowledge')]
        return events, samples

    def test_its_first_acknowledgement_is_taken_from_the_page_with_its_trigger(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        # 103 entries: the feed reads them in two pages, the trigger and first acknowledgement on the second.
        incident, story = self.flapping(world, services, 50)
        feed_before, own_before = world.pagerduty.count('/log_entries'), world.pagerduty.count('/incidents/')
        dd_run_check(check)
        assert self.told(aggregator) == (story, [1])
        assert world.pagerduty.count('/log_entries') - feed_before == 2
        # Nothing read by id: its own log is not needed.
        assert world.pagerduty.count('/incidents/') - own_before == 0
        aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)

    def test_a_run_stopped_between_the_pages_reads_them_again(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident, story = self.flapping(world, services, 50)

        def second_page_unavailable(request):
            if request.path == '/log_entries' and request.arg('offset') != '0':
                return Reply(503, {'error': {'message': 'Service Unavailable', 'code': 5000}})
            return None

        world.pagerduty.server.fault = second_page_unavailable
        with pytest.raises(Exception, match='503'):
            dd_run_check(check)
        assert self.told(aggregator) == ([], [])
        world.pagerduty.server.fault = None
        feed_before = world.pagerduty.count('/log_entries')
        dd_run_check(check)
        assert self.told(aggregator) == (story, [1])
        # The first page again, then the second.
        assert world.pagerduty.count('/log_entries') - feed_before == 2

    def test_a_story_longer_than_the_pages_held_is_read_from_the_incidents_own_log(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        # 1,203 entries, thirteen pages of the feed: past the ten it reads holding the newest ones back.
        incident, story = self.flapping(world, services, 600)
        feed_before = world.pagerduty.count('/log_entries')
        own_before = world.pagerduty.count('/incidents/{}/log_entries'.format(incident))
        dd_run_check(check)
        assert self.told(aggregator) == (story, [1])
        assert world.pagerduty.count('/log_entries') - feed_before == 13
        # All thirteen pages of its own log, read once.
        assert world.pagerduty.count('/incidents/{}/log_entries'.format(incident)) - own_before == 13

    def test_under_a_small_request_budget_fewer_pages_are_held_and_each_run_gets_past_them(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check(max_requests_per_run=7)
        dd_run_check(check)
        world.account.advance(60)
        # 303 entries: four pages of the feed, four of the incident's own log.
        incident, story = self.flapping(world, services, 150)
        own_log = '/incidents/{}/log_entries'.format(incident)
        offsets = []
        for _ in range(2):
            before = len(world.pagerduty.requests)
            dd_run_check(check)
            offsets.append([r.arg('offset') for r in world.pagerduty.requests[before:] if r.path == '/log_entries'])
        # Seven requests a run hold two pages at most, so that a run can read them again and still afford
        # the incident's own log: the third page hands it over, its own log takes the rest of the run,
        # and the last page is read by the next one.
        assert offsets == [['0', '97', '194'], ['291']]
        assert world.pagerduty.count(own_log) == 4
        assert self.told(aggregator) == (story, [1])

    def test_reading_its_own_log_stops_at_the_runs_deadline(self, world, services, dd_run_check, aggregator):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident, story = self.flapping(world, services, 600)
        own_log = '/incidents/{}/log_entries'.format(incident)

        def slow_third_page(request):
            if request.path == own_log and request.arg('offset') == '200':
                # The answer takes the rest of the run.
                world.account.advance(60)
            return None

        world.pagerduty.server.fault = slow_third_page
        dd_run_check(check)
        stopped = 'pagerduty API: incident_log_entries body was still arriving at the run deadline'
        assert check.last_report.stopped == stopped
        assert world.pagerduty.count(own_log) == 3
        assert self.told(aggregator) == ([], [])
        world.pagerduty.server.fault = None
        dd_run_check(check)
        assert self.told(aggregator) == (story, [1])
        assert world.pagerduty.count(own_log) == 3 + 13


def late(kind, delay):
    """An `index_delay` showing entries of `kind` in the log lists `delay` seconds after their time, others at once."""
    return lambda entry_type: delay if entry_type == kind else 0


class TestLateEntries:
    """Entries PagerDuty indexes up to 15 minutes late are reported once, at their own time."""

    @pytest.mark.parametrize('delay', [5 * 60, 8 * 60, 15 * 60], ids=['5min', '8min', '15min'])
    def test_an_acknowledgement_indexed_late_then_a_resolve_on_time(
        self, world, services, dd_run_check, aggregator, delay
    ):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Acknowledged, indexed late')
        created = int(world.account.created_at(incident))
        world.account.advance(60)
        dd_run_check(check)
        world.account.index_delay = late('acknowledge_log_entry', delay)
        world.account.acknowledge(incident)
        world.account.index_delay = 0
        world.account.advance(60)
        world.account.resolve(incident)
        # Runs every minute until well past the delay.
        for _ in range(30):
            world.account.advance(60)
            dd_run_check(check)
        # Once each, at its own time (a late entry's event may come after later ones).
        events = sorted((e['timestamp'], transition_of(e)) for e in aggregator.events)
        assert events == [(created, 'triggered'), (created + 60, 'acknowledged'), (created + 120, 'resolved')]
        assert [m.value for m in aggregator.metrics('pagerduty_dora.incidents.time_to_acknowledge')] == [60]

    def test_an_unacknowledge_indexed_ten_minutes_late_then_acknowledged_again_on_time(
        self, world, services, dd_run_check, aggregator
    ):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Unacknowledged, indexed late')
        created = int(world.account.created_at(incident))
        world.account.advance(60)
        world.account.acknowledge(incident)
        world.account.advance(60)
        dd_run_check(check)
        world.account.index_delay = late('unacknowledge_log_entry', 10 * 60)
        world.account.unacknowledge(incident)
        world.account.index_delay = 0
        world.account.advance(60)
        world.account.acknowledge(incident)
        for _ in range(30):
            world.account.advance(60)
            dd_run_check(check)
        events = sorted((e['timestamp'], transition_of(e)) for e in aggregator.events)
        assert events == [
            (created, 'triggered'),
            (created + 60, 'acknowledged'),
            (created + 120, 'unacknowledged'),
            (created + 180, 'acknowledged'),
        ]
        assert [m.value for m in aggregator.metrics('pagerduty_dora.incidents.time_to_acknowledge')] == [60]


class TestRestarts:
    """A new check instance over the same persistent cache repeats nothing and misses nothing."""

    def test_restart_in_the_middle_of_a_lifecycle(self, world, services, dd_run_check, aggregator):
        dd_run_check(world.check())
        world.account.advance(60)
        incident = world.account.trigger(services['checkout'], 'Disk full')
        world.account.advance(60)
        dd_run_check(world.check())
        assert kinds(aggregator) == ['triggered']

        aggregator.reset()
        dd_run_check(world.check())
        assert aggregator.events == []

        world.account.acknowledge(incident)
        world.account.advance(60)
        dd_run_check(world.check(timeout=7, tags=['team_owner:sre']))
        assert kinds(aggregator) == ['acknowledged']
        assert 'team_owner:sre' in aggregator.events[0]['tags']

    def test_another_scope_starts_fresh(self, world, services, dd_run_check, aggregator):
        dd_run_check(world.check())
        world.account.advance(60)
        world.account.trigger(services['checkout'], 'Disk full')
        world.account.advance(60)
        # Another scope is another collection: its first run only records.
        dd_run_check(world.check(service_ids=[services['checkout']]))
        assert aggregator.events == []


class TestScale:
    """Windows stay under PagerDuty's offset cap, and big loads spread over runs."""

    def test_one_day_with_twelve_thousand_incidents(self, world, services, dd_run_check, aggregator):
        # The feed's own cost; the monitor step's in a burst is in collection/test_monitor_mapping.py.
        check = world.check(submit_dora_failures=False, collect_events=True, monitor_mapping=False)
        dd_run_check(check)
        base = world.account.now
        rng = random.Random(7)
        for created in sorted(base + rng.uniform(0, DAY) for _ in range(12000)):
            world.account.now = created
            world.account.resolve(world.account.trigger(services['checkout'], 'Burst'))
        world.account.now = base + DAY + 60
        dd_run_check(check)
        counted = event_keys(aggregator)
        assert len(counted) == 24000
        assert set(counted.values()) == {1}
        assert Counter(kind for _, kind in counted) == {'triggered': 12000, 'resolved': 12000}
        errors = [r for r in world.pagerduty.requests if int(r.arg('offset', '0')) + int(r.arg('limit', '25')) > 10000]
        assert errors == []
        # The change feed reads each incident's overview log entries (trigger, assignment, resolve).
        entries = 3 * 12000
        assert world.pd_requests() <= 1.05 * entries / 100 + 10

    def test_backfill_spreads_over_runs_within_the_request_budget(self, world, services, dd_run_check, aggregator):
        rng = random.Random(3)
        ids = []
        for created in sorted(START - rng.uniform(0, 29 * DAY) for _ in range(240)):
            world.account.now = created
            ids.append(world.account.trigger(services['billing'], 'Old'))
            if len(ids) % 10:
                world.account.advance(600)
                world.account.resolve(ids[-1])
        world.account.now = START
        check = world.check(max_requests_per_run=7)
        runs = 0
        while len(world.dora.failures) < len(ids) and runs < 100:
            before_pd, before_dd = world.pd_requests(), world.datadog.count('POST')
            dd_run_check(check)
            assert world.pd_requests() - before_pd <= 7
            assert world.datadog.count('POST') - before_dd <= 7
            world.account.advance(60)
            runs += 1
        assert set(world.dora.failures) == {failure_id(i) for i in ids}
        assert len(world.dora.posts) == len(ids)
        assert aggregator.events == []

    def test_idle_run_makes_at_most_two_requests(self, world, services, dd_run_check):
        check = world.check()
        dd_run_check(check)
        world.account.advance(60)
        before = world.pd_requests()
        dd_run_check(check)
        assert world.pd_requests() - before <= 2


class TestRequests:
    """What the client asks PagerDuty, whatever the account's time zone."""

    def test_explicit_utc_and_creation_windows(self, dd_run_check):
        account = PagerDutyAccount(now=START, time_zone='Pacific/Kiritimati')
        world = World(account)
        try:
            team = account.add_team('Ops')
            service = account.add_service('Edge', team_ids=[team])
            account.trigger(service, 'Old', created_at=START - 2 * DAY)
            dd_run_check(world.check(backfill_days=3))
            listed = [r for r in world.pagerduty.requests if r.path in ('/incidents', '/log_entries')]
            windowed = [r for r in listed if r.arg('date_range') != 'all']
            assert windowed
            for request in listed:
                assert request.arg('time_zone') == 'UTC'
                assert request.headers['accept'] == 'application/vnd.pagerduty+json;version=2'
            for request in windowed:
                assert request.arg('since').endswith('Z') and request.arg('until').endswith('Z')
            assert len(world.dora.failures) == 1
        finally:
            world.close()

    def test_budget_holds_against_a_server_that_always_has_more(self, dd_run_check):
        page = {'incidents': [], 'log_entries': [], 'limit': 100, 'offset': 0, 'more': True, 'total': None}
        server = FakeServer(
            [('GET', '/incidents', lambda r: Reply(200, page)), ('GET', '/log_entries', lambda r: Reply(200, page))]
        ).start()
        try:
            world = World()
            check = world.check(pagerduty_api_url=server.url, max_requests_per_run=25)
            for _ in range(3):
                before = server.count('GET')
                dd_run_check(check)
                # Never past the budget; an empty page that claims more is not believed at all.
                assert server.count('GET') - before == 2
            world.close()
        finally:
            server.stop()


class TestAuth:
    """401 and 403 from PagerDuty: can_connect 0, and the run ends with a message that says which."""

    @pytest.mark.parametrize(
        'token, forbidden, expected',
        [('u+0Bad0Key0Xq9', (), '401 Unauthorized'), ('u+0NoScope0Zr7', ('u+0NoScope0Zr7',), '403 Forbidden')],
        ids=['bad-key', 'missing-scope'],
    )
    def test_auth_failures(self, dd_run_check, aggregator, token, forbidden, expected):
        world = World(forbidden_tokens=forbidden)
        try:
            check = world.check(api_token=token)
            with pytest.raises(Exception, match=expected) as raised:
                dd_run_check(check)
            aggregator.assert_metric('pagerduty_dora.api.can_connect', value=0, tags=['api:pagerduty'])
            assert token not in str(raised.value)
        finally:
            world.close()


class TestFaults:
    """Seeded random faults over many runs of a changing world, then clean runs: nothing missed, nothing twice.

    The world changes between runs as a real account does: several changes to one incident between
    two runs (acknowledge then unacknowledge, resolve then reopen...), merges and deletions.
    """

    @pytest.mark.parametrize('seed', [1, 2, 3], ids=['seed-1', 'seed-2', 'seed-3'])
    def test_chaos(self, seed, dd_run_check, aggregator):
        world = World(timeout_delay=1.5)
        try:
            team = world.account.add_team('Core')
            service_ids = [world.account.add_service('svc-{}'.format(i), team_ids=[team]) for i in range(3)]
            rng = random.Random(seed)
            check = world.check(timeout=1, datadog_app_key=DD_APP_KEY)
            dd_run_check(check)
            world.account.advance(60)
            expected = Counter()
            incidents = []
            gone = set()
            world.pagerduty.faults.chaos(
                0.25, seed=seed, kinds=('429', '429_bare', '500', '502', 'truncated', 'bad_json')
            )
            failed_runs = 0
            for _ in range(40):
                for _ in range(rng.randint(0, 4)):
                    self._mutate(world.account, rng, service_ids, incidents, expected, gone, event_keys(aggregator))
                    world.account.advance(rng.randint(1, 20))
                world.account.advance(60)
                if rng.random() < 0.3:
                    world.dora.faults.fail_next(rng.randint(1, 3), rng.choice([429, 500, 503]))
                try:
                    dd_run_check(check)
                except Exception:
                    failed_runs += 1
            # The seeded faults fail these many of the 40 runs.
            assert failed_runs == {1: 5, 2: 7, 3: 10}[seed]
            world.pagerduty.faults.chaos(0)
            for _ in range(5):
                world.account.advance(60)
                dd_run_check(check)
            assert event_keys(aggregator) == expected
            assert gone
            for incident in incidents:
                if incident in gone:
                    # Removed; or, for an incident deleted once resolved (nothing lists it again), closed.
                    left = world.dora.failures.get(failure_id(incident))
                    assert left is None or left.get('finished_at') is not None
                    continue
                state = world.account.status(incident)
                failure = world.dora.failures[failure_id(incident)]
                assert (failure.get('finished_at') is not None) == (state == 'resolved')
        finally:
            world.close()

    @staticmethod
    def _mutate(account, rng, service_ids, incidents, expected, gone, observed):
        """One change to the world; several status changes may hit one incident between two runs.

        A priority change, a merge and a deletion only hit an incident whose earlier changes were all
        reported: two priority changes between two looks are seen as their net change, and an
        incident deleted or merged away before any run saw it is never reported.
        """
        alive = [i for i in incidents if i not in gone]
        settled = {i for i in alive if all(observed[(i, kind)] >= n for (key, kind), n in expected.items() if key == i)}
        choices = ['trigger'] + (['change'] * 5 + ['merge', 'delete'] if alive else [])
        choice = rng.choice(choices)
        if choice == 'trigger':
            incident = account.trigger(rng.choice(service_ids), 'Chaos', priority=rng.choice(['P1', 'P2', None]))
            incidents.append(incident)
            expected[(incident, 'triggered')] += 1
            return
        incident = rng.choice(alive)
        status = account.status(incident)
        if choice in ('delete', 'merge') and incident not in settled:
            return
        if choice == 'delete':
            # A deleted incident's failure is removed; what was reported before stays reported.
            account.delete(incident)
            gone.add(incident)
            return
        if choice == 'merge':
            survivors = [i for i in settled if i != incident and account.status(i) != 'resolved']
            if status == 'resolved' or not survivors:
                return
            # A merge resolves the incident: its resolve is reported, and its failure removed (the survivor counts it).
            account.merge(incident, rng.choice(survivors))
            expected[(incident, 'resolved')] += 1
            gone.add(incident)
            return
        if status == 'resolved':
            account.reopen(incident)
            expected[(incident, 'reopened')] += 1
        elif status == 'triggered':
            move = rng.choice(
                ['acknowledge', 'resolve', 'priority'] if incident in settled else ['acknowledge', 'resolve']
            )
            if move == 'acknowledge':
                account.acknowledge(incident)
                expected[(incident, 'acknowledged')] += 1
            elif move == 'resolve':
                account.resolve(incident)
                expected[(incident, 'resolved')] += 1
            else:
                current = (account.incident(incident).get('priority') or {}).get('name')
                account.set_priority(incident, rng.choice([p for p in ('P3', 'P4') if p != current]))
                expected[(incident, 'priority_changed')] += 1
        else:
            if rng.random() < 0.5:
                account.unacknowledge(incident)
                expected[(incident, 'unacknowledged')] += 1
            else:
                account.resolve(incident)
                expected[(incident, 'resolved')] += 1
