"""Commit settings: duplicate handling, match key and owner assignment (DESIGN.md).

Checked when the frontend starts a commit (an unknown member or column is a 400 with a
clear message), stored on the job, read back by every commit slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lib.db import queries
from lib.errors import BadRequest

DUPLICATES = ("skip", "update", "create")
MATCHES = ("email_then_phone", "email", "phone", "email_or_phone")
ASSIGNMENTS = ("none", "user", "round_robin", "column")


@dataclass(frozen=True)
class CommitSettings:
    duplicates: str = "skip"
    match: str = "email_then_phone"
    assignment: str = "none"
    owners: tuple[str, ...] = ()  # user ids: one for "user", the rotation for "round_robin"
    owner_column: str | None = None  # header whose cells hold a member's email

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> CommitSettings:
        data = job["settings"].get("commit") or {}
        return cls(**{**data, "owners": tuple(data.get("owners", ()))})

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "owners": list(self.owners)}

    def owner_column_index(self, job: dict[str, Any]) -> int | None:
        return job["header"].index(self.owner_column) if self.owner_column else None

    def owner_picker(self, conn: Any, org: Any, *, first_index: int) -> OwnerPicker:
        members = {}
        if self.assignment == "column":
            members = {r["email"].lower(): r["user_id"] for r in conn.execute(queries()["org_members"], {"org": org})}
        return OwnerPicker(self, members, first_index)


@dataclass
class OwnerPicker:
    """Owners of new leads. Round-robin counts the job's inserted leads, so the owner of a
    row depends only on the rows before it: a re-run slice assigns the same owners."""

    settings: CommitSettings
    members_by_email: dict[str, Any]
    index: int
    unknown: int = field(default=0)

    def next(self, cell: str | None) -> Any:
        s = self.settings
        if s.assignment == "user":
            return s.owners[0]
        if s.assignment == "round_robin":
            owner = s.owners[self.index % len(s.owners)]
            self.index += 1
            return owner
        if s.assignment == "column":
            owner = self.members_by_email.get((cell or "").strip().lower())
            if owner is None and cell and cell.strip():
                self.unknown += 1
            return owner
        return None

    def warnings(self) -> dict[str, int]:
        return {"unknown_owner": self.unknown} if self.unknown else {}


def parse_commit_settings(conn: Any, job: dict[str, Any], body: dict[str, Any]) -> CommitSettings:
    """The settings the frontend (or the CLI) asked for, checked against the job and the org.

    `assign` takes the CLI's forms too: "none", an email, "round-robin:a@x,b@y", "column:HEADER".
    """
    duplicates = body.get("duplicates", "skip")
    match = body.get("match", "email_then_phone")
    if duplicates not in DUPLICATES:
        raise BadRequest(f"duplicates must be one of {', '.join(DUPLICATES)}")
    if match not in MATCHES:
        raise BadRequest(f"match must be one of {', '.join(MATCHES)}")
    assignment, emails, column = _assignment(body)
    owners: tuple[str, ...] = ()
    if emails:
        members = {r["email"].lower(): str(r["user_id"]) for r in conn.execute(queries()["org_members"], {"org": job["organization_id"]})}
        unknown = [e for e in emails if e.lower() not in members]
        if unknown:
            raise BadRequest(f"not a member of this organization: {', '.join(unknown)}")
        owners = tuple(members[e.lower()] for e in emails)
    if column is not None and column not in (job["header"] or []):
        raise BadRequest(f"no column {column!r} in the file; its columns are: {', '.join(job['header'] or [])}")
    return CommitSettings(duplicates, match, assignment, owners, column)


def _assignment(body: dict[str, Any]) -> tuple[str, list[str], str | None]:
    assign = body.get("assign")
    if isinstance(assign, str):
        kind, _, rest = assign.partition(":")
        if assign in ("", "none"):
            return "none", [], None
        if kind == "round-robin":
            emails = [e.strip() for e in rest.split(",") if e.strip()]
            if not emails:
                raise BadRequest("round-robin needs at least one member email")
            return "round_robin", emails, None
        if kind == "column":
            return "column", [], rest
        return "user", [assign.strip()], None
    mode = body.get("assignment", "none")
    if mode not in ASSIGNMENTS:
        raise BadRequest(f"assignment must be one of {', '.join(ASSIGNMENTS)}")
    if mode == "user":
        return "user", [str(body.get("owner") or "")], None
    if mode == "round_robin":
        emails = [str(e) for e in body.get("owners") or []]
        if not emails:
            raise BadRequest("round_robin needs owners: a list of member emails")
        return "round_robin", emails, None
    if mode == "column":
        return "column", [], str(body.get("owner_column") or "")
    return "none", [], None
