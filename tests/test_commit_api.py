"""The frontend's commit, revert and history endpoints over real HTTP: what they accept,
what they refuse (400, 401, 404, 409, each changing nothing), and whose jobs they see."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from lib.local.stack import LOCAL_MEMBERS
from tests.helpers import LEAD_HEADER, Api, finished, lead_rows, sweep, write_csv
from tests.helpers import job as job_row

OTHER_ORG = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
OUTSIDER = (uuid.UUID("00000000-0000-4000-8000-0000000000b1"), "olga@other.test", "owner")


@pytest.fixture
def api(stack: Any) -> Api:
    return Api(stack)


@pytest.fixture
def ready_job(api: Api, conn: Any, tmp_path: Path) -> str:
    header = [*LEAD_HEADER, "Commercial"]
    rows = [[*r, "lucas@local.test"] for r in lead_rows(range(1, 13))]
    return str(api.parse(conn, write_csv(tmp_path / "leads.csv", header, rows))["id"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"duplicates": "merge"}, "duplicates must be one of skip, update, create"),
        ({"match": "name"}, "match must be one of email_then_phone, email, phone, email_or_phone"),
        ({"assignment": "everyone"}, "assignment must be one of none, user, round_robin, column"),
        ({"assignment": "user"}, "owner is required"),
        ({"assignment": "user", "owner": "olga@other.test"}, "not a member of this organization: olga@other.test"),
        ({"assignment": "round_robin", "owners": "lucas@local.test"}, "owners: a non-empty list of member emails"),
        ({"assignment": "round_robin", "owners": []}, "owners: a non-empty list of member emails"),
        (
            {"assignment": "round_robin", "owners": ["lucas@local.test", "nobody@local.test"]},
            "not a member of this organization: nobody@local.test",
        ),
        (
            {"assignment": "column", "owner_column": "Vendeur"},
            "no column 'Vendeur' in the file; its columns are: E-mail",
        ),
        ({"assignment": "column"}, "owner_column is required"),
        ({"duplicate": "skip"}, "unknown field(s) in the request body: 'duplicate'"),
    ],
)
def test_commit_refuses_bad_settings_with_a_clear_400(
    api: Api, conn: Any, ready_job: str, body: dict[str, Any], message: str
) -> None:
    before = job_row(conn, ready_job)
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/commit", body)
    assert status == 400
    assert message in reply["message"]
    assert job_row(conn, ready_job) == before


@pytest.mark.history
def test_commit_starts_with_settings_stored_on_the_job(api: Api, conn: Any, ready_job: str) -> None:
    status, reply = api.call(
        "POST",
        f"/api/jobs/{ready_job}/commit",
        {
            "duplicates": "update",
            "match": "email",
            "assignment": "round_robin",
            "owners": ["Manon@local.test", "lucas@local.test"],
        },
    )
    assert status == 202, reply
    assert reply["job"]["status"] == "committing"
    stored = reply["job"]["settings"]["commit"]
    assert stored == {
        "duplicates": "update", "match": "email", "assignment": "round_robin",
        "owners": [str(LOCAL_MEMBERS[2][0]), str(LOCAL_MEMBERS[1][0])], "owner_column": None,
    }  # fmt: skip
    job = finished(conn, ready_job, "completed")
    assert job["inserted_rows"] == job["valid_rows"] > 0
    # Committing again with other settings is a 409 that says what ran, and changes nothing.
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/commit", {})
    assert status == 409
    assert reply["message"].startswith("a commit with other settings completed for this job (duplicates=update")
    assert job_row(conn, ready_job)["status"] == "completed"


def test_commit_with_an_owner_column(api: Api, conn: Any, ready_job: str) -> None:
    job = api.commit(conn, ready_job, assignment="column", owner_column="Commercial")
    owners = conn.execute("select distinct owner_id from leads where import_job_id = %s", (ready_job,)).fetchall()
    assert [str(r["owner_id"]) for r in owners] == [str(LOCAL_MEMBERS[1][0])]
    assert "unknown_owner" not in job["warning_counts"]


def test_revert_is_refused_with_the_reason_until_the_job_is_completed(api: Api, conn: Any, ready_job: str) -> None:
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/revert")
    assert (status, reply["message"]) == (
        409,
        "cannot revert: this import has not written any leads (ready): there is nothing to revert",
    )
    assert job_row(conn, ready_job)["status"] == "ready"

    api.commit(conn, ready_job)
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/revert")
    assert status == 202, reply
    job = finished(conn, ready_job, "reverted")
    assert job["reverted_rows"] == job["inserted_rows"] > 0
    assert conn.execute("select count(*) from leads").fetchone()["count"] == 0
    status, reply = api.call("GET", f"/api/jobs/{ready_job}")
    assert status == 200, reply
    view = reply["job"]
    assert (view["reverted_rows"], view["restored_rows"], view["kept_counts"]) == (job["reverted_rows"], 0, {})
    assert view["rows_done"] == view["rows_expected"] == job["total_rows"]

    status, reply = api.call("POST", f"/api/jobs/{ready_job}/revert")
    assert (status, reply["message"]) == (409, "cannot revert: this import was already reverted")


def test_revert_is_refused_once_the_record_of_the_import_was_purged(
    api: Api, conn: Any, stack: Any, ready_job: str
) -> None:
    api.commit(conn, ready_job)
    conn.execute("update import_jobs set updated_at = now() - interval '31 days' where id = %s", (ready_job,))
    swept = sweep(stack)
    assert swept.status_code == 200 and swept.json()["purged_staged_rows"] > 0, swept.text
    leads = conn.execute("select count(*) from leads").fetchone()["count"]
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/revert")
    assert (status, reply["message"]) == (
        409,
        "cannot revert: this import finished more than 30 days ago, and the record of the leads it wrote "
        "and the values it overwrote was deleted then: it can no longer be reverted",
    )
    assert job_row(conn, ready_job)["status"] == "completed"
    assert conn.execute("select count(*) from leads").fetchone()["count"] == leads


def test_revert_of_a_failed_commit_says_to_retry_first(api: Api, conn: Any, ready_job: str) -> None:
    # A commit that stopped half-way (as the failure callback leaves it).
    conn.execute(
        "update import_jobs set status = 'failed', phase = 'commit', commit_cursor = 5 where id = %s", (ready_job,)
    )
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/revert")
    assert status == 409
    assert "stopped before the end (failed); retry it so that it completes, then revert it" in reply["message"]


@pytest.mark.parametrize("verb", ["commit", "revert"])
def test_unknown_jobs_and_other_organizations_jobs_are_404(
    api: Api, conn: Any, stack: Any, tmp_path: Path, verb: str
) -> None:
    conn.execute("insert into organizations (id, name) values (%s, 'Autre')", (OTHER_ORG,))
    conn.execute(
        "insert into organization_members (organization_id, user_id, email, role) values (%s, %s, %s, %s)",
        (OTHER_ORG, *OUTSIDER),
    )
    their_file = write_csv(tmp_path / "theirs.csv", LEAD_HEADER, lead_rows(range(1, 5)))
    theirs = str(Api(stack, OUTSIDER).parse(conn, their_file)["id"])
    for job_id in (theirs, str(uuid.uuid4()), "not-a-uuid"):
        status, reply = api.call("POST", f"/api/jobs/{job_id}/{verb}", {})
        assert status == 404, (job_id, reply)
        assert reply["error"] == "JobNotFound"
    assert job_row(conn, theirs)["status"] == "ready"
    status, _ = Api(stack, OUTSIDER).call("POST", f"/api/jobs/{theirs}/commit", {})
    assert status == 202


@pytest.mark.parametrize("verb", ["commit", "revert"])
def test_without_a_token_nothing_happens(api: Api, conn: Any, ready_job: str, verb: str) -> None:
    before = job_row(conn, ready_job)
    assert api.call("POST", f"/api/jobs/{ready_job}/{verb}", {}, token="")[0] == 401
    assert api.call("POST", f"/api/jobs/{ready_job}/{verb}", {}, token="not.a.token")[0] == 401
    assert job_row(conn, ready_job) == before


def test_commit_body_must_be_a_json_object(api: Api, conn: Any, ready_job: str) -> None:
    status, reply = api.call("POST", f"/api/jobs/{ready_job}/commit", ["skip"])
    assert (status, reply["message"]) == (400, "the request body must be a JSON object, not an array")


def test_history_lists_the_organizations_jobs_newest_first(api: Api, conn: Any, tmp_path: Path) -> None:
    first = api.import_file(conn, write_csv(tmp_path / "first.csv", LEAD_HEADER, lead_rows(range(1, 9))))
    second = api.parse(conn, write_csv(tmp_path / "second.csv", LEAD_HEADER, lead_rows(range(5, 13))))["id"]
    status, reply = api.call("GET", "/api/jobs")
    assert status == 200
    jobs = reply["jobs"]
    assert [j["id"] for j in jobs] == [str(second), str(first["id"])]
    latest, done = jobs
    assert (latest["status"], latest["file_name"]) == ("ready", "second.csv")
    assert (done["status"], done["file_name"]) == ("completed", "first.csv")
    assert done["created_by"] == str(LOCAL_MEMBERS[0][0])
    assert done["created_at"] and done["finished_at"] and done["commit_started_at"]
    assert {
        k: done[k]
        for k in ("total_rows", "valid_rows", "invalid_rows", "inserted_rows", "updated_rows", "skipped_rows")
    } == {
        k: first[k]
        for k in ("total_rows", "valid_rows", "invalid_rows", "inserted_rows", "updated_rows", "skipped_rows")
    }
