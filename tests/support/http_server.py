"""Run a WSGI app on 127.0.0.1 in a background thread (test servers never bind elsewhere)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

WSGIApp = Callable[..., Any]


class LoopbackServer:
    def __init__(self, app: WSGIApp) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port: int = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve(app: WSGIApp) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    try:
        yield server
    finally:
        server.stop()
