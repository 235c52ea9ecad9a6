"""The commit phase on the whole local stack (real Postgres, QStash, HTTP): duplicates and
match modes, owners, counts, concurrent imports into one organization, and the revert.

Every import goes through the frontend's API: create, upload, start, commit.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lib import commit_slice
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.parse.sample import write_sample_csv
from tests.helpers import LEAD_HEADER, Api, e164, finished, lead_rows, make_stack, phone, write_csv

CAMILLE, LUCAS, MANON = (str(m[0]) for m in LOCAL_MEMBERS)
EMAILS = [m[1] for m in LOCAL_MEMBERS]


def assert_counts_add_up(job: dict[str, Any]) -> None:
    assert job["valid_rows"] + job["invalid_rows"] == job["total_rows"]
    assert job["inserted_rows"] + job["updated_rows"] + job["skipped_rows"] == job["valid_rows"]
    assert job["commit_cursor"] == job["total_rows"]


def outcomes(conn: Any, job_id: str) -> list[dict[str, Any]]:
    """Each staged row's outcome, its lead's keys and owner, and the row that inserted that
    lead (lead ids differ between runs; the inserting row does not)."""
    return conn.execute(
        """
        select s.row_no, s.outcome, o.row_no as lead_row, l.email_normalized, l.phone_e164, l.owner_id
        from staged_outcomes s
        left join leads l on l.id = s.lead_id
        left join staged_outcomes o on o.job_id = s.job_id and o.lead_id = s.lead_id and o.outcome = 'inserted'
        where s.job_id = %s
        order by s.row_no
        """,
        (job_id,),
    ).fetchall()


def org_leads(conn: Any) -> int:
    """The local organization's leads (a database with history holds 20,000 before a test
    imports anything: tests compare with the count they started with)."""
    return conn.execute("select count(*) from leads where organization_id = %s", (LOCAL_ORG,)).fetchone()["count"]


def duplicate_keys(conn: Any) -> list[Any]:
    """Match keys held by more than one lead of an organization (email, else phone)."""
    return conn.execute(
        """
        select organization_id, coalesce(email_normalized, phone_e164) as k, count(*) from leads
        group by 1, 2 having count(*) > 1
        union all
        select organization_id, email_normalized, count(*) from leads
        where email_normalized is not null group by 1, 2 having count(*) > 1
        """
    ).fetchall()


@pytest.fixture(params=[commit_slice.CHUNK_ROWS, 1], ids=["one_chunk", "one_row_chunks"])
def chunk_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of one row: every row is read (on the slice's second connection) before the
    previous row's lead is written, so matching it relies on the slice's Matcher."""
    monkeypatch.setattr(commit_slice, "CHUNK_ROWS", request.param)
    return request.param


@pytest.fixture
def api(stack: Any) -> Api:
    return Api(stack)


@pytest.fixture
def leads_csv(tmp_path: Path) -> tuple[Path, Any]:
    path = tmp_path / "leads.csv"
    return path, write_sample_csv(path, 400, seed=5)


# -- duplicates: skip, update, create ------------------------------------------------------------


@pytest.mark.history
def test_reimport_with_skip_update_and_create(
    api: Api, conn: Any, leads_csv: tuple[Path, Any], chunk_rows: int
) -> None:
    path, stats = leads_csv
    before = org_leads(conn)
    first = api.import_file(conn, path, assignment="user", owner="lucas@local.test")
    assert_counts_add_up(first)
    assert first["valid_rows"] == stats.valid
    assert first["inserted_rows"] == org_leads(conn) - before > 0
    assert first["skipped_rows"] == first["duplicate_rows"] == stats.duplicates  # in-file duplicates
    # Every lead carries its row's normalized email / phone, and its owner.
    mismatched = conn.execute(
        """
        select count(*) from leads l
        join staged_outcomes o on o.lead_id = l.id and o.outcome = 'inserted'
        join staged_rows s on s.job_id = o.job_id and s.row_no = o.row_no
        where o.job_id = %s and (
          s.email_normalized is distinct from l.email_normalized or s.phone_e164 is distinct from l.phone_e164
          or l.owner_id is distinct from %s or l.email_normalized <> lower(l.email_normalized)
          or l.phone_e164 !~ '^\\+[1-9][0-9]{6,14}$' or l.import_job_id <> s.job_id)
        """,
        (first["id"], LUCAS),
    ).fetchone()["count"]
    assert mismatched == 0
    keyless = "select count(*) from leads where import_job_id = %s and email_normalized is null and phone_e164 is null"
    assert conn.execute(keyless, (first["id"],)).fetchone()["count"] == 0
    # Every staged row has its outcome; every valid one its lead.
    rows = outcomes(conn, first["id"])
    by_outcome = Counter(r["outcome"] for r in rows)
    # In-file duplicates: the first valid occurrence inserted the lead, the later ones point to it.
    assert all(r["lead_row"] < r["row_no"] for r in rows if r["outcome"] == "skipped")
    assert by_outcome == {
        "inserted": first["inserted_rows"],
        "skipped": first["skipped_rows"],
        "invalid": stats.invalid,
    }
    assert len(rows) == first["total_rows"]
    leadless = "select count(*) from staged_outcomes where job_id = %s and outcome <> 'invalid' and lead_id is null"
    assert conn.execute(leadless, (first["id"],)).fetchone()["count"] == 0

    skip = api.import_file(conn, path)
    assert_counts_add_up(skip)
    assert (skip["inserted_rows"], skip["updated_rows"], skip["skipped_rows"]) == (0, 0, skip["valid_rows"])
    assert org_leads(conn) - before == first["inserted_rows"]

    update = api.import_file(conn, path, duplicates="update")
    assert_counts_add_up(update)
    # Each lead is updated by the first row matching it; its in-file duplicates are skipped.
    assert update["inserted_rows"] == 0
    assert update["updated_rows"] == first["inserted_rows"]
    assert update["skipped_rows"] == first["skipped_rows"]
    updated = conn.execute("select count(*) from leads where updated_by_import_job_id = %s", (update["id"],))
    assert updated.fetchone()["count"] == first["inserted_rows"]
    assert org_leads(conn) - before == first["inserted_rows"]

    create = api.import_file(conn, path, duplicates="create")
    assert_counts_add_up(create)
    assert (create["inserted_rows"], create["updated_rows"], create["skipped_rows"]) == (create["valid_rows"], 0, 0)
    assert org_leads(conn) - before == first["inserted_rows"] + create["valid_rows"]


@pytest.mark.parametrize("db_kind", ["history"], indirect=True)
@pytest.mark.parametrize(
    "env",
    [{}, {"IMPORT_PARSE_SLICE_ROWS": "3000", "IMPORT_COMMIT_SLICE_ROWS": "7000"}],
    ids=["production", "capped_slices"],
)
def test_20000_rows_on_a_database_with_history(database_url: str, tmp_path: Path, conn: Any, env: dict) -> None:
    """An Excel-style file of 20,000 rows, parsed and committed on the local stack with the
    production slice budget (and with row caps, so that slices follow slices), on a
    database with history, where the planner's statistics predate the job: its counts are
    the generator's. A plan that turns quadratic in the job's rows would not finish (the
    waits below, then the test's timeout); no timing is asserted."""
    path = tmp_path / "LEADCLIENT.csv"
    stats = write_sample_csv(path, 20_000, seed=11)
    before = org_leads(conn)
    with make_stack(database_url, tmp_path, **env) as stack:
        api = Api(stack)
        parsed = api.parse(conn, path)
        job_id = parsed["id"]
        job = api.commit(conn, job_id, assignment="round_robin", owners=EMAILS)
        assert stack.wait_idle(30)
    assert (parsed["total_rows"], parsed["valid_rows"], parsed["invalid_rows"]) == (
        stats.rows, stats.valid, stats.invalid,
    )  # fmt: skip
    assert parsed["duplicate_rows"] == stats.duplicates
    assert parsed["error_counts"].get("no_contact") == stats.invalid
    assert "malformed_row" not in parsed["error_counts"]
    assert parsed["warning_counts"] == {
        "invalid_email": stats.invalid_email_warnings,
        "invalid_phone": stats.invalid_phone_warnings,
    }
    if env:
        assert parsed["slices_done"] > 20_000 // 3000 + 1
    assert_counts_add_up(job)
    # No key of the history matches the file's: the earlier leads are neither skipped nor updated.
    assert (job["inserted_rows"], job["updated_rows"], job["skipped_rows"]) == (
        stats.valid - stats.duplicates, 0, stats.duplicates,
    )  # fmt: skip
    assert org_leads(conn) - before == job["inserted_rows"]
    by_outcome = conn.execute(
        "select outcome, count(*) from staged_outcomes where job_id = %s group by outcome", (job_id,)
    ).fetchall()
    assert {r["outcome"]: r["count"] for r in by_outcome} == {
        "inserted": job["inserted_rows"], "skipped": stats.duplicates, "invalid": stats.invalid,
    }  # fmt: skip
    per_owner = Counter(
        r["owner_id"] for r in conn.execute("select owner_id from leads where import_job_id = %s", (job_id,))
    )
    assert set(map(str, per_owner)) == {CAMILLE, LUCAS, MANON}
    assert max(per_owner.values()) - min(per_owner.values()) <= 1


def test_update_overwrites_with_non_empty_values_and_first_row_wins(
    api: Api, conn: Any, tmp_path: Path, chunk_rows: int
) -> None:
    header = ["E-mail", "Téléphone", "Société", "Ville", "Source"]
    api.import_file(
        conn,
        write_csv(tmp_path / "old.csv", header, [
            ["a@example.fr", phone(1), "Old A", "Lyon", "Salon"],
            ["b@example.fr", "", "Old B", "Nantes", ""],
        ]),
    )  # fmt: skip
    job = api.import_file(
        conn,
        write_csv(tmp_path / "new.csv", header, [
            ["A@example.fr", "inconnu", "New A", "", ""],      # invalid phone: a warning, not an overwrite
            ["b@example.fr", "0000", "", "Paris", "Web"],       # invalid phone fills an empty one
            ["a@example.fr", phone(2), "Newer A", "Lille", ""],  # in-file duplicate: the first row won
            ["c@example.fr", phone(3), "New C", "", ""],
            ["c@example.fr", phone(4), "Newer C", "", ""],       # duplicate of a lead inserted just before
        ]),
        duplicates="update",
    )  # fmt: skip
    assert_counts_add_up(job)
    assert (job["inserted_rows"], job["updated_rows"], job["skipped_rows"]) == (1, 2, 2)
    leads = {r["email_normalized"]: r for r in conn.execute("select * from leads")}
    a, b, c = leads["a@example.fr"], leads["b@example.fr"], leads["c@example.fr"]
    assert (a["company"], a["city"], a["source"], a["phone"], a["phone_e164"]) == (
        "New A", "Lyon", "Salon", e164(1), e164(1),
    )  # fmt: skip
    assert (b["company"], b["city"], b["source"], b["phone"], b["phone_e164"]) == (
        "Old B",
        "Paris",
        "Web",
        "0000",
        None,
    )
    assert (c["company"], c["phone_e164"]) == ("New C", e164(3))
    rows = outcomes(conn, job["id"])
    assert [r["outcome"] for r in rows] == ["updated", "updated", "skipped", "inserted", "skipped"]
    assert rows[2]["email_normalized"] == "a@example.fr" and rows[4]["lead_row"] == 4


# -- match modes ---------------------------------------------------------------------------------


EXPECTED_BY_MATCH = {
    # row:               1: a's email   2: c's phone   3: a's phone   4: b's email   5: new
    "email_then_phone": ["skipped:a", "inserted", "skipped:a", "skipped:b", "inserted"],
    "email": ["skipped:a", "inserted", "inserted", "skipped:b", "inserted"],
    "phone": ["inserted", "skipped:c", "skipped:a", "inserted", "inserted"],
    "email_or_phone": ["skipped:a", "skipped:c", "skipped:a", "skipped:b", "inserted"],
}


@pytest.mark.parametrize("match", list(EXPECTED_BY_MATCH))
def test_match_modes(api: Api, conn: Any, tmp_path: Path, match: str, chunk_rows: int) -> None:
    header = ["E-mail", "Téléphone", "Nom"]
    api.import_file(
        conn,
        write_csv(tmp_path / "existing.csv", header, [
            ["a@example.fr", phone(1), "a"], ["b@example.fr", "", "b"], ["", phone(3), "c"],
        ]),
    )  # fmt: skip
    job = api.import_file(
        conn,
        write_csv(tmp_path / "incoming.csv", header, [
            ["a@example.fr", phone(99), "r1"],
            ["z@example.fr", phone(3), "r2"],
            ["", "+33 6 12 00 00 01", "r3"],
            ["B@Example.FR", "", "r4"],
            ["y@example.fr", phone(777), "r5"],
        ]),
        match=match,
    )  # fmt: skip
    assert_counts_add_up(job)
    got = conn.execute(
        """
        select s.outcome, l.last_name, l.import_job_id = s.job_id as new
        from staged_outcomes s join leads l on l.id = s.lead_id where s.job_id = %s order by s.row_no
        """,
        (job["id"],),
    ).fetchall()
    seen = [r["outcome"] if r["new"] else f"{r['outcome']}:{r['last_name']}" for r in got]
    assert seen == EXPECTED_BY_MATCH[match]
    assert job["inserted_rows"] == seen.count("inserted")
    assert job["skipped_rows"] == len(seen) - seen.count("inserted")


# -- owners --------------------------------------------------------------------------------------


def test_round_robin_is_even_and_the_same_with_tiny_slices_and_faults(
    database_url: str, tmp_path: Path, conn: Any, leads_csv: tuple[Path, Any]
) -> None:
    """One big slice, then (after a revert, in the same organization) slices of 7 rows with
    every kind of delivery fault: the same leads, owners and outcomes, row for row."""
    path, _ = leads_csv
    runs = []
    for n, env in enumerate(
        [
            {},
            {
                "IMPORT_COMMIT_SLICE_ROWS": "7",
                "LOCAL_QSTASH_FAULTS": "duplicate=0.5,lose_response=0.3,error=0.1,seed=4",
            },
        ]
    ):
        with make_stack(database_url, tmp_path / f"run{n}", **env) as stack:
            api = Api(stack)
            job = api.import_file(conn, path, assignment="round_robin", owners=EMAILS)
            assert_counts_add_up(job)
            assert job["slice_no"] == (-(-job["total_rows"] // 7) if env else 1)  # the commit phase's slices
            per_owner = Counter(
                r["owner_id"] for r in conn.execute("select owner_id from leads where import_job_id = %s", (job["id"],))
            )
            assert set(map(str, per_owner)) == {CAMILLE, LUCAS, MANON}
            assert max(per_owner.values()) - min(per_owner.values()) <= 1
            runs.append(outcomes(conn, job["id"]))
            api.revert(conn, job["id"])
            assert org_leads(conn) == 0
            assert stack.wait_idle(30)
    assert runs[0] == runs[1]
    assert any(r["outcome"] == "skipped" for r in runs[0])  # the file has in-file duplicates


def test_owner_column_with_unknown_emails_counts_a_warning(api: Api, conn: Any, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "owners.csv",
        ["E-mail", "Commercial"],
        [
            ["a@example.fr", "Lucas@Local.Test "],
            ["b@example.fr", "nobody@local.test"],
            ["c@example.fr", ""],
            ["d@example.fr", "manon@local.test"],
            ["a@example.fr", "also-unknown@local.test"],  # skipped: no lead, no owner, no warning
        ],
    )
    job = api.import_file(conn, path, assignment="column", owner_column="Commercial")
    assert_counts_add_up(job)
    assert job["warning_counts"].get("unknown_owner") == 1
    owners = {
        r["email_normalized"]: r["owner_id"] for r in conn.execute("select email_normalized, owner_id from leads")
    }
    assert {k: v and str(v) for k, v in owners.items()} == {
        "a@example.fr": LUCAS, "b@example.fr": None, "c@example.fr": None, "d@example.fr": MANON,
    }  # fmt: skip


# -- concurrency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("duplicates", ["skip", "update"])
def test_concurrent_overlapping_imports_leave_no_duplicate(
    database_url: str, tmp_path: Path, conn: Any, duplicates: str
) -> None:
    """Both files hold the shared keys at the same row numbers, so slices of the two jobs
    reach the same keys at the same time."""
    a_keys = list(range(1, 241))
    b_keys = [i if i % 2 == 0 else 1000 + i for i in a_keys]
    a = write_csv(tmp_path / "a.csv", LEAD_HEADER, lead_rows(a_keys, company="A"))
    b = write_csv(tmp_path / "b.csv", LEAD_HEADER, lead_rows(b_keys, company="B"))
    with make_stack(database_url, tmp_path, IMPORT_COMMIT_SLICE_ROWS="5") as stack:
        api = Api(stack)
        jobs = [api.parse(conn, a)["id"], api.parse(conn, b)["id"]]
        gate = threading.Barrier(2)

        def commit(job_id: str) -> None:
            gate.wait()
            api.start_commit(job_id, duplicates=duplicates)

        threads = [threading.Thread(target=commit, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = [finished(conn, j, "completed") for j in jobs]
        assert stack.wait_idle(30)
    for job in done:
        assert_counts_add_up(job)
    assert duplicate_keys(conn) == []
    keys = {i for i in a_keys + b_keys if i % 11}
    shared = {i for i in set(a_keys) & set(b_keys) if i % 11}
    assert org_leads(conn) == len(keys)
    assert sum(j["inserted_rows"] for j in done) == len(keys)
    # Each shared key was inserted by one import and skipped or updated by the other.
    assert sum(j["updated_rows" if duplicates == "update" else "skipped_rows"] for j in done) == len(shared)


# -- revert ----------------------------------------------------------------------------------------


@pytest.mark.history
def test_revert_deletes_exactly_the_inserted_unchanged_leads(database_url: str, tmp_path: Path, conn: Any) -> None:
    """C imports keys 1-4; A (update) updates 3-4 and inserts 5-20; B (update) updates 5-6
    and inserts 21; a person edits lead 7. Reverting A deletes its leads 8-20, gives 3-4
    back C's values, and keeps 5-6 (B matched them) and 7 (edited)."""
    files = {
        name: write_csv(tmp_path / f"{name}.csv", ["E-mail", "Société"], [[f"k{i}@example.fr", name] for i in keys])
        for name, keys in (("C", range(1, 5)), ("A", range(3, 21)), ("B", [5, 6, 21]))
    }
    before = org_leads(conn)
    with make_stack(database_url, tmp_path, IMPORT_COMMIT_SLICE_ROWS="4") as stack:
        api = Api(stack)
        c = api.import_file(conn, files["C"])
        a = api.import_file(conn, files["A"], duplicates="update")
        assert (a["inserted_rows"], a["updated_rows"]) == (16, 2)
        b = api.import_file(conn, files["B"], duplicates="update")
        conn.execute("update leads set notes = 'called', updated_at = now() where email_normalized = 'k7@example.fr'")
        status, body = api.call("POST", f"/api/jobs/{a['id']}/revert")
        assert status == 202, body
        assert body["job"]["status"] == "reverting"
        a = finished(conn, a["id"], "reverted")
        assert stack.wait_idle(30)
    assert (a["reverted_rows"], a["restored_rows"]) == (13, 2)
    assert a["kept_counts"] == {"changed_since": 1, "matched_later": 2}
    assert a["slice_no"] == 5  # the revert phase's slices: 4 + 4 + 4 + 4 + 2 rows
    left = {
        r["email_normalized"]: r["company"]
        for r in conn.execute(
            "select email_normalized, company from leads where import_job_id = any(%s)", ([c["id"], a["id"], b["id"]],)
        )
    }
    assert org_leads(conn) - before == len(left)  # no other lead went
    assert left == {
        "k1@example.fr": "C", "k2@example.fr": "C", "k3@example.fr": "C", "k4@example.fr": "C",
        "k5@example.fr": "B", "k6@example.fr": "B", "k7@example.fr": "A", "k21@example.fr": "B",
    }  # fmt: skip
