"""deploy/sidecar.yaml (the compose file's sidecar) run for real on this machine: its compose host names swapped
for local stand-ins (a private Redis, the demo server, a dev issuer, an OTLP receiver), tokens from `token mint`,
an allowed and a denied call, Redis holding the buckets and the cache, and the trace exported."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import redis.asyncio as redis_client

from proxy.config import load_config
from tests.devidp import mint, running_dev_idp
from tests.kit import ROOT, child_env, free_port, modern_headers, modern_request, run_sidecar, wait_until
from tests.otlp_kit import SERVER, otlp_receiver
from tests.redis_kit import needs_redis_server, private_redis

COMPOSE_CONFIG = ROOT / "deploy" / "sidecar.yaml"


def localised(replacements: dict[str, str]) -> str:
    text = COMPOSE_CONFIG.read_text()
    for compose_name, local in replacements.items():
        assert compose_name in text, f"deploy/sidecar.yaml no longer mentions {compose_name}"
        text = text.replace(compose_name, local)
    return text


async def call(url: str, token: str, tool: str, arguments: dict) -> dict:
    headers = {**modern_headers("tools/call", tool), "Authorization": f"Bearer {token}"}
    body = modern_request("tools/call", {"name": tool, "arguments": arguments})
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as response:
        assert response.status == 200
        return await response.json()


@needs_redis_server
async def test_the_compose_sidecar_config_serves_authenticated_policy_checked_calls(
        stateless_upstream: str, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    public_url = f"http://127.0.0.1:{port}/mcp"
    with private_redis() as redis_server, running_dev_idp(tmp_path / "idp") as issuer:
        async with otlp_receiver() as receiver:
            path = tmp_path / "sidecar.yaml"
            path.write_text(localised({
                "redis://redis:6379": redis_server.url.rsplit("/", 1)[0], "http://demo:9000/mcp": stateless_upstream,
                "http://127.0.0.1:9400": issuer, "http://jaeger:4318": receiver.url,
                "/etc/mcp-sidecar/policies": str(ROOT / "policies"), "0.0.0.0:8080": f"127.0.0.1:{port}",
                "0.0.0.0:8081": f"127.0.0.1:{admin}", "http://localhost:8080/mcp": public_url}))
            env = child_env(MCP_SIDECAR__SERVER__PUBLIC_URL=public_url)
            alice = mint(tmp_path / "idp", "--sub", "alice", "--roles", "reader", env=env)
            async with run_sidecar(load_config(path, env={})) as sidecar:
                added = await call(sidecar.url, alice, "add", {"a": 1, "b": 2})
                again = await call(sidecar.url, alice, "add", {"a": 1, "b": 2})
                hidden = await call(sidecar.url, alice, "delete_file", {"path": "/tmp/scratch/x"})
            await wait_until(lambda: len(receiver.named("tools/call add", "mcp-sidecar", SERVER)) == 2, timeout=8)
            statuses = [span.attributes.get("mcp_sidecar.cache.status")
                        for span in receiver.named("tools/call add", "mcp-sidecar", SERVER)]
            buckets = redis_client.from_url(redis_server.url)
            cache = redis_client.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
            limit_keys = await buckets.keys("mcp-sidecar:compose:rl:*")
            cached = await cache.dbsize()
            await buckets.aclose()
            await cache.aclose()
    assert added["result"]["structuredContent"] == {"result": 3} and again["result"] == added["result"]
    assert hidden["result"]["isError"] is True and "Unknown tool" in str(hidden["result"]["content"])
    assert limit_keys, "no rate-limit bucket in Redis"
    assert cached > 0, "nothing cached in Redis"
    assert sorted(statuses) == ["hit", "stored"]  # the second call came from the Redis cache, and both were traced
