"""The undo of an import (docs/ARCHITECTURE.md "Undo", README "Undo"): the four end states
of two imports into one organization, and a lead edited by hand in each, with the leads
and their values written out; on a fresh database and on one with history.

A: keys 1-10, first name "A<k>", company "A", city "Paris".
B: keys 6-15, first name "B<k>", company "B", no city: in `update` mode it overwrites the
   first name and company of the five shared leads (6-10) and leaves their city.
A person adds a note to lead 2 (inserted by A) and, once B committed, to lead 7 (shared).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib import commit_slice, db
from lib.commit_settings import CommitSettings
from tests.helpers import SMALL_SLICES, Api, finished, free_port, job, make_stack, wait_until, write_csv
from tests.test_slice_bounds import waiting_on_a_lock

HEADER = ["E-mail", "Prénom", "Société", "Ville"]
SLICES = {"IMPORT_COMMIT_SLICE_ROWS": "4"}  # commit and revert: several slices each


def a_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "a.csv", HEADER, [[f"k{i}@example.fr", f"A{i}", "A", "Paris"] for i in range(1, 11)])


def b_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "b.csv", HEADER, [[f"k{i}@example.fr", f"B{i}", "B", ""] for i in range(6, 16)])


def leads(conn: Any) -> dict[int, tuple[str, str, str | None, str | None]]:
    """The test's leads by key: (first name, company, city, notes)."""
    rows = conn.execute(
        "select email_normalized, first_name, company, city, notes from leads where email_normalized like 'k%%@example.fr'"
    ).fetchall()
    return {
        int(r["email_normalized"][1:].split("@")[0]): (r["first_name"], r["company"], r["city"], r["notes"])
        for r in rows
    }


def edit_by_hand(conn: Any, key: int) -> None:
    """What a person does in the CRM: no import involved, updated_at left to the trigger."""
    before = conn.execute(
        "select updated_at from leads where email_normalized = %s", (f"k{key}@example.fr",)
    ).fetchone()
    conn.execute("update leads set notes = 'appelé' where email_normalized = %s", (f"k{key}@example.fr",))
    after = conn.execute("select updated_at from leads where email_normalized = %s", (f"k{key}@example.fr",)).fetchone()
    assert after["updated_at"] > before["updated_at"]  # kept by the trigger


def a_leads(keys: Any) -> dict[int, tuple[str, str, str | None, str | None]]:
    return {i: (f"A{i}", "A", "Paris", None) for i in keys}


def b_leads(keys: Any) -> dict[int, tuple[str, str, str | None, str | None]]:
    return {i: (f"B{i}", "B", None, None) for i in keys}


def counts(row: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(leads deleted, leads given back their earlier values, leads kept by reason)."""
    return row["reverted_rows"], row["restored_rows"], row["kept_counts"]


@pytest.mark.history
def test_b_updates_then_revert_b_then_revert_a(database_url: str, tmp_path: Path, conn: Any) -> None:
    """End states 1 and 2."""
    with make_stack(database_url, tmp_path, **SLICES) as stack:
        api = Api(stack)
        a = api.import_file(conn, a_file(tmp_path))
        edit_by_hand(conn, 2)
        b = api.import_file(conn, b_file(tmp_path), duplicates="update")
        assert (b["inserted_rows"], b["updated_rows"]) == (5, 5)
        edit_by_hand(conn, 7)
        assert leads(conn) == {
            **a_leads([1, 3, 4, 5]), 2: ("A2", "A", "Paris", "appelé"),
            6: ("B6", "B", "Paris", None), 7: ("B7", "B", "Paris", "appelé"), 8: ("B8", "B", "Paris", None),
            9: ("B9", "B", "Paris", None), 10: ("B10", "B", "Paris", None), **b_leads(range(11, 16)),
        }  # fmt: skip

        # 1. Revert B: its inserted leads go, the shared ones get A's values back, except
        #    lead 7, edited since.
        b = api.revert(conn, b["id"])
        assert counts(b) == (5, 4, {"changed_since": 1})
        assert leads(conn) == {
            **a_leads([1, 3, 4, 5, 6, 8, 9, 10]), 2: ("A2", "A", "Paris", "appelé"), 7: ("B7", "B", "Paris", "appelé"),
        }  # fmt: skip
        restored = conn.execute(
            "select count(*) from leads where email_normalized = any(%s) and updated_by_import_job_id is null",
            ([f"k{i}@example.fr" for i in (6, 8, 9, 10)],),
        ).fetchone()
        assert restored["count"] == 4  # they again name no import as their last updater

        # 2. Then revert A: B is reverted, so it no longer counts as a later match, and the
        #    values B's revert wrote back are A's own: every lead of A goes but the edited ones.
        a = api.revert(conn, a["id"])
        assert counts(a) == (8, 0, {"changed_since": 2})
        assert leads(conn) == {2: ("A2", "A", "Paris", "appelé"), 7: ("B7", "B", "Paris", "appelé")}
        assert stack.wait_idle(30)


@pytest.mark.history
def test_b_updates_then_revert_a_then_revert_b(database_url: str, tmp_path: Path, conn: Any) -> None:
    """End state 3: B's revert gives the shared leads A's values back, since their content
    is still exactly what B wrote (A's revert left them alone); lead 7, edited, is kept."""
    with make_stack(database_url, tmp_path, **SLICES) as stack:
        api = Api(stack)
        a = api.import_file(conn, a_file(tmp_path))
        edit_by_hand(conn, 2)
        b = api.import_file(conn, b_file(tmp_path), duplicates="update")
        edit_by_hand(conn, 7)

        a = api.revert(conn, a["id"])
        assert counts(a) == (4, 0, {"changed_since": 1, "matched_later": 5})
        assert leads(conn) == {
            2: ("A2", "A", "Paris", "appelé"),
            6: ("B6", "B", "Paris", None), 7: ("B7", "B", "Paris", "appelé"), 8: ("B8", "B", "Paris", None),
            9: ("B9", "B", "Paris", None), 10: ("B10", "B", "Paris", None), **b_leads(range(11, 16)),
        }  # fmt: skip

        b = api.revert(conn, b["id"])
        assert counts(b) == (5, 4, {"changed_since": 1})
        assert leads(conn) == {
            2: ("A2", "A", "Paris", "appelé"), **a_leads([6, 8, 9, 10]), 7: ("B7", "B", "Paris", "appelé"),
        }  # fmt: skip
        assert job(conn, a["id"])["status"] == "reverted"
        assert stack.wait_idle(30)


@pytest.mark.history
def test_b_skips_then_revert_a(database_url: str, tmp_path: Path, conn: Any) -> None:
    """End state 4: the leads B matched stay, so B's rows still name leads that exist."""
    with make_stack(database_url, tmp_path, **SLICES) as stack:
        api = Api(stack)
        a = api.import_file(conn, a_file(tmp_path))
        edit_by_hand(conn, 2)
        b = api.import_file(conn, b_file(tmp_path), duplicates="skip")
        assert (b["inserted_rows"], b["skipped_rows"]) == (5, 5)

        a = api.revert(conn, a["id"])
        assert counts(a) == (4, 0, {"changed_since": 1, "matched_later": 5})
        assert leads(conn) == {2: ("A2", "A", "Paris", "appelé"), **a_leads(range(6, 11)), **b_leads(range(11, 16))}
        after = job(conn, b["id"])
        assert (after["status"], after["inserted_rows"], after["skipped_rows"]) == ("completed", 5, 5)
        dangling = conn.execute(
            """select count(*) from staged_outcomes o left join leads l on l.id = o.lead_id
               where o.job_id = %s and l.id is null""",
            (b["id"],),
        ).fetchone()
        assert dangling["count"] == 0  # every row of B still names a lead
        assert stack.wait_idle(30)


# -- a revert killed mid-slice ------------------------------------------------------------------


def two_imports(api: Api, conn: Any, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A: keys 1-200; B (update): keys 101-300; a person edits a lead of each."""
    a = write_csv(tmp_path / "a.csv", HEADER, [[f"k{i}@example.fr", f"A{i}", "A", "Paris"] for i in range(1, 201)])
    b = write_csv(tmp_path / "b.csv", HEADER, [[f"k{i}@example.fr", f"B{i}", "B", ""] for i in range(101, 301)])
    first = api.import_file(conn, a)
    second = api.import_file(conn, b, duplicates="update")
    edit_by_hand(conn, 20)
    edit_by_hand(conn, 160)
    return first, second


def end_state(conn: Any, job_id: Any) -> dict[str, Any]:
    row = job(conn, job_id)
    return {
        "job": {k: row[k] for k in ("status", "reverted_rows", "restored_rows", "kept_counts", "revert_cursor")},
        "slices_done": row["slices_done"],  # no slice counted twice
        "leads": leads(conn),
    }


def slice_waiting_with_its_writes(conn: Any) -> bool:
    """A slice of the endpoint process waits to move its cursor (finish_slice) after it wrote
    leads in its transaction (it holds the lock its delete and update of leads took)."""
    return conn.execute(
        """select exists (
             select 1 from pg_stat_activity a
             join pg_locks l on l.pid = a.pid and l.relation = 'leads'::regclass and l.mode = 'RowExclusiveLock'
             where a.application_name = 'li-endpoint' and a.wait_event_type = 'Lock'
               and a.query like '%%slices_done = slices_done + 1%%')"""
    ).fetchone()["exists"]


def test_a_revert_killed_mid_slice_and_retried_ends_like_an_uninterrupted_one(
    database_url: str, new_database: Any, tmp_path: Path, conn: Any
) -> None:
    from tests.test_faults import endpoint_process

    other_url = new_database("fresh")
    with make_stack(other_url, tmp_path / "calm", **SMALL_SLICES) as stack, db.connect(other_url) as other:
        api = Api(stack)
        _, b = two_imports(api, other, tmp_path / "calm")
        api.revert(other, b["id"])
        calm = end_state(other, b["id"])
    assert calm["job"] == {
        "status": "reverted", "reverted_rows": 100, "restored_rows": 99, "kept_counts": {"changed_since": 1},
        "revert_cursor": 200,
    }  # fmt: skip

    port = free_port()
    env = {**SMALL_SLICES, "APP_URL": f"http://127.0.0.1:{port}", "LOCAL_QSTASH_FAULTS": "delay_ms=300-400"}
    with (
        make_stack(database_url, tmp_path / "killed", **env) as stack,
        endpoint_process(stack.env, database_url, port, tmp_path / "endpoint.log") as endpoint,
        psycopg.connect(database_url, autocommit=True) as blocker,
    ):
        api = Api(stack)
        _, b = two_imports(api, conn, tmp_path / "killed")
        status, reply = api.queue(f"/api/jobs/{b['id']}/revert")
        assert status == 202, reply
        wait_until(lambda: job(conn, b["id"])["revert_cursor"] > 0, what="a first revert slice")
        with blocker.transaction():
            # The next revert slice deletes and restores its leads, then waits for this lock
            # to move its cursor: killed there, with its writes done and not committed.
            blocker.execute("lock table import_jobs in share mode")
            wait_until(lambda: slice_waiting_with_its_writes(conn), what="a revert slice waiting to move its cursor")
            cursor = job(conn, b["id"])["revert_cursor"]
            assert 0 < cursor < 200
            endpoint.kill()
        endpoint.start()  # QStash redelivers the slice to the restarted process
        finished(conn, b["id"], "reverted")
        stack.wait_idle()
        assert stack.qstash.stats.failures >= 1 and stack.qstash.stats.dead == 0
    assert end_state(conn, b["id"]) == calm


# -- what the commit keeps for a revert is never stale --------------------------------------------


def test_a_lead_changed_while_the_commit_updates_it_fails_the_chunk_instead_of_keeping_stale_values(
    database_url: str, tmp_path: Path, conn: Any
) -> None:
    """The update reads each lead, then updates it: a person's edit committed in between
    must not be lost in what a revert would write back. The chunk's update waits for the
    edit's row lock, finds a newer row version, updates nothing, and the slice fails (5xx,
    QStash retries it)."""
    with make_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        api.import_file(conn, a_file(tmp_path))
        b = api.parse(conn, b_file(tmp_path))
    cfg = CommitSettings(duplicates="update")
    row = {**b, "settings": {**b["settings"], "commit": cfg.to_json()}}
    params = {**commit_slice._params(row, 0, 10), **commit_slice._lookups(cfg), **cfg.owner_cell_source(row)}
    owners = cfg.owner_picker(conn, row["organization_id"], first_index=0)
    rows = commit_slice._tuples(conn, "chunk_rows", params)
    writes = commit_slice._decide(cfg, row, 0, 10, rows, commit_slice.Matcher(cfg.match), owners)
    assert writes.counts == {"updated": 5, "inserted": 5}

    with db.connect(database_url) as editor, db.connect(database_url) as committer:
        editor.execute("begin")
        editor.execute("update leads set notes = 'appelé' where email_normalized = 'k7@example.fr'")
        errors: list[BaseException] = []

        def commit_chunk() -> None:
            try:
                with committer.transaction():
                    writes.run(committer)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=commit_chunk)
        worker.start()
        wait_until(lambda: waiting_on_a_lock(conn), what="the chunk's update waiting for the edited lead")
        editor.execute("commit")
        worker.join(30)
    assert [type(e) for e in errors] == [commit_slice.LeadsChangedMeanwhile]
    assert "1 lead(s) changed during the commit" in str(errors[0])
    # Rolled back whole: A's values and the person's edit, no outcome recorded.
    assert leads(conn) == {**a_leads([1, 2, 3, 4, 5, 6, 8, 9, 10]), 7: ("A7", "A", "Paris", "appelé")}
    assert conn.execute("select count(*) from staged_outcomes where job_id = %s", (b["id"],)).fetchone()["count"] == 0
