"""Clear startup errors for every entry point (``python -m connect_app``, ``python -m
workers``, the WSGI app under gunicorn): one line on stderr that says what to fix, and an
exit status, instead of a traceback.

* a misconfiguration (:class:`~connect_app.errors.ConfigError`, e.g. production mode without
  PostgreSQL, Redis or ``ENCRYPTION_KEYS``) exits with 78 (``EX_CONFIG``);
* a service that cannot be reached at startup (:func:`require_services`) exits with 69
  (``EX_UNAVAILABLE``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from connect_app.errors import ConfigError

EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69


class ServiceUnavailable(ConfigError):
    """A service the process needs (database, Redis) cannot be reached."""

    code = "service_unavailable"


def _say(process: str, text: str) -> None:
    from connect_app.logging_setup import scrub

    print(f"git-connect-for-jira {process}: {scrub(text)}", file=sys.stderr, flush=True)


@contextmanager
def clear_startup_errors(process: str) -> Iterator[None]:
    """Turn a startup ConfigError into one line on stderr and ``SystemExit``."""
    try:
        yield
    except ServiceUnavailable as e:
        _say(process, f"cannot start: {e.message}")
        raise SystemExit(EXIT_UNAVAILABLE) from None
    except ConfigError as e:
        _say(process, f"configuration error: {e.message}")
        raise SystemExit(EXIT_CONFIG) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def require_services(app: Flask) -> None:
    """Connect to the database and Redis once; raise ServiceUnavailable naming what failed
    (URLs shown without passwords)."""
    from sqlalchemy import text

    from connect_app.extensions import db, redis_conn

    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            raise ServiceUnavailable(f"the database at {db.url} cannot be reached ({_first_line(e)})") from e
        try:
            redis_conn.client.ping()
        except Exception as e:
            raise ServiceUnavailable(f"Redis cannot be reached ({_first_line(e)}); check REDIS_URL") from e
