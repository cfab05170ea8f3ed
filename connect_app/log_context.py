"""Ids that every log line of the current request or job carries.

Context variables, so each request thread (gunicorn ``gthread``) and each job sees its own
values. The web sets ``request_id`` (``connect_app.web.request_ids``), the worker sets
``job_id``/``job_func`` (``workers.context``); ``tenant_id`` comes from an explicit
:func:`bind` or, in a request, from the Jira JWT the request was authenticated with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

request_id: ContextVar[str | None] = ContextVar("gcj_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("gcj_job_id", default=None)
job_func: ContextVar[str | None] = ContextVar("gcj_job_func", default=None)
tenant_id: ContextVar[int | None] = ContextVar("gcj_tenant_id", default=None)

_VARS: dict[str, ContextVar[str | None] | ContextVar[int | None]] = {
    "request_id": request_id,
    "job_id": job_id,
    "job_func": job_func,
    "tenant_id": tenant_id,
}


@contextmanager
def bind(**values: str | int | None) -> Iterator[None]:
    """Set some of the ids for the duration of a block (unknown names are a TypeError)."""
    tokens: list[tuple[ContextVar[object], Token[object]]] = []
    try:
        for name, value in values.items():
            if name not in _VARS:
                raise TypeError(f"unknown log context field {name!r}")
            var: ContextVar[object] = _VARS[name]  # type: ignore[assignment]
            tokens.append((var, var.set(value)))
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _request_tenant_id() -> int | None:
    """The tenant of the Jira JWT this request was authenticated with (``security.auth``)."""
    from flask import g, has_app_context

    if not has_app_context():
        return None
    value = getattr(g.get("jira_auth"), "tenant_id", None)
    return value if isinstance(value, int) else None


def current_fields() -> dict[str, str | int]:
    """The ids known here, in a fixed order, without the unknown ones."""
    fields: dict[str, str | int] = {}
    for name, var in _VARS.items():
        value = var.get()
        if value is not None:
            fields[name] = value
    if "tenant_id" not in fields:
        tenant = _request_tenant_id()
        if tenant is not None:
            fields["tenant_id"] = tenant
    return fields


def job_meta() -> dict[str, str | int]:
    """What an enqueuer passes as RQ ``meta=`` so the job's log lines name the request
    (and tenant) that asked for it (``workers.context.job_log_fields`` reads it back)."""
    fields = current_fields()
    return {k: v for k, v in fields.items() if k in ("request_id", "tenant_id")}
