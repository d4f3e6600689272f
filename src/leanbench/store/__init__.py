"""The result store (SQLite by default)."""

from leanbench.store.db import DEFAULT_STORE, Store, resolve_store_path

__all__ = ["DEFAULT_STORE", "Store", "resolve_store_path"]
