"""The statuses of an import job: the schema's import_status enum.

Which status may follow which is lib/jobs.py's (the state machine); in which ones each
phase's slices run is lib/phases.py's. Both import this module, which imports neither.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "pending"
    VALIDATING = "validating"
    PARSING = "parsing"
    READY = "ready"
    COMMITTING = "committing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVERTING = "reverting"
    REVERTED = "reverted"
