"""Remembered mappings (lib/remembered.py): saved when a commit starts, applied at validating to
a later file of the organization with the same header or sharing at least half of its columns,
their settings offered as the review's defaults; listed, deleted, per organization; and the way
back to the automatic mapping. Real HTTP on the local stack, real Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.parse.mapping import auto_map
from lib.remembered import commit_defaults, merge
from tests.helpers import Api, add_other_org, finished, job, phone, wait_for_status, write_csv

ROOT = Path(__file__).resolve().parent.parent

# A header the automatic mapping half knows: "Structure" (the company), "Num. direct" (the
# phone) and "Contact" (a full name) it leaves unmapped; "Courriel" is the email, "Responsable"
# the owner column.
HEADER = ["Structure", "Contact", "Num. direct", "Courriel", "Responsable"]
CHOSEN = {
    "Structure": "company",
    "Contact": "full_name",
    "Num. direct": "phone",
    "Courriel": "email",
    "Responsable": "owner",
}
CHOSEN_LIST = ["company", "full_name", "phone", "email", "owner"]
MEMBER = LOCAL_MEMBERS[1][1]  # lucas@local.test


def rows(n: int, start: int = 0, *, width: int = 5) -> list[list[str]]:
    out = []
    for i in range(start, start + n):
        row = [f"Société {i}", f"Jean Dupont{i}", phone(i), f"lead{i}@exemple.fr", MEMBER]
        out.append(row[:width])
    return out


def parse(
    stack: Any, conn: psycopg.Connection, tmp: Path, header: list[str], data: list[list[str]], api: Api | None = None
) -> dict[str, Any]:
    path = write_csv(tmp / f"{uuid.uuid4().hex}.csv", header, data)
    return (api or Api(stack)).parse(conn, path)


def view(api: Api, job_id: Any) -> dict[str, Any]:
    status, reply = api.call("GET", f"/api/jobs/{job_id}")
    assert status == 200, reply
    return reply["job"]


def remap(api: Api, conn: psycopg.Connection, job_id: Any, mapping: dict[str, str | None]) -> dict[str, Any]:
    status, reply = api.call("PUT", f"/api/jobs/{job_id}/mapping", {"mapping": mapping})
    assert status == 202, reply
    return finished(conn, job_id, "ready")


@pytest.fixture
def remembered(stack, conn, tmp_path) -> dict[str, Any]:
    """A first file of HEADER, its mapping edited (the automatic one misses three columns), then
    committed with settings of its own: what the organization remembers."""
    api = Api(stack)
    first = parse(stack, conn, tmp_path, HEADER, rows(20))
    assert first["mapping"] == [None, None, None, "email", "owner"]
    assert view(api, first["id"])["mapping_source"] == "automatic"
    first = remap(api, conn, first["id"], CHOSEN)
    assert first["mapping"] == CHOSEN_LIST and first["mapping_source"] == "edited"
    done = api.commit(
        conn, first["id"], duplicates="update", match="email", assignment="column", owner_column="Responsable"
    )
    assert done["inserted_rows"] == 20
    return done


# -- merging: pure ----------------------------------------------------------------------------------


def test_merge_gives_shared_columns_the_remembered_field_and_the_others_the_automatic_one() -> None:
    columns = ["structure", "contact", "num direct", "courriel", "responsable"]
    header = ["STRUCTURE", "Num direct", "Courriel", "Ville", "E-mail"]  # case, punctuation, order
    got = merge(header, auto_map(header), columns, CHOSEN_LIST)
    # "E-mail" would be the email automatically, but the shared "Courriel" has it.
    assert got == ["company", "phone", "email", "city", None]


def test_merge_matches_repeated_names_in_order_and_drops_an_automatic_full_name_beside_names() -> None:
    header = ["Tel", "Tel", "Nom complet", "Famille"]
    assert auto_map(header) == ["phone", None, "full_name", None]
    got = merge(header, auto_map(header), ["tel", "tel", "famille"], [None, "phone", "last_name"])
    assert got == [None, "phone", None, "last_name"]


# -- remembered at validating -----------------------------------------------------------------------


@pytest.mark.history
def test_the_same_header_gets_the_remembered_mapping_and_settings(stack, conn, tmp_path, remembered) -> None:
    api = Api(stack)
    # The same header as another person types it: case, accents and punctuation do not count.
    again = parse(
        stack, conn, tmp_path, ["STRUCTURE", "contact", "Num direct", "Courriel", "Responsable"], rows(10, 100)
    )
    assert again["mapping"] == CHOSEN_LIST
    assert again["mapping_source"] == "remembered"
    shown = view(api, again["id"])
    assert shown["mapping_source"] == "remembered"
    (saved,) = api.call("GET", "/api/mappings")[1]["mappings"]
    assert shown["remembered_mapping_id"] == saved["id"]
    assert shown["commit_defaults"] == {
        "duplicates": "update", "match": "email", "assignment": "column", "owner": None, "owners": [],
        "owner_column": "Responsable", "remembered": True, "owner_column_found": "Responsable",
    }  # fmt: skip
    # The remembered columns were unmapped automatically: the rows show they were used.
    staged = conn.execute(
        "select fields from staged_rows where job_id = %s order by row_no limit 1", (again["id"],)
    ).fetchone()["fields"]
    assert staged["company"] == "Société 100" and staged["phone"] == "+33612000100"
    assert (staged["first_name"], staged["last_name"]) == ("Jean", "Dupont100")


def test_a_header_only_a_remembered_mapping_knows_is_accepted(stack, conn, tmp_path, remembered) -> None:
    # Without the email column, the automatic mapping finds no contact column: such a file is
    # refused, unless the organization remembers what "Num. direct" is.
    header = ["Structure", "Contact", "Num. direct"]
    assert not {"email", "phone"} & set(auto_map(header))
    got = parse(stack, conn, tmp_path, header, rows(5, 200, width=3))
    assert got["mapping"] == ["company", "full_name", "phone"] and got["mapping_source"] == "remembered"
    assert got["valid_rows"] == 5


def test_one_more_and_one_fewer_column(stack, conn, tmp_path, remembered) -> None:
    more = parse(stack, conn, tmp_path, [*HEADER, "Ville"], [[*r, "Lyon"] for r in rows(5, 300)])
    assert more["mapping"] == [*CHOSEN_LIST, "city"] and more["mapping_source"] == "remembered"
    fewer = parse(stack, conn, tmp_path, HEADER[:-1], rows(5, 400, width=4))
    assert fewer["mapping"] == CHOSEN_LIST[:-1] and fewer["mapping_source"] == "remembered"
    # The owner column is gone: the remembered column assignment falls back to none.
    defaults = commit_defaults(fewer)
    assert (defaults["remembered"], defaults["assignment"], defaults["owner_column"]) == (True, "none", None)
    assert (defaults["duplicates"], defaults["match"]) == ("update", "email")


def test_less_than_half_shared_is_automatic(stack, conn, tmp_path, remembered) -> None:
    header = ["Structure", "Courriel", "Ville", "Pays", "Source"]  # 2 of 5 shared
    got = parse(
        stack, conn, tmp_path, header, [[f"S{i}", f"x{i}@exemple.fr", "Lyon", "France", "Salon"] for i in range(3)]
    )
    assert got["mapping"] == auto_map(header) and got["mapping_source"] == "automatic"
    assert got["remembered_mapping_id"] is None and "remembered_commit" not in got["settings"]


def test_the_most_shared_then_the_most_recent_wins(stack, conn, tmp_path, remembered) -> None:
    api = Api(stack)
    # A second remembered header, sharing 3 of the next file's 5 columns (the first shares 4).
    other = ["Structure", "Num. direct", "Courriel", "Code"]
    second = parse(stack, conn, tmp_path, other, [[f"S{i}", phone(500 + i), f"y{i}@exemple.fr", "A"] for i in range(3)])
    assert second["mapping_source"] == "remembered"
    second = remap(
        api, conn, second["id"], {"Structure": None, "Num. direct": "phone", "Courriel": "email", "Code": "source"}
    )
    api.commit(conn, second["id"])
    # 4 columns shared with the first, 3 with the more recent second: the most shared wins.
    header = ["Structure", "Contact", "Num. direct", "Courriel", "Ville"]
    data = [[f"S{i}", "Ana Lima", phone(600 + i), f"z{i}@exemple.fr", "Lyon"] for i in range(3)]
    most = parse(stack, conn, tmp_path, header, data)
    assert most["mapping"] == ["company", "full_name", "phone", "email", "city"]
    # 3 shared with both (Structure, Num. direct, Courriel): the most recent wins.
    tie = parse(stack, conn, tmp_path, ["Structure", "Num. direct", "Courriel"], [[r[0], r[2], r[3]] for r in data])
    assert tie["mapping"] == [None, "phone", "email"]


# -- settings, organizations, listing, deleting, back to automatic ----------------------------------


def test_an_owner_column_found_is_offered_without_a_remembered_mapping(stack, conn, tmp_path) -> None:
    got = parse(stack, conn, tmp_path, ["E-mail", "Contact owner"], [[f"a{i}@exemple.fr", MEMBER] for i in range(3)])
    defaults = view(Api(stack), got["id"])["commit_defaults"]
    assert defaults == {
        "duplicates": "skip", "match": "email_then_phone", "assignment": "column", "owner": None, "owners": [],
        "owner_column": "Contact owner", "remembered": False, "owner_column_found": "Contact owner",
    }  # fmt: skip


def test_round_robin_members_are_remembered_by_email(stack, conn, tmp_path) -> None:
    api = Api(stack)
    header = ["E-mail", "Ville"]
    first = parse(stack, conn, tmp_path, header, [[f"rr{i}@exemple.fr", "Lyon"] for i in range(4)])
    owners = [LOCAL_MEMBERS[2][1], LOCAL_MEMBERS[0][1]]
    api.commit(conn, first["id"], assignment="round_robin", owners=owners)
    later = parse(stack, conn, tmp_path, header, [[f"rr{i}@exemple.fr", "Paris"] for i in range(10, 12)])
    defaults = view(api, later["id"])["commit_defaults"]
    assert (defaults["assignment"], defaults["owners"], defaults["remembered"]) == ("round_robin", owners, True)
    # The defaults are a body the commit route takes as they are.
    body = {k: defaults[k] for k in ("duplicates", "match", "assignment", "owners")}
    assert api.commit(conn, later["id"], **body)["inserted_rows"] == 2


def test_another_organization_does_not_see_them(stack, conn, tmp_path, remembered) -> None:
    _org, user = add_other_org(conn)
    outsider = Api(stack, user)
    status, reply = outsider.call("GET", "/api/mappings")
    assert (status, reply) == (200, {"mappings": []})
    theirs = parse(stack, conn, tmp_path, HEADER, rows(5, 700), api=outsider)
    assert theirs["mapping"] == auto_map(HEADER) and theirs["mapping_source"] == "automatic"
    mine = Api(stack).call("GET", "/api/mappings")[1]["mappings"]
    assert len(mine) == 1
    status, reply = outsider.call("DELETE", f"/api/mappings/{mine[0]['id']}")
    assert (status, reply["error"]) == (404, "MappingNotFound")
    assert len(Api(stack).call("GET", "/api/mappings")[1]["mappings"]) == 1
    # Row-level security, as Supabase applies it to a member reading the table directly.
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(user[0])}),))
        assert conn.execute("select id from remembered_mappings").fetchall() == []
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(LOCAL_MEMBERS[0][0])}),)
        )
        assert len(conn.execute("select id from remembered_mappings").fetchall()) == 1


def test_listed_and_deleted_through_the_api(stack, conn, tmp_path, remembered) -> None:
    api = Api(stack)
    status, reply = api.call("GET", "/api/mappings")
    assert status == 200
    (saved,) = reply["mappings"]
    assert saved["organization_id"] == str(LOCAL_ORG) and saved["job_id"] == str(remembered["id"])
    assert saved["columns"] == [{"header": h, "field": f} for h, f in zip(HEADER, CHOSEN_LIST, strict=True)]
    assert saved["settings"] == {
        "duplicates": "update", "match": "email", "assignment": "column", "owners": [], "owner_column": "Responsable",
    }  # fmt: skip
    using = parse(stack, conn, tmp_path, HEADER, rows(5, 750))
    assert using["remembered_mapping_id"] is not None
    assert api.call("DELETE", f"/api/mappings/{saved['id']}") == (200, {"deleted": saved["id"]})
    assert api.call("DELETE", f"/api/mappings/{saved['id']}")[0] == 404
    assert api.call("DELETE", "/api/mappings/not-a-uuid")[0] == 404
    assert api.call("GET", "/api/mappings") == (200, {"mappings": []})
    # Forgotten: the same header is mapped automatically again.
    again = parse(stack, conn, tmp_path, HEADER, rows(5, 800))
    assert again["mapping"] == auto_map(HEADER) and again["mapping_source"] == "automatic"
    assert job(conn, using["id"])["remembered_mapping_id"] is None  # the job keeps its mapping
    assert job(conn, using["id"])["mapping"] == CHOSEN_LIST


def test_a_later_commit_of_the_header_replaces_it(stack, conn, tmp_path, remembered) -> None:
    api = Api(stack)
    again = parse(stack, conn, tmp_path, HEADER, rows(5, 900))
    again = remap(api, conn, again["id"], {**CHOSEN, "Contact": None})
    api.commit(conn, again["id"], duplicates="skip")
    (saved,) = api.call("GET", "/api/mappings")[1]["mappings"]
    assert [c["field"] for c in saved["columns"]] == ["company", None, "phone", "email", "owner"]
    assert (saved["job_id"], saved["settings"]["duplicates"], saved["settings"]["assignment"]) == (
        str(again["id"]),
        "skip",
        "none",
    )


def test_back_to_automatic(stack, conn, tmp_path, remembered) -> None:
    api = Api(stack)
    again = parse(stack, conn, tmp_path, HEADER, rows(10, 1000))
    assert again["mapping_source"] == "remembered"
    status, reply = api.call("POST", f"/api/jobs/{again['id']}/mapping/automatic")
    assert status == 202, reply
    assert reply["job"]["status"] == "parsing" and reply["job"]["mapping_source"] == "automatic"
    back = finished(conn, again["id"], "ready")
    assert back["mapping"] == auto_map(HEADER) and back["mapping_source"] == "automatic"
    assert back["total_rows"] == 10
    # Only while ready, and with no body.
    assert api.call("POST", f"/api/jobs/{again['id']}/mapping/automatic", {"x": 1})[0] == 400
    api.commit(conn, again["id"])
    status, reply = api.call("POST", f"/api/jobs/{again['id']}/mapping/automatic")
    assert status == 409, reply


def test_back_to_automatic_refuses_a_header_it_cannot_map(stack, conn, tmp_path, remembered) -> None:
    header = ["Structure", "Contact", "Num. direct"]
    got = parse(stack, conn, tmp_path, header, rows(3, 1100, width=3))
    status, reply = Api(stack).call("POST", f"/api/jobs/{got['id']}/mapping/automatic")
    assert (status, reply["error"]) == (400, "no_contact_column")
    assert job(conn, got["id"])["status"] == "ready"


def test_a_refused_commit_remembers_nothing(stack, conn, tmp_path) -> None:
    api = Api(stack)
    got = parse(stack, conn, tmp_path, ["E-mail"], [["a@exemple.fr"]])
    status, _reply = api.call("POST", f"/api/jobs/{got['id']}/commit", {"duplicates": "never"})
    assert status == 400
    assert api.call("GET", "/api/mappings") == (200, {"mappings": []})
    wait_for_status(conn, got["id"], {"ready"})


# -- the command line ---------------------------------------------------------------------------------


def test_cli_review_and_json_say_where_the_mapping_came_from(database_url, tmp_path) -> None:
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url, "LOCAL_DATA_DIR": str(tmp_path / "local")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lib", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    header = ["Courriel", "Responsable", "Ville"]
    first = write_csv(tmp_path / "a.csv", header, [[f"c{i}@exemple.fr", MEMBER, "Lyon"] for i in range(5)])
    out = run("import", str(first), "--yes", "--json", "--duplicates", "update", "--assign", "none")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["mapping_source"] == "automatic"
    assert summary["commit_defaults"]["owner_column_found"] == "Responsable"
    second = write_csv(tmp_path / "b.csv", header, [[f"c{i}@exemple.fr", MEMBER, "Paris"] for i in range(3, 8)])
    out = run("import", str(second), "--yes")  # no option: the remembered settings apply
    assert out.returncode == 0, out.stderr
    assert "mapping      remembered" in out.stdout
    assert "commit (remembered, unless given): --duplicates update --match email_then_phone --assign none" in out.stdout
    listed = json.loads(run("jobs", "--json").stdout)
    assert listed[0]["mapping_source"] == "remembered"
    assert (listed[0]["settings"]["commit"]["duplicates"], listed[0]["updated_rows"]) == ("update", 2)
