"""Test identity provider: RSA signing keys, a JWKS endpoint on loopback that counts its hits, token makers.

`make_token(key, ...)` signs with a key; `forged_hs256(public_pem, claims)` and `unsigned(claims)` craft the
classic attacks by hand (pyjwt refuses to make them).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.kit import serve_app

ISSUER = "https://idp.test/realms/demo"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def jwk(self) -> dict[str, Any]:
        return {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid, "use": "sig",
                "alg": "RS256"}


def new_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def claims_for(audience: str, *, lifetime: float = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": audience, "sub": "user-1", "iat": now, "exp": now + int(lifetime), **extra}


def make_token(key: SigningKey, claims: dict[str, Any], kid: str | None = "same") -> str:
    headers = {"kid": key.kid if kid == "same" else kid} if kid is not None else {}
    return jwt.encode(claims, key.private, algorithm="RS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def unsigned(claims: dict[str, Any]) -> str:
    return _segments({"alg": "none", "typ": "JWT"}, claims) + "."


def forged_hs256(public_pem: bytes, claims: dict[str, Any], kid: str | None = None) -> str:
    """The key-confusion attack: HMAC-SHA256 keyed with the issuer's public key."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = _segments(header, claims)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def tampered(token: str, **changes: Any) -> str:
    """The same signature over a payload with changed claims."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


@dataclass
class JwksServer:
    keys: list[SigningKey]
    url: str = ""
    hits: int = 0
    requests: list[float] = field(default_factory=list)

    def rotate(self, *keys: SigningKey) -> None:
        self.keys = list(keys)


@contextlib.asynccontextmanager
async def serve_jwks(*keys: SigningKey) -> AsyncIterator[JwksServer]:
    """A JWKS endpoint on a free loopback port, serving whatever `server.keys` holds at request time."""
    server = JwksServer(list(keys))

    async def jwks(request: web.Request) -> web.Response:
        server.hits += 1
        return web.json_response({"keys": [key.jwk for key in server.keys]})

    app = web.Application()
    app.router.add_get("/certs", jwks)
    async with serve_app(app) as base:
        server.url = base + "/certs"
        yield server
