"""Hostile and broken files, uploaded as CSV through the frontend's API: each ends in a clear
job error (or a clear row error, for a file that is otherwise fine), with no crash, no lead
written by a failed import, and nothing else in the database touched."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib.local.stack import LocalStack
from tests.helpers import ROUND_ROBIN, Api, finished, job, make_stack, other_state, staged, storage, wait_until

GOOD = "E-mail;Téléphone;Nom;Prénom\r\n" + "".join(
    f"lead{i}@exemple.fr;06 12 34 56 {i:02d};Dupont;Zoé\r\n" for i in range(1, 6)
)


EARLIER = "E-mail;Téléphone\r\n".encode() + b"".join(
    f"ancien{i}@exemple.fr;07 81 00 00 {i:02d}\r\n".encode() for i in range(1, 4)
)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00\xff\x00\x00")  # one red pixel
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def xlsx() -> bytes:
    """A minimal workbook, as Excel would save it (with a sheet holding leads)."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    return zip_of(
        {
            "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/></Types>',
            "xl/workbook.xml": f'<workbook {ns} {rel}><sheets><sheet name="Leads" sheetId="1" r:id="rId1"/></sheets>'
            "</workbook>",
            "xl/worksheets/sheet1.xml": f'<worksheet {ns}><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>E-mail'
            '</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>a@b.fr</t></is></c></row></sheetData>'
            "</worksheet>",
        }
    )


# name -> (file bytes, words the job's error message must hold)
REJECTED: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "empty": (lambda: b"", ("empty", "Upload")),
    "blank_lines_only": (lambda: b"\r\n \r\n\t\r\n", ("blank lines", "Upload")),
    "header_only": (lambda: "E-mail;Téléphone;Nom\r\n".encode(), ("no data rows", "add the leads")),
    "png": (png, ("PNG image", "save it as CSV")),
    "zip": (lambda: zip_of({"leads.csv": GOOD}), ("ZIP archive", "save it as CSV")),
    # A workbook is read (tests/test_workbook_imports.py); one missing its parts is damaged.
    "xlsx_missing_parts": (xlsx, ("damaged or incomplete", "save it again")),
    "utf16_without_bom": (lambda: GOOD.encode("utf-16-le"), ("UTF-16", "CSV UTF-8")),
    "utf16be_without_bom": (lambda: GOOD.encode("utf-16-be"), ("UTF-16", "CSV UTF-8")),
    "one_50_mb_line": (lambda: b"x" * (50 << 20), ("does not end within", "quote")),
    "nul_bytes": (lambda: GOOD.encode().replace(b"Dupont", b"Dup\x00nt", 1), ("NUL bytes", "Save")),
    # NUL far after the head the validating step inspects: found by the whole-file scan.
    "nul_after_2_mb": (lambda: (GOOD * 30_000).encode()[: 2 << 20] + b"\x00\r\n", ("NUL bytes", "Save")),
    "no_contact_column": (lambda: b"Nom;Ville\r\nDupont;Paris\r\n", ("email or a phone", "Name the email column")),
    "sql_in_header_no_contact": (
        lambda: b'"\'); drop table leads; --";x\r\nDupont;Paris\r\n',
        ("email or a phone", "drop table leads"),
    ),
}
OVERSIZED = {
    # A valid header, then a line of 50 MB: one huge cell, or a quote opened and never closed.
    "50_mb_line_after_the_header": lambda: GOOD.encode() + b"y" * (50 << 20) + b"\r\n",
    "50_mb_quoted_record": lambda: GOOD.encode() + b'"' + b"y" * (50 << 20) + b"\r\n",
}
for _name, _build in OVERSIZED.items():
    # A line that ends is one big cell; a quote never closed is named as such.
    REJECTED[_name] = (_build, ("longer than", "quote" if "quoted" in _name else "over the 8 MB limit"))


@pytest.fixture
def hostile_stack(database_url: str, tmp_path: Path) -> Any:
    with make_stack(database_url, tmp_path, IMPORT_PARSE_SLICE_ROWS="2", IMPORT_COMMIT_SLICE_ROWS="2") as s:
        yield s


@pytest.fixture
def earlier_import(hostile_stack: LocalStack, conn: psycopg.Connection) -> str:
    """Another job of the organization, completed, with its leads: must never change."""
    return Api(hostile_stack).import_file(conn, EARLIER, "earlier.csv", **ROUND_ROBIN)["id"]


@pytest.mark.parametrize("name", list(REJECTED))
def test_a_rejected_file_fails_its_job_with_a_clear_message_and_touches_nothing(
    hostile_stack, conn, earlier_import, name: str
) -> None:
    data, words = REJECTED[name][0](), REJECTED[name][1]
    api = Api(hostile_stack)
    job_id = api.create(conn, data, "leads.csv")
    before = other_state(conn, job_id)
    api.start(job_id)
    failed = finished(conn, job_id, "failed")
    for word in words:
        assert word in failed["error_message"], failed["error_message"]
    status, reply = api.call("GET", f"/api/jobs/{job_id}")
    assert status == 200 and reply["job"]["error_message"] == failed["error_message"]
    assert failed["error_code"] and reply["job"]["error_code"] == failed["error_code"]
    hostile_stack.wait_idle()
    assert other_state(conn, job_id) == before
    assert conn.execute("select count(*) from leads where import_job_id = %s", (job_id,)).fetchone()["count"] == 0
    assert failed["inserted_rows"] == 0 and failed["phase"] == "parse"
    # Nothing a retry could fix: it fails the same way, with the same message.
    status, _ = api.retry(job_id)
    assert status == 202
    assert finished(conn, job_id, "failed")["error_message"] == failed["error_message"]


def commit_and_check(api: Api, conn: psycopg.Connection, job_id: str, before: dict[str, Any]) -> dict[str, Any]:
    """Commit a parsed hostile file: its valid rows become leads, nothing else changes."""
    done = api.commit(conn, job_id)
    api.stack.wait_idle()
    after = other_state(conn, job_id)
    new = [lead for lead in after["leads"] if str(lead["import_job_id"]) == job_id]
    assert len(new) == done["inserted_rows"] > 0
    assert [lead for lead in after["leads"] if lead not in new] == before["leads"]
    assert {k: v for k, v in after.items() if k != "leads"} == {k: v for k, v in before.items() if k != "leads"}
    return done


def parse(api: Api, conn: psycopg.Connection, data: bytes) -> tuple[str, dict[str, Any]]:
    job_id = api.create(conn, data, "leads.csv")
    before = other_state(conn, job_id)
    api.start(job_id)
    finished(conn, job_id, "ready")
    return job_id, before


def test_invalid_bytes_in_a_utf8_file_are_a_row_warning(hostile_stack, conn, earlier_import) -> None:
    text = "E-mail;Nom;Prénom\r\n" + "".join(f"l{i}@exemple.fr;Lefèvre;Hélène\r\n" for i in range(20))
    data = text.encode() + b"bad@exemple.fr;Caf\xe9 \xff;Zo\xc3\r\n" + "ok@exemple.fr;Noël;Loïc\r\n".encode()
    api = Api(hostile_stack)
    job_id, before = parse(api, conn, data)
    row = job(conn, job_id)
    assert (row["encoding"], row["total_rows"], row["valid_rows"]) == ("utf-8", 22, 22)
    assert row["warning_counts"] == {"undecodable_bytes": 1}
    rows = staged(conn, job_id)
    assert rows[20]["warnings"] == ["undecodable_bytes"] and "\ufffd" in rows[20]["fields"]["last_name"]
    assert rows[0]["fields"]["first_name"] == "Hélène" and rows[21]["fields"]["last_name"] == "Noël"
    commit_and_check(api, conn, job_id, before)


def test_ten_thousand_columns(hostile_stack, conn, earlier_import) -> None:
    header = ["E-mail", "Téléphone"] + [f"Colonne {i}" for i in range(9_998)]
    rows = [[f"l{r}@exemple.fr", f"06123456{r:02d}"] + [f"v{r}.{i}" for i in range(9_998)] for r in range(3)]
    data = "\r\n".join(";".join(cells) for cells in [header, *rows]).encode() + b"\r\n"
    api = Api(hostile_stack)
    job_id, before = parse(api, conn, data)
    assert len(job(conn, job_id)["header"]) == 10_000
    commit_and_check(api, conn, job_id, before)
    lead = conn.execute("select custom from leads where email_normalized = 'l2@exemple.fr'").fetchone()
    assert len(lead["custom"]) == 9_998 and lead["custom"]["Colonne 9997"] == "v2.9997"


def test_an_unterminated_quote_at_the_end_is_a_row_error(hostile_stack, conn, earlier_import) -> None:
    data = (GOOD + '"dernier@exemple.fr;06 12 34 56 99;Martin;Léa\r\n').encode()
    api = Api(hostile_stack)
    job_id, before = parse(api, conn, data)
    row = job(conn, job_id)
    assert (row["total_rows"], row["valid_rows"], row["invalid_rows"]) == (6, 5, 1)
    last = staged(conn, job_id)[-1]
    assert not last["valid"] and "no_contact" in last["errors"]
    # The whole rest of the file landed in one cell: the review shows it as it was read.
    assert last["raw"][0].startswith("dernier@exemple.fr;06 12 34 56 99")
    commit_and_check(api, conn, job_id, before)


FORMULAS = ('=HYPERLINK("http://evil.example","clic")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3+cmd|' /C calc'!A0")


def test_formula_cells_are_kept_as_text_and_a_formula_is_no_contact(hostile_stack, conn, earlier_import) -> None:
    lines = ["E-mail;Téléphone;Société;Commentaire"]
    for i, f in enumerate(FORMULAS):
        lines.append(f'f{i}@exemple.fr;06 12 34 56 7{i};"{f.replace(chr(34), chr(34) * 2)}";{f[:1]}1+1')
    lines.append('"=1+1";"=A1*2";Société;note')  # formulas where the contacts should be
    data = ("\r\n".join(lines) + "\r\n").encode()
    api = Api(hostile_stack)
    job_id, before = parse(api, conn, data)
    rows = staged(conn, job_id)
    assert [r["fields"]["company"] for r in rows[:4]] == list(FORMULAS)
    assert not rows[4]["valid"] and set(rows[4]["errors"]) == {"no_contact", "invalid_email", "invalid_phone"}
    commit_and_check(api, conn, job_id, before)
    companies = {r["company"] for r in conn.execute("select company from leads where import_job_id = %s", (job_id,))}
    assert companies == set(FORMULAS)  # stored as the text it was, never evaluated


SQL = "'); drop table leads; --"


def test_sql_in_values_and_headers_is_data(hostile_stack, conn, earlier_import) -> None:
    data = (
        f'E-mail;Nom;"{SQL}";"Robert\'); DROP TABLE staged_rows;--"\r\n'  # noqa: S608 (data, never SQL)
        f"sql@exemple.fr;\"{SQL}\";\"1; delete from import_jobs\";x' or '1'='1\r\n"
        f'"{SQL}";Dupont;a;b\r\n'
    ).encode()
    api = Api(hostile_stack)
    job_id, before = parse(api, conn, data)
    row = job(conn, job_id)
    assert row["header"] == ["E-mail", "Nom", SQL, "Robert'); DROP TABLE staged_rows;--"]
    assert (row["valid_rows"], row["invalid_rows"]) == (1, 1)
    commit_and_check(api, conn, job_id, before)
    lead = conn.execute("select * from leads where import_job_id = %s", (job_id,)).fetchone()
    assert lead["last_name"] == SQL
    assert lead["custom"] == {SQL: "1; delete from import_jobs", "Robert'); DROP TABLE staged_rows;--": "x' or '1'='1"}


def test_file_deleted_from_storage_mid_parse(database_url, tmp_path, conn) -> None:
    rows = "".join(f"l{i}@exemple.fr;06 12 34 {i // 100:02d} {i % 100:02d}\r\n" for i in range(40))
    with make_stack(
        database_url, tmp_path, IMPORT_PARSE_SLICE_ROWS="5", LOCAL_QSTASH_FAULTS="delay_ms=150-150"
    ) as stack:
        api = Api(stack)
        earlier = api.import_file(conn, EARLIER, "earlier.csv", **ROUND_ROBIN)["id"]
        job_id = api.create(conn, ("E-mail;Téléphone\r\n" + rows).encode())
        before = other_state(conn, job_id)
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["total_rows"] >= 5, what="the first parse slice")
        storage(stack).delete(job(conn, job_id)["storage_path"])
        failed = finished(conn, job_id, "failed")
        assert 5 <= failed["total_rows"] < 40
        assert "no longer in storage" in failed["error_message"] and "Upload it again" in failed["error_message"]
        assert failed["error_code"] == "file_missing"
        stack.wait_idle()
        assert other_state(conn, job_id) == before
        assert job(conn, earlier)["status"] == "completed"
        assert conn.execute("select count(*) from leads where import_job_id = %s", (job_id,)).fetchone()["count"] == 0
        # Its review still works on what was read; a commit is refused.
        status, reply = api.call("POST", f"/api/jobs/{job_id}/commit", {})
        assert status == 409, reply
