"""Databases for the store and study tests: every test that takes ``database_url`` runs on a fresh
SQLite file and on a fresh database of a real PostgreSQL server.

The server is the one at ``GMIC_TEST_POSTGRES_URL`` (``.ci/run`` starts one with ``.ci/postgres``).
Without that variable the PostgreSQL runs are skipped, unless ``GMIC_REQUIRE_POSTGRES=1`` (set by
``.ci/run``): then a missing or unreachable server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy.engine import make_url

from app.store import Store, open_store
from gmic_core.config import GMICConfig
from gmic_core.inference import Predictor
from gmic_core.model import GMIC, ModelCard, save_checkpoint

POSTGRES_URL_VARIABLE = "GMIC_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "GMIC_REQUIRE_POSTGRES"


def _postgres_server() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    required = os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1"
    if not url:
        if required:
            pytest.fail(f"{REQUIRE_POSTGRES_VARIABLE}=1 but {POSTGRES_URL_VARIABLE} is not set")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VARIABLE} (.ci/postgres starts one)")
    return url


def _admin_connect(server_url: str):
    import psycopg

    url = make_url(server_url)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        connect_timeout=10,
    )


def _fresh_postgres_database() -> Iterator[str]:
    server_url = _postgres_server()
    name = f"gmic_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = _admin_connect(server_url)
    except Exception as error:  # any connection failure: the message says why
        pytest.fail(f"cannot reach the PostgreSQL server at {POSTGRES_URL_VARIABLE}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with _admin_connect(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gmic.sqlite3'}"
    else:
        yield from _fresh_postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of an empty database on the PostgreSQL server."""
    yield from _fresh_postgres_database()


@pytest.fixture
def store(database_url) -> Iterator[Store]:
    store = open_store(database_url)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """An untrained GMIC at an eighth of the published input size, seeded."""
    torch.manual_seed(0)
    model = GMIC(GMICConfig.at_scale(0.125))
    card = ModelCard("tiny seeded", "0", "none", "tests")
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", model, card)


@pytest.fixture(scope="module")
def predictor(weights) -> Predictor:
    return Predictor.from_files([weights], device="cpu")
