"""The slice protocol: driven only by QStash messages, each slice is applied exactly once,
also when every message is delivered twice, concurrently, and when responses are lost."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from lib import db, manager, slices
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.parse.sample import write_sample_csv
from lib.phases import PHASES
from lib.queue import Message, Publisher
from lib.storage import FolderStorage
from tests.helpers import fresh_database, make_stack, wait_for_status

ROWS = 120
CAP = 10  # rows per parse slice: 12 slices plus the validating one


def _run_import(stack: Any, conn: Any, csv: Path) -> dict[str, Any]:
    settings = stack.settings
    storage = FolderStorage(settings.local_data_dir / "storage")
    key = f"{LOCAL_ORG}/{uuid.uuid4()}/{csv.name}"
    storage.put(key, csv.read_bytes())
    job = manager.create_job(
        conn, org=str(LOCAL_ORG), user=str(LOCAL_MEMBERS[0][0]), file_name=csv.name,
        storage_path=key, settings={"region": "FR"}, lease_seconds=90,
    )  # fmt: skip
    publish = Publisher(settings).publish
    manager.start_job(conn, str(job["id"]), publish)
    job = wait_for_status(conn, str(job["id"]), {"ready", "failed"})
    assert job["status"] == "ready", job["error_message"]
    manager.commit_job(conn, str(job["id"]), {"assign": "round-robin:camille@local.test,lucas@local.test"}, publish)
    job = wait_for_status(conn, str(job["id"]), {"completed", "failed"})
    assert job["status"] == "completed", job["error_message"]
    assert stack.wait_idle(30)
    return job


def _state(conn: Any, job_id: Any) -> dict[str, Any]:
    job = conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()
    staged = conn.execute(
        "select s.row_no, raw, fields, valid, errors, warnings, duplicate_of, so.outcome from staged_rows s"
        " left join staged_outcomes so on so.job_id = s.job_id and so.row_no = s.row_no"
        " where s.job_id = %s order by s.row_no",
        (job_id,),
    ).fetchall()
    leads = conn.execute(
        "select email_normalized, phone_e164, owner_id, first_name, last_name from leads where import_job_id = %s"
        " order by 1, 2, 3, 4, 5",
        (job_id,),
    ).fetchall()
    counts = {
        k: job[k]
        for k in (
            "total_rows", "valid_rows", "invalid_rows", "duplicate_rows", "inserted_rows", "updated_rows",
            "skipped_rows", "error_counts", "warning_counts", "parse_cursor", "commit_cursor", "file_size",
        )
    }  # fmt: skip
    return {"counts": counts, "staged": staged, "leads": leads}


@pytest.fixture
def sample_csv(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    write_sample_csv(path, ROWS, seed=3)
    return path


ENV = {"IMPORT_PARSE_SLICE_ROWS": str(CAP), "IMPORT_COMMIT_SLICE_ROWS": str(CAP)}


@pytest.fixture(scope="module")
def undisturbed(server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The final state of an undisturbed run of the same file, in a fresh database of its own
    (runs on a database with history must end in the same state)."""
    tmp = tmp_path_factory.mktemp("undisturbed")
    csv = tmp / "leads.csv"
    write_sample_csv(csv, ROWS, seed=3)
    with fresh_database(server_url, "fresh") as url, db.connect(url) as conn, make_stack(url, tmp, **ENV) as stack:
        job = _run_import(stack, conn, csv)
        return _state(conn, job["id"])


FAULTS = {
    "undisturbed": "",
    "every-message-twice": "duplicate=1.0,seed=1",
    "lost-responses": "lose_response=0.5,seed=2",
    "mixed": "duplicate=0.5,lose_response=0.3,delay_ms=0-50,seed=3",
}


# Every fault on a fresh database; the mixed faults on a database with history too.
@pytest.mark.parametrize(
    ("faults", "db_kind"),
    [
        *(pytest.param(faults, "fresh", id=f"{name}-fresh") for name, faults in FAULTS.items()),
        pytest.param(FAULTS["mixed"], "history", id="mixed-history"),
    ],
    indirect=["db_kind"],
)
def test_each_slice_is_applied_once(
    database_url: str, tmp_path: Path, sample_csv: Path, faults: str, conn, undisturbed: dict[str, Any]
) -> None:
    with make_stack(database_url, tmp_path, **ENV, LOCAL_QSTASH_FAULTS=faults) as stack:
        job = _run_import(stack, conn, sample_csv)
        state = _state(conn, job["id"])
        stats = stack.qstash.stats
    # Validating, then ROWS/CAP full slices, then one that finds the end of the file.
    parse_slices = 1 + ROWS // CAP + 1
    commit_slices = ROWS // CAP  # the commit knows total_rows: it stops on the last row
    assert job["parse_cursor"] == job["file_size"]
    assert job["commit_cursor"] == ROWS
    assert job["total_rows"] == ROWS == len(state["staged"])
    # One slice counted per message that moved the job: no slice applied twice, none skipped.
    assert job["slices_done"] == parse_slices + commit_slices
    assert job["inserted_rows"] + job["updated_rows"] + job["skipped_rows"] == job["valid_rows"]
    if "duplicate=1.0" in faults:
        assert stats.deliveries >= 2 * stats.delivered - 1
    # Exactly the state of an undisturbed run of the same file (another database, another run).
    assert state == undisturbed


def test_redelivered_slice_changes_nothing_and_republishes(stack, conn, sample_csv: Path) -> None:
    """Called directly: the second handling of one message is a no-op plus the continuation."""
    storage = FolderStorage(stack.settings.local_data_dir / "storage")
    storage.put("org/f.csv", sample_csv.read_bytes())
    job = manager.create_job(
        conn, org=str(LOCAL_ORG), user=str(LOCAL_MEMBERS[0][0]), file_name="f.csv",
        storage_path="org/f.csv", settings={}, lease_seconds=90,
    )  # fmt: skip
    sent: list[Message] = []
    manager.start_job(conn, str(job["id"]), sent.append)
    first = sent[0]
    svc = type("Svc", (), {"storage": storage})()
    assert slices.handle(conn, first, stack.settings, svc, PHASES, sent.append).outcome == "done"
    after_first = conn.execute("select * from import_jobs where id = %s", (job["id"],)).fetchone()
    assert sent[-1] == first.next()
    reply = slices.handle(conn, first, stack.settings, svc, PHASES, sent.append)
    assert reply.outcome == "duplicate"
    assert conn.execute("select * from import_jobs where id = %s", (job["id"],)).fetchone() == after_first
    assert sent[-1] == first.next()  # the continuation again, with the same deduplication id
    assert sent[-1].dedup_id == sent[-2].dedup_id
    # A message of another run, or from the future, is ignored.
    assert (
        slices.handle(
            conn, Message(first.job, "parse", first.run + 1, 1), stack.settings, svc, PHASES, sent.append
        ).outcome
        == "stale"
    )
    assert (
        slices.handle(conn, Message(first.job, "parse", first.run, 5), stack.settings, svc, PHASES, sent.append).outcome
        == "stale"
    )
    assert conn.execute("select * from import_jobs where id = %s", (job["id"],)).fetchone() == after_first
