"""Real files through the whole local stack: create a job over HTTP, upload, start, and let
QStash drive the validating and parse slices over HTTP until the job is ready.

The key property: however a file is cut into slices (a row cap of 1, 7 or 1000, or a time
budget so small that every slice stops after its first row), the staged rows and the counts
are identical.
"""

from __future__ import annotations

import time

import pytest

from lib.parse.sample import write_sample_csv
from tests.helpers import (
    BIG,
    HEADER_FR,
    Api,
    assert_matches,
    edge_case_file,
    make_stack,
    parse_counts,
    staged,
)

# -- files through the stack ----------------------------------------------------------------


@pytest.mark.history
def test_excel_cp1252_semicolon_french_headers_and_edge_cases(stack, conn) -> None:
    data, exp = edge_case_file(60, big_row=20)
    job = Api(stack).parse(conn, data, "LEADCLIENT.csv")
    assert (job["encoding"], job["delimiter"]) == ("cp1252", ";")
    assert job["header"] == HEADER_FR.split(";")
    assert job["mapping"] == ["civility", "first_name", "last_name", "email", "phone", "company", "notes"]
    assert job["file_size"] == len(data)
    assert_matches(job, exp)
    assert job["estimated_total_rows"] == exp.rows

    rows = {r["row_no"]: r for r in staged(conn, job["id"])}
    assert sorted(rows) == list(range(1, exp.rows + 1))  # blank lines are not rows
    first = rows[1]
    assert first["fields"] == {
        "civility": "M.", "first_name": "Léa", "last_name": "Martin", "email": "lea.martin0@exemple.fr",
        "phone": "+33612000000", "company": "Bœuf & Cie", "notes": "Client fidèle — 1 200 €",
    }  # fmt: skip
    assert first["match_key"] == "lea.martin0@exemple.fr"
    nbsp = rows[2]
    assert nbsp["fields"]["first_name"] == "Zoé"  # "\xa0Zoé\xa0", trimmed
    assert nbsp["raw"] is None  # the cells as read are kept for rows with a code only
    assert nbsp["fields"]["company"] == "Martin; Associés"
    quoted = rows[3]
    assert quoted["fields"]["company"] == 'Le "Petit" Café'
    assert quoted["fields"]["notes"] == "Rappeler\r\nen août;\nvite"
    short = rows[4]
    assert short["valid"] and "company" not in short["fields"]  # 5 cells of 7: padded
    assert rows[5]["errors"] == ["malformed_row"] and not rows[5]["valid"]
    assert rows[6]["valid"] and rows[6]["errors"] == []
    assert rows[7]["errors"] == ["no_contact", "invalid_email", "invalid_phone"]
    assert rows[8]["warnings"] == ["invalid_email"] and rows[8]["email_normalized"] is None
    assert rows[8]["fields"]["email"] == "jean.dupont@"  # kept raw
    assert rows[9]["duplicate_of"] == 1
    assert rows[10]["match_key"] == "+33612090000"  # phone only, after a blank line, CR-ended
    assert len(rows[21]["fields"]["notes"]) == BIG
    assert rows[exp.rows]["fields"]["last_name"] == "Mobile"  # the last line, with no newline


def test_utf8_with_bom(stack, conn) -> None:
    text = "E-mail,Prénom,Nom\r\nhelene@exemple.fr,Hélène,Lefèvre\r\nzoe@exemple.fr,Zoé,Noël\r\n"
    job = Api(stack).parse(conn, b"\xef\xbb\xbf" + text.encode())
    assert job["encoding"].replace("_", "-").lower() in ("utf-8", "utf8")
    assert job["header"] == ["E-mail", "Prénom", "Nom"]  # no BOM glued to the first header
    assert job["mapping"] == ["email", "first_name", "last_name"]
    rows = staged(conn, job["id"])
    assert [r["fields"] for r in rows] == [
        {"email": "helene@exemple.fr", "first_name": "Hélène", "last_name": "Lefèvre"},
        {"email": "zoe@exemple.fr", "first_name": "Zoé", "last_name": "Noël"},
    ]
    assert (job["valid_rows"], job["invalid_rows"]) == (2, 0)


def test_crlf_lf_and_mixed_line_ends_stage_the_same_rows(stack, conn) -> None:
    lines = ["Email;Phone;Name"] + [f"p{i}@exemple.fr;06 12 34 56 {i:02d};Nom {i}" for i in range(12)]
    variants = {
        "crlf": "\r\n".join(lines) + "\r\n",
        "lf": "\n".join(lines) + "\n",
        "cr": "\r".join(lines) + "\r",
        "mixed": "".join(line + ("\r\n", "\n", "\r")[i % 3] for i, line in enumerate(lines)),
        "no_final_newline": "\n".join(lines),
    }
    results = {}
    for name, text in variants.items():
        job = Api(stack).parse(conn, text.encode(), f"{name}.csv")
        results[name] = (parse_counts(job), staged(conn, job["id"]))
    reference = results["crlf"]
    assert reference[0]["total_rows"] == 12 and reference[0]["valid_rows"] == 12
    for name, result in results.items():
        assert result == reference, name


def test_same_file_twice_points_at_the_first_job(stack, conn) -> None:
    data, _ = edge_case_file(20)
    first = Api(stack).parse(conn, data, "a.csv")
    assert first["duplicate_of_job_id"] is None
    second = Api(stack).parse(conn, data, "b.csv")
    assert second["file_sha256"] == first["file_sha256"]
    assert second["duplicate_of_job_id"] == first["id"]
    with Api(stack).client() as client:
        shown = client.get(f"/api/jobs/{second['id']}").json()["job"]
    assert shown["duplicate_of_job_id"] == str(first["id"])
    other, _ = edge_case_file(21)
    assert Api(stack).parse(conn, other, "c.csv")["duplicate_of_job_id"] is None


def test_status_and_progress_over_http_while_parsing(database_url, tmp_path, conn) -> None:
    """GET /api/jobs/<id> shows the job move: rows done, and rows expected (estimated from
    the bytes read) while parsing. Deliveries are delayed so each state is seen."""
    data, exp = edge_case_file(40)
    env = {"IMPORT_PARSE_SLICE_ROWS": "4", "LOCAL_QSTASH_FAULTS": "delay_ms=40-60,seed=3"}
    seen = []
    with make_stack(database_url, tmp_path, **env) as s, Api(s).client() as client:
        api = Api(s)
        job_id = api.create(conn, data)
        api.start(job_id)
        while True:
            job = client.get(f"/api/jobs/{job_id}").json()["job"]
            seen.append(job)
            if job["status"] not in ("pending", "validating", "parsing"):
                break
            time.sleep(0.01)
    assert job["status"] == "ready"
    assert (job["rows_done"], job["rows_expected"]) == (exp.rows, exp.rows)
    parsing = [j for j in seen if j["status"] == "parsing" and j["rows_done"]]
    assert len({j["rows_done"] for j in parsing}) >= 3, "progress is visible slice by slice"
    done = [j["rows_done"] for j in seen]
    assert done == sorted(done)
    for j in parsing:
        assert j["rows_expected"] is not None
        assert exp.rows / 2 <= j["rows_expected"] <= exp.rows * 2


# -- the same file, cut into slices every which way ------------------------------------------

SLICINGS = {
    "default": {},
    "cap_1": {"IMPORT_PARSE_SLICE_ROWS": "1"},
    "cap_7": {"IMPORT_PARSE_SLICE_ROWS": "7"},
    "cap_1000": {"IMPORT_PARSE_SLICE_ROWS": "1000"},
    "one_row_per_slice_by_time": {"IMPORT_SLICE_SECONDS": "0"},
}


@pytest.mark.history
def test_slice_caps_and_time_budgets_stage_identical_rows(database_url, tmp_path, conn) -> None:
    data, exp = edge_case_file(60, big_row=33)
    results = {}
    for name, env in SLICINGS.items():
        with make_stack(database_url, tmp_path, **env) as s:
            job = Api(s).parse(conn, data, f"{name}.csv")
        results[name] = (job, staged(conn, job["id"]))
    reference_job, reference_rows = results["default"]
    assert_matches(reference_job, exp)
    assert len(reference_rows) == exp.rows
    for name, (job, rows) in results.items():
        assert parse_counts(job) == parse_counts(reference_job), name
        assert rows == reference_rows, name
    # The slicings did happen (validating is slice 0; a last slice finds the end of the file).
    slices = {name: job["slices_done"] for name, (job, _) in results.items()}
    assert slices["default"] == 2
    assert slices["cap_1"] == exp.rows + 2
    assert slices["cap_7"] == -(-exp.rows // 7) + 1 + (exp.rows % 7 == 0)
    assert slices["one_row_per_slice_by_time"] >= exp.rows + 1


@pytest.mark.slow
@pytest.mark.parametrize("env", [{}, {"IMPORT_PARSE_SLICE_ROWS": "30011"}], ids=["default_budget", "cap_30011"])
def test_lead_client_sized_sample_counts_match_the_generator(database_url, tmp_path, conn, env) -> None:
    """The 210,202-row Excel-style file (cp1252, `;`, French headers, multi-line comments)
    goes to ready on the local stack, with the production slice budget (and with a row cap),
    and its counts match the generator's own, row for row."""
    path = tmp_path / "LEADCLIENT.csv"
    stats = write_sample_csv(path, 210_202, seed=1)
    with make_stack(database_url, tmp_path, IMPORT_SLICE_SECONDS="1.5", **env) as s:
        job = Api(s).parse(conn, path.read_bytes(), path.name)
    assert (job["encoding"], job["delimiter"]) == ("cp1252", ";")
    assert job["total_rows"] == stats.rows == 210_202
    assert job["valid_rows"] == stats.valid
    assert job["invalid_rows"] == stats.invalid
    assert job["duplicate_rows"] == stats.duplicates
    assert job["error_counts"].get("no_contact") == stats.invalid
    assert "malformed_row" not in job["error_counts"]
    assert job["warning_counts"] == {
        "invalid_email": stats.invalid_email_warnings,
        "invalid_phone": stats.invalid_phone_warnings,
    }
    multiline = conn.execute(
        "select count(*) from staged_rows where job_id = %s and fields ->> 'notes' like %s",
        (job["id"], "%\n%"),
    ).fetchone()["count"]
    assert multiline == stats.multiline
    if env:
        assert job["slices_done"] >= 210_202 // 30011 + 1
