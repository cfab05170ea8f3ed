"""ORM models, one concept per module. Import from here so every table is registered."""

from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime, utcnow
from connect_app.models.tenant import Tenant

__all__ = ["Base", "Tenant", "TenantScoped", "TimestampMixin", "UTCDateTime", "utcnow"]
