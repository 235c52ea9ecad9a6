"""Fixing rows in review over real HTTP on the local stack (PATCH /api/jobs/<id>/rows/<n>):
counts, codes and in-file duplicates move with each fix; exclusion; fixes survive a mapping
change; the commit and the error report use the fixed values; who may fix what, when.

After every fix, `consistent` recomputes from the staged rows what the job's counters say
and what the duplicate marking must be (each key's lowest row is its first occurrence, the
others point at it), and compares."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections import Counter
from typing import Any

import pytest

from lib.local.stack import LOCAL_MEMBERS
from tests.helpers import (
    LEAD_HEADER,
    Api,
    add_other_org,
    edge_case_file,
    finished,
    job,
    phone,
    storage,
    wait_for_status,
    write_csv,
)

pytestmark = pytest.mark.history

ROWS = [
    ["a@exemple.fr", phone(1), "ACME", "Paris"],  # 1: first of a@
    ["", "inconnu", "ACME", "Lyon"],  # 2: no contact (and a bad phone)
    ["b@exemple.fr", "", "Bâtiments", "Nantes"],  # 3: first of b@
    ["A@Exemple.fr", phone(4), "ACME", "Paris"],  # 4: repeats 1
    ["c@exemple.fr", "", "Cie", "Lille"],  # 5: first of c@
    ["pas-un-email", "", "Rien", "Metz"],  # 6: no contact (and a bad email)
    ["a@exemple.fr", "", "ACME", "Brest"],  # 7: repeats 1
    ["d@exemple.fr", phone(8), "Dupont", "Caen"],  # 8: first of d@
]


@pytest.fixture
def api(stack) -> Api:
    return Api(stack)


@pytest.fixture
def ready(api, conn, tmp_path) -> dict[str, Any]:
    row = api.parse(conn, write_csv(tmp_path / "leads.csv", LEAD_HEADER, ROWS).read_bytes(), "leads.csv")
    assert (row["total_rows"], row["valid_rows"], row["invalid_rows"], row["duplicate_rows"]) == (8, 6, 2, 2)
    assert dups(conn, row["id"]) == {4: 1, 7: 1}
    return consistent(conn, row["id"])


def patch(api: Api, job_id: Any, row_no: Any, body: Any) -> tuple[int, Any]:
    return api.call("PATCH", f"/api/jobs/{job_id}/rows/{row_no}", body)


def fix(api: Api, conn, job_id: Any, row_no: int, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = patch(api, job_id, row_no, body)
    assert status == 200, reply
    assert reply["row"]["row_no"] == row_no
    counts = consistent(conn, job_id)
    for k in ("valid_rows", "invalid_rows", "duplicate_rows", "error_counts", "warning_counts", "fixed_rows"):
        assert reply["job"][k] == counts[k], k
    return reply


def dups(conn, job_id: Any) -> dict[int, int]:
    rows = conn.execute(
        "select row_no, duplicate_of from staged_rows where job_id = %s and duplicate_of is not null", (job_id,)
    )
    return {r["row_no"]: r["duplicate_of"] for r in rows}


def consistent(conn, job_id: Any) -> dict[str, Any]:
    """The job's counters equal what its staged rows and fixes hold, and the duplicate
    marking is the one a parse of the fixed file gives. The job's row."""
    row = job(conn, job_id)
    staged = conn.execute(
        "select row_no, valid, match_key, duplicate_of, errors, warnings from staged_rows where job_id = %s"
        " order by row_no",
        (job_id,),
    ).fetchall()
    firsts: dict[str, int] = {}
    for s in staged:
        assert (s["match_key"] is not None) == s["valid"], s
        expected = None
        if s["match_key"]:
            first = firsts.setdefault(s["match_key"], s["row_no"])
            expected = first if first != s["row_no"] else None
        assert s["duplicate_of"] == expected, s
    fixes = conn.execute(
        "select count(*) filter (where cells <> '{}' or extra_cells is not null) as fixed,"
        " count(*) filter (where excluded) as excluded from staged_row_fixes where job_id = %s",
        (job_id,),
    ).fetchone()
    assert row["total_rows"] == len(staged)
    assert row["valid_rows"] == sum(s["valid"] for s in staged)
    assert row["invalid_rows"] == row["total_rows"] - row["valid_rows"]
    assert row["duplicate_rows"] == sum(s["duplicate_of"] is not None for s in staged)
    assert row["error_counts"] == dict(Counter(c for s in staged for c in s["errors"]))
    assert row["warning_counts"] == dict(Counter(c for s in staged for c in s["warnings"]))
    assert (row["fixed_rows"], row["excluded_rows"]) == (fixes["fixed"], fixes["excluded"])
    return row


def test_a_fix_that_makes_an_invalid_row_valid_is_committed_with_its_values(api, conn, ready) -> None:
    job_id = ready["id"]
    reply = fix(api, conn, job_id, 2, {"cells": {"E-mail": " E@Exemple.fr ", "Téléphone": phone(2)}})
    row = reply["row"]
    assert row["valid"] and row["reasons"] == [] and row["warnings"] == []
    assert row["values"] == {"E-mail": " E@Exemple.fr ", "Téléphone": phone(2), "Société": "ACME", "Ville": "Lyon"}
    assert row["fix"]["original"]["values"] == dict(zip(LEAD_HEADER, ROWS[1], strict=True))
    assert row["fix"]["cells"] == {"E-mail": " E@Exemple.fr ", "Téléphone": phone(2)}
    assert row["fix"]["fixed_by"] == str(LOCAL_MEMBERS[0][0]) and row["fix"]["fixed_at"]
    counts = reply["job"]
    assert (counts["valid_rows"], counts["invalid_rows"], counts["duplicate_rows"]) == (7, 1, 2)
    assert counts["error_counts"] == {"no_contact": 1, "invalid_email": 1}
    assert counts["fixed_rows"] == 1

    # The job history shows it; the commit imports the fixed values.
    status, history = api.call("GET", "/api/jobs")
    assert status == 200
    assert {j["id"]: (j["fixed_rows"], j["excluded_rows"]) for j in history["jobs"]}[str(job_id)] == (1, 0)
    done = api.commit(conn, job_id)
    assert (done["inserted_rows"], done["skipped_rows"], done["valid_rows"]) == (5, 2, 7)
    lead = conn.execute(
        "select l.email, l.phone, l.city from staged_outcomes o join leads l on l.id = o.lead_id"
        " where o.job_id = %s and o.row_no = 2 and o.outcome = 'inserted'",
        (job_id,),
    ).fetchone()
    assert lead == {"email": "e@exemple.fr", "phone": "+33612000002", "city": "Lyon"}


def test_a_fix_that_leaves_the_row_invalid_gives_its_new_reasons(api, conn, ready) -> None:
    reply = fix(api, conn, ready["id"], 6, {"cells": {"E-mail": "toujours@faux", "Téléphone": "12"}})
    row = reply["row"]
    assert not row["valid"]
    assert [r["code"] for r in row["reasons"]] == ["no_contact", "invalid_email", "invalid_phone"]
    messages = " ".join(r["message"] for r in row["reasons"])
    assert "toujours@faux" in messages and "“12”" in messages
    assert reply["job"]["error_counts"] == {"no_contact": 2, "invalid_email": 1, "invalid_phone": 2}
    assert (reply["job"]["valid_rows"], reply["job"]["invalid_rows"]) == (6, 2)
    with api.client() as client:
        page = client.get(f"/api/jobs/{ready['id']}/invalid-rows").json()["rows"]
    assert {r["row_no"]: r["values"]["E-mail"] for r in page} == {2: "", 6: "toujours@faux"}


def test_a_malformed_row_fixed_by_its_extra_cells(api, conn, tmp_path) -> None:
    rows = [["m@exemple.fr", "", "ACME", "Paris", "en trop"], ["n@exemple.fr", "", "ACME", "Lyon"]]
    ready = api.parse(conn, write_csv(tmp_path / "long.csv", LEAD_HEADER, rows).read_bytes(), "long.csv")
    assert ready["error_counts"] == {"malformed_row": 1}
    reply = fix(api, conn, ready["id"], 1, {"extra_cells": []})
    assert (reply["row"]["valid"], reply["row"]["extra_cells"], reply["row"]["fix"]["extra_cells"]) == (True, [], [])
    assert reply["row"]["fix"]["original"]["extra_cells"] == ["en trop"]
    assert (reply["job"]["valid_rows"], reply["job"]["error_counts"], reply["job"]["fixed_rows"]) == (2, {}, 1)
    reply = fix(api, conn, ready["id"], 1, {"extra_cells": None})  # back to the cells as read
    assert reply["row"]["fix"] is None and reply["job"]["error_counts"] == {"malformed_row": 1}


def test_a_fix_that_makes_a_row_repeat_an_earlier_one(api, conn, ready) -> None:
    reply = fix(api, conn, ready["id"], 8, {"cells": {"E-mail": "B@exemple.fr"}})
    assert reply["row"]["duplicate_of"] == 3
    assert reply["job"]["duplicate_rows"] == 3
    assert dups(conn, ready["id"]) == {4: 1, 7: 1, 8: 3}
    # An invalid row made valid with a repeated key is a duplicate too.
    reply = fix(api, conn, ready["id"], 2, {"cells": {"Téléphone": phone(1), "E-mail": "d@exemple.fr"}})
    assert reply["row"]["duplicate_of"] is None  # row 8 no longer holds d@: row 2 is its first
    reply = fix(api, conn, ready["id"], 6, {"cells": {"E-mail": "c@exemple.fr"}})
    assert reply["row"]["duplicate_of"] == 5
    assert dups(conn, ready["id"]) == {4: 1, 7: 1, 8: 3, 6: 5}


def test_a_fix_of_the_first_row_of_a_group_moves_the_later_rows(api, conn, ready) -> None:
    job_id = ready["id"]
    before = staged_rows(conn, job_id)
    # Row 1 leaves the a@ group: row 4 becomes its first, row 7 repeats row 4.
    reply = fix(api, conn, job_id, 1, {"cells": {"E-mail": "z@exemple.fr"}})
    assert reply["job"]["duplicate_rows"] == 1
    assert dups(conn, job_id) == {7: 4}
    # Row 3 takes c@: it becomes the first occurrence that row 5 now repeats.
    reply = fix(api, conn, job_id, 3, {"cells": {"E-mail": "c@exemple.fr"}})
    assert reply["job"]["duplicate_rows"] == 2
    assert dups(conn, job_id) == {7: 4, 5: 3}
    # Row 1 back to its own cells: the fix goes, and the groups are as parsed.
    reply = fix(api, conn, job_id, 1, {"cells": {"E-mail": "a@exemple.fr"}})
    assert reply["row"]["fix"] is None
    assert dups(conn, job_id) == {4: 1, 7: 1, 5: 3}
    fix(api, conn, job_id, 3, {"cells": {"E-mail": "b@exemple.fr"}})
    assert staged_rows(conn, job_id) == before
    assert consistent(conn, job_id)["fixed_rows"] == 0


def test_exclude_a_row_then_include_it_again(api, conn, ready) -> None:
    job_id = ready["id"]
    before, counts = staged_rows(conn, job_id), ready
    reply = fix(api, conn, job_id, 1, {"excluded": True})
    row = reply["row"]
    assert (row["valid"], row["excluded"]) == (False, True)
    assert [r["code"] for r in row["reasons"]] == ["excluded"]
    # A valid row keeps no cells when parsed: the fix read them back from the file.
    assert row["values"] == row["fix"]["original"]["values"] == dict(zip(LEAD_HEADER, ROWS[0], strict=True))
    new = reply["job"]
    assert (new["valid_rows"], new["invalid_rows"], new["excluded_rows"]) == (5, 3, 1)
    assert new["valid_rows"] + new["invalid_rows"] == new["total_rows"]
    assert new["error_counts"] == {**ready["error_counts"], "excluded": 1}
    assert dups(conn, job_id) == {7: 4}
    # An invalid row can be excluded too; its own codes give way to `excluded`.
    reply = fix(api, conn, job_id, 2, {"excluded": True})
    assert reply["job"]["error_counts"] == {"no_contact": 1, "invalid_email": 1, "excluded": 2}

    fix(api, conn, job_id, 1, {"excluded": False})
    reply = fix(api, conn, job_id, 2, {"excluded": False})
    assert reply["row"]["fix"] is None
    assert staged_rows(conn, job_id) == before
    after = consistent(conn, job_id)
    assert {k: after[k] for k in COUNTS} == {k: counts[k] for k in COUNTS}
    done = api.commit(conn, job_id)
    assert (done["inserted_rows"], done["skipped_rows"]) == (4, 2)


def test_fixes_survive_a_mapping_change(api, conn, ready) -> None:
    job_id = ready["id"]
    fix(api, conn, job_id, 2, {"cells": {"E-mail": "e@exemple.fr"}})
    fix(api, conn, job_id, 8, {"cells": {"E-mail": "b@exemple.fr"}})
    fix(api, conn, job_id, 5, {"excluded": True})
    fixed = staged_rows(conn, job_id)
    # The city becomes a custom field: the file is parsed again, the fixes applied again.
    status, reply = api.call(
        "PUT", f"/api/jobs/{job_id}/mapping", {"mapping": {"E-mail": "email", "Téléphone": "phone", "Ville": None}}
    )
    assert status == 202, reply
    assert finished(conn, job_id, "ready")["run"] == ready["run"] + 1
    after = consistent(conn, job_id)
    assert (after["fixed_rows"], after["excluded_rows"], after["dropped_fixes"]) == (2, 1, 0)
    reparsed = staged_rows(conn, job_id)
    assert [r["custom"] for r in reparsed][:2] == [
        {"Société": "ACME", "Ville": "Paris"},
        {"Société": "ACME", "Ville": "Lyon"},
    ]
    assert [without(r, "fields", "custom") for r in reparsed] == [without(r, "fields", "custom") for r in fixed]
    assert reparsed[1]["fields"] == {"email": "e@exemple.fr", "phone": "inconnu"}
    # The next fix builds on the re-applied one.
    reply = fix(api, conn, job_id, 2, {"cells": {"Téléphone": phone(2)}})
    assert reply["row"]["fix"]["cells"] == {"E-mail": "e@exemple.fr", "Téléphone": phone(2)}
    assert reply["row"]["warnings"] == []


def test_a_change_of_file_drops_the_fixes_and_says_so(api, conn, ready) -> None:
    """The hook a change of sheet (or file) calls: lib.row_fixes.drop_fixes."""
    from lib import row_fixes

    fix(api, conn, ready["id"], 2, {"cells": {"E-mail": "e@exemple.fr"}})
    fix(api, conn, ready["id"], 5, {"excluded": True})
    with conn.transaction():
        assert row_fixes.drop_fixes(conn, ready["id"]) == 2
    shown = api.call("GET", f"/api/jobs/{ready['id']}")[1]["job"]
    assert (shown["dropped_fixes"], shown["fixed_rows"], shown["excluded_rows"]) == (2, 0, 0)


def test_a_fix_needs_a_ready_job(api, conn, ready, tmp_path) -> None:
    pending = api.create(conn, b"E-mail\na@b.fr\n")
    status, reply = patch(api, pending, 1, {"excluded": True})
    assert (status, reply["error"]) == (409, "IllegalTransition")
    assert "ready" in reply["message"]
    api.commit(conn, ready["id"])
    before = staged_rows(conn, ready["id"])
    status, reply = patch(api, ready["id"], 2, {"cells": {"E-mail": "e@exemple.fr"}})
    assert (status, reply["error"]) == (409, "IllegalTransition")
    assert staged_rows(conn, ready["id"]) == before
    assert conn.execute("select count(*) from staged_row_fixes").fetchone()["count"] == 0


def test_bad_requests_change_nothing(api, conn, ready) -> None:
    job_id = ready["id"]
    before = staged_rows(conn, job_id)
    cases = [
        ({}, 400), ([], 400), ({"cells": {"Courriel": "x@y.fr"}}, 400), ({"cells": {"E-mail": 3}}, 400),
        ({"cells": "x"}, 400), ({"excluded": "true"}, 400), ({"extra_cells": "x"}, 400), ({"other": 1}, 400),
        ({"cells": {"E-mail": "a\x00@b.fr"}}, 400), ({"extra_cells": ["\x00"]}, 400),
    ]  # fmt: skip
    for body, expected in cases:
        status, reply = patch(api, job_id, 2, body)
        assert status == expected, (body, reply)
        assert reply["error"] and reply["message"]
    for row_no in ("0", "9", "x", "-1", "99999999999"):
        status, reply = patch(api, job_id, row_no, {"excluded": True})
        assert (status, reply["error"]) == (404, "RowNotFound"), row_no
    assert staged_rows(conn, job_id) == before
    assert consistent(conn, job_id)["fixed_rows"] == 0


def test_another_organizations_job_is_404(api, conn, ready, stack) -> None:
    _org, user = add_other_org(conn)
    outsider = Api(stack, user)
    before = staged_rows(conn, ready["id"])
    for method in ("PATCH", "GET"):
        status, reply = outsider.call(method, f"/api/jobs/{ready['id']}/rows/2", {"excluded": True})
        assert (status, reply["error"]) == (404, "JobNotFound"), method
    assert staged_rows(conn, ready["id"]) == before


def test_two_concurrent_fixes_of_one_row(api, conn, ready) -> None:
    job_id = ready["id"]
    bodies = [{"cells": {"E-mail": "b@exemple.fr"}}, {"cells": {"E-mail": "", "Téléphone": "nul"}}]
    for _ in range(3):
        replies = at_once(lambda body: patch(api, job_id, 8, body), bodies)
        assert [s for s, _ in replies] == [200, 200], replies
        final = consistent(conn, job_id)
        shown = api.call("GET", f"/api/jobs/{job_id}/rows/8")[1]["row"]
        # Each answer is a state the row was in; the row ends in one of them, the counts in its.
        assert shown in [r["row"] for _, r in replies]
        last = next(r for _, r in replies if r["row"] == shown)
        counts = ("valid_rows", "invalid_rows", "duplicate_rows", "error_counts", "warning_counts")
        assert {k: last["job"][k] for k in counts} == {k: final[k] for k in counts}
        for _, r in replies:
            assert r["job"]["valid_rows"] + r["job"]["invalid_rows"] == 8
        bodies.reverse()


def test_a_fix_waits_for_the_jobs_lock(api, conn, ready, database_url) -> None:
    """A fix takes the job's row lock, the one slices and status changes hold: while another
    transaction holds it, the fix changes nothing; once released, it goes through."""
    import psycopg

    job_id = ready["id"]
    before = staged_rows(conn, job_id)
    with psycopg.connect(database_url, autocommit=True) as other:
        with other.transaction():
            other.execute("select 1 from import_jobs where id = %s for update", (job_id,))
            replies: list[Any] = []
            sender = threading.Thread(target=lambda: replies.append(patch(api, job_id, 2, {"excluded": True})))
            sender.start()
            sender.join(1.0)
            assert sender.is_alive() and not replies
            assert staged_rows(conn, job_id) == before
        sender.join(30)
    assert replies[0][0] == 200
    assert consistent(conn, job_id)["excluded_rows"] == 1


def test_the_error_report_after_fixes(api, conn, ready) -> None:
    job_id = ready["id"]
    fix(api, conn, job_id, 2, {"cells": {"E-mail": "e@exemple.fr"}})  # valid now: not reported
    fix(api, conn, job_id, 6, {"cells": {"E-mail": "encore-faux"}})  # still invalid: its new values
    fix(api, conn, job_id, 5, {"excluded": True})  # not imported: reported, with why
    with api.client() as client:
        body = client.get(f"/api/jobs/{job_id}/error-report.csv").content
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert table[0] == ["Row", *LEAD_HEADER, "Reasons"]
    assert [line[:5] for line in table[1:]] == [
        ["5", "c@exemple.fr", "", "Cie", "Lille"],
        ["6", "encore-faux", "", "Rien", "Metz"],
    ]
    assert "Excluded" in table[1][-1] and "“encore-faux”" in table[2][-1]
    assert len(table) - 1 == job(conn, job_id)["invalid_rows"]


def test_a_row_as_it_stands_and_the_offsets_of_a_hostile_file(api, conn, stack) -> None:
    """Every staged row's offset leads back to its record, whatever lies between records
    (blank lines, CR, LF or CRLF, quoted line breaks, cp1252): the cells read back there
    are the ones parsed."""
    from lib import row_fixes

    data, _ = edge_case_file(60)
    row = api.parse(conn, data, "edge.csv")
    rows = conn.execute(
        "select row_no, raw, record_offset from staged_rows where job_id = %s order by row_no", (row["id"],)
    ).fetchall()
    kept = [r for r in rows if r["raw"] is not None]
    assert kept and len(kept) < len(rows)
    for r in kept:
        assert row_fixes.read_original(storage(stack), row, r["record_offset"], r["row_no"]) == r["raw"]
    status, reply = api.call("GET", f"/api/jobs/{row['id']}/rows/1")
    assert status == 200
    assert reply["row"]["values"]["Prénom"] == "Léa" and reply["row"]["valid"] and reply["row"]["fix"] is None


def at_once(call: Any, args: list[Any]) -> list[Any]:
    """call(arg) for each arg, from threads released together; the answers in order."""
    start = threading.Barrier(len(args))
    replies: list[Any] = [None] * len(args)

    def send(i: int) -> None:
        start.wait()
        replies[i] = call(args[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


COUNTS = (
    "valid_rows",
    "invalid_rows",
    "duplicate_rows",
    "error_counts",
    "warning_counts",
    "fixed_rows",
    "excluded_rows",
)


def staged_rows(conn, job_id: Any) -> list[dict[str, Any]]:
    return conn.execute(
        "select row_no, raw, fields, custom, email_normalized, phone_e164, match_key, errors, warnings, valid,"
        " duplicate_of from staged_rows where job_id = %s order by row_no",
        (job_id,),
    ).fetchall()


def without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


def test_members_and_public_config(api, stack, conn) -> None:
    from lib.local.stack import LOCAL_ORG

    status, reply = api.call("GET", f"/api/organizations/{LOCAL_ORG}/members")
    assert status == 200
    assert reply["members"] == [
        {"id": str(uid), "email": email, "display_name": email.split("@")[0], "role": role}
        for uid, email, role in LOCAL_MEMBERS
    ]
    for org in (uuid.uuid4(), "pas-un-id"):
        status, reply = api.call("GET", f"/api/organizations/{org}/members")
        assert (status, reply["error"]) == (404, "OrganizationNotFound")
    assert api.call("GET", f"/api/organizations/{LOCAL_ORG}/members", token=None)[0] == 401
    status, reply = api.call("GET", "/api/config", token=None)
    assert status == 200
    assert reply == {"supabase_url": None, "supabase_anon_key": None, "max_file_mb": 256, "default_region": "FR"}


def test_a_file_over_the_size_limit_is_refused_at_creation_and_at_validating(database_url, tmp_path, conn) -> None:
    from tests.helpers import make_stack

    big = b"E-mail;Nom\n" + b"".join(b"lead%d@exemple.fr;Nom\n" % i for i in range(60_000))
    assert len(big) > 1024 * 1024
    env = {"IMPORT_MAX_FILE_MB": "1", "SUPABASE_ANON_KEY": "anon-key"}
    with make_stack(database_url, tmp_path, **env) as stack:
        api = Api(stack)
        config = api.call("GET", "/api/config", token=None)[1]
        assert (config["max_file_mb"], config["supabase_anon_key"]) == (1, "anon-key")
        count = conn.execute("select count(*) from import_jobs").fetchone()["count"]
        status, reply = api.call("POST", "/api/jobs", {"file_name": "big.csv", "file_size": len(big)})
        assert (status, reply["error"]) == (400, "file_too_large")
        assert "1 MB" in reply["message"]
        for size in ("12", -1, True):
            assert api.call("POST", "/api/jobs", {"file_name": "big.csv", "file_size": size})[0] == 400
        assert conn.execute("select count(*) from import_jobs").fetchone()["count"] == count
        # The browser may say nothing, or the wrong size: validating checks the stored file.
        job_id = api.create(conn, big, "big.csv", file_size=1000)
        api.start(job_id)
        failed = wait_for_status(conn, job_id, {"failed", "ready"})
    assert failed["status"] == "failed"
    assert "1 MB" in failed["error_message"]


def test_public_settings_come_from_the_deployed_names() -> None:
    from lib.config import Settings

    deployed = Settings.from_env(
        {"NEXT_PUBLIC_SUPABASE_URL": "https://abc.supabase.co/", "NEXT_PUBLIC_SUPABASE_ANON_KEY": "anon"}
    )
    assert (deployed.supabase_url, deployed.supabase_anon_key, deployed.max_file_mb) == (
        "https://abc.supabase.co", "anon", 256,
    )  # fmt: skip
    assert Settings.from_env({"SUPABASE_ANON_KEY": "a", "NEXT_PUBLIC_SUPABASE_ANON_KEY": "b"}).supabase_anon_key == "a"
