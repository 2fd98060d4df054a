"""Persistence: SQLAlchemy 2 models, engine and session setup, Alembic migrations, and the
repository of model results (DESIGN.md, ``app.store``)."""

from app.store.database import (
    Store,
    StoreError,
    create_database_engine,
    default_database_url,
    open_store,
    upgrade,
)

__all__ = ["Store", "StoreError", "create_database_engine", "default_database_url", "open_store", "upgrade"]
