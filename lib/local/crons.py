"""Vercel's cron, locally: the `crons` of vercel.json called on their schedule.

Vercel calls each cron's path on the deployment with `GET`, `Authorization: Bearer
$CRON_SECRET` and `User-Agent: vercel-cron/1.0`, at the minutes its five-field expression
(UTC) names. `Crons` does the same against the local app; `every` (LOCAL_CRON_SECONDS)
replaces every schedule by "every N seconds", for tests and impatient people.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

VERCEL_JSON = Path(__file__).resolve().parent.parent.parent / "vercel.json"
# minute, hour, day of month, month, day of week (0 or 7: Sunday)
_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


@dataclass(frozen=True)
class Cron:
    path: str
    schedule: str

    def matches(self, at: datetime) -> bool:
        """Whether the schedule names the minute of `at` (cron's rule: when both day fields
        are restricted, either one matching is enough)."""
        fields = self.schedule.split()
        if len(fields) != 5:
            raise ValueError(f"a cron schedule has five fields: {self.schedule!r}")
        minute, hour, dom, month, dow = (_values(f, lo, hi) for f, (lo, hi) in zip(fields, _FIELDS, strict=True))
        dow = {d % 7 for d in dow}
        weekday = at.isoweekday() % 7
        if fields[2] != "*" and fields[4] != "*":
            day_ok = at.day in dom or weekday in dow
        else:
            day_ok = at.day in dom and weekday in dow
        return at.minute in minute and at.hour in hour and at.month in month and day_ok


def _values(field: str, lo: int, hi: int) -> set[int]:
    """The numbers one cron field names: `*`, `N`, `A-B`, with `/STEP`, comma-separated."""
    out: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = lo, hi
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = int(a), int(b)
        else:
            first = int(span)
            last = hi if step_text else first
        if not (lo <= first <= last <= hi) or step < 1:
            raise ValueError(f"cron field out of range: {field!r}")
        out.update(range(first, last + 1, step))
    return out


def vercel_crons(path: Path = VERCEL_JSON) -> list[Cron]:
    """The crons that vercel.json declares (none when it has none)."""
    if not path.exists():
        return []
    crons = [Cron(c["path"], c["schedule"]) for c in json.loads(path.read_text()).get("crons", [])]
    for cron in crons:
        cron.matches(datetime.now(UTC))  # a bad schedule fails at start, not at 3 a.m.
    return crons


class Crons:
    """A thread calling `crons` on `base_url` on their schedule (or every `every` seconds)."""

    def __init__(self, base_url: str, secret: str | None, crons: list[Cron], every: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.crons = crons
        self.every = every
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-crons", daemon=True)

    def start(self) -> None:
        if self.crons:
            self._thread.start()
            log.info("crons.started crons=%s every=%s", self.crons, self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        if self.every:
            while not self._stop.wait(self.every):
                for cron in self.crons:
                    self.call(cron)
            return
        # Each minute, on the minute (UTC), as Vercel does.
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while not self._stop.wait(max(0.0, (minute - datetime.now(UTC)).total_seconds())):
            for cron in self.crons:
                if cron.matches(minute):
                    self.call(cron)
            minute += timedelta(minutes=1)
            while minute + timedelta(minutes=1) < datetime.now(UTC):  # asleep (a suspended laptop): skip
                minute += timedelta(minutes=1)

    def call(self, cron: Cron) -> int | None:
        """One call of `cron`, as Vercel makes it; its HTTP status (None when unreachable)."""
        headers = {"User-Agent": "vercel-cron/1.0"}
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        try:
            resp = httpx.get(self.base_url + cron.path, headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            log.warning("cron.unreachable path=%s error=%r", cron.path, exc)
            return None
        self.calls += 1
        log.info("cron.called path=%s status=%d", cron.path, resp.status_code)
        return resp.status_code
