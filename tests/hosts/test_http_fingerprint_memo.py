"""credential_fingerprint remembers its PBKDF2 result per process without keeping the secret."""

from __future__ import annotations

import hashlib

import pytest

from connect_app.hosts import http
from connect_app.hosts.http import credential_fingerprint


def _stretched(secret: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), b"git-connect-for-jira/credential", 10_000).hex()[:32]


def test_remembered_fingerprint_equals_the_stretched_one() -> None:
    for secret in ("ghp_first-token", "ghp_second-token", "päss wörd", ""):
        first = credential_fingerprint(secret)
        assert first == _stretched(secret)
        assert credential_fingerprint(secret) == first  # the remembered answer


def test_memo_holds_neither_the_secret_nor_its_plain_hash() -> None:
    secret = "ghp_memo-secret-0123456789"
    credential_fingerprint(secret)
    plain_hash = hashlib.sha256(secret.encode()).digest()
    for key, value in http._fingerprints.items():
        assert secret.encode() not in key and key != plain_hash
        assert secret not in value


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_fingerprints", {})
    monkeypatch.setattr(http, "_FINGERPRINT_MEMO_SIZE", 3)
    for i in range(10):
        assert credential_fingerprint(f"token-{i}") == _stretched(f"token-{i}")
        assert len(http._fingerprints) <= 3
