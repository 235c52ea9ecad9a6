"""`python -m lib` as a person runs it: a subprocess on the local stack, over a test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.parse.sample import write_sample_csv
from tests.helpers import write_csv

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "job_id", "status", "total_rows", "valid_rows", "invalid_rows", "duplicate_rows", "inserted_rows",
    "updated_rows", "skipped_rows", "errors", "warnings", "elapsed_seconds",
}  # fmt: skip


@pytest.fixture
def run(database_url: str, tmp_path: Path):
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url,
        "LOCAL_DATA_DIR": str(tmp_path / "local"),
        "IMPORT_PARSE_SLICE_ROWS": "300",
    }

    def _run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lib", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    return _run


def test_import_json_then_reimport_then_jobs(run, tmp_path: Path) -> None:
    csv = tmp_path / "LEADCLIENT.csv"
    stats = write_sample_csv(csv, 1000, seed=5)
    first = run("import", str(csv), "--yes", "--json", "--assign", "round-robin:camille@local.test,lucas@local.test")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out.keys() >= KEYS
    assert out["status"] == "completed"
    assert (out["total_rows"], out["valid_rows"], out["duplicate_rows"]) == (stats.rows, stats.valid, stats.duplicates)
    assert out["inserted_rows"] + out["updated_rows"] + out["skipped_rows"] == out["valid_rows"]
    assert set(out["elapsed_seconds"]) == {"parse", "commit", "total"}
    assert all(v > 0 for v in out["elapsed_seconds"].values())

    again = json.loads(run("import", str(csv), "--yes", "--json", "--duplicates", "skip").stdout)
    assert again["inserted_rows"] == 0 and again["skipped_rows"] == again["valid_rows"]
    assert again["duplicate_of_job_id"] == out["job_id"]

    jobs = run("jobs", "--json")
    assert jobs.returncode == 0, jobs.stderr
    listed = json.loads(jobs.stdout)
    assert [j["job_id"] for j in listed] == [again["job_id"], out["job_id"]]
    assert all(j.keys() >= KEYS for j in listed)

    # A completed job cannot be retried: a clear message and a non-zero exit.
    retried = run("retry", out["job_id"], "--yes")
    assert retried.returncode != 0
    assert "completed job cannot be retried" in retried.stderr


def test_a_rejected_file_exits_non_zero_with_the_reason(run, tmp_path: Path) -> None:
    bad = tmp_path / "leads.xlsx.csv"
    bad.write_bytes(b"PK\x03\x04" + bytes(200))
    result = run("import", str(bad), "--yes")
    assert result.returncode == 1
    # A zip is read as a workbook (known by its bytes, not its name): this one is broken.
    assert "failed" in result.stdout and "damaged or incomplete" in result.stdout
    assert "upload the original file again" in result.stdout


def test_without_yes_and_without_a_terminal_nothing_is_committed(run, tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    write_sample_csv(csv, 50, seed=2)
    result = run("import", str(csv))
    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    listed = json.loads(run("jobs", "--json").stdout)
    assert listed[0]["status"] == "ready" and listed[0]["inserted_rows"] == 0


@pytest.mark.slow
def test_lead_client_sized_import_completes_with_owners(run, tmp_path: Path, conn) -> None:
    """210,202 Excel-style rows from upload to completed, round-robin over the three members."""
    csv = tmp_path / "LEADCLIENT.csv"
    stats = write_sample_csv(csv, 210_202, seed=1)
    members = "camille@local.test,lucas@local.test,manon@local.test"
    result = run("import", str(csv), "--yes", "--json", "--assign", f"round-robin:{members}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["total_rows"], out["valid_rows"], out["invalid_rows"]) == (stats.rows, stats.valid, stats.invalid)
    assert out["inserted_rows"] + out["updated_rows"] + out["skipped_rows"] == out["valid_rows"]
    leads = conn.execute(
        "select count(*) as n, count(owner_id) as owned,"
        " count(*) filter (where email_normalized is null and phone_e164 is null) as keyless,"
        " count(*) filter (where email_normalized <> lower(email_normalized)"
        "   or phone_e164 !~ '^\\+[1-9][0-9]{6,14}$') as unnormalized"
        " from leads"
    ).fetchone()
    assert leads["n"] == out["inserted_rows"] == leads["owned"]
    assert leads["keyless"] == 0 and leads["unnormalized"] == 0
    per_owner = [r["n"] for r in conn.execute("select count(*) as n from leads group by owner_id")]
    assert len(per_owner) == 3 and max(per_owner) - min(per_owner) <= 1
    staged = conn.execute(
        "select count(*) filter (where so.outcome is null) as open,"
        " count(*) filter (where so.outcome = 'invalid') as invalid"
        " from staged_rows s left join staged_outcomes so on so.job_id = s.job_id and so.row_no = s.row_no"
    ).fetchone()
    assert staged["open"] == 0 and staged["invalid"] == stats.invalid


def test_revert_asks_first_then_with_yes_undoes_and_prints_the_counts(run, tmp_path: Path) -> None:
    header = ["E-mail", "Société"]
    a = write_csv(tmp_path / "a.csv", header, [[f"k{i}@example.fr", "A"] for i in range(1, 7)])
    b = write_csv(tmp_path / "b.csv", header, [[f"k{i}@example.fr", "B"] for i in range(4, 10)])
    first = json.loads(run("import", str(a), "--yes", "--json").stdout)
    second = json.loads(run("import", str(b), "--yes", "--json", "--duplicates", "update").stdout)
    assert (second["inserted_rows"], second["updated_rows"]) == (3, 3)

    # No terminal, no --yes: it says what undo will and will not do, and does nothing.
    asked = run("revert", second["job_id"])
    assert asked.returncode == 1
    assert "3 leads inserted, 3 leads updated" in asked.stdout
    assert "delete the leads this import inserted" in asked.stdout
    assert "It will not" in asked.stdout and "changed since" in asked.stdout and "matched later" in asked.stdout
    assert "pass --yes to revert" in asked.stderr
    assert json.loads(run("jobs", "--json").stdout)[0]["status"] == "completed"

    done = run("revert", second["job_id"], "--yes", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["reverted_rows"], out["restored_rows"], out["kept"]) == ("reverted", 3, 3, {})

    # A's leads 4-6 were matched by B, which is reverted now: A's revert takes all six.
    shown = run("revert", first["job_id"], "--yes")
    assert shown.returncode == 0, shown.stderr
    assert "reverted" in shown.stdout and "deleted              6" in shown.stdout

    again = run("revert", first["job_id"], "--yes", "--json")
    assert again.returncode == 2
    assert "cannot revert: this import was already reverted" in again.stderr


def test_cancel_stops_a_ready_job_and_refuses_a_finished_one(run, tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    write_sample_csv(csv, 50, seed=3)
    assert run("import", str(csv)).returncode == 1  # no terminal: parsed, left ready
    ready = json.loads(run("jobs", "--json").stdout)[0]
    assert ready["status"] == "ready"
    cancelled = run("cancel", ready["job_id"], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    refused = run("cancel", ready["job_id"], "--yes")
    assert refused.returncode == 2
    assert "cannot go from cancelled to cancelled" in refused.stderr
    unknown = run("cancel", "not-a-job")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "error: no import job has the id 'not-a-job'")
