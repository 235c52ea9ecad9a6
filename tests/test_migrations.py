"""Migrations on an empty database, twice; row-level security as Supabase applies it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from lib import db
from lib.local.databases import scratch_database


@pytest.fixture
def empty_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, "lead_import_empty") as url:
        yield url


def test_migrations_apply_to_an_empty_database_twice(empty_url: str) -> None:
    first = db.migrate(empty_url)
    assert first, "the first run applies every migration"
    assert db.migrate(empty_url) == []
    with db.connect(empty_url) as conn:
        versions = [r["version"] for r in conn.execute("select version from supabase_migrations.schema_migrations")]
        assert sorted(versions) == sorted(first)
        tables = {r["tablename"] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}
        assert {"organizations", "organization_members", "import_jobs", "leads", "staged_rows"} <= tables
        published = {
            r["tablename"]
            for r in conn.execute("select tablename from pg_publication_tables where pubname = 'supabase_realtime'")
        }
        assert "import_jobs" in published


def _seed_two_orgs(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    ids = {k: uuid.uuid4() for k in ("org_a", "org_b", "alice", "bob", "job_a", "job_b")}
    conn.execute("insert into organizations (id, name) values (%s, 'A'), (%s, 'B')", (ids["org_a"], ids["org_b"]))
    conn.execute(
        "insert into organization_members (organization_id, user_id, email) values (%s, %s, 'alice@a.test'), (%s, %s, 'bob@b.test')",
        (ids["org_a"], ids["alice"], ids["org_b"], ids["bob"]),
    )
    for job, org, user in (("job_a", "org_a", "alice"), ("job_b", "org_b", "bob")):
        conn.execute(
            "insert into import_jobs (id, organization_id, created_by, file_name, storage_path) values (%s, %s, %s, 'f.csv', 'p')",
            (ids[job], ids[org], ids[user]),
        )
        conn.execute(
            "insert into leads (organization_id, email, email_normalized, import_job_id) values (%s, 'x@y.fr', 'x@y.fr', %s)",
            (ids[org], ids[job]),
        )
    return ids


def _as_user(conn: psycopg.Connection, user: uuid.UUID | None, query: str) -> list[dict]:
    """Run `query` the way PostgREST does for a signed-in user: role authenticated, JWT claims set."""
    with conn.transaction():
        conn.execute("set local role authenticated")
        claims = json.dumps({"sub": str(user), "role": "authenticated"}) if user else ""
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        return conn.execute(query).fetchall()


STAGED_JOB_IDS = ("select job_id from staged_rows", "select job_id from staged_outcomes")


def test_rls_keeps_members_to_their_organization(conn: psycopg.Connection) -> None:
    ids = _seed_two_orgs(conn)
    jobs = _as_user(conn, ids["alice"], "select id from import_jobs")
    assert [r["id"] for r in jobs] == [ids["job_a"]]
    leads = _as_user(conn, ids["alice"], "select organization_id from leads")
    assert [r["organization_id"] for r in leads] == [ids["org_a"]]
    assert [r["id"] for r in _as_user(conn, ids["bob"], "select id from import_jobs")] == [ids["job_b"]]
    for job in ("job_a", "job_b"):
        conn.execute("insert into staged_rows (job_id, row_no, valid) values (%s, 1, true)", (ids[job],))
        conn.execute("insert into staged_outcomes (job_id, row_no, outcome) values (%s, 1, 'invalid')", (ids[job],))
    for query in STAGED_JOB_IDS:
        assert [r["job_id"] for r in _as_user(conn, ids["alice"], query)] == [ids["job_a"]]
    # A stranger, or no user at all, sees nothing.
    assert _as_user(conn, uuid.uuid4(), "select id from import_jobs") == []
    assert _as_user(conn, None, "select id from import_jobs") == []


def test_rls_refuses_writes_from_members(conn: psycopg.Connection) -> None:
    ids = _seed_two_orgs(conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_user(conn, ids["alice"], "update import_jobs set status = 'completed' returning id")
    assert conn.execute("select count(*) from import_jobs where status = 'completed'").fetchone()["count"] == 0


def test_deleting_an_organization_removes_its_jobs_leads_and_staged_rows(conn: psycopg.Connection) -> None:
    ids = _seed_two_orgs(conn)
    for job in ("job_a", "job_b"):
        conn.execute("insert into staged_rows (job_id, row_no, raw, valid) values (%s, 1, '[]', true)", (ids[job],))
        conn.execute("insert into staged_outcomes (job_id, row_no, outcome) values (%s, 1, 'invalid')", (ids[job],))
    conn.execute("delete from organizations where id = %s", (ids["org_a"],))
    for query in STAGED_JOB_IDS:
        assert [r["job_id"] for r in conn.execute(query)] == [ids["job_b"]]
    assert [r["id"] for r in conn.execute("select id from import_jobs")] == [ids["job_b"]]
    assert [r["organization_id"] for r in conn.execute("select organization_id from leads")] == [ids["org_b"]]
