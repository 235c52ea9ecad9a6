"""Who is calling: verification of the frontend user's Supabase access token.

The frontend sends `Authorization: Bearer <access token>`. Supabase signs that token either
with the project's legacy JWT secret (HS256) or, on projects using JWT signing keys, with an
asymmetric key (ES256/RS256) whose public half is published at
`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`. A project that migrated can have both in
flight for a while, so with both configured the token's header decides which check runs;
each check allows only its own algorithms, so a token can never pick a weaker one.

Environment (read by `verifier_from_env`): `SUPABASE_URL` (or `NEXT_PUBLIC_SUPABASE_URL`),
`SUPABASE_JWT_SECRET` (legacy projects only).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from lib.config import CLOCK_TOLERANCE_SECONDS, supabase_url
from lib.errors import Unauthorized

ASYMMETRIC = ("ES256", "RS256")
# How often an unknown key id may make the verifier refetch the signing keys.
REFETCH_SECONDS = 10.0


class AuthError(Unauthorized):
    """The request does not carry a valid user token.

    `status` is 401, or 503 when the signing keys cannot be fetched (retrying helps);
    `code` lets a frontend tell "refresh the session" (TokenExpired) from "sign in again".
    """

    def __init__(self, status: int, message: str, *, code: str = "TokenInvalid") -> None:
        super().__init__(message, code=code)
        self.status = status


@dataclass(frozen=True)
class User:
    id: str
    email: str | None
    role: str


class TokenVerifier:
    def __init__(
        self,
        jwt_secret: str | None,
        jwks_url: str | None,
        audience: str = "authenticated",
        issuer: str | None = None,
    ) -> None:
        if not jwt_secret and not jwks_url:
            raise ValueError("token verification needs a JWT secret or a JWKS URL")
        self.secret = jwt_secret
        self.audience = audience
        self.issuer = issuer
        # Keys are cached for 5 minutes (Supabase's edge caches 10): short enough that a
        # revoked key stops working soon; an unknown kid triggers a (rate-limited) refetch.
        self.jwks = jwt.PyJWKClient(jwks_url, lifespan=300, timeout=5) if jwks_url else None
        self._refetch: tuple[float, bool] = (-REFETCH_SECONDS, True)  # (when, whether it worked)

    def _signing_key(self, token: str) -> Any:
        """The token's key from the JWKS. A key id the cached set lacks may be a new key (a
        rotation) or a forged one: PyJWT refetches the set at most once per cooldown, and
        during it just says "unknown key". So this refetches itself, at most once per
        REFETCH_SECONDS, and remembers whether that worked: an endpoint that cannot be
        reached makes the token undecidable (503, retry), not invalid (401)."""
        assert self.jwks is not None
        try:
            return self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise
        except jwt.PyJWKClientError:
            when, worked = self._refetch
            if time.monotonic() - when < REFETCH_SECONDS:
                if not worked:
                    raise jwt.PyJWKClientConnectionError("the signing keys were unreachable moments ago") from None
                raise
            try:
                self.jwks.get_jwk_set(refresh=True)
            except jwt.PyJWKClientConnectionError:
                self._refetch = (time.monotonic(), False)
                raise
            self._refetch = (time.monotonic(), True)
            return self.jwks.get_signing_key_from_jwt(token)

    def verify(self, token: str) -> User:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
            if alg == "HS256" and self.secret:
                key: Any = self.secret
                algorithms = ["HS256"]
            elif alg in ASYMMETRIC and self.jwks:
                key = self._signing_key(token)
                algorithms = list(ASYMMETRIC)
            else:
                raise AuthError(401, f"Unsupported token algorithm {alg!r}; sign in again.")
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_TOLERANCE_SECONDS,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "Session expired; refresh the token and retry.", code="TokenExpired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, "Token is not a signed-in user's access token.") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "Token was issued by another Supabase project.") from None
        except jwt.MissingRequiredClaimError as e:
            raise AuthError(401, f"Token lacks the {e.claim!r} claim; sign in again.") from None
        except jwt.PyJWKClientConnectionError:
            raise AuthError(503, "Signing keys are unreachable; retry shortly.", code="AuthUnavailable") from None
        except jwt.PyJWTError:  # bad signature, unknown key, malformed token
            raise AuthError(401, "Invalid token; sign in again.") from None
        try:
            user_id = str(uuid.UUID(str(claims["sub"])))
        except ValueError:
            raise AuthError(401, "Token subject is not a user id; sign in again.") from None
        return User(id=user_id, email=claims.get("email") or None, role=str(claims.get("role", "")))


def verifier_from_env(env: Mapping[str, str]) -> TokenVerifier:
    url = supabase_url(env)
    secret = env.get("SUPABASE_JWT_SECRET")
    return TokenVerifier(
        secret,
        f"{url}/auth/v1/.well-known/jwks.json" if url else None,
        issuer=f"{url}/auth/v1" if url else None,
    )


def mint_token(
    secret: str,
    user_id: str,
    email: str | None,
    *,
    expires_in: int = 3600,
    audience: str = "authenticated",
    issuer: str | None = None,
) -> str:
    """An HS256 access token shaped like Supabase's, for the local stack and tests."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "aud": audience, "role": "authenticated"}
    claims.update(iat=now, exp=now + expires_in)
    if email:
        claims["email"] = email
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer_token(request: Any) -> str:
    """The token of a Flask request's `Authorization: Bearer <token>` header."""
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "Missing 'Authorization: Bearer <access token>' header.", code="TokenMissing")
    return token.strip()
