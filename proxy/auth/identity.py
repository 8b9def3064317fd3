"""A short-lived JWT the sidecar signs for the upstream, saying who the verified caller is.

The upstream can trust it (the sidecar's key, the upstream as audience) without ever seeing the caller's token.
Tokens are reused per caller while more than half of their lifetime remains, so signing is not paid per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt

from proxy.context import Principal

MAX_CACHED = 4096


class IdentityMinter:
    def __init__(self, key: Any, algorithm: str, *, issuer: str, audience: str, ttl_seconds: float,
                 key_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds
        self.headers = {"kid": key_id} if key_id else None
        self.clock = clock
        self._cache: dict[tuple[Any, ...], tuple[str, float]] = {}

    def token_for(self, principal: Principal) -> str:
        now = self.clock()
        caller_exp = principal.claims.get("exp")
        key = (principal.subject, principal.issuer, principal.scopes, principal.roles, caller_exp)
        cached = self._cache.get(key)
        if cached is not None and cached[1] - now > self.ttl / 2:
            return cached[0]
        expires = now + self.ttl
        if isinstance(caller_exp, int | float):
            expires = min(expires, float(caller_exp))  # never outlive the caller's own token
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": principal.subject, "iat": int(now),
            "exp": int(expires), "idp_iss": principal.issuer,
            "scope": " ".join(sorted(principal.scopes)), "roles": sorted(principal.roles),
        }
        token = jwt.encode(claims, self.key, algorithm=self.algorithm, headers=self.headers)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (token, expires)
        return token
