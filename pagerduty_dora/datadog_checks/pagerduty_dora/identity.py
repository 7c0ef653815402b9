# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""An instance's identity, what it collects, and where its memory lies in the Agent's persistent cache.

The identity is the PagerDuty account (API URL and a hash of the token), the scope (`service_ids`,
`team_ids`), the filters (`urgencies`, `priorities`) and the Datadog destination (`datadog_api_url`:
two instances sending the same collection to two organizations keep two memories). Every other
option (timeouts, tags, mapping, `env`, catalogs, keys, delivery switches) can change without
touching the collection.

Earlier releases keyed the cache on other sets of options. `Memory` reads what an earlier scheme
stored for the same instance when the current key holds nothing, and writes only under the
current key, so an upgrade keeps the collection going.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from datadog_checks.pagerduty_dora.config_models import defaults

# The document whose presence says where an instance's memory is.
STATE_KEY = 'collector'


def sorted_strings(value: Any) -> list[str]:
    """A list option as sorted strings, whatever the Agent handed over (a bad value fails validation later)."""
    return sorted(str(item) for item in value) if isinstance(value, (list, tuple)) else []


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode('utf-8')).hexdigest()[:32]


def account(instance: dict[str, Any]) -> dict[str, Any]:
    """The PagerDuty account (API URL, a hash of the key) and scope of `instance`."""
    token = str(instance.get('api_token') or '')
    return {
        'url': str(instance.get('pagerduty_api_url') or defaults.instance_pagerduty_api_url()).rstrip('/'),
        'token': hashlib.sha256(token.encode('utf-8')).hexdigest()[:16],
        'service_ids': sorted_strings(instance.get('service_ids')),
        'team_ids': sorted_strings(instance.get('team_ids')),
    }


def cache_id(instance: dict[str, Any]) -> str:
    """The persistent cache id of this release: a digest of the identity (the token enters only as a hash)."""
    return _digest(
        dict(
            account(instance),
            urgencies=sorted_strings(instance.get('urgencies')),
            priorities=sorted_strings(instance.get('priorities')),
            datadog_api_url=str(instance.get('datadog_api_url') or '').rstrip('/'),
        )
    )


def earlier_cache_ids(instance: dict[str, Any]) -> list[str]:
    """The ids earlier releases stored this instance's memory under, newest first."""
    return [
        # Releases of 2026-12-01 and 2026-12-02 (state layout 3) also keyed on env and unmapped_incidents.
        _digest(
            dict(
                account(instance),
                urgencies=sorted_strings(instance.get('urgencies')),
                priorities=sorted_strings(instance.get('priorities')),
                env=str(instance.get('env') or ''),
                unmapped_incidents=str(instance.get('unmapped_incidents') or 'send'),
                datadog_api_url=str(instance.get('datadog_api_url') or '').rstrip('/'),
            )
        ),
        # Releases before (state layouts 1 and 2) keyed on the account and scope only.
        _digest(account(instance)),
    ]


def instance_tags(instance: dict[str, Any]) -> list[str]:
    """The values of the instance tag this instance's events carry, of this release and the one before."""
    return [cache_id(instance)[:16], earlier_cache_ids(instance)[0][:16]]


class Memory:
    """The persistent cache as the parts see it: this identity's entries, or an earlier scheme's.

    `read` and `write` are the check's own cache calls; `read_raw` reads a whole cache key (the
    Agent's `datadog_agent.read_persistent_cache`), and `prefix` turns a cache id into the prefix the
    Agent puts before an entry's key. An entry found under an earlier id is copied to the current
    one as it is read, so the memory moves whole to the current key.
    """

    def __init__(
        self,
        read: Callable[[str], str],
        write: Callable[[str, str], None],
        read_raw: Callable[[str], str],
        prefix: Callable[[str], str],
        earlier: list[str],
    ) -> None:
        self._read = read
        self._write = write
        self._read_raw = read_raw
        self._prefix = prefix
        self._earlier = earlier
        self._source: str | None = None
        self.found_earlier = False

    def read(self, key: str) -> str:
        value = self._read(key)
        if value:
            return value
        source = self._earlier_source()
        if not source:
            return value
        value = self._read_raw(self._prefix(source) + key)
        if value:
            self._write(key, value)
        return value

    def _earlier_source(self) -> str:
        """The earlier id holding this instance's memory when the current one holds none ('' for none)."""
        if self._source is None:
            self._source = ''
            if not self._read(STATE_KEY):
                for earlier in self._earlier:
                    if self._read_raw(self._prefix(earlier) + STATE_KEY):
                        self._source = earlier
                        self.found_earlier = True
                        break
        return self._source
