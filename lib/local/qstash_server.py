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

Fault injection (`faults="duplicate=0.5,lose_response=0.2,error=0.1,delay_ms=0-300,
publish_error=0.1,seed=7"`) exercises the at-least-once contract. Injected faults never
count against a message's retry budget, so a run with faults alone always ends in
delivery; only real endpoint failures consume retries.
"""

import base64
import dataclasses
import email.utils
import hashlib
import heapq
import itertools
import json
import logging
import math
import random
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt

log = logging.getLogger("lib.local.qstash")

PUBLISH_PREFIX = "/v2/publish/"
SIGNATURE_LIFETIME = 300  # seconds, as real QStash
RETRY_AFTER_HEADERS = ("Retry-After", "X-RateLimit-Reset", "X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


class LocalQStash:
    """Publish API plus a delivery scheduler (heap by due time, small thread pool)."""

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
        self.dead_letters: list[Message] = []
        self._rng = random.Random(self.faults.seed)
        self._cond = threading.Condition()  # guards the heap, counters, stats and RNG
        self._heap: list[tuple[float, int, Message]] = []
        self._seq = itertools.count()  # tie-breaker so equal due times keep publish order
        self._inflight = 0
        self._dedup: dict[str, str] = {}  # deduplication id -> message id, for the process life
        self._stopping = False
        self._paused = False
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
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
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join()
        self._pool.shutdown(wait=True)
        self._http.close()
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
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and not self._inflight, timeout)

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
        with self._cond:
            if dedup_id is not None and dedup_id in self._dedup:
                self.stats.deduplicated += 1
                existing = self._dedup[dedup_id]
                log.info("action=deduplicated message_id=%s dedup_id=%s", existing, dedup_id)
                return 202, {"messageId": existing, "url": destination, "deduplicated": True}
            if dedup_id is not None:
                self._dedup[dedup_id] = msg.id
            self.stats.published += 1
            self._schedule(msg, due)
        log.info("action=publish message_id=%s url=%s delay=%.3f", msg.id, msg.url, due - now)
        return 201, {"messageId": msg.id, "url": destination}

    # -- scheduling ------------------------------------------------------------------------

    def _chance(self, p: float) -> bool:
        # No draw when a fault is off, so a seed replays the same faults for the same traffic.
        return p > 0 and self._rng.random() < p

    def _schedule(self, msg: Message, due: float) -> None:
        """Queue an attempt at `due` (caller holds the lock); delay_ms faults reorder messages."""
        low, high = self.faults.delay_ms
        if high > 0:
            due += self._rng.uniform(low, high) / 1000
        heapq.heappush(self._heap, (due, next(self._seq), msg))
        self._cond.notify_all()

    def _schedule_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._heap or self._paused:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.time()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, msg = heapq.heappop(self._heap)
                self._inflight += 1
                self._pool.submit(self._attempt, msg)

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
        headers = {
            **msg.headers,
            "User-Agent": "Upstash-QStash",
            "Upstash-Message-Id": msg.id,
            "Upstash-Retried": str(msg.retried),
            "Upstash-Signature": sign(self.signing_key, msg.url, msg.body),
        }
        try:
            resp = self._http.request(msg.method, msg.url, content=msg.body, headers=headers, timeout=msg.timeout)
        except Exception as exc:  # refused, timed out, bad URL...: all a failed attempt, as for QStash
            with self._cond:
                self.stats.deliveries += 1
            log.warning("action=deliver_error message_id=%s error=%r", msg.id, exc)
            return Outcome(ok=False, body=repr(exc).encode())
        with self._cond:
            self.stats.deliveries += 1
            if lose:
                self.stats.injected += 1
        log.info("action=deliver message_id=%s status=%d url=%s", msg.id, resp.status_code, msg.url)
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
        with self._cond:
            msg.retried += 1
            if out.injected:  # faults are free: retry soon, without touching the budget
                self._schedule(msg, time.time() + self.retry_base)
                return
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
        """Dead-letter `msg` and enqueue its failure callback (caller holds the lock)."""
        self.stats.dead += 1
        self.dead_letters.append(msg)
        log.warning("action=give_up message_id=%s status=%d retried=%d", msg.id, out.status, msg.charged)
        if not msg.failure_callback or msg.is_callback:
            return
        now = time.time()
        body = {
            "status": out.status,
            "header": out.headers,
            "body": base64.b64encode(out.body).decode(),
            "retried": msg.charged,
            "maxRetries": msg.max_retries,
            "dlqId": f"{int(now * 1000)}-{len(self.dead_letters)}",
            "sourceMessageId": msg.id,
            "url": msg.url,
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
        self.stats.callbacks += 1
        self._schedule(callback, now)
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
