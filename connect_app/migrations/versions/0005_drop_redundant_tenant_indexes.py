"""drop the tenant_id-only indexes of commit and issue_link

Both tables are written in bulk on every index run; ``issue_link`` already has
``(tenant_id, issue_key)``, and ``commit`` is reached through ``(repository_id, sha)``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commit") as batch:
        batch.drop_index("ix_commit_tenant_id")
    with op.batch_alter_table("issue_link") as batch:
        batch.drop_index("ix_issue_link_tenant_id")


def downgrade() -> None:
    with op.batch_alter_table("issue_link") as batch:
        batch.create_index("ix_issue_link_tenant_id", ["tenant_id"], unique=False)
    with op.batch_alter_table("commit") as batch:
        batch.create_index("ix_commit_tenant_id", ["tenant_id"], unique=False)
