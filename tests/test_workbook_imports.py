"""Workbooks through the whole service (real HTTP, QStash, Postgres): the same rows as a
workbook and as CSV give the same counts and the same stored leads; the sheet is chosen at
creation, while ready, and in the CLI; the job shows that it is reading the workbook; a
hostile workbook fails its job with a message saying what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib.parse.sample import HEADER, sample_rows, write_sample_csv
from lib.parse.sample_workbook import (
    SECOND_HEADER,
    SECOND_SHEET,
    second_sheet_rows,
    workbook_cells,
    write_sample_workbook,
)
from tests.helpers import Api, finished, job, make_stack, other_state, wait_until
from tests.workbooks import HOSTILE, hostile, write_ods, write_xls, write_xlsm, write_xlsx

ROWS, SEED = 200, 5
LEAD_COLUMNS = (
    "civility, first_name, last_name, email, phone, email_normalized, phone_e164, company, job_title, "
    "address, postal_code, city, country, source, notes, custom, owner_id"
)
COUNTS = (
    "total_rows",
    "valid_rows",
    "invalid_rows",
    "duplicate_rows",
    "inserted_rows",
    "error_counts",
    "warning_counts",
)


def leads(conn: psycopg.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"select {LEAD_COLUMNS} from leads where import_job_id = %s order by email_normalized, phone_e164, notes",  # noqa: S608
        (job_id,),
    ).fetchall()
    for row in rows:
        # A cell's line break is "\n" (Alt+Enter); the generated CSV spells some "\r\n".
        row["notes"] = row["notes"] and row["notes"].replace("\r\n", "\n")
    return rows


def sample_sheets() -> dict[str, list[Any]]:
    """The sample workbook's sheets (lib/parse/sample_workbook.py), for the other writers."""
    rows = [workbook_cells(r, i) for i, r in enumerate(sample_rows(ROWS, SEED))]
    return {"Leads": [HEADER, *rows], SECOND_SHEET: [SECOND_HEADER, *second_sheet_rows()]}


def test_the_same_rows_as_a_workbook_give_the_same_counts_and_leads_as_csv(stack, conn, tmp_path: Path) -> None:
    api = Api(stack)
    stats = write_sample_csv(tmp_path / "leads.csv", ROWS, seed=SEED)
    assert write_sample_workbook(tmp_path / "leads.xlsx", ROWS, seed=SEED) == stats
    write_ods(tmp_path / "leads.ods", sample_sheets())
    write_xlsm(tmp_path / "leads.xlsm", sample_sheets())
    write_xls(tmp_path / "leads.xls", sample_sheets())

    baseline = api.import_file(conn, tmp_path / "leads.csv")
    assert (baseline["total_rows"], baseline["duplicate_rows"]) == (stats.rows, stats.duplicates)
    expected = leads(conn, baseline["id"])
    assert len(expected) == baseline["inserted_rows"] > 0
    api.revert(conn, baseline["id"])
    for name, kind in (("leads.xlsx", "xlsx"), ("leads.ods", "ods"), ("leads.xlsm", "xlsm"), ("leads.xls", "xls")):
        done = api.import_file(conn, tmp_path / name)
        assert {k: done[k] for k in COUNTS} == {k: baseline[k] for k in COUNTS}, name
        assert leads(conn, done["id"]) == expected, name
        workbook = done["workbook"]
        assert workbook["type"] == kind and workbook["name"] == name and workbook["sheet"] == "Leads"
        assert workbook["sheets"] == [{"name": "Leads", "rows": ROWS}, {"name": SECOND_SHEET, "rows": 5}]
        assert workbook["size"] == (tmp_path / name).stat().st_size and len(workbook["sha256"]) == 64
        assert workbook["csv_path"] == done["storage_path"] + ".sheet.csv" and done["delimiter"] == ";"
        api.revert(conn, done["id"])


def test_a_sheet_chosen_at_creation_and_another_while_ready(stack, conn, tmp_path: Path) -> None:
    api = Api(stack)
    path = tmp_path / "leads.xlsx"
    write_sample_workbook(path, 30, seed=SEED)
    job_id = api.create(conn, path, sheet=SECOND_SHEET)
    api.start(job_id)
    ready = finished(conn, job_id, "ready")
    assert (ready["total_rows"], ready["workbook"]["sheet"]) == (5, SECOND_SHEET)
    assert ready["header"] == list(SECOND_HEADER)
    row = conn.execute("select fields, custom from staged_rows where job_id = %s and row_no = 1", (job_id,)).fetchone()
    assert row["fields"]["phone"] == "+33612000000"  # saved as the number 612000000
    assert row["custom"] == {"Rencontré le": "2024-03-01"}

    # A row fixed in review (its cells read back from the CSV the sheet became), then
    # another sheet: the fix belonged to this sheet's rows and goes, and the job says so.
    status, reply = api.call("PATCH", f"/api/jobs/{job_id}/rows/1", {"excluded": True})
    assert status == 200 and reply["row"]["fix"]["original"]["values"][SECOND_HEADER[1]], reply
    status, reply = api.call("PUT", f"/api/jobs/{job_id}/sheet", {"sheet": "Leads"})
    assert status == 202, reply
    assert reply["job"]["status"] == "validating" and "fixes" in reply["notice"] and "dropped" in reply["notice"]
    ready = finished(conn, job_id, "ready")
    assert (ready["total_rows"], ready["workbook"]["sheet"], ready["header"]) == (30, "Leads", list(HEADER))
    assert (ready["dropped_fixes"], ready["excluded_rows"], ready["fixed_rows"]) == (1, 0, 0)
    fixes = conn.execute("select count(*) from staged_row_fixes where job_id = %s", (job_id,)).fetchone()["count"]
    assert fixes == 0
    assert conn.execute("select count(*) from staged_rows where job_id = %s", (job_id,)).fetchone()["count"] == 30

    status, reply = api.call("PUT", f"/api/jobs/{job_id}/sheet", {"sheet": "Feuil9"})
    assert status == 400 and "Feuil9" in reply["message"] and "Leads" in reply["message"], reply
    status, reply = api.call("PUT", f"/api/jobs/{job_id}/sheet", {"sheet": 3})
    assert status == 400, reply
    unknown = api.create(conn, path, sheet="Feuil9")
    api.start(unknown)
    message = finished(conn, unknown, "failed")["error_message"]
    assert "no sheet named 'Feuil9'" in message and "Leads, Salon" in message, message
    csv_job = api.parse(conn, tmp_path.joinpath("x.csv").write_text("E-mail\na@b.fr\n") and tmp_path / "x.csv")
    status, reply = api.call("PUT", f"/api/jobs/{csv_job['id']}/sheet", {"sheet": "Leads"})
    assert status == 409 and "CSV" in reply["message"], reply


def test_the_job_shows_it_is_reading_the_workbook_under_a_lease_that_covers_it(
    conn, database_url, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "leads.xlsx", {"Leads": [["E-mail"], ["a@exemple.fr"]]})
    # Each delivery waits 1.5 s: the job stays between its two validating slices long enough to be seen.
    with make_stack(database_url, tmp_path, LOCAL_QSTASH_FAULTS="delay_ms=1500-1500") as stack:
        api = Api(stack)
        job_id = api.create(conn, path)
        api.start(job_id)

        def reading() -> dict[str, Any] | None:
            _status, reply = api.call("GET", f"/api/jobs/{job_id}")
            return reply["job"] if reply["job"]["activity"] == "reading the workbook" else None

        seen = wait_until(reading, what="the reading state")
        assert seen["status"] == "validating" and seen["workbook"]["state"] == "reading"
        assert (
            job(conn, job_id)["lease_seconds"]
            >= stack.settings.workbook_lease_seconds
            > stack.settings.workbook_seconds
        )
        ready = finished(conn, job_id, "ready")
        assert ready["workbook"]["state"] == "converted" and ready["total_rows"] == 1
        _status, reply = api.call("GET", f"/api/jobs/{job_id}")
        assert reply["job"]["activity"] is None


# Every message is checked quickly in tests/test_workbook_cells.py; through the whole
# service, two run by default (the child's abort among them) and the others in the slow run.
THROUGH_THE_SERVICE = [
    name if name in ("encrypted", "stray_far_value") else pytest.param(name, marks=pytest.mark.slow) for name in HOSTILE
]


@pytest.mark.parametrize("name", THROUGH_THE_SERVICE)
def test_a_hostile_workbook_fails_its_job_with_what_to_do(stack, conn, tmp_path: Path, name: str) -> None:
    api = Api(stack)
    job_id = api.create(conn, hostile(tmp_path, name))
    before = other_state(conn, job_id)
    api.start(job_id)
    failed = finished(conn, job_id, "failed")
    for word in HOSTILE[name]:
        assert word in failed["error_message"], failed["error_message"]
    stack.wait_idle()
    assert other_state(conn, job_id) == before
    # A retry reads the workbook again (validating), and fails the same way.
    status, reply = api.retry(job_id)
    assert status == 202 and reply["job"]["status"] == "validating", reply
    assert finished(conn, job_id, "failed")["error_message"] == failed["error_message"]


def test_cli_sample_workbook_and_import_of_a_chosen_sheet(database_url: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url, "LOCAL_DATA_DIR": str(tmp_path / "local")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(
            [sys.executable, "-m", "lib", *args], env=env, cwd=root, capture_output=True, text=True, timeout=120
        )

    path = tmp_path / "LEADCLIENT.xlsx"
    made = run("sample", str(path), "--rows", "40")
    assert made.returncode == 0, made.stderr
    out = run("import", str(path), "--sheet", SECOND_SHEET, "--yes", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["status"], result["total_rows"], result["inserted_rows"]) == ("completed", 5, 5)
    assert result["workbook"]["sheet"] == SECOND_SHEET
    assert result["workbook"]["sheets"] == [{"name": "Leads", "rows": 40}, {"name": SECOND_SHEET, "rows": 5}]
