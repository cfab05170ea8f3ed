"""Cost of verifying a Connect JWT and binding the tenant, per request.

Baseline: ``/healthz`` (no auth, no database) served by the same app in the same run.
Ours: ``/api/me`` with a valid context token (tenant lookup, secret decryption, HS256
verification, qsh check). Both in-process through Flask's test client, so the figure is
server time without network.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import Figure, p50, p99, per_call_ms
from connect_app import create_app, migrate
from connect_app.config import Environment, Settings
from connect_app.extensions import db
from connect_app.jira import tenants
from connect_app.jira.jwt import CONTEXT_QSH, encode_request_token
from connect_app.runtime import runtime


def run(repeat: int = 2000) -> list[Figure]:
    instance = Path(tempfile.mkdtemp(prefix="gcj-bench-"))
    settings = Settings(
        instance_path=instance,
        encryption_keys=(Fernet.generate_key().decode(),),
        environment=Environment.TEST,
        jira_base_url_patterns=("https://*.atlassian.net",),
    )
    app = create_app(settings)
    with app.app_context():
        migrate.upgrade(db.engine)
        secret = secrets.token_urlsafe(32)
        payload = tenants.InstallPayload.parse(
            {"key": settings.app_key, "clientKey": "bench-client", "sharedSecret": secret,
             "baseUrl": "https://bench.atlassian.net"}
        )  # fmt: skip
        session = db.session()
        tenants.install(session, payload, runtime(app).secrets)
        session.commit()
    token = encode_request_token(issuer="bench-client", secret=secret, subject="acct", qsh=CONTEXT_QSH, ttl=3600)
    client = app.test_client()
    headers = {"Authorization": f"JWT {token}"}

    def authed() -> None:
        assert client.get("/api/me", headers=headers).status_code == 200

    def trivial() -> None:
        assert client.get("/healthz").status_code == 200

    base = per_call_ms(trivial, repeat=repeat)
    ours = per_call_ms(authed, repeat=repeat)
    return [
        Figure("api request with JWT auth, p50", p50(ours), p50(base), "/healthz p50"),
        Figure("api request with JWT auth, p99", p99(ours), p99(base), "/healthz p99"),
    ]
