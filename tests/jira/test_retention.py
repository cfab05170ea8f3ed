"""Uninstall keeps nothing: the tenant's rows (cascade), its mirrors on disk and its Redis caches
(connect_app.jira.retention); another tenant's are untouched."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from redis import Redis
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.jira.retention import forget_tenant, tenant_mirrors_dir
from connect_app.models import Tenant
from connect_app.runtime import runtime
from tests.support.connect import Jira, JiraSite


def _tenant_id(site: JiraSite) -> int:
    tenant_id = db.session().scalar(select(Tenant.id).where(Tenant.client_key == site.client_key))
    assert tenant_id is not None
    return tenant_id


def _leave_traces(tenant_id: int) -> Path:
    mirror = tenant_mirrors_dir(tenant_id) / "7.git"
    (mirror / "objects").mkdir(parents=True)
    (mirror / "HEAD").write_text("ref: refs/heads/main\n")
    conn = redis_conn.client
    conn.set(f"gcj:jira-user:{tenant_id}:abc", '{"a": "acct"}')
    conn.hset(f"gcj:user-permission-failures:{tenant_id}:acct", "1:1", "9")
    conn.set(f"gcj:browse-compare:{tenant_id}:1:a:b:c", "{}")
    conn.set(f"gcj:browse-last-linked:{tenant_id}:1:a", "{}")
    conn.set(f"gcj:jira-projects-attempt:{tenant_id}", "1")
    conn.set(f"gcj:admin:{tenant_id}:acct", "1")
    conn.set(f"gcj:browse-projects:{tenant_id}:acct", "1")
    return mirror


PREFIXES = (
    "gcj:jira-user",
    "gcj:user-permission-failures",
    "gcj:browse-compare",
    "gcj:browse-last-linked",
    "gcj:admin",
    "gcj:browse-projects",
)


def _traces(conn: Redis, tenant_id: int) -> list[bytes]:
    keys = [k for p in PREFIXES for k in conn.scan_iter(match=f"{p}:{tenant_id}:*")]
    return sorted(keys + list(conn.scan_iter(match=f"gcj:jira-projects-attempt:{tenant_id}")))


def test_uninstall_removes_mirrors_and_caches(
    app: Flask, jira: Jira, installed_site: JiraSite, other_site: JiraSite
) -> None:
    with app.app_context():
        gone, kept = _tenant_id(installed_site), _tenant_id(other_site)
        _leave_traces(gone)
        kept_mirror = _leave_traces(kept)
    assert jira.uninstall(installed_site).status_code == 204
    with app.app_context():
        assert not tenant_mirrors_dir(gone).exists()
        assert _traces(redis_conn.client, gone) == []
        assert kept_mirror.is_dir()
        assert len(_traces(redis_conn.client, kept)) == 7


def test_forget_tenant_without_anything_to_forget(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        assert forget_tenant(424242, mirrors_dir=tmp_path) == {"mirror_dirs": 0, "redis_keys": 0}
        assert tenant_mirrors_dir(5) == runtime().settings.mirrors_dir / "5"
