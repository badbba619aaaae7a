"""Database access: the async engine and sessions, the declarative base, migrations."""

from core.db.base import Base, utcnow
from core.db.engine import LAST, Database, create_database

__all__ = ["LAST", "Base", "Database", "create_database", "utcnow"]
