"""Every table after ``tenant`` carries a tenant id that cascades on delete, so that
uninstall removes everything and every query can be scoped to the verified tenant."""

from __future__ import annotations

from connect_app.models import Base


def test_every_table_is_tenant_scoped() -> None:
    for table in Base.metadata.sorted_tables:
        if table.name == "tenant":
            continue
        column = table.columns.get("tenant_id")
        assert column is not None, f"{table.name} has no tenant_id"
        assert not column.nullable, table.name
        [fk] = [fk for fk in column.foreign_keys if fk.column.table.name == "tenant"]
        assert fk.ondelete == "CASCADE", table.name


def test_migrations_match_the_models(app) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from connect_app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
