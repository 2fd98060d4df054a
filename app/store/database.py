"""Opening the database: the engine for a URL, the schema brought to the latest migration, and
sessions per unit of work.

Any SQLAlchemy URL works. The default is a SQLite file in the user's data folder; SQLite
connections run in WAL mode with foreign keys enforced, ``synchronous=FULL`` (a committed reading
survives a power cut, not only a killed process) and a busy timeout so that several processes can
write. SQLite is single-user: it has no roles, and whoever can open the file reads everything in it.
PostgreSQL URLs (``postgresql+psycopg://...``) are used as they are; there each reader connects with
a role of their own (:mod:`app.store.roles`), and what the database refuses that role is raised as
:class:`PermissionDeniedError`.

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
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gmic_core.errors import GMICError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DATABASE_FILE = "gmic-reader.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreError(GMICError):
    """A database that cannot be opened, reached or upgraded."""


class PermissionDeniedError(StoreError):
    """The database refused the connecting role (a reader's role, ``app.store.roles``) an action."""


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for a privilege or row-level security refusal


def permission_denied(error: DBAPIError, url) -> PermissionDeniedError | None:
    """The clear error for ``error`` when it is a refusal by the database's roles, else None."""
    if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
        return None
    detail = getattr(getattr(error.orig, "diag", None), "message_primary", None) or str(error.orig)
    return PermissionDeniedError(
        f"the database role {url.username!r} may not do this ({detail}): it needs the study "
        "coordinator's role (gmic db grant-coordinator); a reader's role reads only the study's cases, "
        "its own readings and the model output the protocol shows, and only adds its own readings"
    )


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
    except DBAPIError as error:
        if refused := permission_denied(error, engine.url):
            raise StoreError(
                f"the database {engine.url!r} needs upgrading to this version's schema, which only its "
                f"owner may do: {refused}"
            ) from error
        raise


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
        """Raises :class:`PermissionDeniedError` where the database refuses the role an action."""
        try:
            with self._sessions.begin() as session:
                yield session
        except DBAPIError as error:
            if refused := permission_denied(error, self.engine.url):
                raise refused from error
            raise

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: :func:`default_database_url`), upgraded to the latest schema."""
    engine = create_database_engine(url or default_database_url())
    upgrade(engine)
    return Store(engine)
