"""Bulk writes for the indexer: insert-or-ignore and upsert on a unique key, for SQLite and PostgreSQL.

No ORM objects, and one round trip per batch where the backend allows:

* PostgreSQL: ``INSERT ... SELECT * FROM unnest(%b, %b, ...) ON CONFLICT DO NOTHING`` -- one
  statement whose parameters are one (binary) array per column, so a batch of 1,000 commits is
  one round trip and its ``rowcount`` is exact (an executemany's is not, with psycopg).
* SQLite: the driver's ``executemany`` (a C loop in-process); sqlite3 sums its ``rowcount``.

Both go to the driver directly (see :func:`insert_ignore`), with values turned into what the
ORM would store by the column types' bind processors -- except aware UTC datetimes, which take
a shortcut that gives the same value (two per commit: the processor cost more than the rest of
a row). :func:`insert_ignore_values` takes rows as tuples (the history walk's: no dict per row).

Every call runs on the session's connection, inside its transaction: the caller commits the
rows together with its cursor, so a crash leaves both or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from connect_app.errors import ConfigError
from connect_app.models import Base
from connect_app.models.base import UTCDateTime

Row = Mapping[str, Any]


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _dialect(session: Session) -> Dialect:
    dialect = session.get_bind().dialect
    if dialect.name not in ("postgresql", "sqlite"):
        raise ConfigError(f"the indexer supports PostgreSQL and SQLite, not {dialect.name}")
    return dialect


def insert_ignore(session: Session, model: type[Base], rows: Sequence[Row], *, keys: Sequence[str]) -> int:
    """Insert ``rows`` (all with the same columns), skipping any whose ``keys`` (a unique
    constraint) already exist, also within ``rows`` themselves. Returns how many were inserted."""
    if not rows:
        return 0
    columns = tuple(rows[0])
    return _insert_columns(session, model, columns, [[row[c] for row in rows] for c in columns], keys)


def insert_ignore_values(
    session: Session, model: type[Base], columns: Sequence[str], rows: Sequence[Sequence[Any]], *, keys: Sequence[str]
) -> int:
    """:func:`insert_ignore` for rows given as tuples in ``columns`` order (the indexer's hot path:
    no dict per row). Values are what the ORM takes (aware datetimes, ...), not database values."""
    if not rows:
        return 0
    return _insert_columns(session, model, tuple(columns), [list(column) for column in zip(*rows, strict=True)], keys)


def _insert_columns(
    session: Session, model: type[Base], columns: tuple[str, ...], values: list[list[Any]], keys: Sequence[str]
) -> int:
    dialect, table = _dialect(session), _table(model)
    sql, encoders = _insert_ignore_sql(table, columns, tuple(keys), dialect)
    for i, encode in enumerate(encoders):
        if encode is not None:
            values[i] = encode(values[i])
    # The driver directly, on the session's own connection and transaction: SQLAlchemy's
    # per-parameter bookkeeping cost as much as the inserts themselves. The values went
    # through the column types' encoders above, so they are stored as the ORM would store them.
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    cursor = driver.cursor()
    try:
        if dialect.name == "postgresql":
            cursor.execute(sql, values)  # one array per column
        else:
            cursor.executemany(sql, zip(*values, strict=True))  # sqlite3 sums the rowcount
        return int(cursor.rowcount)
    except dialect.loaded_dbapi.Error as e:
        raise _wrapped(connection, dialect, sql, e, cursor) from e
    finally:
        cursor.close()


def _wrapped(connection: Connection, dialect: Dialect, sql: str, error: Exception, cursor: Any) -> StatementError:
    """What SQLAlchemy itself makes of a driver error (we bypassed it): its ``DBAPIError``
    subclass (``OperationalError``, ``IntegrityError``...), and on a lost connection
    (a PostgreSQL failover or restart, ``pg_terminate_backend``) the connection invalidated,
    so the pool never hands it out again and the error says ``connection_invalidated``.
    The parameters (whole batches) are left out of the message."""
    lost = dialect.is_disconnect(cast(Any, error), connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(error)
    return DBAPIError.instance(
        sql, None, error, dialect.loaded_dbapi.Error, hide_parameters=True, connection_invalidated=lost, dialect=dialect
    )


Encoder = Callable[[list[Any]], list[Any]]


@lru_cache(maxsize=64)
def _insert_ignore_sql(
    table: Table, columns: tuple[str, ...], keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, list[Encoder | None]]:
    """The statement for :func:`insert_ignore` and, per column, what turns values into the
    database's (None: they go as they are)."""
    quote = dialect.identifier_preparer.quote
    types = [table.c[c].type for c in columns]  # only real column names reach the SQL (KeyError otherwise)
    for key in keys:
        table.c[key]
    target = f"{dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c) for c in columns)})"
    conflict = ", ".join(quote(k) for k in keys)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{t.compile(dialect)}[]" for t in types)  # binary arrays, cast per column
        source = f"SELECT * FROM unnest({arrays})"  # noqa: S608 - placeholders and type names only
    else:
        source = f"VALUES ({', '.join('?' for _ in columns)})"
    # Identifiers are the table's own, quoted; every value is a bound parameter.
    sql = f"INSERT INTO {target} {source} ON CONFLICT ({conflict}) DO NOTHING"
    return sql, [_encoder(t, dialect) for t in types]


def _encoder(column_type: TypeEngine[Any], dialect: Dialect) -> Encoder | None:
    # dialect_impl: the backend's own type (SQLite's DATETIME formats the string the ORM stores).
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    if isinstance(column_type, UTCDateTime):
        # Two per commit: the type's processor (a TypeDecorator calling the backend's) costs
        # more than everything else we do with a row, so UTC values, the only kind the indexer
        # makes, take a shortcut that gives the same value; anything else takes the processor.
        fast = _sqlite_utc if dialect.name == "sqlite" else _as_is

        def encode(values: list[Any]) -> list[Any]:
            if len(values) > 1 and values.count(values[0]) == len(values):  # one for all (links' created_at)
                return encode(values[:1]) * len(values)
            return [fast(v) if type(v) is datetime and v.tzinfo is UTC else process(v) for v in values]

        return encode
    return lambda values: [process(v) for v in values]


def _sqlite_utc(value: datetime) -> str:
    """What SQLAlchemy's SQLite ``DATETIME`` stores for an aware UTC datetime:
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (``isoformat`` pads the year to four digits too)."""
    return value.isoformat(" ", "microseconds")[:26]


def _as_is(value: datetime) -> datetime:
    return value  # psycopg sends an aware datetime as timestamptz: the instant is kept


def upsert(
    session: Session, model: type[Base], rows: Sequence[Row], *, keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert ``rows`` or, where ``keys`` match an existing row, overwrite its ``update`` columns.
    ``rows`` must not repeat a key (PostgreSQL refuses to update one row twice per statement).
    For the small sets (branches, tags, pull requests): a multi-row statement per page."""
    if not rows:
        return
    dialect, table = _dialect(session), _table(model)
    stmt = postgresql.insert(table) if dialect.name == "postgresql" else sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt, list(rows))
