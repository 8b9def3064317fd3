"""Policy over verified identities: JWTs from a local IdP, the SDK client, roles and plan from the token."""

from __future__ import annotations

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.idp import ISSUER, claims_for, make_token, new_key, serve_jwks
from tests.integration.policy_support import POLICIES
from tests.kit import make_config, run_sidecar


async def session(url: str, token: str, mode: str) -> dict:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(10.0)) as http, \
            Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        deleted = await client.call_tool("delete_file", {"path": "/tmp/scratch/report.txt"})
        added = await client.call_tool("add", {"a": 20, "b": 22})
        return {"tools": tools, "delete": (deleted.is_error, deleted.content[0].text),
                "add": added.structured_content}


async def test_roles_from_the_token_decide_lists_and_calls(stateful_upstream: str) -> None:
    key = new_key("policy-key")
    async with serve_jwks(key) as idp:
        config = make_config(stateful_upstream, auth__mode="required", auth__jwks_url=idp.url,
                             auth__issuers=[ISSUER], policy__engine="rego", policy__directory=str(POLICIES),
                             policy__reload=False)
        audience = config.server.resource_url
        reader = make_token(key, claims_for(audience, sub="rita", roles=["reader"], plan="pro"))
        admin = make_token(key, claims_for(audience, sub="ada", roles=["admin"]))
        async with run_sidecar(config) as sidecar:
            as_reader = await session(sidecar.url, reader, "2026-07-28")
            as_admin = await session(sidecar.url, admin, "legacy")
    assert "delete_file" not in as_reader["tools"] and "add" in as_reader["tools"]
    assert as_reader["delete"] == (True, "Unknown tool: delete_file")
    assert "delete_file" in as_admin["tools"]
    assert as_admin["delete"] == (False, "deleted /tmp/scratch/report.txt")
    assert as_reader["add"] == as_admin["add"] == {"result": 42}
