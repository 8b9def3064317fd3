"""The development IdP's key, its loopback rule, the sidecar overrides it implies, and minting."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import jwt
import pytest

from proxy.config import load_config
from proxy.runtime.dev_idp import (
    JWKS_PATH,
    NotLoopbackError,
    load_or_create_key,
    metadata,
    require_loopback,
    sidecar_overrides,
)
from proxy.runtime.token_mint import default_audience, mint


def test_the_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "state")
    again = load_or_create_key(tmp_path / "state")
    assert first.kid == again.kid and len(first.kid) == 43  # base64url of a SHA-256 thumbprint
    assert stat.S_IMODE((tmp_path / "state" / "signing-key.pem").stat().st_mode) == 0o600
    assert first.jwks()["keys"][0]["kid"] == first.kid
    assert load_or_create_key(tmp_path / "other").kid != first.kid


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    require_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"])
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(NotLoopbackError, match="is not a loopback address"):
        require_loopback(host)


def test_serve_dev_idp_turns_required_auth_on_against_its_keys() -> None:
    overrides = sidecar_overrides("http://127.0.0.1:9400/")
    config = load_config(None, env={}, overrides={"upstream.url": "http://127.0.0.1:9/mcp",
                                                  "policy.engine": "off", **overrides})
    assert config.auth.mode == "required"
    assert config.auth.jwks_url == "http://127.0.0.1:9400" + JWKS_PATH
    assert config.auth.issuers == ("http://127.0.0.1:9400",)
    assert config.auth.audience == ()  # the sidecar's own resource URL, as without the dev IdP


@pytest.mark.parametrize(("url", "problem"), [
    ("https://127.0.0.1:9400", "expected http://HOST:PORT"),
    ("127.0.0.1:9400", "expected http://HOST:PORT"),
    ("http://203.0.113.5:9400", "'203.0.113.5' is not a loopback address"),
])
def test_serve_dev_idp_refuses_what_is_not_a_loopback_http_url(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        sidecar_overrides(url)


def test_metadata_names_the_issuer_and_its_keys() -> None:
    found = metadata("http://127.0.0.1:9400")
    assert found["issuer"] == "http://127.0.0.1:9400"
    assert found["jwks_uri"] == "http://127.0.0.1:9400/.well-known/jwks.json"
    assert "development" in found["development_only"]


def test_a_minted_token_verifies_with_the_published_key(tmp_path: Path) -> None:
    token = mint(tmp_path, subject="alice", issuer="http://127.0.0.1:9400", audience="http://127.0.0.1:8080/mcp",
                 roles=["reader"], scopes=["mcp:tools"], lifetime_seconds=60)
    public = jwt.PyJWK(load_or_create_key(tmp_path).jwks()["keys"][0]).key
    claims = jwt.decode(token, public, algorithms=["RS256"], audience="http://127.0.0.1:8080/mcp")
    assert (claims["sub"], claims["roles"], claims["scope"]) == ("alice", ["reader"], "mcp:tools")
    assert claims["exp"] - claims["iat"] == 60


def test_the_default_audience_is_the_sidecar_resource_url_from_the_same_environment() -> None:
    assert default_audience({}) == "http://127.0.0.1:8080/mcp"
    assert default_audience({"MCP_SIDECAR__SERVER__LISTEN": "127.0.0.1:9"}) == "http://127.0.0.1:9/mcp"
    assert default_audience({"MCP_SIDECAR__SERVER__PUBLIC_URL": "https://mcp.example/mcp/"}) == \
        "https://mcp.example/mcp"
