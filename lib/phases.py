"""The phases of an import, in one registry: what one slice of each does, the status its
slices run in, the cursor they advance, and the rows its progress counts.

Everything else that knows the phases reads PHASES: the statuses in which a job is active
(lib/jobs.py), the slice protocol (lib/slices.py), the messages and endpoints of QStash
(lib/queue.py, lib/routes/slices.py), and the progress the frontend and the CLI show
(`progress`). Adding a phase: docs/ARCHITECTURE.md "Adding a phase".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib import commit_slice, parse_slice, revert_slice
from lib.slice_types import SliceFunction
from lib.status import Status


@dataclass(frozen=True)
class Phase:
    name: str
    run_slice: SliceFunction  # one slice of work; lib/slices.py runs every phase the same way
    status: Status  # the job's status while the phase's slices run
    done_action: str  # the transition (lib/jobs.py) its last slice applies
    finished: Status  # the status that transition leads to
    cursor: str  # the job column its slices advance (SliceResult.cursor)
    done_rows: str  # progress: the job column counting the rows done
    expected_rows: str  # progress: the job column of the rows expected, until the phase is over
    opening_status: Status | None = None  # the status of its slice 0, when not `status`
    # A job column its opening sets: while it is null the phase is still opening (a
    # workbook's validating step spans two slices: reading the workbook, then converting).
    opened_by: str | None = None

    @property
    def statuses(self) -> frozenset[Status]:
        """The statuses in which the phase's slices run."""
        return frozenset({self.status} | ({self.opening_status} if self.opening_status else set()))

    def status_at(self, slice_no: int, opened: bool = True) -> Status:
        """The status in which slice `slice_no` of the phase runs (`opened`: the opening
        step is over, see `opened_by`)."""
        if self.opening_status and (slice_no == 0 or not opened):
            return self.opening_status
        return self.status


PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        # Slice 0 is the validating step (byte offsets: parse_cursor), then rows are staged.
        Phase(
            "parse", parse_slice.run_slice, Status.PARSING, "parsed", Status.READY,
            cursor="parse_cursor", done_rows="total_rows", expected_rows="estimated_total_rows",
            opening_status=Status.VALIDATING, opened_by="data_offset",
        ),
        Phase(
            "commit", commit_slice.run_slice, Status.COMMITTING, "committed", Status.COMPLETED,
            cursor="commit_cursor", done_rows="commit_cursor", expected_rows="total_rows",
        ),
        # The revert judges the rows in order (row numbers, like the commit's cursor).
        Phase(
            "revert", revert_slice.run_slice, Status.REVERTING, "reverted", Status.REVERTED,
            cursor="revert_cursor", done_rows="revert_cursor", expected_rows="total_rows",
        ),
    )
}  # fmt: skip


def progress(job: dict[str, Any]) -> tuple[int, int | None]:
    """Rows done and rows expected in the job's current phase; expected equals done once the
    phase is over. None while unknown (before the validating step estimated the file)."""
    phase = PHASES[job["phase"]]
    done: int = job[phase.done_rows]
    if job["status"] == phase.finished:
        return done, done
    expected: int | None = job[phase.expected_rows]
    return done, expected
