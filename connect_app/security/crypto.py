"""Encryption of secrets at rest (tokens, shared secrets) with Fernet.

``ENCRYPTION_KEYS`` holds comma-separated Fernet keys: the first encrypts, all
decrypt (MultiFernet), so a key is rotated by prepending a new one, running
``python -m connect_app rotate-keys`` and then dropping the old one.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connect_app.config import Settings
from connect_app.errors import ConfigError

_KEY_FILE = "encryption.key"


class SecretBox:
    """Encrypts and decrypts short secrets; holds keys only in memory."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ConfigError("no encryption key configured (ENCRYPTION_KEYS)")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as e:
            raise ConfigError(
                "ENCRYPTION_KEYS must be comma-separated Fernet keys "
                "(generate one with `python -m connect_app generate-key`)"
            ) from e

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as e:
            raise ConfigError("a stored secret cannot be decrypted with the configured ENCRYPTION_KEYS") from e

    def rotate(self, token: str) -> str:
        """Re-encrypt with the first key (after a key was prepended)."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"


def resolve_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys; in development/test a key generated once in the instance folder."""
    if settings.encryption_keys:
        return settings.encryption_keys
    if settings.is_production:
        raise ConfigError("ENCRYPTION_KEYS must be set in production mode")
    path = Path(settings.instance_path) / _KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key().decode()
        # O_EXCL: two processes starting together must not write two keys
        try:
            with path.open("x") as fh:
                fh.write(key + "\n")
            path.chmod(0o600)
        except FileExistsError:
            pass
    return (path.read_text().strip(),)
