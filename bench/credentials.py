"""A throwaway RS256 key pair and a bearer token for the benchmark's JWT auth part."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.bench.invalid"
AUDIENCE = "mcp-sidecar-bench"


def bench_credentials(directory: Path) -> dict[str, str]:
    """Writes the public key as PEM; placeholders {jwt_public_key}, {jwt_issuer}, {jwt_audience}, {jwt_token}."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = directory / "jwt-public.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "iat": now, "exp": now + 6 * 3600,
              "scope": "tools:call tools:list", "roles": ["reader"]}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
    return {"jwt_public_key": str(public), "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_token": token}
