"""Fixtures: a real Postgres per test (copied from a template), and the local stack.

The database server is TEST_DATABASE_URL or DATABASE_URL when set (CI sets one to the
machine's PostgreSQL), else an embedded pgserver in a temporary folder.

Two templates, each built once per session, the second only when a selected test needs it:
- "fresh": migrated, nothing else (the local stack seeds its organization);
- "history": migrated, then bench.history.add_history: the local organization and its
  members, 20 other organizations and 200,000 leads, 20,000 leads of the local organization
  from an earlier import, 200,000 staged rows of other jobs, then ANALYZE. An import's
  outcomes there equal its outcomes on a fresh database (no key can match), but the
  planner's statistics describe a database where the job does not exist yet.

`database_url` copies the template named by the `db_kind` fixture: "fresh" unless the test
asks otherwise. `@pytest.mark.history` on a test (or `pytestmark` of a module) runs it on
both, with ids `fresh` and `history`; `@pytest.mark.parametrize("db_kind", ["history"],
indirect=True)` picks one. `new_database(kind)` gives a test more databases of either kind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from bench.history import add_history
from lib import db
from lib.local.databases import create_database, drop_database, embedded_database
from lib.local.stack import LocalStack
from tests.helpers import DB_KINDS, STRATEGY, TEMPLATES, fresh_database, make_stack

_TEMPLATE_FIXTURES = {"fresh": "template_url", "history": "history_template_url"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "history: run on a fresh database and on a database with history (ids fresh, history)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`@pytest.mark.history`: the test's `db_kind` (and so `database_url`) takes both kinds,
    unless the test parametrizes db_kind itself. Tests without a database are left alone."""
    if metafunc.definition.get_closest_marker("history") is None or "db_kind" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if "db_kind" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return
    metafunc.parametrize("db_kind", DB_KINDS, indirect=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="li-pg-") as tmp, embedded_database(Path(tmp)) as url:
        yield url


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    """The "fresh" template: a migrated database."""
    name = TEMPLATES["fresh"]
    drop_database(server_url, name)
    url = create_database(server_url, name)
    db.migrate(url)
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def history_template_url(server_url: str, template_url: str) -> Iterator[str]:
    """The "history" template: the migrated one, then add_history (built on first use)."""
    name = TEMPLATES["history"]
    drop_database(server_url, name)
    url = create_database(server_url, name, template=TEMPLATES["fresh"], strategy=STRATEGY["fresh"])
    add_history(url)
    yield url
    drop_database(server_url, name)


@pytest.fixture
def db_kind(request: pytest.FixtureRequest) -> str:
    """Which template `database_url` copies: "fresh" unless parametrized (mark.history)."""
    kind = getattr(request, "param", "fresh")
    if kind not in TEMPLATES:
        raise ValueError(f"db_kind {kind!r}: one of {', '.join(DB_KINDS)}")
    return kind


@pytest.fixture
def database_url(request: pytest.FixtureRequest, server_url: str, db_kind: str) -> Iterator[str]:
    """A new database for one test, copied from the template `db_kind` names."""
    request.getfixturevalue(_TEMPLATE_FIXTURES[db_kind])  # built once, on first use
    with fresh_database(server_url, db_kind) as url:
        yield url


@pytest.fixture
def new_database(request: pytest.FixtureRequest, server_url: str) -> Iterator[Callable[[str], str]]:
    """`new_database(kind)`: the URL of another new database of that kind ("fresh" or
    "history"), dropped at the end of the test."""
    with ExitStack() as dbs:

        def make(kind: str = "fresh") -> str:
            request.getfixturevalue(_TEMPLATE_FIXTURES[kind])
            return dbs.enter_context(fresh_database(server_url, kind))

        yield make


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with db.connect(database_url) as c:
        yield c


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[LocalStack]:
    """The whole local stack on the test's database: app over HTTP, local QStash, folder storage."""
    with make_stack(database_url, tmp_path) as s:
        yield s
