"""Alembic environment: runs the migrations on the engine that ``app.store.database.upgrade`` passes
in, or on ``sqlalchemy.url`` when Alembic is driven from its own command line."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from app.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
