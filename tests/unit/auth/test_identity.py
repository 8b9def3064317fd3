"""The identity token minted for the upstream: verifiable, bounded by the caller's token, reused while fresh."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from proxy.auth.identity import IdentityMinter
from proxy.config import ConfigError, load_config
from proxy.context import Principal
from tests.idp import new_key

UPSTREAM = "http://127.0.0.1:3000/mcp"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def principal(exp: float | None = None) -> Principal:
    claims = {"sub": "user-1"} if exp is None else {"sub": "user-1", "exp": exp}
    return Principal("user-1", issuer="https://idp", claims=claims, scopes=frozenset({"b", "a"}),
                     roles=frozenset({"ops"}))


def test_minted_token_verifies_with_the_public_key_and_is_reused_while_fresh() -> None:
    key, clock = new_key("sidecar-1"), Clock()
    minter = IdentityMinter(key.private, "RS256", issuer="mcp-sidecar", audience=UPSTREAM, ttl_seconds=60,
                            key_id="sidecar-1", clock=clock)
    token = minter.token_for(principal())
    claims = jwt.decode(token, key.private.public_key(), algorithms=["RS256"], audience=UPSTREAM,
                        issuer="mcp-sidecar", options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": "mcp-sidecar", "aud": UPSTREAM, "sub": "user-1", "iat": int(clock.now),
                      "exp": int(clock.now) + 60, "idp_iss": "https://idp", "scope": "a b", "roles": ["ops"]}
    assert jwt.get_unverified_header(token)["kid"] == "sidecar-1"
    clock.now += 29
    assert minter.token_for(principal()) == token
    clock.now += 2
    assert minter.token_for(principal()) != token


def test_identity_never_outlives_the_callers_token() -> None:
    clock = Clock()
    minter = IdentityMinter(b"s" * 32, "HS256", issuer="mcp-sidecar", audience=UPSTREAM, ttl_seconds=60, clock=clock)
    token = minter.token_for(principal(exp=clock.now + 10))
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == int(clock.now) + 10


def test_identity_key_must_sign_its_algorithm(tmp_path: Path) -> None:
    public = tmp_path / "public.pem"
    public.write_bytes(new_key("k").public_pem)
    with pytest.raises(ConfigError) as failed:
        load_config(None, env={}, overrides={"upstream.url": UPSTREAM, "auth.mode": "off",
                                             "auth.upstream_identity": {"key_file": str(public)}})
    assert failed.value.problems[0].startswith(f"auth.upstream_identity: {public} cannot sign RS256")
    private = tmp_path / "private.pem"
    private.write_bytes(new_key("k").private.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    config = load_config(None, env={}, overrides={"upstream.url": UPSTREAM, "auth.mode": "off",
                                                  "auth.upstream_identity": {"key_file": str(private)}})
    assert config.auth.upstream_identity is not None
