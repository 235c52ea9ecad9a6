"""What one slice of a phase is given and gives back: the contract between the slice
protocol (lib/slices.py) and each phase (lib/parse_slice.py, lib/commit_slice.py,
lib/revert_slice.py).

Apart from lib/slices.py so that the phases, and the registry that lists them
(lib/phases.py), sit below the protocol and the state machine, which both read the registry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from lib.config import Settings
from lib.db import Connection, Row
from lib.storage import Storage


class SliceServices(Protocol):
    """What a slice uses of the app's services (lib.services.Services)."""

    @property
    def storage(self) -> Storage: ...


@dataclass
class SliceContext:
    conn: Connection  # in the slice's transaction, the job row locked
    job: Row  # the job as locked
    settings: Settings
    services: SliceServices
    deadline: float  # time.monotonic() past which the slice stops taking rows


@dataclass
class SliceResult:
    """What a slice did: counter deltas, where its phase's cursor now is, and whether the
    phase is over.

    `done`: the phase is over, and its done transition (lib/phases.py) applies with this
    slice. `action`: a transition to apply with a slice that does not end the phase (the
    parse's "validated"). `changes` are job columns to set with either.
    """

    counts: dict[str, int] = field(default_factory=dict)
    cursor: int | None = None  # the new value of the phase's cursor column
    error_counts: dict[str, int] = field(default_factory=dict)
    warning_counts: dict[str, int] = field(default_factory=dict)
    kept_counts: dict[str, int] = field(default_factory=dict)  # revert: leads kept, by reason
    estimated_total_rows: int | None = None
    done: bool = False
    action: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)


class SliceFunction(Protocol):
    def __call__(self, ctx: SliceContext) -> SliceResult: ...


class Laps:
    """Milliseconds per step of a slice or a chunk, for the debug log (bench/commit.py reads them)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.ms[step] = 1000 * (now - self.last)
        self.last = now

    def __str__(self) -> str:
        return " ".join(f"{k}_ms={v:.1f}" for k, v in self.ms.items())
