"""Commit settings: duplicate handling, match key and owner assignment (docs/ARCHITECTURE.md "Commit settings").

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

    def owner_cell_source(self, job: dict[str, Any]) -> dict[str, str | None]:
        """Where a staged row keeps the owner column's value: the lead field the column maps
        to, or, for an unmapped column, its header name in the row's custom values."""
        if not self.owner_column:
            return {"owner_field": None, "owner_header": None}
        field = job["mapping"][job["header"].index(self.owner_column)]
        return {"owner_field": field, "owner_header": None if field else self.owner_column}

    def owner_picker(self, conn: Any, org: Any, *, first_index: int) -> OwnerPicker:
        members = {}
        if self.assignment == "column":
            members = {r["email"].lower(): r["user_id"] for r in conn.execute(queries()["org_members"], {"org": org})}
        return OwnerPicker(self, members, first_index)


@dataclass
class OwnerPicker:
    """Owners of new leads.

    Round-robin gives the job's n-th inserted lead to owners[n % len(owners)], counting from
    the job's inserted_rows before the slice: the spread is within one lead of even, and a
    re-run slice (its earlier attempt rolled back, counter included) assigns the same owners
    to the same rows. Counting rows instead would be just as stable, but skipped and invalid
    rows would skew the spread. Unknown emails in an owner column leave the lead without an
    owner and count as an `unknown_owner` warning."""

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
            member = self.members_by_email.get((cell or "").strip().lower())
            if member is None and cell and cell.strip():
                self.unknown += 1
            return member
        return None

    def warnings(self) -> dict[str, int]:
        return {"unknown_owner": self.unknown} if self.unknown else {}


KEYS = ("duplicates", "match", "assignment", "owner", "owners", "owner_column", "assign")


def parse_commit_settings(conn: Any, job: dict[str, Any], body: dict[str, Any]) -> CommitSettings:
    """The settings the frontend (or the CLI) asked for, checked against the job and the org.

    The frontend sends `assignment` (none | user | round_robin | column) with `owner` (an
    email), `owners` (emails) or `owner_column` (a header); the CLI sends `assign` in its
    own forms: "none", an email, "round-robin:a@x,b@y", "column:HEADER".
    """
    unknown = sorted(set(body) - set(KEYS))
    if unknown:
        raise BadRequest(f"unknown commit setting(s): {', '.join(unknown)}; expected: {', '.join(KEYS[:-1])}")
    duplicates = body.get("duplicates", "skip")
    match = body.get("match", "email_then_phone")
    if duplicates not in DUPLICATES:
        raise BadRequest(f"duplicates must be one of {', '.join(DUPLICATES)}, not {duplicates!r}")
    if match not in MATCHES:
        raise BadRequest(f"match must be one of {', '.join(MATCHES)}, not {match!r}")
    assignment, emails, column = _assignment(body)
    owners: tuple[str, ...] = ()
    if emails:
        rows = conn.execute(queries()["org_members"], {"org": job["organization_id"]})
        members = {r["email"].lower(): str(r["user_id"]) for r in rows}
        unknown = [e for e in emails if e.lower() not in members]
        if unknown:
            raise BadRequest(f"not a member of this organization: {', '.join(unknown)}")
        owners = tuple(dict.fromkeys(members[e.lower()] for e in emails))  # each member once, in order
    header = job["header"] or []
    if column is not None and column not in header:
        raise BadRequest(f"no column {column!r} in the file; its columns are: {', '.join(header)}")
    return CommitSettings(duplicates, match, assignment, owners, column)


def _assignment(body: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """(assignment, member emails, owner column) from the body, checked for shape."""
    if "assign" in body:
        return _cli_assignment(_text(body, "assign"))
    mode = body.get("assignment", "none")
    if mode not in ASSIGNMENTS:
        raise BadRequest(f"assignment must be one of {', '.join(ASSIGNMENTS)}, not {mode!r}")
    if mode == "user":
        return "user", [_text(body, "owner", "a member's email")], None
    if mode == "round_robin":
        owners = body.get("owners")
        if not isinstance(owners, list) or not owners or not all(isinstance(e, str) and e.strip() for e in owners):
            raise BadRequest("round_robin needs owners: a non-empty list of member emails")
        return "round_robin", [e.strip() for e in owners], None
    if mode == "column":
        return "column", [], _text(body, "owner_column", "the header of the column holding owner emails")
    return "none", [], None


def _cli_assignment(assign: str) -> tuple[str, list[str], str | None]:
    kind, _, rest = assign.partition(":")
    if assign == "none":
        return "none", [], None
    if kind == "round-robin":
        emails = [e.strip() for e in rest.split(",") if e.strip()]
        if not emails:
            raise BadRequest("round-robin needs at least one member email")
        return "round_robin", emails, None
    if kind == "column":
        if not rest:
            raise BadRequest("column: needs the header of the column holding owner emails")
        return "column", [], rest
    return "user", [assign], None


def _text(body: dict[str, Any], key: str, what: str = "a text") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{key} is required: {what}")
    return value.strip()
