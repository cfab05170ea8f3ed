"""The app a job runs in: the worker's own (inherited through fork), or one built once per process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context

from connect_app import create_app
from connect_app.extensions import db

_app: Flask | None = None
_engine_pid: dict[int, int] = {}


@contextmanager
def job_context() -> Iterator[Flask]:
    """Push an app context (unless one is active) and make the engine safe after ``fork``:
    RQ runs each job in a forked work horse, and pooled connections must not be shared."""
    global _app
    if has_app_context():
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        _fork_safe(app)
        yield app
        return
    if _app is None:
        _app = create_app()
    with _app.app_context():
        _fork_safe(_app)
        try:
            yield _app
        finally:
            db.session.remove()


def _fork_safe(app: Flask) -> None:
    pid = os.getpid()
    if _engine_pid.setdefault(id(app), pid) != pid:
        db.engine.dispose(close=False)  # the parent's connections stay the parent's
        _engine_pid[id(app)] = pid
