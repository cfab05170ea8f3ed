"""pytest fixtures: real git repositories served by ``git http-backend`` on 127.0.0.1.

Registered from ``tests/conftest.py`` with ``pytest_plugins = ["tests.support.git_fixtures"]``.

* ``git_server`` (session): basic auth required (``.username`` / ``.password`` /
  ``.auth``), filters and pushes enabled. Tests add repositories with unique names
  (``git_repo_name``) so they never see each other's state.
* ``open_git_server`` (session): the same without authentication.
* ``git_server_factory`` (function): servers with other settings, stopped after the test.
* ``git_repo`` (function): a fresh repository with :data:`DEFAULT_HISTORY` on ``git_server``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.git_server import GitHttpServer, RepoBuilder, make_repo

ServerFactory = Callable[..., GitHttpServer]


@dataclass
class ServedRepo:
    name: str
    url: str
    path: Path
    builder: RepoBuilder
    server: GitHttpServer


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    server = GitHttpServer(
        tmp_path_factory.mktemp("git-server"), username="alice", password="pw-" + secrets.token_urlsafe(12)
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def open_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path_factory.mktemp("git-server-open")) as server:
        yield server


@pytest.fixture
def git_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    started: list[GitHttpServer] = []

    def factory(**kwargs: Any) -> GitHttpServer:
        server = GitHttpServer(tmp_path_factory.mktemp("git-server-custom"), **kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def git_repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test."""
    return f"{request.node.name.replace('[', '-').replace(']', '')[:60]}-{secrets.token_hex(3)}"


@pytest.fixture
def git_repo(git_server: GitHttpServer, git_repo_name: str) -> ServedRepo:
    holder: dict[str, RepoBuilder] = {}
    path = git_server.add_repo(git_repo_name, lambda p: holder.setdefault("b", make_repo(p)))
    return ServedRepo(git_repo_name, git_server.url_for(git_repo_name), path, holder["b"], git_server)
