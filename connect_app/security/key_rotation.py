"""Re-encrypt every Fernet-encrypted column with the first ``ENCRYPTION_KEYS`` key
(``python -m connect_app rotate-secrets``; README "Rotating the encryption key").

The columns: ``tenant.shared_secret_encrypted``, ``integration.credentials_encrypted``,
``integration.webhook_secret_encrypted``, ``user_token.credentials_encrypted``. (OAuth sign-in
flows in Redis are encrypted too but live minutes; they are not rotated.) A value no configured
key can decrypt raises, and nothing is committed: fix ``ENCRYPTION_KEYS`` first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.models import Integration, Tenant, UserToken
from connect_app.security.crypto import SecretBox

# (model, encrypted columns) -- every column that holds a Fernet token.
ENCRYPTED_COLUMNS: tuple[tuple[type[Tenant] | type[Integration] | type[UserToken], tuple[str, ...]], ...] = (
    (Tenant, ("shared_secret_encrypted",)),
    (Integration, ("credentials_encrypted", "webhook_secret_encrypted")),
    (UserToken, ("credentials_encrypted",)),
)


def rotate_all(session: Session, box: SecretBox) -> dict[str, int]:
    """Re-encrypt every value (flushed, not committed). Returns values per table."""
    counts: dict[str, int] = {}
    for model, columns in ENCRYPTED_COLUMNS:
        n = 0
        for row in session.scalars(select(model)):
            for column in columns:
                setattr(row, column, box.rotate(getattr(row, column)))
                n += 1
        counts[model.__tablename__] = n
    session.flush()
    return counts
