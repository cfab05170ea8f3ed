"""Bulk writes for the indexer: insert-or-ignore and upsert on a unique key, for SQLite and PostgreSQL.

No ORM objects, and one round trip per batch where the backend allows:

* PostgreSQL: ``INSERT ... SELECT * FROM unnest(%b, %b, ...) ON CONFLICT DO NOTHING`` -- one
  statement whose parameters are one (binary) array per column, so a batch of 1,000 commits is
  one round trip and its ``rowcount`` is exact (an executemany's is not, with psycopg).
* SQLite: the driver's ``executemany`` (a C loop in-process); sqlite3 sums its ``rowcount``.

Both go to the driver directly (see :func:`insert_ignore`).

Every call runs on the session's connection, inside its transaction: the caller commits the
rows together with its cursor, so a crash leaves both or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from connect_app.errors import ConfigError
from connect_app.models import Base

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
    dialect, table, columns = _dialect(session), _table(model), tuple(rows[0])
    sql, processors = _insert_ignore_sql(table, columns, tuple(keys), dialect)
    values = []
    for column, process in zip(columns, processors, strict=True):
        column_values = [row[column] for row in rows]
        values.append([process(v) for v in column_values] if process is not None else column_values)
    # The driver directly, on the session's own connection and transaction: SQLAlchemy's
    # per-parameter bookkeeping cost as much as the inserts themselves. The values went
    # through the column types' bind processors above, so they are stored as the ORM would.
    driver: Any = session.connection().connection.driver_connection
    cursor = driver.cursor()
    try:
        if dialect.name == "postgresql":
            cursor.execute(sql, values)  # one array per column
        else:
            cursor.executemany(sql, list(zip(*values, strict=True)))  # sqlite3 sums the rowcount
        return int(cursor.rowcount)
    finally:
        cursor.close()


@lru_cache(maxsize=64)
def _insert_ignore_sql(
    table: Table, columns: tuple[str, ...], keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, list[Callable[[Any], Any] | None]]:
    """The statement for :func:`insert_ignore` and the columns' bind processors."""
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
    # dialect_impl: the backend's own type (SQLite's DATETIME formats the string the ORM stores).
    return sql, [t.dialect_impl(dialect).bind_processor(dialect) for t in types]


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
