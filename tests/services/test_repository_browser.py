"""Which repositories the browser shows, without an issue: the panel's rules plus project
association judged by the projects the viewer may browse; search, paging and cursors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask

from connect_app.errors import NotFound, PermissionDenied, ValidationError
from connect_app.models import IntegrationStatus
from connect_app.services import repository_browser as browser
from tests.support.connect import JiraSite
from tests.web.development_data import T0, DevData, tenant_id_of

SECRET = browser.cursor_key("test material")


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(tenant_id_of(installed_site))


def may_browse(*keys: str) -> browser.ProjectAccess:
    return lambda asked: frozenset(k for k in asked if k in keys)


def names(data: DevData, access: browser.ProjectAccess, account: str | None = "acct-1") -> list[str]:
    visible = browser.visible_repositories(data.session, data.tenant_id, account, project_access=access)
    return sorted(r.name for r in visible.repositories.values())


def test_project_association_without_an_issue(data: DevData) -> None:
    acme = data.integration("acme")
    data.repository(acme, "open")
    data.repository(acme, "abc-only", project_keys=("ABC",))
    data.repository(acme, "abc-or-def", project_keys=("ABC", "DEF"))
    limited = data.integration("limited", project_keys=("XYZ",))
    data.repository(limited, "xyz-by-integration")
    data.repository(limited, "own-list-wins", project_keys=("DEF",))

    assert names(data, may_browse()) == ["acme/open"]
    assert names(data, may_browse("ABC")) == ["acme/abc-only", "acme/abc-or-def", "acme/open"]
    assert names(data, may_browse("DEF")) == ["acme/abc-or-def", "acme/open", "limited/own-list-wins"]
    assert names(data, may_browse("XYZ")) == ["acme/open", "limited/xyz-by-integration"]


def test_the_panel_rules_still_apply(data: DevData) -> None:
    acme = data.integration("acme")
    data.repository(acme, "shown")
    data.repository(acme, "disabled", enabled=False)
    data.repository(acme, "removed", removed=True)
    off = data.integration("off", status=IntegrationStatus.DISABLED.value)
    data.repository(off, "of-a-disabled-integration")
    enforcing = data.integration("enforcing", enforce_permissions=True)
    secret = data.repository(enforcing, "needs-a-token")

    visible = browser.visible_repositories(data.session, data.tenant_id, "acct-1", project_access=may_browse())
    assert sorted(r.name for r in visible.repositories.values()) == ["acme/shown"]
    assert [i.display_name for i in visible.needs_token] == ["enforcing"]
    with pytest.raises(PermissionDenied) as raised:
        browser.browse_repository(data.session, data.tenant_id, "acct-1", secret.id, project_access=may_browse())
    assert raised.value.code == "token_required" and "enforcing" in raised.value.message


def test_another_tenants_repository_is_not_found(app: Flask, data: DevData, other_site: JiraSite) -> None:
    theirs = DevData(tenant_id_of(other_site))
    repo = theirs.repository(theirs.integration("theirs"), "private")
    with pytest.raises(NotFound) as raised:
        browser.browse_repository(data.session, data.tenant_id, "acct-1", repo.id, project_access=may_browse())
    assert raised.value.code == "repository_not_found"
    assert names(data, may_browse()) == []


def test_search_pages_and_last_commit(data: DevData) -> None:
    acme = data.integration("acme")
    repos = [data.repository(acme, f"service-{i:02d}") for i in range(5)]
    data.repository(acme, "website")
    old = data.commit(repos[0], "ABC-1 old", at=T0)
    new = data.commit(repos[0], "ABC-2 newer\n\nbody", at=T0 + timedelta(days=1))
    data.branch(repos[0], "main", head=old.sha)
    data.branch(repos[0], "feature/x", head=new.sha)

    def page(cursor: str | None = None, query: str = "service") -> browser.RepositoryPage:
        return browser.list_repositories(
            data.session,
            tenant_id=data.tenant_id,
            account_id="acct-1",
            project_access=may_browse(),
            query=query,
            limit=2,
            cursor=cursor,
            cursor_secret=SECRET,
        )

    first = page()
    assert first.total == 5 and [r["name"] for r in first.repositories] == ["acme/service-00", "acme/service-01"]
    last_commit = first.repositories[0]["last_commit"]
    assert last_commit["sha"] == new.sha and last_commit["message"] == "ABC-2 newer"
    assert last_commit["branch"] == "feature/x"
    assert first.repositories[1]["last_commit"] is None
    seen = [r["name"] for r in first.repositories]
    cursor = first.next_cursor
    while cursor:
        following = page(cursor)
        seen += [r["name"] for r in following.repositories]
        cursor = following.next_cursor
    assert seen == [f"acme/service-{i:02d}" for i in range(5)]
    assert first.next_cursor is not None
    with pytest.raises(ValidationError):  # a cursor of another search
        page(first.next_cursor, query="web")
    with pytest.raises(ValidationError):
        page(first.next_cursor[:-2] + "AA")
    assert [r["name"] for r in page(query="WEB").repositories] == ["acme/website"]


def test_refs_default_branch_first_and_search(data: DevData) -> None:
    repo = data.repository(data.integration("acme"), "api")
    for name in ("alpha", "main", "zeta_1"):
        data.branch(repo, name)
    data.tag(repo, "v1.0", "a" * 40)
    visible = browser.browse_repository(data.session, data.tenant_id, "acct-1", repo.id, project_access=may_browse())
    refs = browser.list_refs(data.session, data.tenant_id, visible)
    assert [b["name"] for b in refs["branches"]] == ["main", "alpha", "zeta_1"]
    assert refs["tags"] == [{"name": "v1.0", "sha": "a" * 40}]
    assert [b["name"] for b in browser.list_refs(data.session, data.tenant_id, visible, "_1")["branches"]] == ["zeta_1"]
