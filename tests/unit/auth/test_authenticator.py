"""The Authenticator: bearer parsing, modes, scopes and RFC 6750 challenges, built from config (no sockets)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest

from proxy.auth.authenticator import Authenticator
from proxy.auth.jwt import TokenVerifier
from proxy.auth.keys import JwksKeys
from proxy.context import ANONYMOUS
from proxy.errors import AuthUnavailableError, ForbiddenError, UnauthenticatedError
from tests.idp import ISSUER, SigningKey, claims_for, make_token
from tests.kit import make_config, make_ctx

SECRET = "s" * 40
PUBLIC = "https://mcp.example.com/mcp"
METADATA = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def authenticator(tmp_path: Path, **dotted: Any) -> Authenticator:
    secret = tmp_path / "hmac"
    secret.write_text(SECRET + "\n")
    settings = {"auth__mode": "required", "auth__hmac_secret_file": str(secret), "auth__issuers": [ISSUER],
                "server__public_url": PUBLIC, **dotted}
    config = make_config(**settings)
    built = Authenticator.from_config(config.auth, config.server, time.monotonic)
    assert built is not None
    return built


def bearer(**claims: Any) -> str:
    return "Bearer " + jwt.encode(claims_for(PUBLIC, **claims), SECRET, algorithm="HS256")


def challenge_of(error: UnauthenticatedError | ForbiddenError) -> str:
    return error.headers["WWW-Authenticate"]


def test_mode_off_builds_nothing() -> None:
    config = make_config()
    assert Authenticator.from_config(config.auth, config.server, time.monotonic) is None


async def test_a_valid_token_becomes_the_principal_and_is_recorded(tmp_path: Path) -> None:
    auth = authenticator(tmp_path)
    ctx = make_ctx(credentials=bearer(sub="alice", scope="read write"))
    principal = await auth.principal_of(ctx)
    assert principal.subject == "alice" and principal.scopes == {"read", "write"}
    assert ctx.record.principal is principal


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "  Bearer"])
async def test_the_scheme_is_case_insensitive(tmp_path: Path, scheme: str) -> None:
    token = bearer().split(" ", 1)[1]
    principal = await authenticator(tmp_path).principal_of(make_ctx(credentials=f"{scheme} {token}"))
    assert principal.subject == "user-1"


async def test_no_token_is_401_with_a_challenge_without_error(tmp_path: Path) -> None:
    with pytest.raises(UnauthenticatedError) as caught:
        await authenticator(tmp_path).principal_of(make_ctx())
    assert challenge_of(caught.value) == f'Bearer resource_metadata="{METADATA}"'
    assert caught.value.http_status == 401


async def test_optional_mode_lets_anonymous_in_but_not_a_bad_token(tmp_path: Path) -> None:
    auth = authenticator(tmp_path, auth__mode="optional")
    assert await auth.principal_of(make_ctx()) is ANONYMOUS
    with pytest.raises(UnauthenticatedError, match="signature is invalid"):
        await auth.principal_of(make_ctx(credentials=bearer()[:-4] + "AAAA"))


@pytest.mark.parametrize("credentials", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearer a b", "Token x"])
async def test_anything_but_one_bearer_token_is_invalid_token(tmp_path: Path, credentials: str) -> None:
    with pytest.raises(UnauthenticatedError, match="Expected an Authorization: Bearer token") as caught:
        await authenticator(tmp_path).principal_of(make_ctx(credentials=credentials))
    assert challenge_of(caught.value).startswith('Bearer error="invalid_token", error_description="Expected')


async def test_a_rejected_token_is_described_in_the_challenge(tmp_path: Path) -> None:
    with pytest.raises(UnauthenticatedError, match="expired") as caught:
        await authenticator(tmp_path).principal_of(make_ctx(credentials=bearer(exp=int(time.time()) - 3600)))
    assert challenge_of(caught.value) == (
        f'Bearer error="invalid_token", error_description="The access token has expired", '
        f'resource_metadata="{METADATA}"')


async def test_missing_scopes_are_403_naming_the_required_scopes(tmp_path: Path) -> None:
    auth = authenticator(tmp_path, auth__required_scopes=["mcp:tools", "mcp:read"])
    ctx = make_ctx(credentials=bearer(scope="mcp:tools"))
    with pytest.raises(ForbiddenError) as caught:
        await auth.principal_of(ctx)
    assert caught.value.data == {"required_scopes": ["mcp:read", "mcp:tools"]}
    assert challenge_of(caught.value) == (
        'Bearer error="insufficient_scope", error_description="The access token lacks required scopes", '
        f'scope="mcp:read mcp:tools", resource_metadata="{METADATA}"')
    assert ctx.record.principal is not None and ctx.record.principal.subject == "user-1"  # audited as who it was


async def test_required_scopes_are_announced_on_401_too(tmp_path: Path) -> None:
    with pytest.raises(UnauthenticatedError) as caught:
        await authenticator(tmp_path, auth__required_scopes=["a"]).principal_of(make_ctx())
    assert challenge_of(caught.value) == f'Bearer scope="a", resource_metadata="{METADATA}"'


def test_challenge_values_lose_characters_a_quoted_string_cannot_hold(tmp_path: Path) -> None:
    header = authenticator(tmp_path)._challenge(error_description='bad "token"\\ \r\nhere')
    assert header["WWW-Authenticate"].startswith('Bearer error_description="bad token here"')


class FailingFetch:
    async def __call__(self) -> Mapping[str, Any]:
        raise OSError("IdP unreachable")


async def test_no_signing_keys_is_503_with_retry_after(key_a: SigningKey) -> None:
    jwks = JwksKeys(FailingFetch(), cooldown=0)
    verifier = TokenVerifier(jwks, algorithms=["RS256"], issuers=[ISSUER], audience=[PUBLIC])
    auth = Authenticator(verifier, optional=False, required_scopes=(), resource_metadata=METADATA, jwks=jwks)
    token = make_token(key_a, claims_for(PUBLIC))
    with pytest.raises(AuthUnavailableError) as caught:
        await auth.principal_of(make_ctx(credentials="Bearer " + token))
    assert caught.value.headers == {"Retry-After": "5"} and caught.value.http_status == 503
    assert await auth.readiness() == (False, "0 signing keys loaded")


async def test_readiness_counts_loaded_jwks_keys(key_a: SigningKey) -> None:
    async def fetch() -> Mapping[str, Any]:
        return {"keys": [key_a.jwk]}

    jwks = JwksKeys(fetch)
    verifier = TokenVerifier(jwks, algorithms=["RS256"], issuers=[ISSUER], audience=[PUBLIC])
    auth = Authenticator(verifier, optional=False, required_scopes=(), resource_metadata=METADATA, jwks=jwks)
    await auth.start()
    principal = await auth.principal_of(make_ctx(credentials="Bearer " + make_token(key_a, claims_for(PUBLIC))))
    assert principal.issuer == ISSUER
    assert await auth.readiness() == (True, "1 signing keys loaded")
    await auth.close()
