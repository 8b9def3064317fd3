"""A real token end to end: `mcp-sidecar dev-idp`, `token mint` and `serve --demo --dev-idp URL` as processes on
real sockets, driven by the official `mcp` SDK client; the shipped role policies decide."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import jwt
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.devidp import mint, role_policy_env, running_dev_idp, sidecar_cli
from tests.kit import child_env, free_port, serve_process

MODES = ["2026-07-28", "legacy"]


@dataclass(frozen=True)
class DevStack:
    issuer: str
    sidecar: str  # the MCP endpoint
    state_dir: Path
    mint_env: dict[str, str]

    def token(self, *args: str) -> str:
        return mint(self.state_dir, *args, env=self.mint_env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    state_dir = tmp_path_factory.mktemp("dev-idp")
    port = free_port()
    listen = {"MCP_SIDECAR__SERVER__LISTEN": f"127.0.0.1:{port}"}
    with running_dev_idp(state_dir) as issuer, serve_process(
        sidecar_cli("serve", "--demo", "--dev-idp", issuer, "--admin-listen", f"127.0.0.1:{free_port()}"), port,
        env=role_policy_env(**listen),
    ) as url:
        yield DevStack(issuer, url, state_dir, child_env(**listen))


def sdk_client(url: str, token: str | None, mode: str) -> tuple[httpx2.AsyncClient, Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode, cache=None)


def text_of(result) -> str:
    return " ".join(block.text for block in result.content)


@pytest.mark.parametrize("mode", MODES)
async def test_a_reader_calls_what_its_role_grants_and_nothing_else(stack: DevStack, mode: str) -> None:
    http, client = sdk_client(stack.sidecar, stack.token("--sub", "alice", "--roles", "reader"), mode)
    async with http, client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        added = await client.call_tool("add", {"a": 2, "b": 40})
        refused = await client.call_tool("delete_file", {"path": "/tmp/scratch/x"})
    assert "add" in tools and "delete_file" not in tools
    assert added.structured_content == {"result": 42} and not added.is_error
    assert refused.is_error and text_of(refused) == "Unknown tool: delete_file"


async def test_an_admin_is_held_to_the_argument_rules(stack: DevStack) -> None:
    http, client = sdk_client(stack.sidecar, stack.token("--sub", "bob", "--roles", "admin"), "2026-07-28")
    async with http, client:
        outside = await client.call_tool("delete_file", {"path": "/etc/passwd"})
        inside = await client.call_tool("delete_file", {"path": "/tmp/scratch/x"})
    assert outside.is_error
    assert text_of(outside) == "Denied by policy: delete_file: argument path must be a path in an allowed directory"
    assert not inside.is_error and text_of(inside) == "deleted /tmp/scratch/x"


@pytest.mark.parametrize(("token", "reason"), [
    ("none", "Authentication required"),
    ("another key", "The access token was signed with an unknown key"),
    ("expired", "The access token has expired"),
])
async def test_the_sidecar_trusts_only_live_tokens_from_the_dev_idp_key(stack: DevStack, token: str, reason: str,
                                                                        tmp_path: Path) -> None:
    tokens = {
        "none": None,
        "another key": mint(tmp_path, "--sub", "mallory", "--roles", "admin", "--issuer-url", stack.issuer,
                            env=stack.mint_env),
        "expired": stack.token("--sub", "alice", "--roles", "reader", "--lifetime", "-60"),
    }
    http, client = sdk_client(stack.sidecar, tokens[token], "2026-07-28")
    with pytest.raises(ExceptionGroup) as refused:
        async with http, client:
            await client.list_tools()
    assert refused.group_contains(MCPError, match=f"^{reason}$", depth=None)


def test_a_minted_token_carries_what_was_asked_for(stack: DevStack) -> None:
    token = stack.token("--sub", "carol", "--roles", "reader,analyst", "--scopes", "mcp:tools", "files:read",
                        "--claim", "plan=pro")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == stack.issuer and claims["aud"] == stack.sidecar
    assert (claims["sub"], claims["roles"], claims["scope"], claims["plan"]) == (
        "carol", ["reader", "analyst"], "mcp:tools files:read", "pro")
    assert claims["exp"] - claims["iat"] == 3600


def test_the_dev_idp_serves_its_key_and_metadata(stack: DevStack) -> None:
    def get(path: str) -> dict:
        with urllib.request.urlopen(stack.issuer + path, timeout=5) as answer:
            return json.loads(answer.read())

    discovery = get("/.well-known/openid-configuration")
    assert discovery == get("/.well-known/oauth-authorization-server")
    assert discovery["issuer"] == stack.issuer
    keys = get("/.well-known/jwks.json")["keys"]
    token = stack.token("--sub", "alice")
    assert [key["kid"] for key in keys] == [jwt.get_unverified_header(token)["kid"]]
    verified = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience=stack.sidecar)
    assert verified["sub"] == "alice"


@pytest.mark.parametrize("command", [
    ["dev-idp", "--listen", "0.0.0.0:0"],
    ["serve", "--demo", "--dev-idp", "http://192.0.2.10:9400"],
])
def test_development_only_means_loopback_only(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(sidecar_cli(*command, *(["--state-dir", str(tmp_path)] if command[0] == "dev-idp" else [])),
                          env=child_env(), capture_output=True, timeout=30)
    assert done.returncode == 2
    assert "is not a loopback address" in done.stderr.decode()
    assert not (tmp_path / "signing-key.pem").exists()


def test_token_mint_without_a_running_dev_idp_names_the_fix(tmp_path: Path) -> None:
    done = subprocess.run(sidecar_cli("token", "mint", "--sub", "alice", "--state-dir", str(tmp_path)),
                          env=child_env(), capture_output=True, timeout=30)
    assert done.returncode == 2
    assert "start `mcp-sidecar dev-idp` first or pass --issuer-url" in done.stderr.decode()
