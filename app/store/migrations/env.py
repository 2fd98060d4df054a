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
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by dropping it, which with foreign keys on would cascade to, or be
        # refused by, the rows that refer to it. The pragma only works outside a transaction, so it is
        # set on the driver's connection before one begins; the keys are checked once, at the end.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").first()):
                raise RuntimeError(f"the migration left a row of {broken[0]} referring to a missing row")
        connection.commit()
    finally:
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
