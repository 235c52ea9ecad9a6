"""A QStash-compatible server for the local stack.

The real `qstash` SDK talks to it through `QSTASH_URL`, and it delivers messages the way
QStash does: a real HTTP request to the destination, signed with an `Upstash-Signature`
JWT that `qstash.Receiver` accepts, retried with capped exponential backoff until a 2xx,
then (when retries run out) a signed failure callback.

Supported publish API: `POST /v2/publish/{url}` with `Upstash-Deduplication-Id`,
`Upstash-Content-Based-Deduplication`, `Upstash-Delay`, `Upstash-Not-Before`,
`Upstash-Retries`, `Upstash-Timeout`, `Upstash-Method`, `Upstash-Forward-*`,
`Upstash-Failure-Callback`, `Upstash-Failure-Callback-Retries` and
`Upstash-Failure-Callback-Forward-*`. Queues, URL groups, schedules and success
callbacks are not implemented.

Like QStash, it keeps what it accepted: with a `store` file (the local stack's
`LOCAL_DATA_DIR/qstash.sqlite3`), every message, its retry state and due time, and every
deduplication id are written before the publish is answered, and delivered by the next
process that opens the store if this one dies. Processes sharing a store claim each message
before delivering it (see QueueStore), so one queue is never delivered twice at once.

Fault injection (`faults="duplicate=0.5,lose_response=0.2,error=0.1,delay_ms=0-300,
publish_error=0.1,seed=7"`) exercises the at-least-once contract. Injected faults never
count against a message's retry budget, so a run with faults alone always ends in
delivery; only real endpoint failures consume retries.
"""

import base64
import contextlib
import dataclasses
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt

log = logging.getLogger("lib.local.qstash")

PUBLISH_PREFIX = "/v2/publish/"
SIGNATURE_LIFETIME = 300  # seconds, as real QStash
RETRY_AFTER_HEADERS = ("Retry-After", "X-RateLimit-Reset", "X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
DEDUP_SECONDS = 86400.0  # how long a deduplication id is remembered (the store prunes older ones)
LEASE_MARGIN = 10.0  # a claim outlives its delivery's timeout by this much
POLL_SECONDS = 0.1  # how often the scheduler looks for messages other processes stored


def parse_duration(text: str) -> float:
    """Seconds in a QStash duration: `10s`, `2m`, `1h30m`, `500ms`; a bare number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def backoff(retried: int, base: float, cap: float) -> float:
    """Delay before the next retry: `min(cap, base * e ** (2.5 * retried))`.

    Real QStash uses `min(86400, e ** (2.5 * n))` seconds; `base` and `cap` scale it down
    for local use. `retried` is how many retries were already made (0 before the first).
    """
    return min(cap, base * math.exp(2.5 * retried))


@dataclasses.dataclass
class Faults:
    """Injected faults, each a probability per attempt (publish_error: per publish)."""

    duplicate: float = 0.0
    lose_response: float = 0.0
    error: float = 0.0
    publish_error: float = 0.0
    delay_ms: tuple[int, int] = (0, 0)
    seed: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> "Faults":
        faults = cls()
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            key, _, value = item.partition("=")
            key = key.strip()
            if key == "seed":
                faults.seed = int(value)
            elif key == "delay_ms":
                low, _, high = value.partition("-")
                faults.delay_ms = (int(low), int(high or low))
            elif key in ("duplicate", "lose_response", "error", "publish_error"):
                p = float(value)
                # error and lose_response at 1.0 would retry a message forever.
                limit_ok = p < 1 if key in ("error", "lose_response") else p <= 1
                if not (p >= 0 and limit_ok):
                    raise ValueError(f"fault probability out of range: {item!r}")
                setattr(faults, key, p)
            else:
                raise ValueError(f"unknown fault: {key!r}")
        return faults


@dataclasses.dataclass
class Stats:
    published: int = 0
    deduplicated: int = 0
    publish_errors: int = 0
    deliveries: int = 0  # HTTP requests that reached (or tried to reach) an endpoint
    delivered: int = 0  # messages acknowledged with a 2xx
    failures: int = 0  # real failed attempts (non-2xx, connection error, timeout)
    injected: int = 0  # attempts spoiled by fault injection
    dead: int = 0  # messages given up on
    callbacks: int = 0  # failure callbacks enqueued


@dataclasses.dataclass
class Message:
    id: str
    url: str
    body: bytes
    headers: dict[str, str]  # sent to the destination as they are
    method: str = "POST"
    max_retries: int = 3
    timeout: float = 30.0
    failure_callback: str | None = None
    callback_retries: int = 3
    callback_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    is_callback: bool = False
    created_at: int = 0  # unix ms
    not_before: int = 0  # unix ms
    caller_ip: str = ""
    retried: int = 0  # failed attempts so far, faults included: the `Upstash-Retried` header
    charged: int = 0  # retries consumed by real failures: compared with max_retries


@dataclasses.dataclass
class Outcome:
    ok: bool
    status: int = 0
    headers: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    retry_after: float | None = None
    non_retryable: bool = False
    injected: bool = False


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(key: str, url: str, body: bytes) -> str:
    """The `Upstash-Signature` JWT (HS256), with the claims real QStash puts in it.

    Keys as long as real ones (32 bytes or more, as the local stack's are): PyJWT warns on
    shorter HMAC keys, here and in the Receiver that verifies the signature.
    """
    now = int(time.time())
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + SIGNATURE_LIFETIME,
        "nbf": now,
        "iat": now,
        "jti": new_id("jwt"),
        # Padded base64url of the body's SHA-256, as in QStash's own tokens.
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds asked for by a `Retry-After`-like header: seconds, duration or HTTP date."""
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, parse_duration(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                continue
    return None


class QueueStore:
    """The queue's messages, deduplication ids and claims, in SQLite: in memory (path None),
    or in a file that survives the process (the local stack's `LOCAL_DATA_DIR/qstash.sqlite3`).

    Several processes may open one file: a message is delivered by whoever claims it, and a
    claim holds until its owner releases it, its lease runs out, or its owner's process is
    gone (a crash), so two processes never deliver one message at the same time. Each change
    is one SQLite transaction (WAL journal): a publish is answered only once it is stored.
    """

    SCHEMA = """
    create table if not exists messages (
        seq integer primary key autoincrement,
        id text not null unique,
        due real not null,
        data text not null,
        state text not null default 'pending',
        owner text,
        owner_pid integer,
        lease_until real
    );
    create index if not exists messages_due on messages (state, due, seq);
    create table if not exists dedup (id text primary key, message_id text not null, at real not null);
    """

    def __init__(self, path: Path | None = None, *, dedup_seconds: float = DEDUP_SECONDS) -> None:
        self.path = path
        self.owner = new_id("owner")
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.create_function("alive", 1, _pid_alive, deterministic=False)
        with self._lock:
            if path is not None:
                self._db.execute("pragma journal_mode = wal")
                # WAL with synchronous=normal loses nothing when a process dies (the OS keeps
                # its writes); only a power cut may lose the last transactions.
                self._db.execute("pragma synchronous = normal")
            self._db.executescript(self.SCHEMA)
        with self._transaction() as db:
            db.execute("delete from dedup where at < ?", (time.time() - dedup_seconds,))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def add(self, msg: Message, due: float, dedup_id: str | None) -> str | None:
        """Store `msg`, due at `due`; the id of the message already stored under `dedup_id`
        instead, if any (then nothing is stored)."""
        with self._transaction() as db:
            if dedup_id is not None:
                found = db.execute("select message_id from dedup where id = ?", (dedup_id,)).fetchone()
                if found is not None:
                    return str(found[0])
                db.execute("insert into dedup (id, message_id, at) values (?, ?, ?)", (dedup_id, msg.id, time.time()))
            db.execute("insert into messages (id, due, data) values (?, ?, ?)", (msg.id, due, _dump(msg)))
        return None

    def claim(self) -> Message | None:
        """The next due message nobody holds, now held by this store's owner for the time
        its delivery may take (its timeout) plus LEASE_MARGIN."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "select seq, data from messages where state = 'pending' and due <= ?"
                " and (owner is null or lease_until < ? or not alive(owner_pid)) order by due, seq limit 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            msg = _load(row[1])
            db.execute(
                "update messages set owner = ?, owner_pid = ?, lease_until = ? where seq = ?",
                (self.owner, os.getpid(), now + msg.timeout + LEASE_MARGIN, row[0]),
            )
        return msg

    def unclaim(self, msg: Message) -> None:
        """Let go of `msg` untouched (claimed, then not delivered after all)."""
        with self._transaction() as db:
            db.execute(
                "update messages set owner = null, owner_pid = null, lease_until = null where id = ? and owner = ?",
                (msg.id, self.owner),
            )

    def next_due(self) -> float | None:
        """When the next message may be claimed (a held one: when its lease runs out)."""
        with self._lock:
            row = self._db.execute(
                "select min(case when owner is null or not alive(owner_pid) then due else max(due, lease_until) end)"
                " from messages where state = 'pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def done(self, msg: Message) -> None:
        with self._transaction() as db:
            db.execute("delete from messages where id = ? and owner = ?", (msg.id, self.owner))

    def retry(self, msg: Message, due: float) -> None:
        """Release `msg` (its retry counts updated) for another attempt at `due`."""
        with self._transaction() as db:
            db.execute(
                "update messages set data = ?, due = ?, owner = null, owner_pid = null, lease_until = null"
                " where id = ? and owner = ?",
                (_dump(msg), due, msg.id, self.owner),
            )

    def dead(self, msg: Message, callback: Message | None, due: float) -> int:
        """Dead-letter `msg` and store its failure callback (due at `due`) in one transaction;
        how many dead letters the store now holds."""
        with self._transaction() as db:
            db.execute(
                "update messages set data = ?, state = 'dead', owner = null, owner_pid = null where id = ?",
                (_dump(msg), msg.id),
            )
            if callback is not None:
                db.execute("insert into messages (id, due, data) values (?, ?, ?)", (callback.id, due, _dump(callback)))
            row = db.execute("select count(*) from messages where state = 'dead'").fetchone()
        return int(row[0])

    def release(self) -> None:
        """Let go of every message this store's owner holds (when stopping)."""
        with self._transaction() as db:
            db.execute(
                "update messages set owner = null, owner_pid = null, lease_until = null where owner = ?", (self.owner,)
            )

    def pending(self) -> int:
        """Messages waiting or being delivered, by any process."""
        with self._lock:
            row = self._db.execute("select count(*) from messages where state = 'pending'").fetchone()
        return int(row[0])

    def dead_letters(self) -> list[Message]:
        with self._lock:
            rows = self._db.execute("select data from messages where state = 'dead' order by seq").fetchall()
        return [_load(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dump(msg: Message) -> str:
    data = dataclasses.asdict(msg)
    data["body"] = base64.b64encode(msg.body).decode()
    return json.dumps(data)


def _load(text: str) -> Message:
    data = json.loads(text)
    data["body"] = base64.b64decode(data["body"])
    return Message(**data)


class LocalQStash:
    """Publish API plus a delivery scheduler over a QueueStore (small thread pool).

    `store`: the path of the queue's file (LOCAL_DATA_DIR/qstash.sqlite3 on the local stack),
    kept across restarts and shared by the processes that open it; None keeps the queue in
    memory, for this process's life. `app_url`: the public base URL of the app (APP_URL); a
    destination under it is stored as a path and delivered to the `app_url` of whichever
    process delivers it, as real QStash keeps delivering to a deployment's URL whatever
    runs behind it (a stack restarted on another port still gets its messages).
    """

    def __init__(
        self,
        token: str,
        current_key: str,
        next_key: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: str | None = None,
        sign_with: str = "current",
        retry_base: float = 0.05,
        retry_cap: float = 2.0,
        default_retries: int = 3,
        delivery_timeout: float = 30.0,
        workers: int = 8,
        store: Path | None = None,
        app_url: str | None = None,
    ) -> None:
        if sign_with not in ("current", "next"):
            raise ValueError("sign_with must be 'current' or 'next'")
        self.token = token
        self.signing_key = current_key if sign_with == "current" else next_key
        self.host, self.port = host, port
        self.faults = Faults.parse(faults)
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.default_retries = default_retries
        self.delivery_timeout = delivery_timeout
        self.workers = workers
        self.stats = Stats()
        self.store_path = store
        self.app_url = app_url.rstrip("/") if app_url else None
        self._rng = random.Random(self.faults.seed)
        self._cond = threading.Condition()  # guards the counters, stats, flags and RNG
        self._inflight = 0
        self._wake = False  # a message was stored since the scheduler last looked
        self._stopping = False
        self._paused = False
        self.base_url = ""

    @property
    def dead_letters(self) -> list[Message]:
        """The messages given up on (kept in the store, as QStash's dead-letter queue)."""
        return self._store.dead_letters()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        self._store = QueueStore(self.store_path)
        self._http = httpx.Client()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="qstash-deliver")
        self._server = ThreadingHTTPServer((self.host, self.port), _PublishHandler)
        self._server.daemon_threads = True
        self._server.app = self  # type: ignore[attr-defined]
        self.base_url = f"http://{self.host}:{self._server.server_port}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), name="qstash-http", daemon=True),
            threading.Thread(target=self._schedule_loop, name="qstash-scheduler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("action=start url=%s faults=%s", self.base_url, self.faults)
        return self.base_url

    def stop(self) -> None:
        """Stop delivering (the deliveries under way end first), then stop taking publishes.
        What is stored stays for the next start on the same store. Stopping twice is fine."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._threads[1].join()
        self._pool.shutdown(wait=True)
        self._server.shutdown()
        self._server.server_close()
        self._threads[0].join()
        self._http.close()
        self._store.release()
        self._store.close()
        log.info("action=stop stats=%s", self.stats)

    def pause(self, timeout: float | None = None) -> bool:
        """Hold every delivery (like pausing a QStash queue): messages are still accepted,
        and wait, due or not, until resume(). Returns once the deliveries already under way
        are done (True), or after `timeout` seconds (False)."""
        with self._cond:
            self._paused = True
            return self._cond.wait_for(lambda: not self._inflight, timeout)

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once no message is waiting (delayed ones included) or being delivered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                busy = self._inflight > 0
            if not busy and not self._store.pending():
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            with self._cond:
                self._cond.wait(POLL_SECONDS if left is None else min(POLL_SECONDS, left))

    def __enter__(self) -> "LocalQStash":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- publish ---------------------------------------------------------------------------

    def publish(
        self, destination: str, body: bytes, headers: dict[str, str], caller_ip: str
    ) -> tuple[int, dict[str, Any]]:
        """Handle one publish request; returns (HTTP status, JSON reply)."""
        if not destination.startswith(("http://", "https://")):
            return 400, {"error": f"invalid destination url: {destination}"}
        with self._cond:
            if self._chance(self.faults.publish_error):
                self.stats.publish_errors += 1
                log.warning("action=fault_publish_error url=%s", destination)
                return 500, {"error": "injected publish error (LOCAL_QSTASH_FAULTS)"}
        h = {k.lower(): v for k, v in headers.items()}
        forward = {k[16:]: v for k, v in headers.items() if k.lower().startswith("upstash-forward-")}
        if "content-type" in h:
            forward["Content-Type"] = h["content-type"]
        try:
            now = time.time()
            due = now + parse_duration(h["upstash-delay"]) if "upstash-delay" in h else now
            if "upstash-not-before" in h:  # wins over Upstash-Delay, as in real QStash
                due = float(h["upstash-not-before"])
            msg = Message(
                id=new_id("msg"),
                url=destination,
                body=body,
                headers=forward,
                method=h.get("upstash-method", "POST").upper(),
                max_retries=int(h.get("upstash-retries", self.default_retries)),
                timeout=parse_duration(h.get("upstash-timeout", str(self.delivery_timeout))),
                failure_callback=h.get("upstash-failure-callback"),
                callback_retries=int(h.get("upstash-failure-callback-retries", self.default_retries)),
                callback_headers={
                    k[33:]: v for k, v in headers.items() if k.lower().startswith("upstash-failure-callback-forward-")
                },
                created_at=int(now * 1000),
                not_before=int(due * 1000),
                caller_ip=caller_ip,
            )
        except ValueError as exc:
            return 400, {"error": str(exc)}
        dedup_id = h.get("upstash-deduplication-id")
        if dedup_id is None and h.get("upstash-content-based-deduplication", "").lower() == "true":
            # Real QStash hashes destination, body and the headers that reach the endpoint.
            content = json.dumps([destination, body.decode("latin-1"), sorted(forward.items())])
            dedup_id = hashlib.sha256(content.encode()).hexdigest()
        if self.app_url and destination.startswith(self.app_url + "/"):
            msg.url = destination[len(self.app_url) :]  # delivered to the app_url of the day
        if self.app_url and msg.failure_callback and msg.failure_callback.startswith(self.app_url + "/"):
            msg.failure_callback = msg.failure_callback[len(self.app_url) :]
        existing = self._store.add(msg, self._jitter(due), dedup_id)
        with self._cond:
            if existing is not None:
                self.stats.deduplicated += 1
                log.info("action=deduplicated message_id=%s dedup_id=%s", existing, dedup_id)
                return 202, {"messageId": existing, "url": destination, "deduplicated": True}
            self.stats.published += 1
            self._wake = True
            self._cond.notify_all()
        log.info("action=publish message_id=%s url=%s delay=%.3f", msg.id, msg.url, due - now)
        return 201, {"messageId": msg.id, "url": destination}

    # -- scheduling ------------------------------------------------------------------------

    def _chance(self, p: float) -> bool:
        # No draw when a fault is off, so a seed replays the same faults for the same traffic.
        return p > 0 and self._rng.random() < p

    def _jitter(self, due: float) -> float:
        """`due`, plus the delay_ms fault (which also reorders messages)."""
        low, high = self.faults.delay_ms
        if high > 0:
            with self._cond:
                due += self._rng.uniform(low, high) / 1000
        return due

    def _schedule(self, msg: Message, due: float) -> None:
        """Release a message this process holds for another attempt at `due`."""
        self._store.retry(msg, self._jitter(due))
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def _resolve(self, url: str) -> str:
        """The URL to deliver to: a stored path is under this process's app_url."""
        return (self.app_url or "") + url if url.startswith("/") else url

    def _held(self) -> bool:
        """Whether deliveries are held (caller holds the lock)."""
        return self._paused or self._stopping

    def _schedule_loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if self._paused or self._inflight >= self.workers:
                    self._cond.wait(POLL_SECONDS)
                    continue
                self._wake = False
            try:
                msg = self._store.claim()
            except sqlite3.Error:
                log.exception("action=claim_failed")
                msg = None
            if msg is not None:
                with self._cond:
                    held = self._held()  # paused (or stopped) while it was being claimed
                    if not held:
                        self._inflight += 1
                if held:
                    self._store.unclaim(msg)
                else:
                    self._pool.submit(self._attempt, msg)
                continue
            due = self._store.next_due()
            wait = POLL_SECONDS if due is None else min(POLL_SECONDS, max(0.0, due - time.time()))
            with self._cond:
                if not (self._wake or self._stopping):
                    self._cond.wait(wait)

    # -- delivery --------------------------------------------------------------------------

    def _attempt(self, msg: Message) -> None:
        try:
            with self._cond:
                duplicate = self._chance(self.faults.duplicate)
            if duplicate:
                # Both copies are real, concurrent deliveries. The twin runs on its own thread
                # (not the pool) so that pool workers never wait on queued pool work.
                log.warning("action=fault_duplicate message_id=%s", msg.id)
                twin: list[Outcome] = []
                thread = threading.Thread(target=lambda: twin.append(self._send(msg)))
                thread.start()
                outcomes = [self._send(msg)]
                thread.join()
                outcomes += twin
            else:
                outcomes = [self._send(msg)]
            if any(o.ok for o in outcomes):
                self._store.done(msg)
                with self._cond:
                    self.stats.delivered += 1
                log.info("action=delivered message_id=%s retried=%d", msg.id, msg.retried)
            else:
                self._after_failure(msg, outcomes[0])
        except Exception as exc:
            # A bug here must not drop the message: count it as a failed attempt, so it is
            # retried within its budget and dead-lettered after that.
            log.exception("action=attempt_crashed message_id=%s", msg.id)
            self._after_failure(msg, Outcome(ok=False, body=repr(exc).encode()))
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def _send(self, msg: Message) -> Outcome:
        with self._cond:
            if self._chance(self.faults.error):
                self.stats.injected += 1
                log.warning("action=fault_error message_id=%s", msg.id)
                return Outcome(ok=False, status=500, body=b"injected error", injected=True)
            lose = self._chance(self.faults.lose_response)
        url = self._resolve(msg.url)
        headers = {
            **msg.headers,
            "User-Agent": "Upstash-QStash",
            "Upstash-Message-Id": msg.id,
            "Upstash-Retried": str(msg.retried),
            "Upstash-Signature": sign(self.signing_key, url, msg.body),
        }
        try:
            resp = self._http.request(msg.method, url, content=msg.body, headers=headers, timeout=msg.timeout)
        except Exception as exc:  # refused, timed out, bad URL...: all a failed attempt, as for QStash
            with self._cond:
                self.stats.deliveries += 1
            log.warning("action=deliver_error message_id=%s error=%r", msg.id, exc)
            return Outcome(ok=False, body=repr(exc).encode())
        with self._cond:
            self.stats.deliveries += 1
            if lose:
                self.stats.injected += 1
        log.info("action=deliver message_id=%s status=%d url=%s", msg.id, resp.status_code, url)
        if lose:
            log.warning("action=fault_lose_response message_id=%s", msg.id)
            return Outcome(ok=False, status=resp.status_code, injected=True)
        return Outcome(
            ok=resp.is_success,
            status=resp.status_code,
            # Go-style canonical names (X-Why), as QStash reports them.
            headers={k.title(): resp.headers.get_list(k) for k in resp.headers},
            body=resp.content,
            retry_after=retry_after(resp.headers),
            non_retryable=resp.status_code == 489
            and resp.headers.get("Upstash-NonRetryable-Error", "").lower() == "true",
        )

    def _after_failure(self, msg: Message, out: Outcome) -> None:
        msg.retried += 1
        if out.injected:  # faults are free: retry soon, without touching the budget
            self._schedule(msg, time.time() + self.retry_base)
            return
        with self._cond:
            self.stats.failures += 1
        if out.non_retryable or msg.charged >= msg.max_retries:
            self._give_up(msg, out)
            return
        # Like real QStash, a Retry-After beyond the backoff cap falls back to the backoff.
        delay = backoff(msg.charged, self.retry_base, self.retry_cap)
        if out.retry_after is not None and out.retry_after <= self.retry_cap:
            delay = out.retry_after
        msg.charged += 1
        self._schedule(msg, time.time() + delay)
        log.info("action=retry message_id=%s status=%d in=%.3fs", msg.id, out.status, delay)

    def _give_up(self, msg: Message, out: Outcome) -> None:
        """Dead-letter `msg` and enqueue its failure callback."""
        with self._cond:
            self.stats.dead += 1
        log.warning("action=give_up message_id=%s status=%d retried=%d", msg.id, out.status, msg.charged)
        now = time.time()
        if not msg.failure_callback or msg.is_callback:
            self._store.dead(msg, None, now)
            return
        body = {
            "status": out.status,
            "header": out.headers,
            "body": base64.b64encode(out.body).decode(),
            "retried": msg.charged,
            "maxRetries": msg.max_retries,
            "dlqId": f"{int(now * 1000)}-{msg.id}",
            "sourceMessageId": msg.id,
            "url": self._resolve(msg.url),
            "method": msg.method,
            "sourceHeader": {k: [v] for k, v in msg.headers.items()},
            "sourceBody": base64.b64encode(msg.body).decode(),
            "notBefore": msg.not_before,
            "createdAt": msg.created_at,
            "callerIP": msg.caller_ip,
        }
        callback = Message(
            id=new_id("msg"),
            url=msg.failure_callback,
            body=json.dumps(body).encode(),
            headers={**msg.callback_headers, "Content-Type": "application/json"},
            max_retries=msg.callback_retries,
            timeout=msg.timeout,
            is_callback=True,
            created_at=int(now * 1000),
            not_before=int(now * 1000),
            caller_ip=msg.caller_ip,
        )
        self._store.dead(msg, callback, self._jitter(now))
        with self._cond:
            self.stats.callbacks += 1
            self._wake = True
            self._cond.notify_all()
        log.info("action=failure_callback message_id=%s source=%s", callback.id, msg.id)


class _PublishHandler(BaseHTTPRequestHandler):
    server_version = "LocalQStash"

    def do_POST(self) -> None:
        app: LocalQStash = self.server.app  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != f"Bearer {app.token}":
            return self._reply(401, {"error": "Unauthorized"})
        if not self.path.startswith(PUBLISH_PREFIX):
            return self._reply(404, {"error": f"not supported by the local QStash: {self.path}"})
        destination = self.path[len(PUBLISH_PREFIX) :]
        status, reply = app.publish(destination, body, dict(self.headers.items()), self.client_address[0])
        self._reply(status, reply)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("action=http " + format, *args)
