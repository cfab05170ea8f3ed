"""The host-API bench's counting proxy: counts every request and answers conditional GETs like GitHub."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from bench.host_api import CountingProxy


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'[{"number": 1}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Link", '<https://api.github.com/x?page=2>; rel="next"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with CountingProxy(upstream.server_port) as p:
            yield p
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_counts_requests_and_answers_a_matching_etag_with_304(proxy: CountingProxy) -> None:
    first = requests.get(proxy.url + "/repos/o/r/pulls?per_page=50", timeout=5)
    assert first.status_code == 200 and first.json() == [{"number": 1}]
    assert "link" not in first.headers  # Prism's example Link points at api.github.com
    etag = first.headers["ETag"]
    again = requests.get(proxy.url + "/repos/o/r/pulls?per_page=50", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""
    stale = requests.get(proxy.url + "/repos/o/r/pulls?per_page=50", headers={"If-None-Match": '"x"'}, timeout=5)
    assert stale.status_code == 200
    assert requests.post(proxy.url + "/graphql", json={"query": "{}"}, timeout=5).status_code == 404
    counts, size = proxy.tally.snapshot()
    assert counts == {
        ("GET", "/repos/{owner}/{repo}/pulls", 200): 2,
        ("GET", "/repos/{owner}/{repo}/pulls", 304): 1,
        ("POST", "/graphql", 404): 1,
    }
    assert size == 2 * len(first.content) and proxy.tally.total == 4
