"""A small Supabase Auth (GoTrue) server for the page's deployed sign-in, where the real one
cannot run here. It speaks GoTrue's protocol as supabase-js uses it (auth-js GoTrueClient and
lib/fetch.ts), for the three calls the page makes or follows:

- `POST /auth/v1/otp?redirect_to=URL` with the `apikey` header and `{"email", "create_user",
  ...}`: "sends" a magic link (kept in `links`, by email); an unknown email with
  `create_user: false` is GoTrue's 422 `otp_disabled`.
- `GET /auth/v1/verify?token=…&type=magiclink&redirect_to=URL`, the link of the email: a 303 to
  `URL#access_token=…&expires_at=…&expires_in=…&refresh_token=…&token_type=bearer&type=magiclink`.
- `POST /auth/v1/token?grant_type=refresh_token` with `{"refresh_token"}`: a new session
  (`access_token`, `token_type`, `expires_in`, `expires_at`, `refresh_token`, `user`). Refresh
  tokens rotate: a used one is refused (400 `refresh_token_already_used`).

Access tokens are HS256 JWTs like Supabase's (lib.auth.mint_token, issuer `URL/auth/v1`), signed
with the JWT secret the service verifies with, so the API takes them. Browsers reach it from
another origin, so it answers CORS preflights as Supabase does. Every request is recorded.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from lib.auth import mint_token


@dataclass
class Seen:
    """One request the server answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    at: float  # time.time()
    status: int = 0  # the answer's


class SupabaseAuth:
    def __init__(self, jwt_secret: str, anon_key: str, users: dict[str, str], expires_in: int = 3600) -> None:
        """`users`: email -> user id. `expires_in`: the life of the access tokens it mints."""
        self.jwt_secret = jwt_secret
        self.anon_key = anon_key
        self.users = users
        self.expires_in = expires_in
        self.seen: list[Seen] = []
        self.links: dict[str, str] = {}  # email -> the magic link "sent" to it
        self.sessions: list[dict[str, Any]] = []  # every session handed out, in order
        self._otps: dict[str, tuple[str, str]] = {}  # one-time token -> (email, redirect_to)
        self._refresh: dict[str, tuple[str, bool]] = {}  # refresh token -> (email, used)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> SupabaseAuth:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path == path]

    def session(self, email: str) -> dict[str, Any]:
        """A new session for this user, as GoTrue's token and verify endpoints hand it out."""
        user_id = self.users[email]
        access = mint_token(self.jwt_secret, user_id, email, expires_in=self.expires_in, issuer=f"{self.url}/auth/v1")
        refresh = secrets.token_urlsafe(16)
        session = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "expires_at": int(time.time()) + self.expires_in,
            "refresh_token": refresh,
            "user": {"id": user_id, "aud": "authenticated", "role": "authenticated", "email": email},
        }
        with self._lock:
            self._refresh[refresh] = (email, False)
            self.sessions.append(session)
        return session

    # -- the endpoints: (status, JSON body or None, extra headers) ------------------------------

    def otp(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        email = str(body.get("email") or "").strip().lower() if isinstance(body, dict) else ""
        if not email:
            return 400, _error(400, "validation_failed", "An email address or phone number is required"), {}
        if email not in self.users and body.get("create_user") is False:
            return 422, _error(422, "otp_disabled", "Signups not allowed for otp"), {}
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._otps[token] = (email, query.get("redirect_to", ""))
        params = {"token": token, "type": "magiclink", "redirect_to": query.get("redirect_to", "")}
        self.links[email] = f"{self.url}/auth/v1/verify?{urlencode(params)}"
        return 200, {}, {}

    def verify(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            email, redirect_to = self._otps.pop(query.get("token", ""), ("", ""))
        if not email:
            return 403, _error(403, "otp_expired", "Email link is invalid or has expired"), {}
        s = self.session(email)
        fragment = {k: s[k] for k in ("access_token", "expires_at", "expires_in", "refresh_token", "token_type")}
        return 303, None, {"Location": f"{redirect_to}#{urlencode({**fragment, 'type': 'magiclink'})}"}

    def token(self, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if query.get("grant_type") != "refresh_token":
            return 400, _error(400, "validation_failed", "unsupported_grant_type"), {}
        refresh = str(body.get("refresh_token") or "") if isinstance(body, dict) else ""
        with self._lock:
            email, used = self._refresh.get(refresh, ("", False))
            if email and not used:
                self._refresh[refresh] = (email, True)
        if not email:
            return 400, _error(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"), {}
        if used:
            return 400, _error(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"), {}
        return 200, self.session(email), {}


def _error(code: int, error_code: str, msg: str) -> dict[str, Any]:
    """GoTrue's error body."""
    return {"code": code, "error_code": error_code, "msg": msg}


CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "apikey, authorization, content-type, x-client-info, x-supabase-api-version",
}


def _handler(auth: SupabaseAuth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_OPTIONS(self) -> None:
            self._answer(204, None, {})

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.entry = Seen(method, url.path, query, headers, body, time.time())
            with auth._lock:
                auth.seen.append(self.entry)
            if method == "GET" and url.path == "/auth/v1/verify":
                return self._answer(*auth.verify(query))
            if method == "GET" and url.path == "/auth/v1/.well-known/jwks.json":
                return self._answer(200, {"keys": []}, {})
            if headers.get("apikey") != auth.anon_key:  # the API gateway's check, before GoTrue
                return self._answer(401, {"message": "Invalid API key"}, {})
            if method == "POST" and url.path == "/auth/v1/otp":
                return self._answer(*auth.otp(query, body))
            if method == "POST" and url.path == "/auth/v1/token":
                return self._answer(*auth.token(query, body))
            self._answer(404, _error(404, "not_found", "Not found"), {})

        entry: Seen | None = None

        def _answer(self, status: int, body: Any, headers: dict[str, str]) -> None:
            if self.entry is not None:
                self.entry.status = status
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**CORS, **headers}.items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
