"""Token verification: HS256 with a secret, and JWKS served by a real local HTTP server."""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from lib.auth import AuthError, TokenVerifier, User, bearer_token, mint_token, verifier_from_env

SECRET = "local-jwt-secret-with-at-least-32-characters"
USER_ID = str(uuid.uuid4())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides):
    now = int(time.time())
    base = {"sub": USER_ID, "aud": "authenticated", "role": "authenticated", "exp": now + 600}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def hs256_by_hand(payload: dict, key: bytes) -> str:
    # PyJWT refuses to HMAC with a PEM key, which is exactly what an attacker would do.
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rejected(verifier: TokenVerifier, token: str, status: int = 401) -> str:
    with pytest.raises(AuthError) as e:
        verifier.verify(token)
    assert e.value.status == status
    return e.value.message


# --- HS256 (legacy JWT secret, and the local stack) ---


@pytest.fixture
def hs():
    return TokenVerifier(SECRET, None)


def test_minted_token_is_accepted(hs):
    user = hs.verify(mint_token(SECRET, USER_ID, "Ana@Example.com"))
    assert user == User(id=USER_ID, email="Ana@Example.com", role="authenticated")


def test_expired_token(hs):
    with pytest.raises(AuthError) as e:
        hs.verify(mint_token(SECRET, USER_ID, None, expires_in=-60))
    # a distinct code, so the frontend refreshes the session instead of signing out
    assert (e.value.status, e.value.code) == (401, "TokenExpired")
    assert "expired" in e.value.message


def test_wrong_secret(hs):
    rejected(hs, mint_token("another-secret-that-is-long-enough-too!!", USER_ID, None))


def test_wrong_audience(hs):
    rejected(hs, mint_token(SECRET, USER_ID, None, audience="anon"))
    rejected(hs, jwt.encode(claims(aud=None), SECRET, algorithm="HS256"))  # anon key shape


def test_missing_or_bad_subject(hs):
    assert "sub" in rejected(hs, jwt.encode(claims(sub=None), SECRET, algorithm="HS256"))
    rejected(hs, jwt.encode(claims(sub="not-a-uuid"), SECRET, algorithm="HS256"))


def test_missing_expiry(hs):
    assert "exp" in rejected(hs, jwt.encode(claims(exp=None), SECRET, algorithm="HS256"))


def test_alg_none_and_garbage(hs):
    unsigned = b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(claims()).encode()) + "."
    rejected(hs, unsigned)
    rejected(hs, "not.a.jwt")
    rejected(hs, "")


def test_issuer_is_checked_when_configured():
    verifier = TokenVerifier(SECRET, None, issuer="https://abcd.supabase.co/auth/v1")
    good = mint_token(SECRET, USER_ID, None, issuer="https://abcd.supabase.co/auth/v1")
    assert verifier.verify(good).id == USER_ID
    other = mint_token(SECRET, USER_ID, None, issuer="https://evil.supabase.co/auth/v1")
    assert "another Supabase project" in rejected(verifier, other)
    rejected(verifier, mint_token(SECRET, USER_ID, None))  # no iss at all


def test_needs_a_key_source():
    with pytest.raises(ValueError):
        TokenVerifier(None, None)


# --- JWKS (asymmetric signing keys) over real HTTP ---


class JwksServer:
    def __init__(self):
        self.keys: list[dict] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200 if self.path == "/auth/v1/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown (once per test) fast.
        serve = lambda: self.httpd.serve_forever(poll_interval=0.02)  # noqa: E731
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def keys():
    return {
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "other_ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture
def jwks(keys):
    server = JwksServer()
    ec_jwk = ECAlgorithm.to_jwk(keys["ec"].public_key(), as_dict=True)
    rsa_jwk = RSAAlgorithm.to_jwk(keys["rsa"].public_key(), as_dict=True)
    server.keys = [
        {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig", "key_ops": ["verify"]},
        {**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
    ]
    yield server
    server.stop()


@pytest.fixture
def asym(jwks):
    return TokenVerifier(None, jwks.url + "/auth/v1/.well-known/jwks.json")


def test_es256_token_accepted_and_keys_cached(asym, jwks, keys):
    token = jwt.encode(claims(email="a@b.fr"), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    assert asym.verify(token) == User(id=USER_ID, email="a@b.fr", role="authenticated")
    assert asym.verify(token).id == USER_ID
    assert jwks.hits == 1


def test_rs256_token_accepted(asym, keys):
    token = jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
    assert asym.verify(token).id == USER_ID


def test_token_signed_by_another_key_refused(asym, keys):
    forged = jwt.encode(claims(), keys["other_ec"], algorithm="ES256", headers={"kid": "ec-1"})
    rejected(asym, forged)
    unknown = jwt.encode(claims(), keys["other_ec"], algorithm="ES256", headers={"kid": "ec-9"})
    rejected(asym, unknown)


def test_expired_and_wrong_audience_es256(asym, keys):
    def sign(**overrides):
        return jwt.encode(claims(**overrides), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})

    assert "expired" in rejected(asym, sign(exp=int(time.time()) - 60))
    rejected(asym, sign(aud="anon"))


def test_algorithm_confusion_refused(asym, keys):
    # HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    public_pem = pem(keys["ec"])
    rejected(asym, hs256_by_hand(claims(), public_pem))
    rejected(asym, hs256_by_hand(claims(), SECRET.encode()))  # no secret configured at all
    unsigned = b64(b'{"alg":"none","kid":"ec-1"}') + "." + b64(json.dumps(claims()).encode()) + "."
    rejected(asym, unsigned)


def test_secret_and_jwks_together_during_migration(jwks, keys):
    both = TokenVerifier(SECRET, jwks.url + "/auth/v1/.well-known/jwks.json")
    assert both.verify(mint_token(SECRET, USER_ID, None)).id == USER_ID
    es = jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    assert both.verify(es).id == USER_ID
    public_pem = pem(keys["ec"])
    rejected(both, hs256_by_hand(claims(), public_pem))


def test_unreachable_jwks_is_503(keys):
    down = TokenVerifier(None, "http://127.0.0.1:9/auth/v1/.well-known/jwks.json")
    token = jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    rejected(down, token, status=503)


def test_verifier_from_env(jwks, keys):
    verifier = verifier_from_env({"SUPABASE_URL": jwks.url + "/"})
    issuer = jwks.url + "/auth/v1"
    token = jwt.encode(claims(iss=issuer), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(token).id == USER_ID
    rejected(verifier, jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"}))
    legacy = verifier_from_env({"NEXT_PUBLIC_SUPABASE_URL": jwks.url, "SUPABASE_JWT_SECRET": SECRET})
    assert legacy.verify(mint_token(SECRET, USER_ID, None, issuer=issuer)).id == USER_ID


# --- the Authorization header ---


@pytest.mark.parametrize(
    "header, token",
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc.def.ghi ", "abc.def.ghi")],
)
def test_bearer_token(header, token):
    with Flask(__name__).test_request_context(headers={"Authorization": header}) as ctx:
        assert bearer_token(ctx.request) == token


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer "}])
def test_bearer_token_missing_or_malformed(headers):
    with Flask(__name__).test_request_context(headers=headers) as ctx, pytest.raises(AuthError) as e:
        bearer_token(ctx.request)
    assert e.value.status == 401 and "Bearer" in e.value.message
