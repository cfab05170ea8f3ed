"""connect_app.indexing.store: bulk inserts store exactly what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from connect_app.indexing import store
from connect_app.indexing.history import COMMIT_COLUMNS
from connect_app.models import Commit
from connect_app.models.base import UTCDateTime
from tests.support.indexing_fixtures import IndexingEnv


def _processor_output(dialect_name: str, value: datetime) -> object:
    dialect = sqlite.dialect() if dialect_name == "sqlite" else postgresql.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    return process(value)


def _encoded(dialect_name: str, values: list[datetime]) -> list[object]:
    dialect = sqlite.dialect() if dialect_name == "sqlite" else postgresql.dialect()
    encode = store._encoder(UTCDateTime(), dialect)
    assert encode is not None
    return encode(values)


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql"])
def test_the_utc_shortcut_stores_what_the_orm_stores(dialect_name: str) -> None:
    rng = random.Random(1)
    values = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime.fromtimestamp(0, UTC),
    ]
    values += [datetime.fromtimestamp(rng.randint(-(2**34), 2**34) + rng.random(), UTC) for _ in range(2000)]
    values += [datetime.fromtimestamp(rng.randint(0, 2**31), UTC) for _ in range(2000)]  # git's whole seconds
    # Not UTC: the type's own processor (converted to UTC).
    values += [datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=h))) for h in (-7, 0, 5)]
    want = [_processor_output(dialect_name, v) for v in values]
    assert _encoded(dialect_name, values) == want
    assert [_encoded(dialect_name, [v])[0] for v in values[:50]] == want[:50]
    same = [values[7]] * 5  # one timestamp for a whole batch (links' created_at)
    assert _encoded(dialect_name, same) == [want[7]] * 5


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql"])
def test_a_naive_datetime_is_refused(dialect_name: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        _encoded(dialect_name, [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1)])


def _rows(indexing: IndexingEnv, repository_id: int, shas: list[str], when: datetime) -> list[tuple[object, ...]]:
    return [
        (indexing.tenant_id, repository_id, sha, "Ada", "ada@example.com", when, when, f"ABC-1 {sha}", 1, 1, None, "x")
        for sha in shas
    ]


def test_value_rows_read_back_and_compare_like_orm_rows(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("http://127.0.0.1:9/repo.git")
    session = indexing.session
    when = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
    shas = [f"{i:040x}" for i in range(3)]
    rows = _rows(indexing, repo.id, shas, when)
    # A repeated key inside the batch and one already stored are both skipped.
    assert (
        store.insert_ignore_values(session, Commit, COMMIT_COLUMNS, [*rows, rows[0]], keys=("repository_id", "sha"))
        == 3
    )
    assert store.insert_ignore_values(session, Commit, COMMIT_COLUMNS, rows[1:], keys=("repository_id", "sha")) == 0
    orm = Commit(
        tenant_id=indexing.tenant_id,
        repository_id=repo.id,
        sha="f" * 40,
        author_name="Ada",
        author_email="ada@example.com",
        authored_at=when,
        committed_at=when,
        message="orm",
        files_changed=0,
        parent_count=0,
    )
    session.add(orm)
    session.commit()
    session.expire_all()

    stored = session.scalars(select(Commit).where(Commit.repository_id == repo.id).order_by(Commit.sha)).all()
    assert [c.committed_at for c in stored] == [when] * 4
    assert all(c.committed_at.tzinfo is not None for c in stored)
    # The database compares the bulk rows and the ORM row alike (same stored format).
    at_or_after = select(Commit.sha).where(Commit.repository_id == repo.id, Commit.committed_at >= when)
    after = select(Commit.sha).where(Commit.repository_id == repo.id, Commit.committed_at > when)
    assert len(session.scalars(at_or_after).all()) == 4
    assert session.scalars(after).all() == []
    before = when - timedelta(microseconds=1)
    assert len(session.scalars(select(Commit.sha).where(Commit.committed_at > before)).all()) == 4


def test_dict_rows_and_value_rows_store_the_same(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("http://127.0.0.1:9/repo.git")
    session = indexing.session
    when = datetime(2023, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    [as_values, as_dict] = _rows(indexing, repo.id, ["a" * 40, "b" * 40], when)
    store.insert_ignore_values(session, Commit, COMMIT_COLUMNS, [as_values], keys=("repository_id", "sha"))
    row = dict(zip(COMMIT_COLUMNS, as_dict, strict=True))
    assert store.insert_ignore(session, Commit, [row], keys=("repository_id", "sha")) == 1
    session.commit()
    raw = session.execute(
        text('SELECT sha, authored_at, committed_at FROM "commit" WHERE repository_id = :r ORDER BY sha'),
        {"r": repo.id},
    ).all()
    assert raw[0][1:] == raw[1][1:]
