"""Fixtures of the explorer's tests: index stores on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.explorer.pgserver import LocalPostgres, binaries_present


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One PostgreSQL 15 server (Debian's binaries) for the session; skipped without them."""
    if not binaries_present():
        pytest.skip("initdb/pg_ctl not on PATH: install Debian's postgresql (make tools) to test PostgreSQL")
    server = LocalPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """A fresh database on the session's server (dropped afterwards)."""
    import uuid

    import psycopg

    name = f"explorer_{uuid.uuid4().hex[:12]}"
    plain = f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/{name}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty index on each database the explorer runs on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'explorer.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
