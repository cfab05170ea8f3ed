"""devinfo and smart commits: push bookkeeping and the smart-commit ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 03:29:58.305865
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connect_app.models.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devinfo_tenant_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("last_checked_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_devinfo_tenant_state_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devinfo_tenant_state")),
        sa.UniqueConstraint("tenant_id", name="uq_devinfo_tenant_state_tenant"),
    )
    with op.batch_alter_table("devinfo_tenant_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devinfo_tenant_state_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "devinfo_repository_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("link_cursor", sa.Integer(), nullable=False),
        sa.Column("last_success_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("pushed_branch_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_result", sa.JSON(), nullable=False),
        sa.Column("unknown_issue_keys", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_devinfo_repository_state_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name=op.f("fk_devinfo_repository_state_repository_id_repository"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_devinfo_repository_state_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devinfo_repository_state")),
        sa.UniqueConstraint("repository_id", name="uq_devinfo_repository_state_repository"),
    )
    with op.batch_alter_table("devinfo_repository_state", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devinfo_repository_state_integration_id"), ["integration_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_devinfo_repository_state_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "smart_commit_execution",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("repository_id", sa.Integer(), nullable=True),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issue_key", sa.String(length=255), nullable=False),
        sa.Column("command_index", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("committed_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("executed_at", UTCDateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_smart_commit_execution_integration_id_integration"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name=op.f("fk_smart_commit_execution_repository_id_repository"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_smart_commit_execution_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_commit_execution")),
        sa.UniqueConstraint(
            "tenant_id", "fingerprint", "issue_key", "command_index", name="uq_smart_commit_execution_fingerprint"
        ),
        sa.UniqueConstraint("tenant_id", "sha", "issue_key", "command_index", name="uq_smart_commit_execution_command"),
    )
    with op.batch_alter_table("smart_commit_execution", schema=None) as batch_op:
        batch_op.create_index(
            "ix_smart_commit_execution_integration_created", ["integration_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_smart_commit_execution_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("smart_commit_execution", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smart_commit_execution_tenant_id"))
        batch_op.drop_index("ix_smart_commit_execution_integration_created")

    op.drop_table("smart_commit_execution")
    with op.batch_alter_table("devinfo_repository_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devinfo_repository_state_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_devinfo_repository_state_integration_id"))

    op.drop_table("devinfo_repository_state")
    with op.batch_alter_table("devinfo_tenant_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devinfo_tenant_state_tenant_id"))

    op.drop_table("devinfo_tenant_state")
