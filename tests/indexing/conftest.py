"""Fixtures shared by the tests of the git runner modules (git, git_safety, git_process, git_ssh)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connect_app.indexing.git import GitRunner

Spawned = list[tuple[list[str], dict[str, str]]]


@pytest.fixture
def runner() -> GitRunner:
    return GitRunner(allow_private=True, network_timeout=30)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    """Every (argv, env) the runner starts."""
    calls: Spawned = []
    real = subprocess.Popen

    def recording(argv: list[str], *a: Any, **kw: Any) -> Any:
        env = dict(kw.get("env") or {})
        if "GIT_ALLOW_PROTOCOL" in env:  # the runner's, not a test server's git
            calls.append((list(argv), env))
        return real(argv, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", recording)
    return calls


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the runner resolves to chosen addresses (git itself could not resolve them)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def lookup(host: str, port: Any, *a: Any, **kw: Any) -> Any:
        return real(table.get(host, host), port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return table


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()
