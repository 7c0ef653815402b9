# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""The demo's loopback server, recording every request, with answers that can be slow or cut short."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Callable

from datadog_checks.pagerduty_dora.demo import server as demo_server
from datadog_checks.pagerduty_dora.demo.server import Handler, Request, Route

__all__ = ['BaseReply', 'FakeServer', 'Handler', 'Reply', 'Request', 'Route']

BaseReply = demo_server.Reply


@dataclass
class Reply(demo_server.Reply):
    # Declared length larger than what is sent, to simulate a body cut short.
    truncate: bool = False
    # Seconds to hold the connection before answering, to simulate a slow server.
    delay: float = 0.0


class FakeServer(demo_server.LoopbackServer):
    """Serve `routes` (method, path regex, handler) on a free loopback port until `stop()`.

    `fault` may be set to a callable `(Request) -> Reply | None` that answers in place of the route;
    every request is appended to `requests`.
    """

    def __init__(self, routes: list[Route], clock: Callable[[], float] = time.time) -> None:
        super().__init__(routes, clock)
        self.requests: list[Request] = []
        self.fault: Callable[[Request], demo_server.Reply | None] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    def count(self, method: str | None = None, path_prefix: str = '') -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper()) and r.path.startswith(path_prefix)
            )

    def dispatch(self, request: Request) -> demo_server.Reply:
        with self._lock:
            self.requests.append(request)
        if self.fault is not None:
            reply = self.fault(request)
            if reply is not None:
                return reply
        return super().dispatch(request)

    def send(self, out: BaseHTTPRequestHandler, reply: demo_server.Reply) -> None:
        if isinstance(reply, Reply) and reply.delay:
            self._stopping.wait(reply.delay)
        if not (isinstance(reply, Reply) and reply.truncate):
            super().send(out, reply)
            return
        payload = self.payload(reply)
        self.send_head(out, reply, len(payload))
        out.send_header('Connection', 'close')
        out.end_headers()
        out.wfile.write(payload[: len(payload) // 2])
        out.close_connection = True
