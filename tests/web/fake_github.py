"""A scripted GitHub REST API on 127.0.0.1 for the admin API tests: tokens with chosen
scopes, a list of repositories, webhook deletions recorded (the contract itself is tested
against Prism in tests/hosts/test_github.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from tests.support.http_server import LoopbackServer

GOOD_TOKEN = "ghp_GoodToken0123456789abcdef"
NARROW_TOKEN = "ghp_NarrowToken0123456789abcd"  # a classic token without the repo scope
OTHER_TOKEN = "ghp_OtherToken0123456789abcde"


def github_repo(repo_id: int, full_name: str, *, private: bool = True) -> dict[str, Any]:
    owner = full_name.split("/")[0]
    return {
        "id": repo_id,
        "full_name": full_name,
        "clone_url": f"https://github.com/{full_name}.git",
        "html_url": f"https://github.com/{full_name}",
        "default_branch": "main",
        "owner": {"login": owner},
        "private": private,
    }


@dataclass
class FakeGitHub:
    repos: list[dict[str, Any]] = field(
        default_factory=lambda: [github_repo(101, "acme/widgets"), github_repo(102, "acme/gadgets")]
    )
    scopes: dict[str, str] = field(
        default_factory=lambda: {GOOD_TOKEN: "repo, read:user", NARROW_TOKEN: "read:user", OTHER_TOKEN: "repo"}
    )
    missing_hooks: set[str] = field(default_factory=set)  # hook ids answered with 404
    failing_hooks: set[str] = field(default_factory=set)  # hook ids answered with 500
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, token
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = LoopbackServer(self._app).start()
        self.url = self.server.url

    def requests(self, method: str, prefix: str = "") -> list[str]:
        return [p for m, p, _ in self.seen if m == method and p.startswith(prefix)]

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or None
        with self.lock:
            self.seen.append((request.method, request.path, token))
        return self._answer(request, token)(environ, start_response)

    def _answer(self, request: Request, token: str | None) -> Response:
        if token not in self.scopes:
            return _json({"message": "Bad credentials"}, 401)
        headers = {"X-OAuth-Scopes": self.scopes[token]}
        if request.method == "GET" and request.path == "/user":
            return _json({"login": "octo-admin", "id": 1}, headers=headers)
        if request.method == "GET" and request.path == "/user/repos":
            return _json(self.repos, headers=headers)
        if request.method == "DELETE" and "/hooks/" in request.path:
            hook_id = request.path.rsplit("/", 1)[-1]
            if hook_id in self.failing_hooks:
                return _json({"message": "Server Error"}, 500)
            if hook_id in self.missing_hooks:
                return _json({"message": "Not Found"}, 404)
            return Response(b"", 204)
        return _json({"message": "Not Found"}, 404)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.server.stop()
