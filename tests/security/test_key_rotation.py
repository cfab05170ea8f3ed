"""``rotate-secrets`` re-encrypts every encrypted column, not only the tenants' shared secrets:
after it, the old key can be dropped and every secret still decrypts."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select

from connect_app.errors import ConfigError
from connect_app.extensions import db
from connect_app.models import Base, Integration, UserToken
from connect_app.runtime import runtime
from connect_app.security.crypto import SecretBox
from connect_app.security.key_rotation import ENCRYPTED_COLUMNS, rotate_all
from tests.indexing.scheduling_support import make_integration, make_tenant


def test_every_encrypted_column_is_rotated(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = make_integration(session, tenant)
        session.add(
            UserToken(
                tenant_id=tenant.id,
                account_id="acct-1",
                integration_id=integration.id,
                credentials_encrypted=runtime().secrets.encrypt('{"token": "t"}'),
                last4="t",
            )
        )
        session.commit()
        old_key = runtime().secrets
        before = {
            (model.__tablename__, column): [old_key.decrypt(getattr(r, column)) for r in session.scalars(select(model))]
            for model, columns in ENCRYPTED_COLUMNS
            for column in columns
        }
        new = Fernet.generate_key().decode()
        both = SecretBox((new, *app.extensions["git_connect"].settings.encryption_keys))
        counts = rotate_all(session, both)
        session.commit()
        assert counts == {"tenant": 1, "integration": 2, "user_token": 1}
        only_new = SecretBox((new,))
        for model, columns in ENCRYPTED_COLUMNS:
            for column in columns:
                values = [only_new.decrypt(getattr(r, column)) for r in session.scalars(select(model))]
                assert values == before[(model.__tablename__, column)]
        with pytest.raises(ConfigError):
            old_key.decrypt(session.scalars(select(Integration)).one().credentials_encrypted)


def test_every_encrypted_model_column_is_listed() -> None:
    listed = {(m.__tablename__, c) for m, cols in ENCRYPTED_COLUMNS for c in cols}
    found = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_encrypted")
    }
    assert listed == found
