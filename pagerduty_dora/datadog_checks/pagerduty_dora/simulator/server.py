# (C) Datadog, Inc. 2026-present
# All rights reserved
# Licensed under a 3-clause BSD style license (see LICENSE)
"""A small threaded HTTP server on 127.0.0.1 that dispatches to route handlers and records requests."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
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
    # Declared length larger than what is sent, to simulate a body cut short.
    truncate: bool = False
    # Seconds to hold the connection before answering, to simulate a slow server.
    delay: float = 0.0


Handler = Callable[[Request], Reply]


class FakeServer:
    """Serve `routes` (method, path regex, handler) on a free loopback port until `stop()`.

    `fault` may be set to a callable `(Request) -> Reply | None` that answers in place of the route
    (fault injection); every request is appended to `requests`.
    """

    def __init__(self, routes: list[tuple[str, str, Handler]]) -> None:
        self._routes = [(method.upper(), re.compile(pattern + r'\Z'), handler) for method, pattern, handler in routes]
        self.requests: list[Request] = []
        self.fault: Callable[[Request], Reply | None] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, name='fake-server', daemon=True
        )

    @property
    def url(self) -> str:
        return 'http://127.0.0.1:{}'.format(self._server.server_address[1])

    def start(self) -> 'FakeServer':
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> 'FakeServer':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def count(self, method: str | None = None, path_prefix: str = '') -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper()) and r.path.startswith(path_prefix)
            )

    def dispatch(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        if self.fault is not None:
            reply = self.fault(request)
            if reply is not None:
                return reply
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            found = pattern.match(request.path)
            if found:
                request.match = found.groupdict()
                return handler(request)
        return Reply(404, {'error': {'message': 'Not Found', 'code': 2100}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            # Headers and body go out in separate writes; without this, each answer on a kept-alive
            # connection waits for the client's delayed acknowledgement.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                try:
                    reply = server.dispatch(request)
                except Exception as e:  # a bug in a fake must show up as a 500, not a hung client
                    reply = Reply(500, {'error': {'message': 'fake server error: {!r}'.format(e)}})
                if reply.delay:
                    server._stopping.wait(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode('utf-8')
                self.send_response(reply.status)
                self.send_header('Content-Type', 'application/json')
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.truncate:
                    self.send_header('Content-Length', str(len(payload)))
                    self.send_header('Connection', 'close')
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                    return
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return _Handler
