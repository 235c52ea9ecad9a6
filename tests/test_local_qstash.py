"""The local QStash against the real `qstash` SDK and a real HTTP endpoint (no mocks).

The endpoint verifies every request with `qstash.Receiver`, the way the service does.
"""

import base64
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
import qstash
from qstash.errors import QStashError, SignatureError
from qstash.receiver import verify_with_key

from lib.local.qstash_server import Faults, LocalQStash, backoff, parse_duration

TOKEN = "test-token"
# 32-byte keys like real ones: PyJWT warns (an error under -W error) on shorter HMAC keys.
CURRENT = "sig_testCurrentSigningKey0000000"
NEXT = "sig_testNextSigningKey0000000000"

Reply = tuple[int, dict[str, str], bytes]


@dataclasses.dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    claims: dict
    started: float
    finished: float = 0.0
    status: int = 0


class Endpoint:
    """A tiny real HTTP app standing in for the service's endpoints.

    Every request is verified with `qstash.Receiver` against the URL it was sent to
    (a bad signature answers 401 and is recorded in `rejected`), then answered by the
    behaviour set for its path: `behave(path, fn)`, fn(attempt_number) -> (status, headers, body).
    """

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.rejected: list[str] = []
        self.behaviours: dict[str, Callable[[int], Reply]] = {}
        self.delay = 0.0  # seconds each request takes, to observe concurrency
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def behave(self, path: str, fn: Callable[[int], Reply]) -> None:
        self.behaviours[path] = fn

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        signature = req.headers.get("Upstash-Signature", "")
        try:
            qstash.Receiver(CURRENT, NEXT).verify(signature=signature, body=body.decode(), url=self.url(req.path))
        except SignatureError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            status, headers, reply = 401, {}, b"bad signature"
        else:
            claims = jwt.decode(signature, options={"verify_signature": False})
            hit = Hit(req.path, dict(req.headers.items()), body, claims, time.monotonic())
            with self.lock:
                self.hits.append(hit)
                attempt = len(self.at(req.path))
            time.sleep(self.delay)
            status, headers, reply = self.behaviours.get(req.path, lambda n: (200, {}, b"ok"))(attempt)
            hit.finished, hit.status = time.monotonic(), status
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(reply)))
        req.end_headers()
        req.wfile.write(reply)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()
    assert ep.rejected == [], "every delivery must verify with qstash.Receiver"


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[LocalQStash, qstash.QStash]]]:
    """Start a local QStash (fast retries unless overridden) and an SDK client bound to it."""
    running: list[tuple[LocalQStash, qstash.QStash]] = []

    def _start(**options: object) -> tuple[LocalQStash, qstash.QStash]:
        options = {"retry_base": 0.01, "retry_cap": 0.05, **options}
        server = LocalQStash(TOKEN, CURRENT, NEXT, **options)  # type: ignore[arg-type]
        client = qstash.QStash(TOKEN, base_url=server.start())
        running.append((server, client))
        return server, client

    yield _start
    for server, client in running:
        server.stop()
        client.http._client.close()  # the SDK never closes its httpx client; avoid a ResourceWarning


def publish(client: qstash.QStash, url: str, body: object = None, **options: object):
    return client.message.publish_json(url=url, body=body or {"job": "j1"}, **options)  # type: ignore[arg-type]


# -- signing and the publish API ------------------------------------------------------------


def test_delivery_is_signed_and_carries_qstash_headers(endpoint, start):
    server, client = start()
    url = endpoint.url("/api/slice?x=1")
    res = publish(client, url, {"job": "j1", "slice": 3}, headers={"X-Trace": "abc"})
    assert res.message_id.startswith("msg_") and res.deduplicated is False
    assert server.wait_idle(5)

    [hit] = endpoint.hits
    assert json.loads(hit.body) == {"job": "j1", "slice": 3}
    verify_with_key(CURRENT, signature=hit.headers["Upstash-Signature"], body=hit.body.decode(), url=url)
    assert hit.claims["iss"] == "Upstash" and hit.claims["sub"] == url
    assert hit.claims["exp"] - hit.claims["iat"] == 300 and hit.claims["jti"].startswith("jwt_")
    assert hit.headers["Upstash-Message-Id"] == res.message_id
    assert hit.headers["Upstash-Retried"] == "0"
    assert hit.headers["X-Trace"] == "abc"
    assert hit.headers["Content-Type"] == "application/json"
    assert server.stats.delivered == 1 and server.stats.published == 1


def test_sign_with_next_key(endpoint, start):
    server, client = start(sign_with="next")
    url = endpoint.url("/api/slice")
    publish(client, url)
    assert server.wait_idle(5)
    [hit] = endpoint.hits  # the Receiver fixture accepted it through its next-key fallback
    signature = hit.headers["Upstash-Signature"]
    verify_with_key(NEXT, signature=signature, body=hit.body.decode(), url=url)
    with pytest.raises(SignatureError):
        verify_with_key(CURRENT, signature=signature, body=hit.body.decode(), url=url)


def test_wrong_token_is_rejected(endpoint, start):
    server, _ = start()
    wrong = qstash.QStash("not-the-token", base_url=server.base_url)
    with pytest.raises(QStashError, match="401"):
        publish(wrong, endpoint.url("/api/slice"))
    wrong.http._client.close()
    anonymous = httpx.post(f"{server.base_url}/v2/publish/{endpoint.url('/api/slice')}", content=b"{}")
    assert anonymous.status_code == 401
    assert server.wait_idle(5) and endpoint.hits == [] and server.stats.published == 0


def test_deduplication_id_delivers_once(endpoint, start):
    server, client = start()
    url = endpoint.url("/api/slice")
    first = publish(client, url, {"slice": 1}, deduplication_id="job1-parse-1-1")
    second = publish(client, url, {"slice": 1}, deduplication_id="job1-parse-1-1")
    assert second.deduplicated is True and second.message_id == first.message_id
    publish(client, url, {"slice": 2}, content_based_deduplication=True)
    again = publish(client, url, {"slice": 2}, content_based_deduplication=True)
    assert again.deduplicated is True
    publish(client, url, {"slice": 3}, content_based_deduplication=True)
    assert server.wait_idle(5)
    assert sorted(json.loads(h.body)["slice"] for h in endpoint.hits) == [1, 2, 3]
    assert server.stats.deduplicated == 2


def test_delay_and_not_before(endpoint, start):
    server, client = start()
    t0 = time.monotonic()
    publish(client, endpoint.url("/api/delayed"), delay="1s")
    not_before = int(time.time()) + 1
    publish(client, endpoint.url("/api/not-before"), not_before=not_before)
    assert not server.wait_idle(0.3), "a delayed message keeps the server busy"
    assert endpoint.at("/api/delayed") == []
    assert server.wait_idle(5)
    [delayed] = endpoint.at("/api/delayed")
    assert delayed.started - t0 >= 1.0
    [hit] = endpoint.at("/api/not-before")
    assert hit.claims["iat"] >= not_before


def test_pause_holds_deliveries_until_resume(endpoint, start):
    server, client = start()
    server.pause()
    publish(client, endpoint.url("/api/held"), {"slice": 1})
    publish(client, endpoint.url("/api/held"), {"slice": 2})
    assert not server.wait_idle(0.3), "held messages keep the server busy"
    assert endpoint.hits == [] and server.stats.published == 2
    server.resume()
    assert server.wait_idle(5)
    assert sorted(json.loads(h.body)["slice"] for h in endpoint.at("/api/held")) == [1, 2]


# -- retries --------------------------------------------------------------------------------


def test_retries_with_backoff_until_success(endpoint, start):
    server, client = start(retry_base=0.2, retry_cap=0.6)
    endpoint.behave("/api/flaky", lambda n: (500, {}, b"boom") if n <= 2 else (200, {}, b"ok"))
    publish(client, endpoint.url("/api/flaky"), retries=3)
    assert server.wait_idle(5)
    hits = endpoint.at("/api/flaky")
    assert [h.headers["Upstash-Retried"] for h in hits] == ["0", "1", "2"]
    gaps = [b.started - a.finished for a, b in itertools.pairwise(hits)]
    assert gaps[0] >= backoff(0, 0.2, 0.6) - 0.02  # 0.2 s
    assert gaps[1] >= backoff(1, 0.2, 0.6) - 0.02  # 0.2 * e**2.5, capped at 0.6 s
    assert server.stats.failures == 2 and server.stats.delivered == 1 and server.stats.dead == 0


def test_retry_after_header_sets_the_next_attempt(endpoint, start):
    server, client = start(retry_base=0.01, retry_cap=2.0)
    endpoint.behave("/api/limited", lambda n: (429, {"Retry-After": "1"}, b"") if n == 1 else (200, {}, b""))
    publish(client, endpoint.url("/api/limited"))
    assert server.wait_idle(5)
    first, second = endpoint.at("/api/limited")
    assert 0.95 <= second.started - first.finished < 1.8


def test_retries_exhausted_send_the_failure_callback(endpoint, start):
    server, client = start()
    endpoint.behave("/api/broken", lambda n: (500, {"X-Why": "db down"}, b"database unavailable"))
    url, callback_url = endpoint.url("/api/broken"), endpoint.url("/api/failed")
    res = publish(client, url, {"job": "j9"}, retries=2, failure_callback=callback_url)
    assert server.wait_idle(5)
    assert len(endpoint.at("/api/broken")) == 3  # first attempt + 2 retries

    [cb] = endpoint.at("/api/failed")
    assert cb.claims["sub"] == callback_url  # signed for the callback URL
    payload = json.loads(cb.body)
    assert payload["status"] == 500
    assert base64.b64decode(payload["body"]) == b"database unavailable"
    assert payload["header"]["X-Why"] == ["db down"]
    assert payload["retried"] == 2 and payload["maxRetries"] == 2
    assert payload["sourceMessageId"] == res.message_id
    assert payload["url"] == url and payload["method"] == "POST"
    assert json.loads(base64.b64decode(payload["sourceBody"])) == {"job": "j9"}
    assert payload["sourceHeader"]["Content-Type"] == ["application/json"]
    assert payload["dlqId"] and payload["createdAt"] <= payload["notBefore"]
    assert server.stats.dead == 1 and server.stats.callbacks == 1


def test_non_retryable_489_stops_at_once(endpoint, start):
    server, client = start()
    endpoint.behave("/api/bad", lambda n: (489, {"Upstash-NonRetryable-Error": "true"}, b"bad job"))
    endpoint.behave("/api/plain-489", lambda n: (489, {}, b"") if n == 1 else (200, {}, b""))
    publish(client, endpoint.url("/api/bad"), retries=5, failure_callback=endpoint.url("/api/failed"))
    publish(client, endpoint.url("/api/plain-489"), retries=5)
    assert server.wait_idle(5)
    assert len(endpoint.at("/api/bad")) == 1
    assert len(endpoint.at("/api/plain-489")) == 2, "489 without the header is an ordinary failure"
    [cb] = endpoint.at("/api/failed")
    assert json.loads(cb.body)["status"] == 489


def test_connection_error_is_retried(endpoint, start):
    server, client = start()
    with socket_closed_port() as dead_url:
        publish(client, dead_url, retries=1, failure_callback=endpoint.url("/api/failed"))
        assert server.wait_idle(5)
    assert server.stats.deliveries == 3  # 2 to the dead port, then the callback
    [cb] = endpoint.at("/api/failed")
    assert json.loads(cb.body)["retried"] == 1


class socket_closed_port:
    """A URL on a port nobody listens on (bound, then released)."""

    def __enter__(self) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        port = server.server_address[1]
        server.server_close()
        return f"http://127.0.0.1:{port}/api/gone"

    def __exit__(self, *exc: object) -> None:
        pass


# -- fault injection ------------------------------------------------------------------------


def test_duplicate_fault_delivers_twice_concurrently(endpoint, start):
    server, client = start(faults="duplicate=1")
    endpoint.delay = 0.3
    res = publish(client, endpoint.url("/api/slice"))
    assert server.wait_idle(5)
    a, b = endpoint.hits
    assert a.headers["Upstash-Message-Id"] == b.headers["Upstash-Message-Id"] == res.message_id
    assert a.started < b.finished and b.started < a.finished, "the copies overlap in time"
    assert server.stats.delivered == 1


def test_lose_response_fault_retries_after_the_endpoint_ran(endpoint, start):
    # seed 1: the first draw (0.13) loses the response, the second (0.85) does not.
    server, client = start(faults="lose_response=0.5,seed=1")
    publish(client, endpoint.url("/api/slice"), retries=0)
    assert server.wait_idle(5)
    first, second = endpoint.hits
    assert first.status == 200, "the endpoint ran to completion the first time"
    assert second.headers["Upstash-Retried"] == "1"
    assert server.stats.injected == 1 and server.stats.delivered == 1 and server.stats.dead == 0


def test_error_fault_retries_without_reaching_the_endpoint(endpoint, start):
    # seed 1: the first draw (0.13) fails the attempt before it is sent.
    server, client = start(faults="error=0.5,seed=1")
    publish(client, endpoint.url("/api/slice"), retries=0)
    assert server.wait_idle(5)
    [hit] = endpoint.hits
    assert hit.headers["Upstash-Retried"] == "1", "the first attempt never reached the endpoint"
    assert server.stats.injected == 1 and server.stats.delivered == 1


def test_delay_fault_delays_and_reorders(endpoint, start):
    server, client = start(faults="delay_ms=100-400,seed=3")
    t0 = time.monotonic()
    for i in range(8):
        publish(client, endpoint.url("/api/slice"), {"i": i})
    assert server.wait_idle(5)
    assert min(h.started for h in endpoint.hits) - t0 >= 0.1
    order = [json.loads(h.body)["i"] for h in sorted(endpoint.hits, key=lambda h: h.started)]
    assert sorted(order) == list(range(8)) and order != list(range(8))


def test_publish_error_fault_fails_the_sdk_call(endpoint, start):
    server, client = start(faults="publish_error=1")
    with pytest.raises(QStashError, match="500"):
        publish(client, endpoint.url("/api/slice"))
    assert server.wait_idle(1) and endpoint.hits == []
    assert server.stats.publish_errors == 1 and server.stats.published == 0


def test_faults_never_drop_a_message(endpoint, start):
    server, client = start(faults="duplicate=0.5,lose_response=0.4,error=0.4,delay_ms=0-50,seed=7")
    for i in range(20):
        publish(client, endpoint.url("/api/slice"), {"i": i}, retries=0)
    assert server.wait_idle(10)
    assert {json.loads(h.body)["i"] for h in endpoint.hits} == set(range(20))
    assert server.stats.delivered == 20 and server.stats.dead == 0
    assert server.stats.injected > 0


def test_fault_spec_parsing():
    faults = Faults.parse("duplicate=0.5, lose_response=0.2,error=0.1,delay_ms=0-300,publish_error=0.1,seed=7")
    assert faults == Faults(0.5, 0.2, 0.1, 0.1, (0, 300), 7)
    assert Faults.parse(None) == Faults() == Faults.parse("")
    with pytest.raises(ValueError):
        Faults.parse("explode=1")
    with pytest.raises(ValueError):
        Faults.parse("error=1")  # would retry forever


def test_parse_duration():
    assert parse_duration("10s") == 10 and parse_duration("2m") == 120
    assert parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5
    assert parse_duration("7") == 7
    with pytest.raises(ValueError):
        parse_duration("soon")


# -- a durable queue -------------------------------------------------------------------------


def test_stored_messages_survive_a_restart_and_go_to_the_new_app_url(endpoint, start, tmp_path):
    """What QStash accepted is delivered by the next server on the same store, with its
    retry count and its due time, to the app's URL of the day (and signed for it); its
    deduplication ids hold across the restart."""
    store = tmp_path / "qstash.sqlite3"
    old_app = Endpoint()
    try:
        old_app.behave("/api/slice", lambda n: (500, {}, b"not now"))
        first, client = start(store=store, app_url=old_app.base, retry_base=1.0, retry_cap=1.0)
        publish(client, old_app.url("/api/slice"), {"slice": 1}, deduplication_id="s1", retries=3)
        publish(client, old_app.url("/api/later"), {"slice": 2}, delay="1s")
        publish(client, "http://127.0.0.1:9/elsewhere", {"slice": 3}, delay="1s", retries=0)
        wait_until_hits(old_app, 1)
        first.stop()
        assert [h.path for h in old_app.hits] == ["/api/slice"]  # tried once, failed, stored for later
    finally:
        old_app.close()

    second, client2 = start(store=store, app_url=endpoint.base)
    again = publish(client2, endpoint.url("/api/slice"), {"slice": 1}, deduplication_id="s1")
    assert again.deduplicated is True
    assert second.wait_idle(10)
    hits = {h.path: h for h in endpoint.hits}
    assert hits.keys() == {"/api/slice", "/api/later"}  # verified by the Receiver for the new URL
    assert hits["/api/slice"].headers["Upstash-Retried"] == "1"
    assert hits["/api/slice"].claims["sub"] == endpoint.url("/api/slice")
    assert [json.loads(m.body)["slice"] for m in second.dead_letters] == [3]  # not an app URL: kept as is


def test_two_servers_on_one_store_deliver_each_message_once(endpoint, start, tmp_path):
    store = tmp_path / "qstash.sqlite3"
    endpoint.delay = 0.02
    servers = [start(store=store, app_url=endpoint.base) for _ in range(2)]
    for i in range(40):
        publish(servers[i % 2][1], endpoint.url("/api/slice"), {"slice": i})
    assert all(server.wait_idle(20) for server, _ in servers)
    slices = sorted(json.loads(h.body)["slice"] for h in endpoint.hits)
    assert slices == list(range(40))
    assert sum(server.stats.delivered for server, _ in servers) == 40


def wait_until_hits(ep: Endpoint, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while len(ep.hits) < n:
        assert time.monotonic() < deadline, f"{len(ep.hits)} hits, waited for {n}"
        time.sleep(0.01)
    time.sleep(0.1)  # its failure is recorded in the store
