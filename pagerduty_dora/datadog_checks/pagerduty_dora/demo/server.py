# (C) The pagerduty_dora Authors 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A small threaded HTTP server on 127.0.0.1 that dispatches requests to route handlers."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        """All values of a repeated parameter, with or without the `[]` suffix PagerDuty uses."""
        return self.query.get(name + '[]', []) + self.query.get(name, [])

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


# A handler answers a `Reply`; `Any` lets a test fake answer a richer one.
Handler = Callable[[Request], Any]
Route = tuple[str, str, Handler]


class LoopbackServer:
    """Serve `routes` (method, path regex, handler) on a free loopback port until `stop()`.

    `clock` gives the epoch seconds every answer's `Date` header states, so a simulated account
    answers in its own time; by default, the machine's clock.
    """

    def __init__(self, routes: list[Route], clock: Callable[[], float] = time.time) -> None:
        # The `Date` header of every answer: a simulated account's own clock, like a real server's.
        self.clock = clock
        # Whether answers carry a `Date` header at all (a proxy on the way may remove it).
        self.dated = True
        self._routes = [(method.upper(), re.compile(pattern + r'\Z'), handler) for method, pattern, handler in routes]
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, name='fake-server', daemon=True
        )

    @property
    def url(self) -> str:
        return 'http://127.0.0.1:{}'.format(self._server.server_address[1])

    def start(self) -> Any:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def dispatch(self, request: Request) -> Reply:
        """The reply of the first route matching the method and the whole path; a 404 without one."""
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            found = pattern.match(request.path)
            if found:
                request.match = found.groupdict()
                return handler(request)
        return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})

    def send(self, out: BaseHTTPRequestHandler, reply: Reply) -> None:
        payload = self.payload(reply)
        self.send_head(out, reply, len(payload))
        out.end_headers()
        out.wfile.write(payload)

    @staticmethod
    def payload(reply: Reply) -> bytes:
        return reply.raw if reply.raw is not None else json.dumps(reply.body).encode('utf-8')

    @staticmethod
    def send_head(out: BaseHTTPRequestHandler, reply: Reply, length: int) -> None:
        """The status line and headers, all but the blank line that ends them."""
        out.send_response(reply.status)
        out.send_header('Content-Type', 'application/json')
        for name, value in reply.headers.items():
            out.send_header(name, value)
        out.send_header('Content-Length', str(length))


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        # Headers and body go out in separate writes; without this, each answer on a kept-alive
        # connection waits for the client's delayed acknowledgement.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(server.clock() if timestamp is None else timestamp, usegmt=True)

        def send_response(self, code: int, message: str | None = None) -> None:
            if server.dated:
                super().send_response(code, message)
            else:
                self.log_request(code)
                self.send_response_only(code, message)
                self.send_header('Server', self.version_string())

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get('Content-Length') or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b'',
            )
            try:
                reply = server.dispatch(request)
            except Exception as e:  # a bug in a fake must show up as a 500, not a hung client
                reply = Reply(500, {'error': {'message': 'fake server error: {!r}'.format(e)}})
            server.send(self, reply)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return _Handler
