"""Fixtures: a real Postgres per test (copied from a migrated template), and the local stack.

The database server is TEST_DATABASE_URL or DATABASE_URL when set (CI sets one to the
machine's PostgreSQL), else an embedded pgserver in a temporary folder.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lib import db
from lib.local.stack import LocalStack, embedded_server, stop_embedded_server

TEMPLATE = f"lead_import_tpl_{os.getpid()}"
_counter = itertools.count()


def _with_db(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="li-pg-") as tmp:
        try:
            yield embedded_server(Path(tmp)).get_uri()
        finally:
            stop_embedded_server(Path(tmp))


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(TEMPLATE)))
    url = _with_db(server_url, TEMPLATE)
    db.migrate(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(TEMPLATE)))


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database copied from the migrated template, dropped afterwards."""
    name = f"lead_import_t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE)))
    try:
        yield _with_db(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(server_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with db.connect(database_url) as c:
        yield c


def make_stack(database_url: str, tmp_path: Path, **env: str) -> LocalStack:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "LOCAL_DATA_DIR": str(tmp_path / "local"),
        "IMPORT_SLICE_SECONDS": "1.5",
        **env,
    }
    return LocalStack(base, faults=env.get("LOCAL_QSTASH_FAULTS", ""))


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[LocalStack]:
    """The whole local stack on a fresh database: app over HTTP, local QStash, folder storage."""
    with make_stack(database_url, tmp_path) as s:
        yield s
