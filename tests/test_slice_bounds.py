"""No slice runs unbounded, on a database with history too.

- Every hot statement reads rows in proportion to its own work on a database whose
  statistics were gathered before the job existed (the planner takes the job for one row):
  counted from EXPLAIN ANALYZE, rows per plan node times loops, never timed.
- A statement past its timeout rolls its slice back; QStash's retry completes the job.
- A delivery that finds the job locked answers at once ("busy") and comes back later,
  without spending QStash's retries.
- A message that stands for the past (a failure callback for a slice already done) leaves
  a job that moved on alone.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import psycopg
import pytest
import qstash

from lib import commit_slice
from lib.db import array_literal, queries
from lib.queue import Message
from tests.helpers import ROUND_ROBIN, Api, finished, job, make_stack, post_signed, sample, slice_message, wait_until

CHUNK = 5_000  # rows a commit chunk handles: the statements below are measured at that size


def rows_touched(plan: dict[str, Any]) -> int:
    """Rows every node of a plan produced or threw away, times its loops."""
    loops = plan.get("Actual Loops", 1)
    own = plan.get("Actual Rows", 0) + sum(
        plan.get(k, 0)
        for k in ("Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck")
    )
    return own * loops + sum(rows_touched(p) for p in plan.get("Plans", []))


def explain(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> tuple[int, str]:
    """(rows touched, the plan's shape) of the named statement, run for real."""
    [doc] = conn.execute(f"explain (analyze, format json) {queries()[name]}", params).fetchone()["QUERY PLAN"]
    return rows_touched(doc["Plan"]), shape(doc["Plan"])


def shape(plan: dict[str, Any], depth: int = 0) -> str:
    cond = (plan.get("Index Cond") or plan.get("Hash Cond") or plan.get("Join Filter") or "")[:100]
    line = f"{'  ' * depth}{plan['Node Type']} {plan.get('Relation Name', '')} {cond}".rstrip()
    return "\n".join([line, *(shape(p, depth + 1) for p in plan.get("Plans", []))])


@pytest.mark.parametrize("db_kind", ["history"], indirect=True)
def test_hot_statements_read_rows_in_proportion_to_their_work(stack, conn, tmp_path) -> None:
    data, stats = sample(tmp_path / "leads.csv", rows=2 * CHUNK, seed=11)
    api = Api(stack)
    row = api.parse(conn, data)  # parsed through the stack: slices under production settings
    job_id = str(row["id"])
    assert (row["total_rows"], row["duplicate_rows"]) == (stats.rows, stats.duplicates)
    org = row["organization_id"]
    rows = list(range(1, CHUNK + 1))
    keys = [r["match_key"] for r in conn.execute("select match_key from staged_rows where job_id = %s", (job_id,))]
    valid = [
        r["row_no"]
        for r in conn.execute(
            "select row_no from staged_rows where job_id = %s and valid and row_no <= %s", (job_id, CHUNK)
        )
    ]
    valid_next = {
        r["row_no"] - CHUNK
        for r in conn.execute(
            "select row_no from staged_rows where job_id = %s and valid and row_no > %s and row_no <= %s",
            (job_id, CHUNK, 2 * CHUNK),
        )
    }
    prefix = commit_slice._lead_id_prefix()
    zero = [commit_slice.ZERO_UUID] * CHUNK
    # The first chunk inserts its valid rows' leads; the second chunk's rows then update
    # them (row CHUNK + n updates the lead of row n), so that the revert has both to undo.
    leads, inserted, updated = list(zero), ["-"] * CHUNK, ["-"] * CHUNK
    for n in valid:
        inserted[n - 1] = "i"
        if n in valid_next:
            leads[n - 1], updated[n - 1] = commit_slice._lead_id(prefix, n), "u"
    new_leads = [commit_slice._lead_id(prefix, n) for n in valid]
    touched_leads = [lead for lead in leads if lead != commit_slice.ZERO_UUID]
    restore = ["-"] * (2 * CHUNK)  # the updated rows (CHUNK + n) give their leads' values back
    for n in valid:
        if n in valid_next:
            restore[CHUNK + n - 1] = "r"
    base = {"job": job_id, "org": org, "after": 0, "until": CHUNK}
    repeated = conn.execute(
        "select match_key, duplicate_of from staged_rows where job_id = %s and duplicate_of is not null limit 1",
        (job_id,),
    ).fetchone()
    group = {"job": job_id, "key": repeated["match_key"]}
    statements = {
        "earlier_keys": {"job": job_id, "before": CHUNK, "keys": "\n".join(k for k in keys[CHUNK:] if k)},
        "point_to_earlier_keys": {"job": job_id, "after": CHUNK, "until": 2 * CHUNK, "firsts": array_literal(rows)},
        "chunk_rows": {
            **base, "by_email": True, "by_phone": False, "by_phone_without_email": True,
            "owner_field": None, "owner_header": None,
        },
        "insert_leads": {
            **base, "id_prefix": prefix, "outcomes": array_literal(inserted), "owners": array_literal(zero),
        },
        "update_leads": {
            **base, "after": CHUNK, "until": 2 * CHUNK, "outcomes": array_literal(updated),
            "leads": array_literal(leads),
        },
        "revert_rows": {"job": job_id, "after": 0, "until": 2 * CHUNK},
        "revert_leads_now": {"ids": array_literal(new_leads), "org": org},
        "later_matches": {"ids": array_literal(new_leads), "job": job_id},
        "jobs_of": {"ids": [job_id]},
        "restore_leads": {"job": job_id, "after": 0, "until": 2 * CHUNK, "restore": array_literal(restore), "org": org},
        "delete_reverted_leads": {"ids": array_literal(new_leads), "org": org},
        "invalid_rows_page": {"job": job_id, "after": 0, "limit": 100},
        "review_examples": {"job": job_id, "codes": list(row["error_counts"]), "warnings": False, "limit": 5},
        # A fix in review (lib/row_fixes.py): the row, its fix, its key's duplicate group.
        "staged_row": {"job": job_id, "row": CHUNK},
        "row_fix": {"job": job_id, "row": CHUNK},
        "fixes_after": {"job": job_id, "after": 0},
        "key_firsts": group,
        "key_followers": {**group, "first": repeated["duplicate_of"]},
        "point_row_to": {"job": job_id, "first": repeated["duplicate_of"], "row": repeated["duplicate_of"]},
        "delete_staged_rows": {"id": job_id},
    }  # fmt: skip
    touched, plans = {}, {}
    with conn.transaction(force_rollback=True):
        conn.execute("set local statement_timeout = '60s'")  # a runaway plan fails, not hangs
        for name, params in statements.items():
            touched[name], plans[name] = explain(conn, name, params)
            if name == "update_leads":  # the writes really happened: the revert has rows to judge
                written = conn.execute(
                    "select outcome, count(*) from staged_outcomes where job_id = %s group by 1", (job_id,)
                ).fetchall()
                assert {r["outcome"]: r["count"] for r in written} == {
                    "inserted": len(valid), "updated": len(touched_leads),
                }  # fmt: skip
    print("\n\n".join(f"-- {name}: {touched[name]} rows\n{plans[name]}" for name in statements))
    # The history holds 400,000 staged rows and 220,000 leads: a plan that scans either, or
    # rescans this job's rows per row, touches far more than this.
    bound = 20 * CHUNK
    assert {name: n for name, n in touched.items() if n > bound} == {}
    # A parse slice's lookup of its keys among the job's earlier rows follows the keys, not
    # the job: 50 keys among the job's 10,000 rows, a probe each.
    few = [k for k in keys if k][:50]
    probes, plan = explain(conn, "earlier_keys", {"job": job_id, "before": 2 * CHUNK, "keys": "\n".join(few)})
    assert probes <= 4 * len(few), plan
    # A fix reads its row and its key's duplicate group (two rows here), nothing else.
    fix = ("staged_row", "row_fix", "fixes_after", "key_firsts", "key_followers", "point_row_to")
    assert {name: touched[name] for name in fix if touched[name] > 10} == {}


def test_key_probes_stay_probes_when_the_statistics_took_the_job_for_one_row(conn) -> None:
    """The worst statistics for a probe by job: gathered while staged_rows held one row, so
    that any job looks like one row and the primary key (job_id, row_no) looks as good as
    the first-key index. A slice's lookup of its keys, and a fix's lookup of one key, still
    probe per key (with `job_id = …` in the probe, the planner read the job's every row
    once per key)."""
    other, job_id = uuid.uuid4(), uuid.uuid4()
    conn.execute("insert into staged_rows (job_id, row_no, raw, valid, match_key) values (%s, 1, '{}', true, 'a@b.fr')",
                 (other,))  # fmt: skip
    conn.execute("analyze staged_rows")
    rows = 20_000
    conn.execute(
        "insert into staged_rows (job_id, row_no, valid, match_key)"
        " select %s, g, true, 'k' || g || '@exemple.fr' from generate_series(1, %s) g",
        (job_id, rows),
    )
    keys = [f"k{n}@exemple.fr" for n in range(1, 2 * rows, 40)]  # 1,000 keys, half of them staged
    with conn.transaction(force_rollback=True):
        conn.execute("set local statement_timeout = '60s'")  # a plan per row fails, not hangs
        probes, plan = explain(conn, "earlier_keys", {"job": job_id, "before": rows, "keys": "\n".join(keys)})
        assert probes <= 4 * len(keys), plan
        found, plan = explain(conn, "key_firsts", {"job": job_id, "key": keys[1]})
        assert found <= 3, plan


def test_a_statement_past_its_timeout_rolls_the_slice_back_and_the_retry_completes(
    database_url, tmp_path, conn
) -> None:
    data, stats = sample(tmp_path / "leads.csv", rows=300, seed=12)
    env = {
        "IMPORT_STATEMENT_TIMEOUT_SECONDS": "0.5", "IMPORT_PARSE_SLICE_ROWS": "100",
        "LOCAL_QSTASH_FAULTS": "delay_ms=300-400",  # time to step in between two slices
    }  # fmt: skip
    with make_stack(database_url, tmp_path, **env) as stack, psycopg.connect(database_url, autocommit=True) as blocker:
        api = Api(stack)
        job_id = api.create(conn, data)
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["slices_done"] == 1, what="the validating step")
        with blocker.transaction():
            # The next parse slice locks its job row, stages its rows, then waits for this
            # lock to move its cursor, until its statement timeout cancels it.
            blocker.execute("lock table import_jobs in share mode")
            wait_until(lambda: stack.qstash.stats.failures >= 1, what="a delivery cancelled by its statement timeout")
            staged = conn.execute("select count(*) as n from staged_rows where job_id = %s", (job_id,)).fetchone()
            assert staged["n"] == 0
        done = finished(conn, job_id, "ready")
    assert (done["total_rows"], done["valid_rows"], done["duplicate_rows"]) == (
        stats.rows,
        stats.valid,
        stats.duplicates,
    )
    assert done["slices_done"] == 1 + 3 + 1  # validating, three full slices, the end of the file
    staged = conn.execute(
        "select count(*) as n, count(duplicate_of) as dups from staged_rows where job_id = %s", (job_id,)
    ).fetchone()
    assert (staged["n"], staged["dups"]) == (stats.rows, stats.duplicates)


def test_a_delivery_that_finds_the_job_locked_answers_at_once_and_comes_back(database_url, tmp_path, conn) -> None:
    data, stats = sample(tmp_path / "leads.csv", rows=300, seed=13)
    env = {"IMPORT_PARSE_SLICE_ROWS": "100", "LOCAL_QSTASH_FAULTS": "delay_ms=300-400"}
    with make_stack(database_url, tmp_path, **env) as stack, psycopg.connect(database_url, autocommit=True) as blocker:
        api = Api(stack)
        job_id = api.create(conn, data)
        events = []
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["slices_done"] == 1, what="the validating step")
        with blocker.transaction():
            # Slice 1 holds the job's row lock while it waits for this one to move its cursor.
            blocker.execute("lock table import_jobs in share mode")
            wait_until(lambda: waiting_on_a_lock(conn), what="slice 1 waiting")
            delivered, failures = stack.qstash.stats.delivered, stack.qstash.stats.failures
            # A second delivery of slice 1, through QStash, as a redelivery would come.
            client = qstash.QStash(stack.env["QSTASH_TOKEN"], base_url=stack.env["QSTASH_URL"])
            run = job(conn, job_id)["run"]
            client.message.publish_json(
                url=stack.settings.endpoint_url("api/import/parse"), body=Message(job_id, "parse", run, 1).body
            )
            wait_until(lambda: stack.qstash.stats.delivered > delivered, what="the second delivery's answer")
            events.append("second delivery answered")
            assert waiting_on_a_lock(conn), "slice 1 still holds the job"
            assert job(conn, job_id)["slices_done"] == 1
            events.append("lock released")
        assert events == ["second delivery answered", "lock released"]
        done = finished(conn, job_id, "ready")
        stack.wait_idle()
        assert stack.qstash.stats.failures == failures  # no retry spent
    assert (done["total_rows"], done["duplicate_rows"]) == (stats.rows, stats.duplicates)
    assert done["slices_done"] == 1 + 3 + 1
    staged = conn.execute("select count(*) from staged_rows where job_id = %s", (job_id,)).fetchone()["count"]
    assert staged == stats.rows


def waiting_on_a_lock(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "select exists (select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock')"
    ).fetchone()["exists"]


def test_messages_for_a_slice_already_done_leave_the_job_alone(database_url, tmp_path, conn) -> None:
    """QStash gave up on a copy of slice k (say every redelivery timed out on the lock) while
    another copy did the slice: the job moved on to k + 1 and must not fail. A late copy of
    an earlier slice changes nothing either."""
    data, _ = sample(tmp_path / "leads.csv", rows=300, seed=14)
    env = {"IMPORT_PARSE_SLICE_ROWS": "50", "IMPORT_COMMIT_SLICE_ROWS": "50", "LOCAL_QSTASH_FAULTS": "delay_ms=80-120"}
    with make_stack(database_url, tmp_path, **env) as stack:
        api = Api(stack)
        job_id = api.parse(conn, data)["id"]
        api.start_commit(job_id, **ROUND_ROBIN)
        wait_until(lambda: (r := job(conn, job_id))["slices_done"] >= 10 and r["status"] == "committing")
        assert stack.qstash.pause(30)  # no slice runs now: the copies below find the job free
        row = job(conn, job_id)
        assert row["status"] == "committing", row
        body = {
            "status": 504, "body": base64.b64encode(b"timeout").decode(), "retried": 5, "maxRetries": 5,
            "sourceBody": base64.b64encode(slice_message(job_id, "commit", row["run"], row["slice_no"] - 1)).decode(),
        }  # fmt: skip
        resp = post_signed(stack, "/api/import/failed", json.dumps(body).encode())
        assert (resp.status_code, resp.json()["outcome"]) == (200, "stale")
        late = post_signed(
            stack, "/api/import/commit", slice_message(job_id, "commit", row["run"], row["slice_no"] - 3)
        )
        assert (late.status_code, late.json()["outcome"]) == (200, "duplicate")
        stack.qstash.resume()
        done = finished(conn, job_id, "completed")
        assert done["error_message"] is None
        stack.wait_idle()
    parse_slices = 1 + 300 // 50 + 1  # validating, six full slices, the end of the file
    assert job(conn, job_id)["slices_done"] == parse_slices + 300 // 50  # none counted twice
    assert done["inserted_rows"] + done["skipped_rows"] == done["valid_rows"]
