"""Jira's Marketplace-side endpoints on loopback: Atlassian's personal-data reporting API (for
connect_app.jira.personal_data) and Connect's app resource with its licence (for
connect_app.jira.licensing.refresh_licenses).

``POST /app/report-accounts/`` (and any other path, for ``PERSONAL_DATA_REPORT_URL``) checks the
app's JWT as Jira does (HS256 with a known shared secret, iss = app key, qsh of the request) and
the body's shape (at most 90 accounts, ``accountId`` + ``updatedAt`` in ``...T..:..:..\\.\\d{3}Z``),
then answers: 429 while ``rate_limit_next`` > 0, ``fail_next`` statuses, 200 with the statuses
of ``closed``/``updated`` accounts among those sent, else 204.

``GET /rest/atlassian-connect/1/addons/<key>`` (same JWT check) answers the app resource with
``license.active`` from ``licenses`` (a site missing there: no ``license`` at all), or
``addon_status`` when set.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from flask import Flask, jsonify, request

from connect_app.jira.jwt import query_string_hash

UPDATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MAX_ACCOUNTS = 90


@dataclass
class ReportCall:
    path: str
    client_key: str | None
    accounts: list[dict[str, Any]]


@dataclass
class MarketplaceStub:
    app_key: str
    secrets_by_client: dict[str, str] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    rate_limit_next: int = 0
    retry_after: str = "120"
    fail_next: list[int] = field(default_factory=list)
    calls: list[ReportCall] = field(default_factory=list)
    licenses: dict[str, bool] = field(default_factory=dict)  # clientKey -> license.active
    addon_status: int | None = None
    addon_calls: list[str | None] = field(default_factory=list)  # clientKey that signed each call
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _client_key(self) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("JWT "):
            return None
        for client_key, secret in list(self.secrets_by_client.items()):
            try:
                claims = pyjwt.decode(header[4:], secret, algorithms=["HS256"], options={"verify_aud": False})
            except pyjwt.PyJWTError:
                continue
            query = {k: request.args.getlist(k) for k in request.args}
            ok = claims.get("iss") == self.app_key and claims.get("qsh") == query_string_hash(
                request.method, request.path, query
            )
            return client_key if ok else None
        return None

    def wsgi(self) -> Flask:
        app = Flask("marketplace-stub")

        @app.get("/rest/atlassian-connect/1/addons/<key>")
        def addon(key: str) -> Any:
            client_key = self._client_key()
            with self.lock:
                self.addon_calls.append(client_key)
                status = self.addon_status
                active = self.licenses.get(client_key or "")
            if client_key is None:
                return jsonify({"message": "Unauthorized"}), 401
            if status is not None:
                return jsonify({"message": "forced"}), status
            body: dict[str, Any] = {"key": key, "version": "1.0.0", "state": "ENABLED"}
            if active is not None:
                body["license"] = {"active": active, "type": "COMMERCIAL", "evaluation": False}
            return jsonify(body)

        @app.post("/<path:path>")
        def report(path: str) -> Any:
            client_key = self._client_key()
            body = request.get_json(silent=True)
            accounts = body.get("accounts") if isinstance(body, dict) else None
            with self.lock:
                self.calls.append(ReportCall(request.path, client_key, list(accounts or [])))
                if client_key is None:
                    return jsonify({"message": "Unauthorized"}), 401
                if self.rate_limit_next > 0:
                    self.rate_limit_next -= 1
                    return jsonify({"message": "Too many requests"}), 429, {"Retry-After": self.retry_after}
                if self.fail_next:
                    return jsonify({"message": "boom"}), self.fail_next.pop(0)
                closed, updated = set(self.closed), set(self.updated)
            if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_ACCOUNTS:
                return jsonify({"message": "between 1 and 90 accounts"}), 400
            for a in accounts:
                if not (
                    isinstance(a, dict)
                    and isinstance(a.get("accountId"), str)
                    and UPDATED_AT.fullmatch(str(a.get("updatedAt")))
                ):
                    return jsonify({"message": f"bad account entry {a!r}"}), 400
            answer = [
                {"accountId": a["accountId"], "status": "closed" if a["accountId"] in closed else "updated"}
                for a in accounts
                if a["accountId"] in closed | updated
            ]
            if not answer:
                return "", 204
            return jsonify({"accounts": answer}), 200

        return app
