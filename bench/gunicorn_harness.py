"""A real gunicorn serving the app on 127.0.0.1, and a load driver for it (benchmarks 3 and 4).

:class:`GunicornServer` starts ``gunicorn connect_app.wsgi:app`` (``gthread`` workers, by
default 2 workers x 8 threads: one worker per core of the 2-core bench machine, threads for
the database and Redis waits) on a free loopback port, with the Procfile's config file
(``connect_app/gunicorn_conf.py``: preloaded app, ``gc.freeze()``) when it exists and the
app configured through its ordinary environment variables; it waits for ``/healthz`` and
stops the whole process group.

:func:`drive` sends prepared requests from ``concurrency`` clients at once, each a
keep-alive HTTP/1.1 connection in one asyncio loop (one driver thread: 50 client threads
would fight the server for the GIL-free cores less predictably), and returns each request's
latency and status. Requests are handed out from one shared list, so every client keeps one
request in flight until the list is empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "8"))
CONCURRENCY = int(os.environ.get("BENCH_CLIENTS", "50"))
PRODUCTION_CONF = REPO_ROOT / "connect_app" / "gunicorn_conf.py"
# Another WSGI entry point (importable through PYTHONPATH) for before/after comparisons of a
# change in the same session, e.g. one that patches the old code back in before create_app().
WSGI_APP = os.environ.get("BENCH_WSGI_APP", "connect_app.wsgi:app")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class GunicornServer:
    """``with GunicornServer(env) as server: server.url("/healthz")``."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int = WORKERS,
        threads: int = THREADS,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.workers, self.threads = workers, threads
        self._env = {**os.environ, **env, "PORT": str(self.port)}
        self._log_path = log_path
        self._extra = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def description(self) -> str:
        conf = ", Procfile config" if PRODUCTION_CONF.is_file() else ""
        app = "" if WSGI_APP == "connect_app.wsgi:app" else f", app {WSGI_APP}"
        return f"gunicorn gthread, {self.workers} workers x {self.threads} threads{conf}{app}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> GunicornServer:
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", "gthread",
            "--backlog", "512",
            "--keep-alive", "30",
            "--log-level", "warning",
            *self._extra,
            WSGI_APP,
        ]  # fmt: skip
        if PRODUCTION_CONF.is_file():  # the Procfile's settings; the options above override them
            cmd[3:3] = ["-c", "python:connect_app.gunicorn_conf"]
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=self._env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self._proc.returncode} (log: {self._log_path})")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gunicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        # every worker must have loaded the app before the clock starts
        for _ in range(self.workers * 4):
            with urllib.request.urlopen(self.url("/healthz"), timeout=5):
                pass
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU used so far by the master and its workers (Linux ``/proc``): what
        the requests cost the server, whatever else is running on the machine."""
        if self._proc is None:
            return 0.0
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a process that just exited
            if int(fields[2]) == self._proc.pid:  # process group id
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    tag: str = ""


@dataclass
class Result:
    tag: str
    status: int
    ms: float
    body: bytes


@dataclass
class LoadRun:
    results: list[Result]
    seconds: float
    server_cpu_seconds: float = 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds * 1000 / len(self.results) if self.results else 0.0

    def by_tag(self, tag: str) -> list[Result]:
        return [r for r in self.results if r.tag == tag]

    def ms(self, tag: str) -> list[float]:
        return [r.ms for r in self.by_tag(tag)]

    def per_second(self, tag: str | None = None) -> float:
        n = len(self.results if tag is None else self.by_tag(tag))
        return n / self.seconds if self.seconds else 0.0


def _encode(request: Request, port: int) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    if request.body or request.method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close, chunked = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.lower() == "close":
            close = True
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        return status, b"".join(parts), close
    return status, await reader.readexactly(length), close


async def _client(port: int, queue: list[Request], results: list[Result]) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while queue:
            request = queue.pop()
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = time.perf_counter()
            writer.write(_encode(request, port))
            await writer.drain()
            status, body, close = await _read_response(reader)
            results.append(Result(request.tag, status, (time.perf_counter() - start) * 1000, body))
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def drive(server: GunicornServer, requests: Sequence[Request], concurrency: int = CONCURRENCY) -> LoadRun:
    """Send ``requests`` (in order, shared by ``concurrency`` keep-alive clients) to ``server``;
    the run also records the server's CPU time spent meanwhile."""
    port = server.port
    cpu_before = server.cpu_seconds()
    queue = list(reversed(requests))
    results: list[Result] = []

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(_client(port, queue, results) for _ in range(concurrency)))
        return time.perf_counter() - start

    seconds = asyncio.run(main())
    return LoadRun(results, seconds, server.cpu_seconds() - cpu_before)
