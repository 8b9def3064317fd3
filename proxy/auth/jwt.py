"""Bearer token verification: a JWT in, a Principal out, or a TokenRejectedError with a log-safe reason.

The algorithm is checked against an explicit allow-list before any key is touched (so `alg: none` and HMAC tokens
"signed" with an RSA public key never reach a verifier), then pyjwt checks the signature and the claims:
`exp`, `iss`, `aud` and `sub` are required, `nbf`/`iat` are honoured, with a small leeway for clock skew.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from proxy.auth.keys import KeySource, UnknownKeyError, VerificationKey
from proxy.context import Principal, claim_at

REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
MAX_REMEMBERED = 4096  # verified tokens kept, so a client reusing its token pays the signature check once a minute
REMEMBER_SECONDS = 60.0

# pyjwt error -> (log reason, client-facing description); checked in order, subclasses first.
_REJECTIONS: list[tuple[type[Exception], str, str]] = [
    (jwt_errors.ExpiredSignatureError, "token expired", "The access token has expired"),
    (jwt_errors.ImmatureSignatureError, "token not yet valid", "The access token is not yet valid"),
    (jwt_errors.InvalidAudienceError, "audience mismatch", "The access token was not issued for this resource"),
    (jwt_errors.InvalidIssuerError, "issuer not accepted", "The access token issuer is not accepted"),
    (jwt_errors.InvalidSignatureError, "bad signature", "The access token signature is invalid"),
    (jwt_errors.InvalidAlgorithmError, "algorithm not accepted", "The access token algorithm is not accepted"),
    (jwt_errors.DecodeError, "malformed token", "The access token is malformed"),
]


class TokenRejectedError(Exception):
    """A token that must not be accepted. `reason` is for logs (never the token), `description` for the client."""

    def __init__(self, reason: str, description: str, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.description = description
        self.error = error


class TokenVerifier:
    def __init__(self, keys: KeySource, *, algorithms: Sequence[str], issuers: Sequence[str],
                 audience: Sequence[str], leeway: float = 30.0, roles_claim: str = "roles",
                 wall_clock: Callable[[], float] = time.time) -> None:
        if not algorithms or not issuers or not audience:
            raise ValueError("algorithms, issuers and audience must not be empty")
        self.keys = keys
        self.algorithms = list(algorithms)
        self.issuers = list(issuers)
        self.audience = list(audience)
        self.leeway = leeway
        self.roles_claim = roles_claim
        self.wall_clock = wall_clock
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        """Raises TokenRejectedError, or KeysUnavailableError when no signing keys could be loaded at all."""
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > self.wall_clock():
            return remembered[0]
        principal = await self._verify(token)
        self._remember(token, principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        """Keep a verified token until its exp, at most REMEMBER_SECONDS (so a key removed by the IdP stops
        counting within that time)."""
        if len(self._verified) >= MAX_REMEMBERED:
            now = self.wall_clock()
            self._verified = {key: value for key, value in self._verified.items() if value[1] > now}
            if len(self._verified) >= MAX_REMEMBERED:
                self._verified.clear()
        until = min(float(principal.claims["exp"]), self.wall_clock() + REMEMBER_SECONDS)
        self._verified[token] = (principal, until)

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.InvalidTokenError:
            raise TokenRejectedError("malformed token", "The access token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenRejectedError(f"algorithm {str(algorithm)[:16]!r} not in the allow-list",
                                "The access token algorithm is not accepted")
        kid = header.get("kid")
        try:
            candidates = await self.keys.candidates(kid if isinstance(kid, str) else None)
        except UnknownKeyError as exc:
            raise TokenRejectedError(f"unknown signing key ({str(exc)[:80]})",
                                "The access token was signed with an unknown key") from None
        claims = self._decode(token, algorithm, candidates)
        return principal_from_claims(claims, self.roles_claim)

    def _decode(self, token: str, algorithm: str, candidates: Iterable[VerificationKey]) -> dict[str, Any]:
        """Try each candidate key; only a signature mismatch moves on to the next one."""
        error: Exception = jwt_errors.InvalidSignatureError("no key of a matching algorithm")
        for candidate in candidates:
            if candidate.algorithm is not None and candidate.algorithm != algorithm:
                continue
            try:
                return jwt.decode(
                    token, candidate.key, algorithms=self.algorithms, audience=self.audience,
                    issuer=self.issuers, leeway=self.leeway,
                    options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
                )
            except jwt_errors.InvalidSignatureError as exc:
                error = exc
            except jwt_errors.InvalidTokenError as exc:
                raise _rejection(exc) from None
            except (jwt_errors.InvalidKeyError, TypeError, ValueError) as exc:  # key of another family
                error = exc
        raise _rejection(error) from None


def _rejection(error: Exception) -> TokenRejectedError:
    if isinstance(error, jwt_errors.MissingRequiredClaimError):
        return TokenRejectedError(f"missing claim {error.claim}", f"The access token lacks the '{error.claim}' claim")
    for kind, reason, description in _REJECTIONS:
        if isinstance(error, kind):
            return TokenRejectedError(reason, description)
    if isinstance(error, (jwt_errors.InvalidKeyError, TypeError, ValueError)):
        return TokenRejectedError("bad signature", "The access token signature is invalid")
    return TokenRejectedError(f"invalid token ({error.__class__.__name__})", "The access token is invalid")


def principal_from_claims(claims: Mapping[str, Any], roles_claim: str = "roles") -> Principal:
    """Scopes from `scope` (space-separated) and `scp` (list or string); roles from a claim name or dotted path."""
    return Principal(
        subject=str(claims["sub"]),
        issuer=claims.get("iss"),
        claims=dict(claims),
        scopes=frozenset(_words(claims.get("scope"))) | frozenset(_words(claims.get("scp"))),
        roles=frozenset(_words(claim_at(claims, roles_claim))),
    )


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []
