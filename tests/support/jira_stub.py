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
from flask import Flask, jsonify, request

from connect_app.jira.jwt import query_string_hash


@dataclass
class RecordedCall:
    method: str
    path: str
    body: Any
    auth_ok: bool


@dataclass
class JiraStub:
    app_key: str
    secrets_by_client: dict[str, str] = field(default_factory=dict)  # shared secrets the stub accepts
    admins: set[str] = field(default_factory=set)
    calls: list[RecordedCall] = field(default_factory=list)
    rate_limit_next: int = 0  # answer this many requests with 429 first
    retry_after: str = "1"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _authorized(self) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("JWT "):
            return False
        token = header[4:]
        for secret in list(self.secrets_by_client.values()):
            try:
                claims = pyjwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
            except pyjwt.PyJWTError:
                continue
            query = {k: request.args.getlist(k) for k in request.args}
            expected = query_string_hash(request.method, request.path, query)
            return bool(claims.get("iss") == self.app_key and claims.get("qsh") == expected)
        return False

    def wsgi(self) -> Flask:
        app = Flask("jira-stub")

        @app.before_request
        def _record() -> Any:
            ok = self._authorized()
            with self.lock:
                self.calls.append(RecordedCall(request.method, request.path, request.get_json(silent=True), ok))
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

        return app

    def calls_to(self, path: str) -> list[RecordedCall]:
        with self.lock:
            return [c for c in self.calls if c.path == path]
