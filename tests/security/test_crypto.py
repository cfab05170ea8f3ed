from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from connect_app.config import Environment, Settings
from connect_app.errors import ConfigError
from connect_app.security.crypto import SecretBox, resolve_keys


def test_round_trip_and_no_plaintext() -> None:
    box = SecretBox((Fernet.generate_key().decode(),))
    token = box.encrypt("ghp_secret_value")
    assert "ghp_secret_value" not in token
    assert box.decrypt(token) == "ghp_secret_value"
    assert "ghp" not in repr(box)


def test_rotation_first_key_encrypts_all_decrypt() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = SecretBox((old,)).encrypt("s3cret")
    rotated_box = SecretBox((new, old))
    assert rotated_box.decrypt(stored) == "s3cret"
    rotated = rotated_box.rotate(stored)
    assert SecretBox((new,)).decrypt(rotated) == "s3cret"
    with pytest.raises(ConfigError):
        SecretBox((old,)).decrypt(rotated)


def test_bad_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="Fernet"):
        SecretBox(("not-a-key",))


def test_development_key_generated_once_in_instance_folder(tmp_path: Path) -> None:
    settings = Settings(instance_path=tmp_path)
    first = resolve_keys(settings)
    assert resolve_keys(settings) == first
    assert (tmp_path / "encryption.key").stat().st_mode & 0o077 == 0


def test_production_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS"):
        resolve_keys(Settings(instance_path=tmp_path, environment=Environment.PRODUCTION))
