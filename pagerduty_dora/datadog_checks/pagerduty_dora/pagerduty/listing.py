# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""Pages of PagerDuty's incident list, parsed; a page read again byte for byte is not decoded or parsed again.

Reconciliation reads every open incident every ten minutes, and the recheck reads resolved ones
again: on an idle account each of those pages comes back exactly as it was. Decoding and parsing
are a function of the body's bytes, so `RepeatedPages` keeps the pages parsed from the latest bodies
by a SHA-256 digest of those bytes, and answers a body it holds with the page parsed before (the
same `Incident` values, which a look at rest then recognises at once). Nothing else is kept: a body
that differs in one byte is decoded and parsed like any other.

What is kept is bounded by the bodies it came from (`BYTES_KEPT`; a parsed incident is a few fields
of its JSON), and a page holding an incident that could not be parsed is not kept, so that a hostile
answer (a megabyte id, say) is let go once its warning is written.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from datadog_checks.pagerduty_dora.common import json_format

from .incident import Incident, MalformedIncident, parse_incident

# Pages kept: a reconciliation pass over 20,000 open incidents, and the recheck's pages beside it;
# and the bytes of the bodies they were parsed from (a page of real incidents is a few hundred kB).
PAGES_KEPT = 250
BYTES_KEPT = 64 * 1024 * 1024


@dataclass(frozen=True)
class IncidentPage:
    """One answer of the incident list: the incidents it held that parse, in its order, and the rest.

    `malformed` holds each raw incident that could not be parsed, with why; `listed` counts every
    element of the answer's array, parsed or not (a page's fullness is judged by it).
    """

    incidents: tuple[Incident, ...]
    more: bool
    total: int | None
    malformed: tuple[tuple[Any, MalformedIncident], ...] = ()
    listed: int = 0


def parse_page(data: dict, total: int | None) -> IncidentPage:
    """The page of an answer already known to hold an `incidents` array."""
    incidents: list[Incident] = []
    malformed: list[tuple[Any, MalformedIncident]] = []
    listed = data['incidents']
    for raw in listed:
        try:
            incidents.append(parse_incident(raw))
        except MalformedIncident as e:
            malformed.append((raw, e))
    return IncidentPage(tuple(incidents), bool(data.get('more')), total, tuple(malformed), len(listed))


@dataclass(frozen=True)
class Body:
    """A body as `RepeatedPages.read` gives it: its digest, and the page parsed from the same bytes before
    (`page`), or else its decoded JSON (`data`)."""

    digest: bytes
    size: int
    page: IncidentPage | None = None
    data: Any = None


class RepeatedPages:
    """The pages parsed from the latest bodies (at most `PAGES_KEPT` of them, of `BYTES_KEPT` in all), by
    digest; the least recently read goes first."""

    def __init__(self, pages: int = PAGES_KEPT, size: int = BYTES_KEPT) -> None:
        self._limits = (pages, size)
        self._pages: OrderedDict[bytes, tuple[IncidentPage, int]] = OrderedDict()
        self._size = 0
        self.repeated = 0

    def read(self, content: bytes) -> Body:
        """The page parsed from these very bytes before, or their JSON (`ValueError` when they hold none)."""
        digest = hashlib.sha256(content).digest()
        kept = self._pages.get(digest)
        if kept is not None:
            self._pages.move_to_end(digest)
            self.repeated += 1
            return Body(digest, len(content), page=kept[0])
        return Body(digest, len(content), data=json_format.decode(content))

    def keep(self, body: Body, page: IncidentPage) -> None:
        """Keep `page`, parsed from `body`, for the next body of the same bytes (unless one of it is malformed)."""
        pages, size = self._limits
        if page.malformed or body.size > size or body.digest in self._pages:
            return
        self._pages[body.digest] = (page, body.size)
        self._size += body.size
        while len(self._pages) > pages or self._size > size:
            _, (_, dropped) = self._pages.popitem(last=False)
            self._size -= dropped

    def __len__(self) -> int:
        return len(self._pages)
