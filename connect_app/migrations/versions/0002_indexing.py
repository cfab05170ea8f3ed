"""indexing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 03:13:26.826706
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connect_app.models.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=1024), nullable=True),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("auth_type", sa.String(length=16), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("credential_key", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("repository_selection", sa.String(length=16), nullable=False),
        sa.Column("require_user_pat", sa.Boolean(), nullable=False),
        sa.Column("enforce_permissions", sa.Boolean(), nullable=False),
        sa.Column("project_keys", sa.JSON(), nullable=False),
        sa.Column("reindex_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("webhook_token", sa.String(length=64), nullable=False),
        sa.Column("webhook_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("last_discovered_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_integration_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration")),
        sa.UniqueConstraint("webhook_token", name=op.f("uq_integration_webhook_token")),
    )
    with op.batch_alter_table("integration", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_integration_credential_key"), ["credential_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_integration_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "jira_project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_jira_project_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jira_project")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_jira_project_tenant_key"),
    )
    with op.batch_alter_table("jira_project", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jira_project_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "repository",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("clone_url", sa.String(length=2048), nullable=False),
        sa.Column("web_url", sa.String(length=2048), nullable=True),
        sa.Column("default_branch", sa.String(length=255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("project_keys", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_indexed_at", UTCDateTime(), nullable=True),
        sa.Column("last_changed_at", UTCDateTime(), nullable=True),
        sa.Column("next_index_at", UTCDateTime(), nullable=True),
        sa.Column("reindex_requested_at", UTCDateTime(), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_id", sa.String(length=255), nullable=True),
        sa.Column("refs_digest", sa.String(length=64), nullable=True),
        sa.Column("indexed_tips", sa.JSON(), nullable=False),
        sa.Column("walk_state", sa.JSON(), nullable=True),
        sa.Column("pull_requests_synced_at", UTCDateTime(), nullable=True),
        sa.Column("commit_count", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_repository_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_repository_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repository")),
        sa.UniqueConstraint("integration_id", "external_id", name="uq_repository_integration_external"),
    )
    with op.batch_alter_table("repository", schema=None) as batch_op:
        batch_op.create_index("ix_repository_due", ["enabled", "next_index_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_repository_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_repository_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("delivery_key", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("enqueued_at", UTCDateTime(), nullable=True),
        sa.Column("repository_ids", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_webhook_delivery_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_webhook_delivery_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("integration_id", "delivery_key", name="uq_webhook_delivery_integration_key"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_delivery_status", ["status", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_delivery_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "branch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repository.id"], name=op.f("fk_branch_repository_id_repository"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_branch_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_branch")),
        sa.UniqueConstraint("repository_id", "name", name="uq_branch_repository_name"),
    )
    with op.batch_alter_table("branch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_branch_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "commit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("author_name", sa.String(length=255), nullable=False),
        sa.Column("author_email", sa.String(length=255), nullable=False),
        sa.Column("authored_at", UTCDateTime(), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("files_changed", sa.Integer(), nullable=False),
        sa.Column("parent_count", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repository.id"], name=op.f("fk_commit_repository_id_repository"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_commit_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commit")),
        sa.UniqueConstraint("repository_id", "sha", name="uq_commit_repository_sha"),
    )
    with op.batch_alter_table("commit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commit_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "index_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=True),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("commits_seen", sa.Integer(), nullable=False),
        sa.Column("commits_linked", sa.Integer(), nullable=False),
        sa.Column("branches_seen", sa.Integer(), nullable=False),
        sa.Column("pull_requests_seen", sa.Integer(), nullable=False),
        sa.Column("links_created", sa.Integer(), nullable=False),
        sa.Column("repositories_seen", sa.Integer(), nullable=False),
        sa.Column("rate_limited_until", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_index_run_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repository.id"], name=op.f("fk_index_run_repository_id_repository"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_index_run_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_run")),
    )
    with op.batch_alter_table("index_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_index_run_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index("ix_index_run_repository_status", ["repository_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_index_run_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_index_run_tenant_queued", ["tenant_id", "queued_at"], unique=False)

    op.create_table(
        "issue_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("issue_key", sa.String(length=255), nullable=False),
        sa.Column("project_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=1024), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name=op.f("fk_issue_link_repository_id_repository"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_issue_link_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_link")),
        sa.UniqueConstraint("repository_id", "kind", "ref", "issue_key", name="uq_issue_link_target_key"),
    )
    with op.batch_alter_table("issue_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_link_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_issue_link_tenant_issue", ["tenant_id", "issue_key"], unique=False)

    op.create_table(
        "pull_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source_branch", sa.String(length=1024), nullable=False),
        sa.Column("target_branch", sa.String(length=1024), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("created_on_host", UTCDateTime(), nullable=True),
        sa.Column("updated_on_host", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
            name=op.f("fk_pull_request_repository_id_repository"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_pull_request_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_request")),
        sa.UniqueConstraint("repository_id", "external_id", name="uq_pull_request_repository_external"),
    )
    with op.batch_alter_table("pull_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pull_request_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repository.id"], name=op.f("fk_tag_repository_id_repository"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_tag_tenant_id_tenant"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
        sa.UniqueConstraint("repository_id", "name", name="uq_tag_repository_name"),
    )
    with op.batch_alter_table("tag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tag_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tag_tenant_id"))

    op.drop_table("tag")
    with op.batch_alter_table("pull_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pull_request_tenant_id"))

    op.drop_table("pull_request")
    with op.batch_alter_table("issue_link", schema=None) as batch_op:
        batch_op.drop_index("ix_issue_link_tenant_issue")
        batch_op.drop_index(batch_op.f("ix_issue_link_tenant_id"))

    op.drop_table("issue_link")
    with op.batch_alter_table("index_run", schema=None) as batch_op:
        batch_op.drop_index("ix_index_run_tenant_queued")
        batch_op.drop_index(batch_op.f("ix_index_run_tenant_id"))
        batch_op.drop_index("ix_index_run_repository_status")
        batch_op.drop_index(batch_op.f("ix_index_run_integration_id"))

    op.drop_table("index_run")
    with op.batch_alter_table("commit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commit_tenant_id"))

    op.drop_table("commit")
    with op.batch_alter_table("branch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_branch_tenant_id"))

    op.drop_table("branch")
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_tenant_id"))
        batch_op.drop_index("ix_webhook_delivery_status")

    op.drop_table("webhook_delivery")
    with op.batch_alter_table("repository", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repository_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_repository_integration_id"))
        batch_op.drop_index("ix_repository_due")

    op.drop_table("repository")
    with op.batch_alter_table("jira_project", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jira_project_tenant_id"))

    op.drop_table("jira_project")
    with op.batch_alter_table("integration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_integration_credential_key"))

    op.drop_table("integration")
