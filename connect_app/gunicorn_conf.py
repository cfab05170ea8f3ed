"""gunicorn settings for the ``web`` process::

    gunicorn -c python:connect_app.gunicorn_conf connect_app.wsgi:app

Environment: ``PORT`` (8000), ``WEB_CONCURRENCY`` worker processes (4), ``WEB_THREADS``
threads each (8), ``WEB_TIMEOUT`` seconds a request may take before its worker is replaced
(30), ``WEB_GRACEFUL_TIMEOUT`` seconds in-flight requests get after SIGTERM (20).

* The app is loaded once in the master (``preload_app``) and its objects frozen out of the
  garbage collector's view (``gc.freeze``), so forked workers share those pages; a
  misconfiguration then stops the master at once with one clear line (exit status 78)
  instead of every worker failing to boot.
* Prometheus multiprocess mode: each worker writes its samples under
  ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up all of them. When the variable is
  unset a private temporary directory is made here, *before* the app imports
  ``prometheus_client`` (which reads the variable at import). The directory is emptied at
  start, a dead worker's live gauges are dropped, and a directory made here is removed at exit.
* The heartbeat files live in ``/dev/shm`` when it exists (a container's overlay disk can
  stall them and get healthy workers killed).
* No gunicorn access log: the app writes its own (``connect_app.access``), with the request
  id, in the configured ``LOG_FORMAT``, without query strings (Jira puts its JWT there).
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _multiproc_dir() -> tuple[Path, bool]:
    """(the directory, whether it was made here)."""
    raw = os.environ.get(_MULTIPROC_ENV, "").strip()
    path = Path(raw) if raw else Path(tempfile.mkdtemp(prefix="gcj-prometheus-"))
    path.mkdir(parents=True, exist_ok=True)
    os.environ[_MULTIPROC_ENV] = str(path)
    return path, not raw


MULTIPROC_DIR, _MADE_HERE = _multiproc_dir()
_MASTER_PID = os.getpid()


@atexit.register
def _remove_own_multiproc_dir() -> None:
    """The master made the directory: it removes it when it exits (also when the app failed to load)."""
    if _MADE_HERE and os.getpid() == _MASTER_PID:
        shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)


bind = f"0.0.0.0:{_env_int('PORT', 8000)}"
workers = _env_int("WEB_CONCURRENCY", 4)
threads = _env_int("WEB_THREADS", 8)
worker_class = "gthread"
timeout = _env_int("WEB_TIMEOUT", 30)
graceful_timeout = _env_int("WEB_GRACEFUL_TIMEOUT", 20)
keepalive = 5
preload_app = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's advice
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server: Any) -> None:
    """Samples left by an earlier run in the same directory would be added to ours."""
    for entry in MULTIPROC_DIR.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def when_ready(server: Any) -> None:
    """After the app is preloaded, before workers fork: keep its objects out of the GC's
    generations so a collection in a worker does not copy the shared pages."""
    gc.collect()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    """A worker must not reuse database connections the master might have opened."""
    from connect_app.extensions import db

    try:
        db.engine.dispose(close=False)
    except RuntimeError:  # no app configured (not preloaded): nothing to drop
        pass


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
