"""What the test modules share (no test module imports another; fixtures are in conftest.py):

- test databases and local stacks: `fresh_database`, `make_stack`;
- the frontend: `Api`, real HTTP to the stack's app with a member's access token;
- QStash's side: `post_raw`, `post_signed`, `slice_message`, `sweep`, `lose_queued_messages`;
- waiting: `wait_until`, `wait_for_status`, `finished`;
- what an import left: `job`, `outcome`, `other_state`, `staged`, ...;
- files: `sample` (the Excel-style generator), `edge_case_file`, `write_csv`, `lead_rows`.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg

from lib import db
from lib.auth import mint_token
from lib.local.databases import scratch_database
from lib.local.qstash_server import LocalQStash, sign
from lib.local.stack import LOCAL_MEMBERS, LocalStack
from lib.parse.sample import SampleStats, write_sample_csv
from lib.storage import storage_from_env

T = TypeVar("T")

# -- test databases and local stacks ------------------------------------------------------------

DB_KINDS = ("fresh", "history")
# Per process: each pytest-xdist worker builds its own templates (on its own embedded server,
# or side by side on a shared TEST_DATABASE_URL server).
TEMPLATES = {kind: f"lead_import_{kind}_tpl_{os.getpid()}" for kind in DB_KINDS}
# The history template holds about 200 MB: copying its files (after a checkpoint) is faster
# than WAL_LOG's page by page copy, which suits the small fresh template better.
STRATEGY = {"fresh": "wal_log", "history": "file_copy"}


@contextmanager
def fresh_database(server_url: str, kind: str = "fresh") -> Iterator[str]:
    """A new database copied from the template of `kind` ("fresh" or "history"), dropped
    afterwards. That template must exist: request its fixture (template_url,
    history_template_url), or use the `database_url` or `new_database` fixtures, which build it."""
    if kind not in TEMPLATES:
        raise ValueError(f"no template {kind!r}: one of {', '.join(DB_KINDS)}")
    with scratch_database(server_url, "lead_import_t", template=TEMPLATES[kind], strategy=STRATEGY[kind]) as url:
        yield url


# The local QStash's retries, fast: for tests that wait for QStash to give up on a message
# (its defaults space five retries over about 7 seconds).
FAST_GIVE_UP = {"LOCAL_QSTASH_RETRY_BASE": "0.01", "LOCAL_QSTASH_RETRY_CAP": "0.05"}
SMALL_SLICES = {"IMPORT_PARSE_SLICE_ROWS": "50", "IMPORT_COMMIT_SLICE_ROWS": "50"}


def make_stack(database_url: str, tmp_path: Path, **env: str) -> LocalStack:
    """A local stack on this database, its data folder in tmp_path, configured by `env` alone
    (not by the test process's environment): LOCAL_QSTASH_FAULTS, IMPORT_*, APP_URL..."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "LOCAL_DATA_DIR": str(tmp_path / "local"),
        "IMPORT_SLICE_SECONDS": "1.5",
        **env,
    }
    return LocalStack(base, faults=env.get("LOCAL_QSTASH_FAULTS", ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- waiting ----------------------------------------------------------------------------------------

ACTIVE = {"validating", "parsing", "committing", "reverting"}
FINISHED = {"ready", "completed", "failed", "cancelled", "reverted"}  # what an active job ends in


def wait_until(predicate: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def wait_for_status(conn: psycopg.Connection, job_id: Any, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    """Poll the job row until its status is one of `statuses` (the way a frontend watches it)."""
    deadline = time.monotonic() + timeout
    while True:
        row = job(conn, job_id)
        if row["status"] in statuses:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {row['status']} after {timeout} s: {row['error_message']}")
        time.sleep(0.02)


def finished(conn: psycopg.Connection, job_id: Any, expected: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the job is in a status an active job ends in; it must be `expected`. Its row."""
    row = wait_for_status(conn, job_id, FINISHED, timeout)
    assert row["status"] == expected, f"{row['status']}: {row['error_message']}"
    return row


# -- the frontend -----------------------------------------------------------------------------------

USER = object()  # Api.call's default token: the member's own
ROUND_ROBIN = {"assign": "round-robin:" + ",".join(m[1] for m in LOCAL_MEMBERS)}


class Api:
    """The frontend: real HTTP to the stack's app (where it listens in this process, whatever
    APP_URL says), with the access token of `user` (a member by default)."""

    def __init__(self, stack: LocalStack, user: tuple[Any, str, str] = LOCAL_MEMBERS[0]):
        self.stack = stack
        self.base = stack.app_url
        self.token = mint_token(stack.env["SUPABASE_JWT_SECRET"], str(user[0]), user[1])

    def client(self) -> httpx.Client:
        """An HTTP client of the app, signed in as the user: for streams and raw requests."""
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, token: Any = USER
    ) -> tuple[int, Any]:
        """(status, the JSON reply, else its text). `token`: the user's by default; another
        token, or None or "" for no Authorization header."""
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {self.token if token is USER else token}"
        resp = httpx.request(
            method, self.base + path, content=None if body is None else json.dumps(body), headers=h, timeout=60
        )
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def create(self, conn: psycopg.Connection, data: bytes | Path, name: str | None = None, **body: Any) -> str:
        """A new job with its file uploaded (the local stack's folder storage stands for the
        signed upload URL): the id of the pending job."""
        if isinstance(data, Path):
            data, name = data.read_bytes(), name or data.name
        status, reply = self.call("POST", "/api/jobs", {"file_name": name or "leads.csv", **body})
        assert status == 201, reply
        job_id = reply["job"]["id"]
        storage(self.stack).put(job(conn, job_id)["storage_path"], data)
        return job_id

    def queue(self, path: str, body: Any = None) -> tuple[int, Any]:
        """POST a verb that publishes to QStash. When the local QStash is told to fail
        publishes (publish_error), its 503 (nothing changed, try again) is retried, as a
        frontend would; anywhere else a 503 is the answer."""
        attempts = 5 if self.stack.qstash is not None and self.stack.qstash.faults.publish_error else 1
        for _ in range(attempts):
            status, reply = self.call("POST", path, body)
            if status != 503:
                break
        return status, reply

    def start(self, job_id: str) -> dict[str, Any]:
        status, reply = self.queue(f"/api/jobs/{job_id}/start")
        assert status == 202, reply
        assert reply["job"]["status"] == "validating", reply
        return reply["job"]

    def parse(self, conn: psycopg.Connection, data: bytes | Path, name: str | None = None) -> dict[str, Any]:
        """Create, upload, start: the job's row once ready."""
        job_id = self.create(conn, data, name)
        self.start(job_id)
        return finished(conn, job_id, "ready")

    def start_commit(self, job_id: Any, **settings: Any) -> dict[str, Any]:
        status, reply = self.queue(f"/api/jobs/{job_id}/commit", settings)
        assert status == 202, reply
        assert reply["job"]["status"] == "committing", reply
        return reply["job"]

    def commit(self, conn: psycopg.Connection, job_id: Any, **settings: Any) -> dict[str, Any]:
        """Commit a ready job with these settings: its row once completed."""
        self.start_commit(job_id, **settings)
        return finished(conn, job_id, "completed")

    def import_file(
        self, conn: psycopg.Connection, data: bytes | Path, name: str | None = None, **settings: Any
    ) -> dict[str, Any]:
        """Parse, then commit with these settings: the job's row once completed."""
        return self.commit(conn, self.parse(conn, data, name)["id"], **settings)

    def revert(self, conn: psycopg.Connection, job_id: Any) -> dict[str, Any]:
        status, reply = self.queue(f"/api/jobs/{job_id}/revert")
        assert status == 202, reply
        return finished(conn, job_id, "reverted")

    def retry(self, job_id: Any, **body: Any) -> tuple[int, Any]:
        return self.call("POST", f"/api/jobs/{job_id}/retry", body)

    def cancel(self, job_id: Any) -> tuple[int, Any]:
        return self.call("POST", f"/api/jobs/{job_id}/cancel")


def storage(stack: LocalStack) -> Any:
    return storage_from_env(stack.settings.env, stack.settings.local_data_dir)


# -- QStash's side, and the cron ---------------------------------------------------------------------

CRON = object()  # sweep()'s default: the stack's cron secret


def post_raw(stack: LocalStack, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """A JSON POST to the stack's app with exactly these headers (a signature, or none)."""
    return httpx.post(
        stack.app_url + path, content=body, headers={"Content-Type": "application/json", **headers}, timeout=30
    )


def post_signed(stack: LocalStack, path: str, body: bytes, *, key: str | None = None, url: str | None = None) -> Any:
    """A request signed like QStash's (sign() is what the local QStash itself uses), for the
    endpoint's public URL unless `url` says otherwise."""
    s = stack.settings
    signature = sign(key or s.current_signing_key, url or s.endpoint_url(path), body)
    return post_raw(stack, path, body, {"Upstash-Signature": signature})


def slice_message(job_id: Any, phase: str, run: int, slice_no: int) -> bytes:
    return json.dumps({"job": str(job_id), "phase": phase, "run": run, "slice": slice_no}).encode()


def sweep(stack: LocalStack, secret: Any = CRON) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.env['CRON_SECRET'] if secret is CRON else secret}"} if secret else {}
    return httpx.get(stack.app_url + "/api/cron/sweep", headers=headers, timeout=30)


def lose_queued_messages(stack: LocalStack) -> None:
    """QStash loses every message it holds (the chain of the running jobs breaks): the local
    QStash is replaced by an empty one on the same port, without faults."""
    old = stack.qstash
    old.stop()
    port = int(old.base_url.rsplit(":", 1)[1])
    env = stack.env
    stack.qstash = LocalQStash(
        env["QSTASH_TOKEN"], env["QSTASH_CURRENT_SIGNING_KEY"], env["QSTASH_NEXT_SIGNING_KEY"], port=port
    )
    assert stack.qstash.start() == old.base_url


# -- what an import left -------------------------------------------------------------------------------

COUNTS = (
    "status", "phase", "total_rows", "valid_rows", "invalid_rows", "duplicate_rows", "inserted_rows",
    "updated_rows", "skipped_rows", "reverted_rows", "restored_rows", "kept_counts", "error_counts",
    "warning_counts",
)  # fmt: skip
PARSE_COUNTS = ("total_rows", "valid_rows", "invalid_rows", "duplicate_rows", "error_counts", "warning_counts")
STAGED = (
    "select row_no, raw, fields, custom, email_normalized, phone_e164, match_key, errors, warnings, valid,"
    " duplicate_of from staged_rows where job_id = %s order by row_no"
)


def job(conn: psycopg.Connection, job_id: Any) -> dict[str, Any]:
    return conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()


def staged(conn: psycopg.Connection, job_id: Any) -> list[dict[str, Any]]:
    """The job's staged rows, in row order: what parsing wrote, free of ids."""
    return conn.execute(STAGED, (job_id,)).fetchall()


def parse_counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in PARSE_COUNTS}


def age_heartbeat(conn: psycopg.Connection, job_id: Any) -> None:
    conn.execute("update import_jobs set heartbeat_at = now() - interval '1 hour' where id = %s", (job_id,))


def wait_stale(conn: psycopg.Connection, job_id: Any) -> None:
    """Real time passes until the job's heartbeat is older than its lease (a stuck job)."""
    wait_until(
        lambda: conn.execute(
            "select now() - heartbeat_at > make_interval(secs => lease_seconds) as stale from import_jobs where id = %s",
            (job_id,),
        ).fetchone()["stale"],
        what="the lease to expire",
    )


def outcome(conn: psycopg.Connection, job_id: Any, *, slices: bool = False) -> dict[str, Any]:
    """What an import did, free of ids and times: the job's counts, the organization's leads
    (a multiset of their fields and owners), and each staged row's outcome and lead."""
    row = job(conn, job_id)
    counts = {k: row[k] for k in COUNTS + (("slices_done",) if slices else ())}
    leads = conn.execute(
        """select (to_jsonb(l) - array['id', 'created_at', 'updated_at', 'import_job_id',
                  'updated_by_import_job_id'])::text as lead
           from leads l where organization_id = %s""",
        (row["organization_id"],),
    ).fetchall()
    rows = conn.execute(
        """select s.row_no, s.valid, so.outcome, s.errors, s.warnings, s.duplicate_of, s.match_key,
                  s.fields::text, l.email_normalized, l.phone_e164, l.owner_id
           from staged_rows s left join staged_outcomes so on so.job_id = s.job_id and so.row_no = s.row_no
           left join leads l on l.id = so.lead_id
           where s.job_id = %s order by s.row_no""",
        (job_id,),
    ).fetchall()
    return {"counts": counts, "leads": sorted(r["lead"] for r in leads), "staged": [tuple(r.values()) for r in rows]}


def same_as_baseline(actual: dict[str, Any], baseline: dict[str, Any]) -> None:
    """`actual` (an outcome) equals the undisturbed run's, on the counts it holds."""
    expected = {**baseline, "counts": {k: v for k, v in baseline["counts"].items() if k in actual["counts"]}}
    assert actual["counts"] == expected["counts"]
    assert actual["leads"] == expected["leads"]
    assert actual["staged"] == expected["staged"]


def undisturbed(server_url: str, tmp: Path, data: bytes, **env: str) -> dict[str, Any]:
    """The outcome of an import nothing disturbed (small slices, round-robin owners), in a
    fresh database of its own: what every disturbed run of the same file must end in."""
    with (
        fresh_database(server_url) as url,
        make_stack(url, tmp, **SMALL_SLICES, **env) as stack,
        db.connect(url) as c,
    ):
        job_id = Api(stack).import_file(c, data, **ROUND_ROBIN)["id"]
        stack.wait_idle()
        return outcome(c, job_id, slices=True)


def other_state(conn: psycopg.Connection, job_id: Any = None) -> dict[str, Any]:
    """Everything outside one job: other jobs, all leads, organizations and members."""
    return {
        "jobs": conn.execute(
            "select * from import_jobs where id is distinct from %s order by id", (job_id,)
        ).fetchall(),
        "leads": conn.execute("select * from leads order by id").fetchall(),
        "staged": conn.execute(
            "select job_id, count(*) from staged_rows where job_id is distinct from %s group by 1 order by 1", (job_id,)
        ).fetchall(),
        "orgs": conn.execute("select * from organizations order by id").fetchall(),
        "members": conn.execute("select * from organization_members order by organization_id, user_id").fetchall(),
    }


# -- files ---------------------------------------------------------------------------------------------


def sample(path: Path, rows: int = 500, seed: int = 5) -> tuple[bytes, SampleStats]:
    """An Excel-style file of the generator (lib.parse.sample) at `path`: its bytes, and what
    it holds (rows, valid, invalid, duplicates, warnings)."""
    stats = write_sample_csv(path, rows, seed=seed)
    return path.read_bytes(), stats


LEAD_HEADER = ["E-mail", "Téléphone", "Société", "Ville"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A UTF-8 `;` file of these rows."""
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=";").writerows([header, *rows])
    return path


def phone(i: int) -> str:
    """A valid French mobile number, unique per i, as a person types it: 06 12 xx xx xx."""
    digits = f"0612{i:06d}"
    return " ".join(digits[j : j + 2] for j in range(0, 10, 2))


def e164(i: int) -> str:
    return f"+33612{i:06d}"


def lead_rows(keys: Any, *, company: str = "ACME") -> list[list[str]]:
    """Rows of LEAD_HEADER with email and phone, a phone-only row every 5th key, an invalid
    row every 11th."""
    rows = []
    for i in keys:
        if i % 11 == 0:
            rows.append(["", "inconnu", company, f"Ville {i}"])
        elif i % 5 == 0:
            rows.append(["", phone(i), company, f"Ville {i}"])
        else:
            rows.append([f"Lead{i}@Example.fr", phone(i), company, f"Ville {i}"])
    return rows


HEADER_FR = "Civilité;Prénom;Nom;E-mail;Téléphone;Société;Commentaire"
MAPPING_FR = ["civility", "first_name", "last_name", "email", "phone", "company", "notes"]
BIG = 200_000  # characters: above the csv module's default field limit (131,072)


@dataclass
class Expected:
    """What a generated file holds, row by row, by construction."""

    rows: int = 0
    invalid: int = 0
    duplicates: int = 0
    errors: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)


def edge_case_file(n: int = 60, *, big_row: int | None = None) -> tuple[bytes, Expected]:
    """A cp1252 `;` file with every shape a parse slice must get right, cycling over ten
    kinds of rows: CRLF, LF and lone-CR line ends; quoted delimiters, quotes and line
    breaks; NBSP around values; short and long ragged rows; blank lines (empty, spaces,
    delimiters only, NBSP only); no contact; a bad email; in-file duplicates; no final
    newline; and optionally a field of BIG characters."""
    exp = Expected()
    out = [HEADER_FR + "\r\n"]
    emails: list[str] = []
    for i in range(n):
        phone = f"0612{i:06d}"
        email = f"lea.martin{i}@exemple.fr"
        kind = i % 10
        end = "\n" if i % 3 == 0 else "\r\n"
        comment = "Client fidèle — 1 200 €" if i % 4 == 0 else ""
        if big_row is not None and i == big_row:
            comment = ("é" * 99 + "a") * (BIG // 100)
        if kind == 0:
            line = f"M.;Léa;Martin;{email};{phone};Bœuf & Cie;{comment}"
            emails.append(email)
        elif kind == 1:
            line = f'Mme;\xa0Zoé\xa0;Noël;{email};{phone};"Martin; Associés";{comment}'
        elif kind == 2:
            line = f'M.;Jérôme;Lefèvre;{email};{phone};"Le ""Petit"" Café";"Rappeler\r\nen août;\nvite"'
        elif kind == 3:
            line = f"Mme;Hélène;Dupont;{email};{phone}"  # short: padded
        elif kind == 4:
            line = f"M.;Trop;Long;{email};{phone};Société;{comment};en trop"
            exp.invalid += 1
            exp.errors["malformed_row"] += 1
        elif kind == 5:
            line = f"M.;Assez;Long;{email};{phone};;{comment};;"  # long, but only empty extra cells
        elif kind == 6:
            line = f"Mme;Sans;Contact;à voir;inconnu;Rien SA;{comment}"
            exp.invalid += 1
            exp.errors.update(["no_contact", "invalid_email", "invalid_phone"])
        elif kind == 7:
            line = f"M.;Mauvais;Mail;jean.dupont@;{phone};;{comment}"
            exp.warnings["invalid_email"] += 1
        elif kind == 8:
            line = f"M.;Léa;Martin;{emails[-1].upper()};0781{i:06d};;doublon"
            exp.duplicates += 1
        else:
            out.append(["\r\n", "   \n", ";;;;;;\r\n", "\xa0;\xa0\n"][i // 10 % 4])  # blank: not a row
            line = f";;Mobile;;+33 6 12 {i:02d} 00 00;;"
            end = "\r"  # a lone CR ends this one
        exp.rows += 1
        out.append(line + end)
    text = "".join(out).rstrip("\r\n")  # no final newline
    return text.encode("cp1252"), exp


def assert_matches(row: dict[str, Any], exp: Expected) -> None:
    """The job's counts are the file's, by construction."""
    assert row["total_rows"] == exp.rows
    assert row["invalid_rows"] == exp.invalid
    assert row["valid_rows"] == exp.rows - exp.invalid
    assert row["duplicate_rows"] == exp.duplicates
    assert row["error_counts"] == dict(exp.errors)
    assert row["warning_counts"] == dict(exp.warnings)


def add_other_org(conn: psycopg.Connection) -> tuple[uuid.UUID, tuple[Any, str, str]]:
    """Another organization with one member (its owner): the org's id, and the member as
    Api takes it."""
    org, user = uuid.uuid4(), uuid.uuid4()
    with conn.transaction():
        conn.execute("insert into organizations (id, name) values (%s, 'Autre')", (org,))
        conn.execute(
            "insert into organization_members (organization_id, user_id, email, role) values (%s, %s, %s, 'owner')",
            (org, user, "autre@other.test"),
        )
    return org, (user, "autre@other.test", "owner")
