"""Play Jira's part in tests: Atlassian's install-key service, signed lifecycle calls,
and request tokens for iframe pages and API calls."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connect_app.jira.jwt import CONTEXT_QSH, encode_install_token, encode_request_token


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class InstallKeyService:
    """Stands in for https://connect-install-keys.atlassian.com: GET /<kid> -> PEM."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_key(self, kid: str | None = None) -> tuple[str, rsa.RSAPrivateKey]:
        kid = kid or f"kid-{secrets.token_hex(6)}"
        key = new_rsa_key()
        with self.lock:
            self.keys[kid] = key
        return kid, key

    def wsgi(self) -> Flask:
        app = Flask("install-keys")

        @app.get("/<kid>")
        def get_key(kid: str) -> tuple[bytes | str, int]:
            with self.lock:
                self.requests.append(kid)
                key = self.keys.get(kid)
            if key is None:
                return "not found", 404
            return public_pem(key), 200

        return app


@dataclass
class JiraSite:
    """A tenant as Jira sees it: clientKey, shared secret and site URL."""

    client_key: str
    shared_secret: str
    base_url: str

    def install_body(self, app_key: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "key": app_key,
            "clientKey": self.client_key,
            "sharedSecret": self.shared_secret,
            "baseUrl": self.base_url,
            "displayUrl": self.base_url,
            "productType": "jira",
            "description": "Atlassian JIRA at " + self.base_url,
            "eventType": "installed",
        }
        body.update(overrides)
        return body

    def token(
        self,
        method: str,
        url: str,
        *,
        account_id: str | None = "acct-user-1",
        context: bool = False,
        secret: str | None = None,
        ttl: int = 180,
        **kw: Any,
    ) -> str:
        parts = urlsplit(url)
        query = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items() if k != "jwt"}
        return encode_request_token(
            issuer=self.client_key,
            secret=secret or self.shared_secret,
            method=method,
            path=parts.path,
            query=query,
            subject=account_id,
            qsh=CONTEXT_QSH if context else None,
            ttl=ttl,
            **kw,
        )


class Jira:
    """Signs what Jira sends to the app under test."""

    def __init__(self, client: FlaskClient, key_service: InstallKeyService, base_url: str, app_key: str) -> None:
        self.client = client
        self.key_service = key_service
        self.app_base_url = base_url
        self.app_key = app_key
        self.kid, self.private_key = key_service.add_key()

    def install_token(self, site: JiraSite, path: str, **kw: Any) -> str:
        kw.setdefault("issuer", site.client_key)
        kw.setdefault("audience", self.app_base_url)
        return encode_install_token(
            private_key=self.private_key, kid=kw.pop("kid", self.kid), method="POST", path=path, query={}, **kw
        )

    def install(self, site: JiraSite, **body_overrides: Any) -> TestResponse:
        path = "/lifecycle/installed"
        return self.client.post(
            path,
            data=json.dumps(site.install_body(self.app_key, **body_overrides)),
            headers={"Authorization": f"JWT {self.install_token(site, path)}", "Content-Type": "application/json"},
        )

    def uninstall(self, site: JiraSite) -> TestResponse:
        path = "/lifecycle/uninstalled"
        body = site.install_body(self.app_key, eventType="uninstalled")
        return self.client.post(
            path,
            data=json.dumps(body),
            headers={"Authorization": f"JWT {self.install_token(site, path)}", "Content-Type": "application/json"},
        )

    def get_page(self, site: JiraSite, url: str, **kw: Any) -> TestResponse:
        token = site.token("GET", url, **kw)
        sep = "&" if "?" in url else "?"
        return self.client.get(f"{url}{sep}jwt={token}", headers={"Accept": "text/html"})

    def api(self, site: JiraSite, method: str, url: str, *, json_body: Any = None, **kw: Any) -> TestResponse:
        token = site.token(method, url, context=True, **kw)
        return self.client.open(url, method=method, json=json_body, headers={"Authorization": f"JWT {token}"})


def new_site(base_url: str) -> JiraSite:
    return JiraSite(
        client_key=f"client-{secrets.token_hex(8)}",
        shared_secret=secrets.token_urlsafe(32),
        base_url=base_url,
    )
