"""A tiny programmable HTTP(S) host on 127.0.0.1 for client tests.

``StubHost(handler)`` serves every request by calling ``handler(seen)`` and
records what it saw, so a test asserts on both sides of the wire.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # the test's clock when the request arrived


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, str or bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering


Handler = Callable[[Seen], Reply]


class StubHost:
    def __init__(
        self,
        handler: Handler,
        *,
        clock: Callable[[], float] = time.time,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.seen: list[Seen] = []
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query=dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                    at=stub.clock(),
                )
                stub.seen.append(seen)
                reply = stub.handler(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body
                if isinstance(body, str):
                    data = body.encode()
                elif isinstance(body, bytes):
                    data = body
                elif body is None:
                    data = b""
                else:
                    data = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD" and reply.status != 304:
                        self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url_for(self, host: str) -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeClock:
    """``clock`` and ``sleep`` for the client (and the stub) that never really wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to connect to a non-loopback address."""
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(host.split("%")[0]).is_loopback, f"test tried to connect to {host}"
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def fake_resolver(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]] | Callable[[str], list[str] | None]
) -> list[str]:
    """Make ``socket.getaddrinfo`` answer from ``answers`` (name -> IPs); returns the
    list of names looked up. Literal IPs and unknown names fall through."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        ips = answers(name) if callable(answers) else answers.get(name)
        if ips is None:
            return real(host, port, family, type, *args)
        lookups.append(name)
        result: list[tuple[Any, ...]] = []
        for ip in ips:
            if ":" in ip:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups
