"""Request ids: every response carries ``X-Request-Id``, every log line of the request too.

An incoming ``X-Request-Id`` (from a load balancer or a client) is kept when it is short and
plain (``[A-Za-z0-9._-]{1,64}``), so one id follows a request through the proxy and the app;
anything else is replaced by a fresh random id, so a header can neither inject text into the
logs nor grow them.
"""

from __future__ import annotations

import re
import uuid
from contextvars import Token

from flask import Flask, Response, g, request

from connect_app import log_context

HEADER = "X-Request-Id"
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RESET_KEY = "_gcj_request_id_reset"


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(incoming: str | None) -> str:
    """The incoming id when it is safe, else a new one."""
    if incoming is not None and _SAFE.fullmatch(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    return log_context.request_id.get()


def _start() -> None:
    rid = accepted_request_id(request.headers.get(HEADER))
    g.request_id = rid
    setattr(g, _RESET_KEY, log_context.request_id.set(rid))


def _stamp(response: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        response.headers[HEADER] = rid
    return response


def _reset(_exc: BaseException | None) -> None:
    token: Token[str | None] | None = g.pop(_RESET_KEY, None)
    if token is not None:
        try:
            log_context.request_id.reset(token)
        except ValueError:  # set in another context (should not happen); just clear it
            log_context.request_id.set(None)


def init_app(app: Flask) -> None:
    """Register first, so every later hook and handler already has the id."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_stamp)
    app.teardown_request(_reset)
