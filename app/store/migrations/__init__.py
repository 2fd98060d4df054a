"""Alembic migrations of the store: the only way its schema is built or changed."""
