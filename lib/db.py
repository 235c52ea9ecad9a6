"""Connections, the named queries of sql/queries.sql, and migrations.

Every SQL statement lives in lib/sql/*.sql under a `-- name: NAME` header;
parameters are always passed separately, never formatted into the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "supabase" / "migrations"
SHIM = ROOT / "supabase" / "local" / "shim.sql"
SQL_DIR = Path(__file__).with_name("sql")

Row = DictRow  # a row as the service reads it: column name -> value
Connection = psycopg.Connection[DictRow]  # what connect() returns


@cache
def queries() -> dict[str, str]:
    """The named statements of lib/sql/*.sql: `-- name: lock_job` followed by its SQL."""
    found: dict[str, str] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        parts = re.split(r"^-- name: (\w+)\s*$", path.read_text(), flags=re.M)
        for name, sql in zip(parts[1::2], parts[2::2], strict=True):
            assert name not in found, f"query {name} is defined twice"
            found[name] = sql.strip()
    return found


def array_literal(values: Iterable[str | int]) -> str:
    """A Postgres array literal (`{a,b,c}`) of values that need no quoting: numbers, UUIDs,
    one-letter codes. Sent as one text parameter and cast in SQL (`%(x)s::uuid[]`), a chunk's
    arrays cost a join; psycopg's list adaptation dumps each element in Python, about ten
    times slower for the tens of thousands of elements a slice sends."""
    return "{" + ",".join(map(str, values)) + "}"


def connect(url: str) -> Connection:
    """One autocommit connection per invocation; `with conn.transaction()` where atomicity
    matters. prepare_threshold=None keeps it valid behind Supabase's transaction pooler."""
    return psycopg.connect(url, autocommit=True, prepare_threshold=None, row_factory=dict_row)


def limit_waits(conn: psycopg.Connection[Any], *, statement_seconds: float, lock_seconds: float) -> None:
    """Bound the current transaction's statements and lock waits (transaction-local, so it
    holds behind Supabase's transaction pooler too). A statement that runs past its limit
    raises QueryCanceled; a lock not granted in time raises LockNotAvailable.

    JIT compilation is turned off for the transaction as well: it pays for itself only on
    long analytic queries, and a slice statement whose estimated cost is large only because
    it probes an index once per row of a slice spent 40-120 ms compiling before running in
    160 ms (the parse's earlier_keys, 92,000 keys, on a server with JIT)."""
    conn.execute(
        "select set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true),"
        " set_config('jit', 'off', true)",
        (f"{round(statement_seconds * 1000)}ms", f"{round(lock_seconds * 1000)}ms"),
    )


def migrate(url: str) -> list[str]:
    """Apply pending migrations in order, recording them where the Supabase CLI does.

    Safe to run twice, or concurrently: an advisory lock serializes runners.
    Returns the versions applied by this call.
    """
    applied: list[str] = []
    with connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('lead-import-migrate'))")
        auth = conn.execute("select exists (select 1 from pg_namespace where nspname = 'auth')").fetchone()
        if not (auth and auth["exists"]):  # not on Supabase
            conn.execute(SHIM.read_text())
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, statements text[], name text)"
        )
        done = {r["version"] for r in conn.execute("select version from supabase_migrations.schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            conn.execute(path.read_text())
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name) values (%s, %s)",
                (version, name),
            )
            applied.append(version)
            log.info("migrate.applied version=%s name=%s", version, name)
    return applied
