"""The result store: a SQLite file by default, or any SQLAlchemy URL (PostgreSQL)."""

from leanbench.store.db import DEFAULT_STORE, Store, resolve_store_path

__all__ = ["DEFAULT_STORE", "Store", "resolve_store_path"]
