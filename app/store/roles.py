"""Database roles on PostgreSQL: a login role per reader and per study coordinator.

Migration ``0004_reading`` creates two group roles and what they may do (grants and row-level
security policies; its docstring lists them): ``gmic_reader`` sees the study's case list and its
own readings, inserts its own readings, and sees a model result only where the protocol shows it;
``gmic_coordinator`` creates studies and runs analyses. The database enforces this, whatever the
application connecting with the role does. A reader's login role carries the reader's name: the
policies match ``readers.name`` to ``current_user``.

These functions run with an administrator's URL (a role that may create roles, and that owns the
schema: the one that ran the migrations). The password travels as a SCRAM verifier computed on the
client, never as clear text in a statement the server could log.

SQLite has no roles: it is a single-user store, and every process that can open the file sees all.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.store.database import Store, StoreError, open_store
from app.store.models import Reader

MAX_ROLE_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


class Role(StrEnum):
    """The group roles of migration 0004; a login role is a member of one."""

    READER = "gmic_reader"
    COORDINATOR = "gmic_coordinator"


def grant_reader(url: str, name: str, password: str) -> None:
    """Create (or give a new password to) the login role ``name`` for the reader ``name``, and
    register the reader."""
    store = _grant(url, name, password, Role.READER)
    try:
        with store.session() as session:
            if session.scalar(select(Reader.id).where(Reader.name == name)) is None:
                session.add(Reader(name=name))
    finally:
        store.dispose()


def grant_coordinator(url: str, name: str, password: str) -> None:
    """Create (or give a new password to) the study coordinator's login role ``name``."""
    _grant(url, name, password, Role.COORDINATOR).dispose()


def _grant(url: str, name: str, password: str, role: Role) -> Store:
    _check_role_name(name)
    if not password:
        raise StoreError(f"the password for the role {name!r} is empty: put it in the password file")
    store = open_store(url)
    try:
        if store.engine.dialect.name != "postgresql":
            raise StoreError(
                f"{store.engine.url!r} is a SQLite file: SQLite is single-user and has no roles; "
                "a reader study shared by several readers needs PostgreSQL"
            )
        _login_role(store, name, password, role)
    except BaseException:
        store.dispose()
        raise
    return store


def _login_role(store: Store, name: str, password: str, role: Role) -> None:
    from psycopg import sql

    other = Role.COORDINATOR if role is Role.READER else Role.READER
    try:
        with store.engine.begin() as connection:
            driver = connection.connection.dbapi_connection
            existing = connection.exec_driver_sql(
                "SELECT pg_has_role(oid, %(role)s, 'MEMBER'), pg_has_role(oid, %(other)s, 'MEMBER'), "
                "rolsuper FROM pg_roles WHERE rolname = %(name)s",
                {"name": name, "role": role.value, "other": other.value},
            ).first()
            statement = "CREATE ROLE {name} LOGIN PASSWORD {verifier} IN ROLE {role}"
            if existing is not None:
                is_member, is_other, is_superuser = existing
                if is_superuser or is_other or not is_member:
                    raise StoreError(
                        f"the database role {name!r} exists and is not a {role.value} role: "
                        "choose another name"
                    )
                statement = "ALTER ROLE {name} LOGIN PASSWORD {verifier}"
            verifier = driver.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
            query = sql.SQL(statement).format(
                name=sql.Identifier(name),
                verifier=sql.Literal(verifier.decode()),
                role=sql.Identifier(role.value),
            )
            connection.exec_driver_sql(query.as_string(driver))
    except DBAPIError as error:
        raise StoreError(f"cannot create the database role {name!r}: {error.orig}") from error


def _check_role_name(name: str) -> None:
    if not name.strip() or name != name.strip():
        raise StoreError(f"{name!r} is not a usable role name: no leading or trailing spaces, not empty")
    if len(name.encode()) > MAX_ROLE_NAME_BYTES:
        raise StoreError(f"the role name {name!r} is longer than {MAX_ROLE_NAME_BYTES} bytes")
    if name.startswith("pg_") or name in set(Role):
        raise StoreError(f"{name!r} is reserved: choose another role name")
