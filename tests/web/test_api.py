from __future__ import annotations

import re

from connect_app.hosts.base import ProviderId
from tests.support.connect import Jira, JiraSite


def test_providers_lists_all_eleven_with_capabilities(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.api(installed_site, "GET", "/api/providers")
    assert response.status_code == 200
    body = response.get_json()
    assert [p["id"] for p in body] == [p.value for p in ProviderId]
    by_id = {p["id"]: p for p in body}
    assert by_id["git"]["capabilities"] == ["create_branch"]
    assert "oauth" in by_id["github"]["auth_types"]
    assert by_id["gitlab-self-managed"]["self_hosted"] is True


def test_providers_needs_a_context_token(client, installed_site: JiraSite) -> None:
    assert client.get("/api/providers").status_code == 401
    token = installed_site.token("GET", "/api/providers")  # module-style qsh
    assert client.get("/api/providers", headers={"Authorization": f"JWT {token}"}).status_code == 401


def test_openapi_document_describes_every_api_route(app, client) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule)  # Flask's <int:id> is OpenAPI's {id}
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/") and r.rule != "/api/openapi.json"
    }
    assert routes <= set(doc["paths"]), routes - set(doc["paths"])
