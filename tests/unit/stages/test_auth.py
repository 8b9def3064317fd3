"""The auth stage's glue: bearer parsing, principal hand-off, modes and RFC 6750 challenges (HMAC keys, no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from proxy.config import Config
from proxy.context import ANONYMOUS, CallContext
from proxy.errors import ForbiddenError, UnauthenticatedError
from proxy.reply import Reply
from proxy.runtime.app import create_app
from proxy.stages.auth import AuthStage
from tests.idp import ISSUER, claims_for
from tests.kit import make_config, make_ctx

SECRET = "k" * 40


def stage_for(tmp_path: Path, **dotted: Any) -> tuple[AuthStage, str]:
    secret = tmp_path / "hmac"
    secret.write_text(SECRET + "\n")
    settings = {"auth__mode": "required", "auth__hmac_secret_file": str(secret), "auth__issuers": [ISSUER],
                "server__public_url": "https://mcp.example.com/mcp", **dotted}
    config = make_config(**settings)
    return built_stage(config), config.server.resource_url


def built_stage(config: Config) -> AuthStage:
    """The auth stage as the app builds it (nothing is started, no socket is opened)."""
    stages = [stage for stage in create_app(config).stages if isinstance(stage, AuthStage)]
    assert len(stages) == 1
    return stages[0]


def token(audience: str, **claims: Any) -> str:
    return jwt.encode(claims_for(audience, **claims), SECRET, algorithm="HS256")


async def run(stage: AuthStage, ctx: CallContext) -> CallContext:
    seen: list[CallContext] = []

    async def call_next(inner: CallContext) -> Reply:
        seen.append(inner)
        return Reply.json({"jsonrpc": "2.0", "id": 1, "result": {}})

    await stage(ctx, call_next)
    return seen[0]


async def test_principal_reaches_the_next_stage(tmp_path: Path) -> None:
    stage, audience = stage_for(tmp_path, auth__roles_claim="realm_access.roles")
    ctx = make_ctx(credentials="Bearer " + token(audience, scope="a b", realm_access={"roles": ["ops"]}))
    inner = await run(stage, ctx)
    principal = inner.principal
    assert (principal.subject, principal.scopes, principal.roles) == ("user-1", {"a", "b"}, {"ops"})
    assert inner.credentials is None  # the raw token goes no further than the auth stage
    assert ctx.record.principal is principal  # outer stages (audit, tracing) read it from the shared record
    assert "Bearer" not in repr(ctx)  # the raw credentials never show up in a repr (or a log of one)


async def test_missing_token_challenge_and_optional_mode(tmp_path: Path) -> None:
    stage, _ = stage_for(tmp_path)
    with pytest.raises(UnauthenticatedError) as refused:
        await run(stage, make_ctx())
    assert refused.value.headers == {
        "WWW-Authenticate": 'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'}
    optional, _ = stage_for(tmp_path, auth__mode="optional")
    assert (await run(optional, make_ctx())).principal is ANONYMOUS


async def test_required_scopes_are_advertised_and_enforced(tmp_path: Path) -> None:
    stage, audience = stage_for(tmp_path, auth__required_scopes=["mcp:tools"])
    with pytest.raises(UnauthenticatedError) as missing:
        await run(stage, make_ctx())
    assert missing.value.headers["WWW-Authenticate"].startswith('Bearer scope="mcp:tools", resource_metadata=')
    with pytest.raises(ForbiddenError) as forbidden:
        await run(stage, make_ctx(credentials="Bearer " + token(audience, scope="other")))
    assert forbidden.value.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope", error_description="The access token lacks required scopes", '
        'scope="mcp:tools"')


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Token abc", "Bearer a b"])
async def test_malformed_authorization_headers(tmp_path: Path, header: str) -> None:
    stage, _ = stage_for(tmp_path)
    with pytest.raises(UnauthenticatedError) as refused:
        await run(stage, make_ctx(credentials=header))
    assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]


def test_off_builds_no_stage() -> None:
    assert not [stage for stage in create_app(make_config()).stages if stage.name == "auth"]
