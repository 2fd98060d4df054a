"""Opening the database: the engine for a URL, the schema brought to the latest migration, and
sessions per unit of work.

Any SQLAlchemy URL works. The default is a SQLite file in the user's data folder; SQLite
connections run in WAL mode with foreign keys enforced, ``synchronous=FULL`` (a committed reading
survives a power cut, not only a killed process) and a busy timeout so that several processes can
write. PostgreSQL URLs (``postgresql+psycopg://...``) are used as they are.

The schema is built and upgraded by the Alembic migrations in ``app/store/migrations`` only
(:func:`upgrade`); :func:`open_store` runs them before handing out sessions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gmic_core.errors import GMICError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DATABASE_FILE = "gmic-reader.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreError(GMICError):
    """A database that cannot be opened, reached or upgraded."""


def user_data_dir() -> Path:
    """The per-user application data folder (``GMIC_DATA_DIR`` overrides it)."""
    if override := os.environ.get("GMIC_DATA_DIR"):
        return Path(override)
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "GMIC Reader"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "GMIC Reader"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "gmic-reader"


def default_database_url() -> str:
    return f"sqlite:///{user_data_dir() / DATABASE_FILE}"


def create_database_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas above."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise StoreError(f"{url!r} is not a database URL ({error})") from error
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the folder of the database {parsed.database}: {error}"
            ) from error
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_pragmas)
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over so that a
    # writing transaction starts with BEGIN IMMEDIATE and waits for other writers up front.
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that runs the packaged migrations on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the latest by default)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as error:
        raise StoreError(f"cannot reach or upgrade the database {engine.url!r}: {error.orig}") from error


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


class Store:
    """An upgraded database and the sessions to work on it.

    ``with store.session() as session:`` is one unit of work: committed when the block ends,
    rolled back if it raises. Each thread or process takes its own sessions.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: :func:`default_database_url`), upgraded to the latest schema."""
    engine = create_database_engine(url or default_database_url())
    upgrade(engine)
    return Store(engine)
