"""The Jira stub, plus the project permissions of ``POST /rest/api/3/permissions/check``.

:class:`BrowseJiraStub` answers ``projectPermissions`` the way the platform description
(``BulkPermissionsRequestBean`` -> ``BulkPermissionGrants``) says: for each requested
permission, the requested project ids the account holds it for. Tests say who may browse
what with ``browse[(client_key, account_id)] = {project ids}``.

Fixtures (import the ``*_fixture`` functions into a test module; they register under these names):

* ``browse_jira_stub`` / ``browse_jira_server`` (session): the stub and its loopback server.
* ``browse_site``: a tenant installed with that server as its Jira, cleaned up afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, jsonify, request

from tests.support.connect import Jira, JiraSite, new_site
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub

APP_KEY = "git-connect-for-jira"


@dataclass
class BrowseJiraStub(JiraStub):
    browse: dict[tuple[str, str], set[int]] = field(default_factory=dict)

    def wsgi(self) -> Flask:
        app = super().wsgi()

        def permissions_check() -> Any:
            from flask import g

            body = request.get_json(force=True)
            if not isinstance(body, dict) or set(body) - {"accountId", "globalPermissions", "projectPermissions"}:
                return jsonify({"errorMessages": ["Unrecognized field"], "errors": {}}), 400
            account = body.get("accountId")
            global_granted = [
                p for p in body.get("globalPermissions") or [] if p == "ADMINISTER" and account in self.admins
            ]
            with self.lock:
                allowed = set(self.browse.get((g.client_key, str(account)), set()))
            grants = []
            for ask in body.get("projectPermissions") or []:
                if not ask.get("permissions"):
                    return jsonify({"errorMessages": ["at least one project permission"], "errors": {}}), 400
                projects = ask.get("projects") or []
                if len(projects) > 1000:
                    return jsonify({"errorMessages": ["more than 1000 project ids"], "errors": {}}), 400
                for permission in ask["permissions"]:
                    granted = [p for p in projects if permission == "BROWSE_PROJECTS" and p in allowed]
                    grants.append({"permission": permission, "projects": granted, "issues": []})
            return jsonify({"globalPermissions": global_granted, "projectPermissions": grants})

        app.view_functions["permissions_check"] = permissions_check
        return app

    def project_checks(self) -> list[Any]:
        return [c.body for c in self.calls_to("/rest/api/3/permissions/check") if c.body.get("projectPermissions")]


@pytest.fixture(scope="session", name="browse_jira_stub")
def browse_jira_stub_fixture() -> BrowseJiraStub:
    return BrowseJiraStub(app_key=APP_KEY)


@pytest.fixture(scope="session", name="browse_jira_server")
def browse_jira_server_fixture(browse_jira_stub: BrowseJiraStub) -> Iterator[LoopbackServer]:
    server = LoopbackServer(browse_jira_stub.wsgi()).start()
    yield server
    server.stop()


@pytest.fixture(name="browse_site")
def browse_site_fixture(
    jira: Jira, browse_jira_stub: BrowseJiraStub, browse_jira_server: LoopbackServer
) -> Iterator[JiraSite]:
    site = new_site(browse_jira_server.url)
    browse_jira_stub.secrets_by_client[site.client_key] = site.shared_secret
    response = jira.install(site)
    assert response.status_code == 204, response.get_data(as_text=True)
    yield site
    browse_jira_stub.secrets_by_client.pop(site.client_key, None)
    browse_jira_stub.browse.clear()
    browse_jira_stub.calls.clear()
