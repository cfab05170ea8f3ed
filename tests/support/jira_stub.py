"""A tiny Jira Cloud stand-in on loopback for the app's outbound calls.

It checks the app's JWT the way Jira does (HS256 with the tenant's shared secret,
iss = app key, qsh of the exact request) and answers the endpoints tests need.
Responses follow the shapes in shared/data/specs/jira-platform.openapi.json and, for
``/rest/devinfo/0.10``, jira-software.openapi.json.

It also plays Atlassian's authorization server for Connect user impersonation
(``POST /oauth2/token``, JWT bearer grant; see connect_app/jira/user_lookup.py): an assertion
signed with a tenant's shared secret for its ``oauthClientId`` (``oauth_clients``) earns a
bearer token, which the REST endpoints then accept as that user (``RecordedCall.account_id``).
"""

from __future__ import annotations

import itertools
import re
import secrets
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
    account_id: str | None = None  # the user a bearer (impersonation) token stands for


ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]+-[1-9][0-9]*")
DEVINFO_ID = re.compile(r"[A-Za-z0-9~.\-_]{1,1024}")
JIRA_WORKLOG_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")
DEVINFO_KINDS = ("commits", "branches", "pullRequests")
AUTH_SERVER_AUDIENCE = "https://oauth-2-authorization-server.services.atlassian.com"


def stub_user(account_id: str, email: str | None, name: str, *, hidden: bool = False, **extra: Any) -> dict[str, Any]:
    """A user as ``user/search`` knows it; ``hidden`` hides the address (profile visibility)."""
    user = {"accountId": account_id, "accountType": "atlassian", "active": True, "displayName": name}
    user.update(extra)
    user["_email"] = email
    user["_hidden"] = hidden
    return user


def stub_issue(
    *transitions: str, time_tracking: bool = True, summary: str = "An issue", issue_type: str = "Task"
) -> dict[str, Any]:
    """An issue and the transitions Jira offers from its status (ids 11, 21, 31...); ``summary``
    and ``issue_type`` are what ``GET /rest/api/3/issue/{key}`` shows of it."""
    return {
        "summary": summary,
        "issue_type": issue_type,
        "transitions": [{"id": str(11 + 10 * i), "name": name} for i, name in enumerate(transitions)],
        "time_tracking": time_tracking,
        "comments": [],
        "worklogs": [],
        "transitioned": [],
    }


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
    # -- development information (/rest/devinfo/0.10): what each tenant's Jira holds,
    # {client_key: {repository id: {"properties": {...}, "commits"/"branches"/"pullRequests": {id: entity}}}}
    devinfo: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    devinfo_max_entities: int | None = None  # a request with more entities gets 413
    devinfo_known_keys: set[str] | None = None  # others come back in unknownIssueKeys
    devinfo_refuse_ids: set[str] = field(default_factory=set)  # reported in failedDevinfoEntities
    devinfo_status: int | None = None  # answer every devinfo call with this status (401, 403, 500...)
    devinfo_script: list[int] = field(default_factory=list)  # statuses for the next bulk calls
    # -- platform: users (stub_user), issues (stub_issue) per tenant
    users_by_client: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    issues_by_client: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # -- impersonation: clientKey -> oauthClientId, and the bearer tokens handed out
    oauth_clients: dict[str, str] = field(default_factory=dict)
    bearer_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (clientKey, accountId)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(10000))

    def _client_key(self) -> str | None:
        """The clientKey whose shared secret signed this request with the right iss and qsh
        (or for which a bearer token was issued)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            with self.lock:
                found = self.bearer_tokens.get(header[7:])
            return found[0] if found else None
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

    def _account_id(self) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        with self.lock:
            found = self.bearer_tokens.get(header[7:])
        return found[1] if found else None

    def reset_devinfo(self) -> None:
        with self.lock:
            self.devinfo.clear()
            self.devinfo_max_entities = None
            self.devinfo_known_keys = None
            self.devinfo_refuse_ids.clear()
            self.devinfo_status = None
            self.devinfo_script.clear()

    def reset_smart_commits(self) -> None:
        with self.lock:
            self.users_by_client.clear()
            self.issues_by_client.clear()
            self.oauth_clients.clear()
            self.bearer_tokens.clear()
            self.token_requests.clear()

    def devinfo_entities(self, client_key: str, repository_id: str, kind: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.devinfo.get(client_key, {}).get(str(repository_id), {}).get(kind, {}))

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
            g.account_id = self._account_id()
            query = {k: request.args.getlist(k) for k in request.args}
            with self.lock:
                self.calls.append(
                    RecordedCall(
                        request.method, request.path, request.get_json(silent=True), ok, client_key, query, g.account_id
                    )
                )
                if self.rate_limit_next > 0:
                    self.rate_limit_next -= 1
                    return jsonify({"errorMessages": ["Rate limit exceeded"]}), 429, {"Retry-After": self.retry_after}
            if request.path == "/oauth2/token":
                return None  # the authorization server checks the assertion itself
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

        self._devinfo_routes(app)
        self._smart_commit_routes(app)
        self._issue_routes(app)
        return app

    def calls_to(self, path: str) -> list[RecordedCall]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    # ------------------------------------------------------------------ /rest/devinfo/0.10

    def _devinfo_problem(self, body: Any) -> str | None:
        """Why Jira would refuse this body as a whole (the published limits), or None."""
        if not isinstance(body, dict) or not isinstance(body.get("repositories"), list):
            return "repositories is required"
        repos = body["repositories"]
        if not repos or len(repos) > 100:
            return "1..100 repositories"
        props = body.get("properties") or {}
        if len(props) > 5 or any(k.startswith("_") or ":" in k for k in props):
            return "bad properties"
        total = 0
        seen_repos = set()
        for repo in repos:
            if not DEVINFO_ID.fullmatch(str(repo.get("id", ""))) or repo["id"] in seen_repos:
                return "bad or duplicate repository id"
            seen_repos.add(repo["id"])
            for field_name in ("name", "url", "updateSequenceId"):
                if field_name not in repo:
                    return f"repository {field_name} is required"
            if len(repo["name"]) > 255 or len(repo["url"]) > 2000:
                return "repository name/url too long"
            for kind in DEVINFO_KINDS:
                items = repo.get(kind) or []
                if len(items) > 400:
                    return f"more than 400 {kind}"
                total += len(items)
                ids = [e.get("id") for e in items]
                if len(set(ids)) != len(ids):
                    return f"duplicate {kind} ids"
                for e in items:
                    problem = _entity_problem(kind, e)
                    if problem:
                        return f"{kind} {e.get('id')}: {problem}"
        if total == 0:
            return "no entities"
        if total > 1000:
            return "more than 1000 entities"
        return None

    def _devinfo_routes(self, app: Flask) -> None:
        def forced() -> Any:
            if self.devinfo_status is not None:
                return jsonify({"errorMessages": [{"message": f"forced {self.devinfo_status}"}]}), self.devinfo_status
            return None

        @app.post("/rest/devinfo/0.10/bulk")
        def devinfo_bulk() -> Any:
            if (answer := forced()) is not None:
                return answer
            body = request.get_json(force=True)
            with self.lock:
                scripted = self.devinfo_script.pop(0) if self.devinfo_script else None
            if scripted is not None:
                return jsonify({"errorMessages": [{"message": f"scripted {scripted}"}]}), scripted
            count = sum(len(r.get(k) or []) for r in body.get("repositories", []) for k in DEVINFO_KINDS)
            if self.devinfo_max_entities is not None and count > self.devinfo_max_entities:
                return jsonify({"errorMessages": [{"message": "Data is too large"}]}), 413
            problem = self._devinfo_problem(body)
            if problem:
                return jsonify({"errorMessages": [{"message": problem}]}), 400
            accepted: dict[str, dict[str, list[str]]] = {}
            failed: dict[str, dict[str, list[dict[str, Any]]]] = {}
            unknown: set[str] = set()
            with self.lock:
                store = self.devinfo.setdefault(g.client_key, {})
                for repo in body["repositories"]:
                    held = store.setdefault(str(repo["id"]), {k: {} for k in DEVINFO_KINDS})
                    held["properties"] = dict(body.get("properties") or {})
                    held["name"] = repo["name"]
                    for kind in DEVINFO_KINDS:
                        for entity in repo.get(kind) or []:
                            if entity["id"] in self.devinfo_refuse_ids:
                                failed.setdefault(str(repo["id"]), {}).setdefault(kind, []).append(
                                    {"id": entity["id"], "errorMessages": [{"message": "refused by the stub"}]}
                                )
                                continue
                            if self.devinfo_known_keys is not None:
                                unknown.update(k for k in entity["issueKeys"] if k not in self.devinfo_known_keys)
                            old = held[kind].get(entity["id"])
                            if old is None or old["updateSequenceId"] <= entity["updateSequenceId"]:
                                held[kind][entity["id"]] = {
                                    **entity,
                                    "_preventTransitions": body.get("preventTransitions", False),
                                }
                            accepted.setdefault(str(repo["id"]), {}).setdefault(kind, []).append(entity["id"])
            answer: dict[str, Any] = {"acceptedDevinfoEntities": accepted}
            if failed:
                answer["failedDevinfoEntities"] = failed
            if unknown:
                answer["unknownIssueKeys"] = sorted(unknown)
            return jsonify(answer), 202

        @app.delete("/rest/devinfo/0.10/repository/<repo_id>")
        def devinfo_delete_repository(repo_id: str) -> Any:
            if (answer := forced()) is not None:
                return answer
            with self.lock:
                self.devinfo.get(g.client_key, {}).pop(repo_id, None)
            return "", 202

        @app.delete("/rest/devinfo/0.10/repository/<repo_id>/<entity_type>/<entity_id>")
        def devinfo_delete_entity(repo_id: str, entity_type: str, entity_id: str) -> Any:
            if (answer := forced()) is not None:
                return answer
            kind = {"commit": "commits", "branch": "branches", "pull_request": "pullRequests"}.get(entity_type)
            if kind is None:
                return jsonify({"errorMessages": [{"message": "bad entity type"}]}), 400
            with self.lock:
                self.devinfo.get(g.client_key, {}).get(repo_id, {}).get(kind, {}).pop(entity_id, None)
            return "", 202

        @app.delete("/rest/devinfo/0.10/bulkByProperties")
        def devinfo_delete_by_properties() -> Any:
            if (answer := forced()) is not None:
                return answer
            wanted = {k: v for k, v in request.args.items() if not k.startswith("_")}
            if not wanted or any(len(request.args.getlist(k)) > 1 for k in wanted):
                return jsonify({"errorMessages": [{"message": "properties are required"}]}), 400
            with self.lock:
                store = self.devinfo.get(g.client_key, {})
                for repo_id in [
                    r
                    for r, held in store.items()
                    if all(held.get("properties", {}).get(k) == v for k, v in wanted.items())
                ]:
                    del store[repo_id]
            return "", 202

    # ------------------------------------------------------------------ smart commits

    def _smart_commit_routes(self, app: Flask) -> None:
        @app.post("/oauth2/token")
        def oauth_token() -> Any:
            form = request.form
            with self.lock:
                self.token_requests.append(dict(form))
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return jsonify({"error": "unsupported_grant_type"}), 400
            assertion = form.get("assertion", "")
            try:
                unverified = pyjwt.decode(assertion, options={"verify_signature": False})
            except pyjwt.PyJWTError:
                return jsonify({"error": "invalid_grant"}), 400
            client_id = str(unverified.get("iss", "")).removeprefix("urn:atlassian:connect:clientid:")
            with self.lock:
                client_key = next((ck for ck, cid in self.oauth_clients.items() if cid == client_id), None)
                secret = self.secrets_by_client.get(client_key or "")
            if client_key is None or secret is None:
                return jsonify({"error": "invalid_client"}), 401
            try:
                claims = pyjwt.decode(
                    assertion,
                    secret,
                    algorithms=["HS256"],
                    audience=AUTH_SERVER_AUDIENCE,
                    options={"require": ["exp", "iat"]},
                )
            except pyjwt.PyJWTError as e:
                return jsonify({"error": "invalid_grant", "error_description": str(e)}), 400
            sub = str(claims.get("sub", ""))
            if not sub.startswith("urn:atlassian:connect:useraccountid:") or claims["exp"] - claims["iat"] > 120:
                return jsonify({"error": "invalid_grant"}), 400
            if claims.get("tnt") != request.host_url.rstrip("/"):
                return jsonify({"error": "invalid_grant", "error_description": "wrong tnt"}), 400
            token = "stub-" + secrets.token_urlsafe(16)
            with self.lock:
                self.bearer_tokens[token] = (client_key, sub.rsplit(":", 1)[1])
            return jsonify({"access_token": token, "expires_in": 900, "token_type": "Bearer"})

        @app.get("/rest/api/3/user/search")
        def user_search() -> Any:
            query = (request.args.get("query") or "").casefold()
            if not query:
                return jsonify({"errorMessages": ["query is required"]}), 400
            with self.lock:
                users = list(self.users_by_client.get(g.client_key, []))
            found = []
            for user in users:
                email = (user.get("_email") or "").casefold()
                words = str(user.get("displayName", "")).casefold().split()
                if email.startswith(query) or any(w.startswith(query) for w in words):
                    public = {k: v for k, v in user.items() if not k.startswith("_")}
                    if user.get("_email") and not user.get("_hidden"):
                        public["emailAddress"] = user["_email"]
                    found.append(public)
            return jsonify(found)

        def issue_of(key: str) -> dict[str, Any] | None:
            return self.issues_by_client.get(g.client_key, {}).get(key)

        @app.get("/rest/api/3/issue/<key>/transitions")
        def transitions(key: str) -> Any:
            with self.lock:
                issue = issue_of(key)
                if issue is None:
                    return jsonify(
                        {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
                    ), 404
                return jsonify({"transitions": [dict(t) for t in issue["transitions"]]})

        @app.post("/rest/api/3/issue/<key>/transitions")
        def do_transition(key: str) -> Any:
            body = request.get_json(force=True)
            with self.lock:
                issue = issue_of(key)
                if issue is None:
                    return jsonify(
                        {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
                    ), 404
                wanted = str((body.get("transition") or {}).get("id", ""))
                if wanted not in {t["id"] for t in issue["transitions"]}:
                    return jsonify({"errorMessages": [f"Transition id '{wanted}' is not valid for this issue."]}), 400
                issue["transitioned"].append({"id": wanted, "account_id": g.account_id, "body": body})
            return "", 204

        @app.post("/rest/api/3/issue/<key>/comment")
        def comment(key: str) -> Any:
            body = request.get_json(force=True)
            with self.lock:
                issue = issue_of(key)
                if issue is None:
                    return jsonify(
                        {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
                    ), 404
                if not isinstance(body.get("body"), dict) or body["body"].get("type") != "doc":
                    return jsonify({"errorMessages": ["Comment body must be an ADF document."]}), 400
                comment_id = str(next(self._ids))
                issue["comments"].append({"id": comment_id, "account_id": g.account_id, "body": body["body"]})
            return jsonify({"id": comment_id, "body": body["body"]}), 201

        @app.post("/rest/api/3/issue/<key>/worklog")
        def worklog(key: str) -> Any:
            body = request.get_json(force=True)
            with self.lock:
                issue = issue_of(key)
                if issue is None:
                    return jsonify(
                        {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
                    ), 404
                if not issue["time_tracking"]:
                    return jsonify({"errorMessages": ["Time Tracking is disabled."]}), 400
                if not body.get("timeSpent") or not JIRA_WORKLOG_TIME.fullmatch(str(body.get("started", ""))):
                    return jsonify({"errors": {"started": "Invalid format", "timeLogged": "required"}}), 400
                worklog_id = str(next(self._ids))
                issue["worklogs"].append({"id": worklog_id, "account_id": g.account_id, **body})
            return jsonify({"id": worklog_id, **body}), 201

    # ------------------------------------------------------------------ issues

    def _issue_routes(self, app: Flask) -> None:
        @app.get("/rest/api/3/issue/<key>")
        def get_issue(key: str) -> Any:
            """An ``IssueBean`` as the platform description shows it (id, key, self, fields), with
            only the fields asked for (``fields=summary,issuetype,project``), like Jira."""
            with self.lock:
                issue = self.issues_by_client.get(g.client_key, {}).get(key)
                issue = dict(issue) if issue is not None else None
            if issue is None or not ISSUE_KEY.fullmatch(key):
                return jsonify(
                    {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
                ), 404
            project_key = key.rsplit("-", 1)[0]
            number = key.rsplit("-", 1)[1]
            all_fields: dict[str, Any] = {
                "summary": issue.get("summary", "An issue"),
                "issuetype": {
                    "self": f"{request.host_url}rest/api/3/issuetype/10001",
                    "id": "10001",
                    "name": issue.get("issue_type", "Task"),
                    "subtask": False,
                    "hierarchyLevel": 0,
                },
                "project": {
                    "self": f"{request.host_url}rest/api/3/project/{project_key}",
                    "id": str(10000 + sum(map(ord, project_key))),
                    "key": project_key,
                    "name": f"Project {project_key}",
                    "projectTypeKey": "software",
                    "simplified": False,
                },
            }
            wanted = [f for f in (request.args.get("fields") or "").split(",") if f]
            fields = {k: v for k, v in all_fields.items() if not wanted or k in wanted}
            issue_id = str(20000 + int(number))
            return jsonify(
                {"id": issue_id, "key": key, "self": f"{request.host_url}rest/api/3/issue/{issue_id}", "fields": fields}
            )


def _entity_problem(kind: str, entity: Any) -> str | None:
    """What Jira's schema would refuse in one entity (the published required fields and limits)."""
    if not isinstance(entity, dict):
        return "not an object"
    if not DEVINFO_ID.fullmatch(str(entity.get("id", ""))):
        return "invalid id"
    keys = entity.get("issueKeys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= 100 or not all(ISSUE_KEY.fullmatch(str(k)) for k in keys):
        return "issueKeys must be 1..100 issue keys"
    if not isinstance(entity.get("updateSequenceId"), int):
        return "updateSequenceId is required"
    required = {
        "commits": ("hash", "message", "author", "authorTimestamp", "displayId", "fileCount", "url"),
        "branches": ("name", "lastCommit", "url"),
        "pullRequests": ("status", "title", "author", "commentCount", "sourceBranch", "lastUpdate", "displayId", "url"),
    }[kind]
    missing = [f for f in required if f not in entity]
    if missing:
        return f"missing {', '.join(missing)}"
    limits = {"message": 1024, "title": 1024, "name": 512 if kind == "branches" else 255, "url": 2000}
    for name, limit in limits.items():
        value = entity.get(name)
        if isinstance(value, str) and len(value.encode("utf-16-le")) // 2 > limit:
            return f"{name} longer than {limit}"
    if kind == "commits" and len(entity.get("files") or []) > 10:
        return "more than 10 files"
    if kind == "branches":
        return _entity_problem("commits", entity["lastCommit"])
    return None
