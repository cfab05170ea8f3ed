"""A tiny Jira Cloud stand-in on loopback for the app's outbound calls.

It checks the app's JWT the way Jira does (HS256 with the tenant's shared secret,
iss = app key, qsh of the exact request) and answers the endpoints tests need.
Responses follow the shapes in shared/data/specs/jira-platform.openapi.json.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from flask import Flask, g, jsonify, request

from connect_app.jira.jwt import query_string_hash


@dataclass
class RecordedCall:
    method: str
    path: str
    body: Any
    auth_ok: bool
    client_key: str | None = None  # whose shared secret signed the call
    query: dict[str, list[str]] = field(default_factory=dict)


def stub_project(project_id: int | str, key: str, name: str | None = None) -> dict[str, Any]:
    """A project as ``project/search`` returns it (``Project`` in the platform description)."""
    return {
        "id": str(project_id),
        "key": key,
        "name": name if name is not None else f"Project {key}",
        "projectTypeKey": "software",
        "simplified": False,
        "style": "classic",
        "isPrivate": False,
        "properties": {},
    }


@dataclass
class JiraStub:
    app_key: str
    secrets_by_client: dict[str, str] = field(default_factory=dict)  # shared secrets the stub accepts
    admins: set[str] = field(default_factory=set)
    calls: list[RecordedCall] = field(default_factory=list)
    rate_limit_next: int = 0  # answer this many requests with 429 first
    retry_after: str = "1"
    # GET /rest/api/3/project/search: each tenant's projects (stub_project dicts), the page
    # size cap Jira applies, and failures to inject: startAt -> HTTP status (or "garbage").
    projects_by_client: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    project_page_cap: int = 50
    project_search_failures: dict[int, int | str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _client_key(self) -> str | None:
        """The clientKey whose shared secret signed this request with the right iss and qsh."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("JWT "):
            return None
        token = header[4:]
        for client_key, secret in list(self.secrets_by_client.items()):
            try:
                claims = pyjwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
            except pyjwt.PyJWTError:
                continue
            query = {k: request.args.getlist(k) for k in request.args}
            expected = query_string_hash(request.method, request.path, query)
            ok = claims.get("iss") == self.app_key and claims.get("qsh") == expected
            return client_key if ok else None
        return None

    def _authorized(self) -> bool:
        return self._client_key() is not None

    def reset_projects(self) -> None:
        with self.lock:
            self.projects_by_client.clear()
            self.project_search_failures.clear()
            self.project_page_cap = 50

    def wsgi(self) -> Flask:
        app = Flask("jira-stub")

        @app.before_request
        def _record() -> Any:
            client_key = self._client_key()
            ok = client_key is not None
            g.client_key = client_key
            query = {k: request.args.getlist(k) for k in request.args}
            with self.lock:
                self.calls.append(
                    RecordedCall(request.method, request.path, request.get_json(silent=True), ok, client_key, query)
                )
                if self.rate_limit_next > 0:
                    self.rate_limit_next -= 1
                    return jsonify({"errorMessages": ["Rate limit exceeded"]}), 429, {"Retry-After": self.retry_after}
            if not ok:
                return jsonify({"errorMessages": ["Client must be authenticated to access this resource."]}), 401
            return None

        @app.post("/rest/api/3/permissions/check")
        def permissions_check() -> Any:
            body = request.get_json(force=True)
            granted = [
                p
                for p in body.get("globalPermissions", [])
                if p == "ADMINISTER" and body.get("accountId") in self.admins
            ]
            return jsonify({"globalPermissions": granted, "projectPermissions": []})

        @app.get("/rest/api/3/myself")
        def myself() -> Any:
            return jsonify({"accountId": "app-user", "accountType": "app", "active": True})

        @app.get("/rest/api/3/project/search")
        def project_search() -> Any:
            # A PageBeanProject, paged like Jira: startAt/maxResults (capped), ordered by key.
            try:
                start_at = int(request.args.get("startAt", "0"))
                max_results = int(request.args.get("maxResults", "50"))
            except ValueError:
                return jsonify({"errorMessages": ["startAt and maxResults must be integers"]}), 400
            if start_at < 0 or max_results < 0:
                return jsonify({"errorMessages": ["startAt and maxResults must not be negative"]}), 400
            with self.lock:
                failure = self.project_search_failures.get(start_at)
                cap = self.project_page_cap
                projects = sorted(self.projects_by_client.get(g.client_key, []), key=lambda p: str(p["key"]))
            if failure == "garbage":
                return "<html>not json</html>", 200, {"Content-Type": "text/html"}
            if isinstance(failure, int):
                return jsonify({"errorMessages": [f"injected failure {failure}"]}), failure
            size = min(max_results, cap)
            values = projects[start_at : start_at + size]
            is_last = start_at + size >= len(projects)
            base = request.base_url
            page: dict[str, Any] = {
                "self": f"{base}?startAt={start_at}&maxResults={size}",
                "maxResults": size,
                "startAt": start_at,
                "total": len(projects),
                "isLast": is_last,
                "values": [{**p, "self": f"{request.host_url}rest/api/3/project/{p['id']}"} for p in values],
            }
            if not is_last:
                page["nextPage"] = f"{base}?startAt={start_at + size}&maxResults={size}"
            return jsonify(page)

        return app

    def calls_to(self, path: str) -> list[RecordedCall]:
        with self.lock:
            return [c for c in self.calls if c.path == path]
