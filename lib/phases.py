"""What one slice of each phase does; lib/slices.py runs them all the same way."""

from __future__ import annotations

from lib import commit_slice, parse_slice, revert_slice
from lib.slices import Phase

PHASES: dict[str, Phase] = {
    "parse": parse_slice.run_slice,
    "commit": commit_slice.run_slice,
    "revert": revert_slice.run_slice,
}
