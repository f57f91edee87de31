"""The database: typed models, sessions, the event trail, control numbers and the outbox."""

from gateway.store.db import Database, create_db_engine
from gateway.store.models import Base

__all__ = ["Base", "Database", "create_db_engine"]
