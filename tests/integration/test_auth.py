"""Bearer authentication through the running sidecar: a local JWKS endpoint, tokens made here, raw HTTP and the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx2
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.idp import (
    ISSUER,
    SigningKey,
    claims_for,
    forged_hs256,
    make_token,
    new_key,
    serve_jwks,
    tampered,
    unsigned,
)
from tests.kit import ACCEPT_BOTH, RunningSidecar, make_config, run_sidecar, serve_app, wait_until

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}


class Recorder:
    """A raw upstream that records the headers of every request and answers each JSON-RPC request with {}."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({name.lower(): value for name, value in request.headers.items()})
        message = await request.json() if request.method == "POST" else {}
        if "id" not in message:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": {}})


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/mcp", recorder.handle)
    async with serve_app(app) as base:
        recorder.url = base + "/mcp"
        yield recorder


def auth_config(upstream_url: str, jwks_url: str, **dotted: Any):
    settings: dict[str, Any] = {"auth__mode": "required", "auth__jwks_url": jwks_url, "auth__issuers": [ISSUER],
                                "auth__jwks_refetch_cooldown_seconds": 0}
    return make_config(upstream_url, **{**settings, **dotted})


def metadata_url(sidecar: RunningSidecar) -> str:
    return f"http://{sidecar.config.server.listen}/.well-known/oauth-protected-resource/mcp"


async def post(sidecar: RunningSidecar, authorization: str | None, method: str = "POST",
               payload: dict[str, Any] | None = PING, **extra: str) -> tuple[int, dict[str, str], Any]:
    headers = {**JSON_HEADERS, **{name.replace("_", "-"): value for name, value in extra.items()}}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with aiohttp.ClientSession() as http, http.request(
        method, sidecar.url, json=payload if method == "POST" else None, headers=headers
    ) as response:
        body = await response.json(content_type=None) if response.status != 202 else None
        return response.status, dict(response.headers), body


def invalid(sidecar: RunningSidecar, description: str) -> str:
    return (f'Bearer error="invalid_token", error_description="{description}", '
            f'resource_metadata="{metadata_url(sidecar)}"')


def error_body(message: str, code: int = -31401, request_id: Any = 1, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


# case -> (make the Authorization header from (key_a, key_b, audience), expected description)
CASES: dict[str, tuple[Callable[[SigningKey, SigningKey, str], str], str]] = {
    "expired": (lambda a, b, aud: "Bearer " + make_token(a, claims_for(aud, lifetime=-3600)),
                "The access token has expired"),
    "not_yet_valid": (lambda a, b, aud: "Bearer " + make_token(a, claims_for(aud, nbf=int(time.time()) + 3600)),
                      "The access token is not yet valid"),
    "wrong_aud": (lambda a, b, aud: "Bearer " + make_token(a, claims_for("https://other.example/mcp")),
                  "The access token was not issued for this resource"),
    "wrong_iss": (lambda a, b, aud: "Bearer " + make_token(a, claims_for(aud, iss="https://evil.example")),
                  "The access token issuer is not accepted"),
    "alg_none": (lambda a, b, aud: "Bearer " + unsigned(claims_for(aud)),
                 "The access token algorithm is not accepted"),
    "hs256_with_rsa_public_key": (lambda a, b, aud: "Bearer " + forged_hs256(a.public_pem, claims_for(aud), a.kid),
                                  "The access token algorithm is not accepted"),
    "tampered_payload": (lambda a, b, aud: "Bearer " + tampered(make_token(a, claims_for(aud)), sub="admin"),
                         "The access token signature is invalid"),
    "signed_by_unknown_key": (lambda a, b, aud: "Bearer " + make_token(b, claims_for(aud)),
                              "The access token was signed with an unknown key"),
    "missing_sub": (lambda a, b, aud: "Bearer " + make_token(a, without(claims_for(aud), "sub")),
                    "The access token lacks the 'sub' claim"),
    "garbage": (lambda a, b, aud: "Bearer not-a-jwt", "The access token is malformed"),
    "basic_scheme": (lambda a, b, aud: "Basic dXNlcjpwYXNz", "Expected an Authorization: Bearer token"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_tokens_get_401_with_challenge_and_never_reach_upstream(case: str, key_a: SigningKey,
                                                                          key_b: SigningKey) -> None:
    make_header, description = CASES[case]
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url)
        async with run_sidecar(config) as sidecar:
            status, headers, body = await post(sidecar, make_header(key_a, key_b, config.server.resource_url))
    assert status == 401
    assert headers["WWW-Authenticate"] == invalid(sidecar, description)
    assert body == error_body(description)
    assert upstream.seen == []


async def test_missing_token_gets_challenge_without_error_attribute(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream, run_sidecar(
        auth_config(upstream.url, idp.url)
    ) as sidecar:
        results = [await post(sidecar, None, method) for method in ("POST", "GET", "DELETE")]
    challenge = f'Bearer resource_metadata="{metadata_url(sidecar)}"'
    for (status, headers, body), request_id in zip(results, (1, None, None), strict=True):
        assert status == 401
        assert headers["WWW-Authenticate"] == challenge
        assert body == error_body("Authentication required", request_id=request_id)
    assert upstream.seen == []


async def test_valid_token_passes_and_upstream_gets_own_credentials_only(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, upstream__headers={
            "Authorization": {"value": "upstream-secret", "prefix": "Bearer "}})
        caller = make_token(key_a, claims_for(config.server.resource_url))
        async with run_sidecar(config) as sidecar:
            status, _, body = await post(sidecar, f"Bearer {caller}")
    assert (status, body) == (200, {"jsonrpc": "2.0", "id": 1, "result": {}})
    assert upstream.seen[-1]["authorization"] == "Bearer upstream-secret"
    assert all(caller not in value for value in upstream.seen[-1].values())


async def test_upstream_without_configured_credentials_sees_no_authorization(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url)
        caller = make_token(key_a, claims_for(config.server.resource_url))
        async with run_sidecar(config) as sidecar:
            status, _, _ = await post(sidecar, f"Bearer {caller}")
    assert status == 200
    assert "authorization" not in upstream.seen[-1]


async def test_key_rotation_unknown_kid_then_new_key_works(key_a: SigningKey, key_b: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url)
        audience = config.server.resource_url
        async with run_sidecar(config) as sidecar:
            assert (await post(sidecar, "Bearer " + make_token(key_a, claims_for(audience))))[0] == 200
            status, headers, _ = await post(sidecar, "Bearer " + make_token(key_b, claims_for(audience)))
            assert status == 401
            assert headers["WWW-Authenticate"] == invalid(sidecar, "The access token was signed with an unknown key")
            idp.rotate(key_a, key_b)  # the IdP publishes the new key
            assert (await post(sidecar, "Bearer " + make_token(key_b, claims_for(audience))))[0] == 200
            async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/readyz") as response:
                ready = await response.json()
    assert ready["checks"]["auth_keys"] == {"ok": True, "detail": "2 signing keys loaded"}


async def test_flood_of_unknown_kids_costs_the_idp_one_fetch_per_cooldown(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, auth__jwks_refetch_cooldown_seconds=30)
        audience = config.server.resource_url
        async with run_sidecar(config) as sidecar:
            assert (await post(sidecar, "Bearer " + make_token(key_a, claims_for(audience))))[0] == 200
            hits_before = idp.hits
            floods = [make_token(key_a, claims_for(audience), kid=uuid.uuid4().hex) for _ in range(30)]
            results = await asyncio.gather(*(post(sidecar, f"Bearer {token}") for token in floods))
    assert [status for status, _, _ in results] == [401] * 30
    assert idp.hits - hits_before <= 1


async def test_insufficient_scope_is_403_and_enough_scope_passes(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, auth__required_scopes=["mcp:tools", "mcp:read"])
        audience = config.server.resource_url
        async with run_sidecar(config) as sidecar:
            weak = await post(sidecar, "Bearer " + make_token(key_a, claims_for(audience, scope="mcp:read")))
            strong = await post(sidecar, "Bearer " + make_token(key_a, claims_for(
                audience, scp=["mcp:tools", "mcp:read", "other"])))
    status, headers, body = weak
    assert status == 403
    assert headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", error_description="The access token lacks required scopes", '
        f'scope="mcp:read mcp:tools", resource_metadata="{metadata_url(sidecar)}"')
    assert body == error_body("The access token lacks required scopes", code=-31403,
                              data={"required_scopes": ["mcp:read", "mcp:tools"]})
    assert strong[0] == 200
    assert len(upstream.seen) == 1


async def test_optional_mode_lets_anonymous_through_but_not_bad_tokens(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream, run_sidecar(
        auth_config(upstream.url, idp.url, auth__mode="optional")
    ) as sidecar:
        anonymous = await post(sidecar, None)
        bad = await post(sidecar, "Bearer not-a-jwt")
    assert anonymous[0] == 200
    assert bad[0] == 401
    assert bad[1]["WWW-Authenticate"] == invalid(sidecar, "The access token is malformed")
    assert len(upstream.seen) == 1


async def test_protected_resource_metadata_at_root_and_path_form(key_a: SigningKey) -> None:
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, auth__scopes_supported=["mcp:tools"],
                             auth__authorization_servers=["https://idp.test/realms/demo"])
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            documents = []
            for url in (metadata_url(sidecar), f"http://{config.server.listen}/.well-known/oauth-protected-resource"):
                async with http.get(url) as response:
                    assert response.status == 200
                    documents.append(await response.json())
    assert documents[0] == documents[1] == {
        "resource": config.server.resource_url,
        "authorization_servers": ["https://idp.test/realms/demo"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:tools"],
    }


async def test_rotated_secret_file_changes_upstream_header_on_next_call(key_a: SigningKey, tmp_path) -> None:
    """Kubernetes style: the mounted name points through `..data`, a symlink swapped to a new directory."""
    for version in ("v1", "v2"):
        (tmp_path / f"..{version}").mkdir()
        (tmp_path / f"..{version}" / "api-key").write_text(f"key-{version}\n")
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "api-key").symlink_to("..data/api-key")
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, upstream__secret_check_seconds=0,
                             upstream__headers={"X-Api-Key": {"file": str(tmp_path / "api-key")}})
        token = "Bearer " + make_token(key_a, claims_for(config.server.resource_url))
        async with run_sidecar(config) as sidecar:
            await post(sidecar, token)
            (tmp_path / "..data_tmp").symlink_to("..v2")
            (tmp_path / "..data_tmp").replace(tmp_path / "..data")
            await post(sidecar, token)
    assert [seen["x-api-key"] for seen in upstream.seen] == ["key-v1", "key-v2"]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sdk_client_with_valid_token(stateful_upstream: str, key_a: SigningKey, mode: str) -> None:
    async with serve_jwks(key_a) as idp:
        config = auth_config(stateful_upstream, idp.url)
        token = make_token(key_a, claims_for(config.server.resource_url))
        async with run_sidecar(config) as sidecar, httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(10.0)
        ) as http, Client(streamable_http_client(sidecar.url, http_client=http), mode=mode, cache=None) as client:
            tools = await client.list_tools()
            added = await client.call_tool("add", {"a": 2, "b": 40})
            protocol = client.protocol_version
    assert "add" in {tool.name for tool in tools.tools}
    assert added.structured_content == {"result": 42}
    assert protocol == ("2025-11-25" if mode == "legacy" else "2026-07-28")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sdk_client_without_token_reads_the_json_rpc_error(stateful_upstream: str, key_a: SigningKey,
                                                                 mode: str) -> None:
    async with serve_jwks(key_a) as idp, run_sidecar(auth_config(stateful_upstream, idp.url)) as sidecar:
        with pytest.raises(ExceptionGroup) as refused:
            async with Client(sidecar.url, mode=mode, cache=None) as client:
                await client.list_tools()
    assert refused.group_contains(MCPError, match="^Authentication required$", depth=None)


async def test_upstream_gets_a_signed_identity_for_callers_only(key_a: SigningKey, tmp_path) -> None:
    sidecar_key = new_key("sidecar")
    key_file = tmp_path / "identity.pem"
    key_file.write_bytes(sidecar_key.private.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, auth__mode="optional",
                             auth__upstream_identity={"key_file": str(key_file), "ttl_seconds": 60})
        caller = make_token(key_a, claims_for(config.server.resource_url, scope="mcp:tools"))
        async with run_sidecar(config) as sidecar:
            assert (await post(sidecar, f"Bearer {caller}"))[0] == 200
            assert (await post(sidecar, None, X_MCP_Identity="forged-by-caller"))[0] == 200
    identity = jwt.decode(upstream.seen[0]["x-mcp-identity"], sidecar_key.private.public_key(), algorithms=["RS256"],
                          audience=upstream.url, issuer="mcp-sidecar")
    assert (identity["sub"], identity["idp_iss"], identity["scope"]) == ("user-1", ISSUER, "mcp:tools")
    assert "x-mcp-identity" not in upstream.seen[1]  # anonymous callers get none, and cannot send their own


async def test_audit_names_the_verified_caller_and_the_refused_one(key_a: SigningKey, tmp_path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, audit__enabled=True, audit__sink="file",
                             audit__path=str(audit_file))
        token = make_token(key_a, claims_for(config.server.resource_url))
        async with run_sidecar(config) as sidecar:
            await post(sidecar, f"Bearer {token}")
            await post(sidecar, "Bearer not-a-jwt")
            await wait_until(lambda: audit_file.exists() and len(audit_file.read_text().splitlines()) == 2)
    events = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [(event["principal"], event["outcome"], event["http_status"]) for event in events] == [
        ("user-1", "allowed", 200), ("anonymous", "unauthenticated", 401)]
    assert token not in audit_file.read_text()


async def test_a_legacy_sse_stream_refused_for_its_token_is_audited(key_a: SigningKey, tmp_path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    async with serve_jwks(key_a) as idp, recording_upstream() as upstream:
        config = auth_config(upstream.url, idp.url, audit__enabled=True, audit__sink="file",
                             audit__path=str(audit_file))
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            sse_url = sidecar.url.rsplit("/", 1)[0] + "/sse"
            async with http.get(sse_url, headers={"Authorization": "Bearer not-a-jwt"}) as refused:
                assert refused.status == 401
            await wait_until(lambda: audit_file.exists() and audit_file.read_text().strip(), timeout=5)
    [event] = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert (event["kind"], event["principal"], event["outcome"], event["http_status"]) == (
        "stream", "anonymous", "unauthenticated", 401)
    assert event["error_type"] == "unauthenticated"
