"""The app a job runs in: the worker's own (inherited through fork), or one built once per process.

Inside a job, every log line carries the job's id and function (and its tenant when the job
names one, and the id of the web request that enqueued it when that was put in the job's
``meta["request_id"]``): see :mod:`connect_app.log_context`.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from rq.job import Job

from connect_app import create_app, log_context
from connect_app.extensions import db

_app: Flask | None = None
_engine_pid: dict[int, int] = {}
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@contextmanager
def job_context() -> Iterator[Flask]:
    """Push an app context (unless one is active) and make the engine safe after ``fork``:
    RQ runs each job in a forked work horse, and pooled connections must not be shared."""
    with log_context.bind(**job_log_fields(get_current_job())):
        with _app_context() as app:
            yield app


@contextmanager
def _app_context() -> Iterator[Flask]:
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


def job_log_fields(job: Job | None) -> dict[str, str | int | None]:
    """The log context of a job: id, function, tenant (an explicit ``tenant_id`` argument or
    ``meta["tenant_id"]``) and the enqueuing request's id (``meta["request_id"]``)."""
    if job is None:
        return {}
    fields: dict[str, str | int | None] = {"job_id": job.id}
    try:
        fields["job_func"] = job.func_name
    except Exception:  # a job whose data cannot be read still gets its id logged
        return fields
    meta = job.meta or {}
    request_id = meta.get("request_id")
    if isinstance(request_id, str) and _SAFE_ID.fullmatch(request_id):
        fields["request_id"] = request_id
    tenant = meta.get("tenant_id")
    if not isinstance(tenant, int):
        tenant = _tenant_argument(job)
    if isinstance(tenant, int):
        fields["tenant_id"] = tenant
    return fields


def _tenant_argument(job: Job) -> object:
    try:
        bound = inspect.signature(job.func).bind_partial(*job.args, **job.kwargs)
    except Exception:  # best effort: a log field, never a failed job
        return None
    return bound.arguments.get("tenant_id")


def _fork_safe(app: Flask) -> None:
    pid = os.getpid()
    if _engine_pid.setdefault(id(app), pid) != pid:
        db.engine.dispose(close=False)  # the parent's connections stay the parent's
        _engine_pid[id(app)] = pid
