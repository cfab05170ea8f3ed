"""A werkzeug app on 127.0.0.1 that answers documented API calls with fixtures
and records every request, so host tests assert both sides of the wire."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.http_server import LoopbackServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_bytes(host: str, name: str) -> bytes:
    return (FIXTURES / host / name).read_bytes()


def fixture(host: str, name: str) -> Any:
    return json.loads(fixture_bytes(host, name))


@dataclass
class Call:
    method: str
    raw_path: str  # as sent, still percent-encoded
    args: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def arg(self, name: str) -> str | None:
        values = self.args.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Call], Answer]


class DocStub:
    """Routes are keyed by (METHOD, raw path); anything else is a 404 the test sees."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.calls: list[Call] = []
        self.url = ""

    def reset(self) -> None:
        self.routes.clear()
        self.calls.clear()

    def on(self, method: str, raw_path: str, route: Route | Answer) -> None:
        if isinstance(route, Answer):
            answer = route

            def route(_call: Call) -> Answer:
                return answer

        self.routes[(method, raw_path)] = route

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        raw = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or request.path).split("?", 1)[0]
        call = Call(
            method=request.method,
            raw_path=raw,
            args={k: request.args.getlist(k) for k in request.args},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
        )
        self.calls.append(call)
        route = self.routes.get((call.method, call.raw_path))
        answer = route(call) if route else Answer(404, {"message": "404 Not Found"})
        body = answer.body
        data = (
            body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        )
        response = Response(data, status=answer.status, headers={"Content-Type": "application/json", **answer.headers})
        return response(environ, start_response)


@contextmanager
def serve_stub() -> Iterator[DocStub]:
    stub = DocStub()
    server = LoopbackServer(stub).start()
    stub.url = server.url
    try:
        yield stub
    finally:
        server.stop()
