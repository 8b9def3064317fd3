"""Policy enforcement shapes, fail-closed results, hot reload (in flight, broken), shadow mode, startup failure."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
from mcp import Client

from tests.integration.policy_support import copy_policies, user
from tests.kit import child_env, free_port, make_config, modern_headers, modern_request, run_sidecar, wait_until

MODE = "2026-07-28"


def config_for(upstream: str, directory: Path, **extra):
    return make_config(upstream, policy__engine="rego", policy__directory=str(directory), **extra)


async def post(url: str, message: dict, headers: dict) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(url, data=orjson.dumps(message), headers=headers) as reply:
        return reply.status, await reply.read()


def policy_stage(sidecar):
    return next(stage for stage in sidecar.app.stages if stage.name == "policy")


async def metrics_text(sidecar) -> str:
    async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/metrics") as reply:
        return await reply.text()


async def readyz(sidecar) -> dict:
    async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as reply:
        return await reply.json()


async def test_denied_method_is_a_json_rpc_error_with_the_decision_id(stateless_upstream: str, tmp_path) -> None:
    async with run_sidecar(config_for(stateless_upstream, copy_policies(tmp_path / "p"))) as sidecar:
        status, body = await post(sidecar.url, modern_request("tools/list"), modern_headers("tools/list"))
        note_status, _ = await post(sidecar.url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                                    modern_headers("notifications/initialized"))
    error = orjson.loads(body)["error"]
    assert status == 200 and error["code"] == -31001
    assert error["message"] == "Denied by policy: authentication required"
    assert error["data"]["reasons"] == ["authentication required"] and len(error["data"]["decision_id"]) == 32
    assert error["data"]["revision"].startswith("sha256:")
    assert note_status == 202  # a denied notification is accepted and dropped


@pytest.mark.parametrize("policy", [
    'package mcp\nvisible := []\n',  # no decision rule at all: undefined
    'package mcp\nimport rego.v1\ndecision := {"allow": "yes"}\n',  # ill-typed allow
    'package mcp\nimport rego.v1\ndecision := {"allow": true, "obligations": {"cache": {"scope": "everyone"}}}\n',
    'package mcp\nimport rego.v1\ndecision := {"allow": true, "reasons": [x]} if { x := 1 / count(input.mcp.method) }'
    '\ndecision := {"allow": false} if input.mcp.method\n',  # evaluation error (conflicting values)
])
async def test_undefined_erroring_or_ill_typed_results_deny(stateless_upstream: str, tmp_path, policy: str) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "policy.rego").write_text(policy)
    async with run_sidecar(config_for(stateless_upstream, tmp_path / "p")) as sidecar:
        _, body = await post(sidecar.url, modern_request("tools/list"), modern_headers("tools/list"))
    error = orjson.loads(body)["error"]
    assert error["code"] == -31001
    assert error["message"].startswith(("Denied by policy: policy decision is",
                                        "Denied by policy: policy could not be evaluated"))


async def test_reload_while_calls_are_in_flight(stateless_upstream: str, tmp_path, identities) -> None:
    principal, seen = identities
    principal.principal = user("dev", "developer")
    directory = copy_policies(tmp_path / "p")
    config = config_for(stateless_upstream, directory, policy__reload_interval_seconds=0.05)
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
        before = (await readyz(sidecar))["checks"]["policy"]["detail"]
        slow = asyncio.ensure_future(client.call_tool("slow_count", {"steps": 6, "delay_ms": 100}))
        await wait_until(lambda: any(ctx.target == "slow_count" for ctx in seen.contexts))
        data = orjson.loads((directory / "data.json").read_bytes())
        data["settings"]["tool_roles"]["developer"] = ["add"]
        (directory / "data.json").write_bytes(orjson.dumps(data))
        stage = policy_stage(sidecar)
        await wait_until(lambda: stage.engine.loader.reloads == 1)
        assert not slow.done()  # the swap happened while the call was still running
        after = await client.call_tool("slow_count", {"steps": 1, "delay_ms": 1})
        finished = await asyncio.wait_for(slow, 5)
        now = (await readyz(sidecar))["checks"]["policy"]["detail"]
    assert finished.content[0].text == "counted to 6" and not finished.is_error
    assert after.is_error and after.content[0].text == "Unknown tool: slow_count"
    revisions = [ctx.record.policy_revision for ctx in seen.contexts if ctx.target == "slow_count"]
    assert len(revisions) == 1 and revisions[0] in before and revisions[0] not in now


async def test_broken_reload_keeps_the_last_good_bundle(stateless_upstream: str, tmp_path, identities) -> None:
    principal, seen = identities
    principal.principal = user("rita", "reader")
    directory = copy_policies(tmp_path / "p")
    config = config_for(stateless_upstream, directory, policy__reload_interval_seconds=0.05)
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
        stage = policy_stage(sidecar)
        good = stage.engine.revision
        (directory / "roles.rego").write_text("package mcp.rules.roles\n\ndeny contains \"x\" if {\n")
        await wait_until(lambda: stage.engine.loader.reload_failures == 1)
        report = await readyz(sidecar)
        still = await client.call_tool("add", {"a": 1, "b": 1})
        (directory / "extra.rego").write_text("package mcp.rules.extra\nimport rego.v1\nx := net.cidr_contains(1, 2)\n")
        await wait_until(lambda: stage.engine.loader.reload_failures == 2)
        lint = (await readyz(sidecar))["checks"]["policy"]["detail"]
        metrics = await metrics_text(sidecar)
    assert 'mcp_sidecar_policy_reload_failures_total{which="active"} 2.0' in metrics
    check = report["checks"]["policy"]
    assert report["ready"] is True and check["ok"] is True  # still serving: the last good bundle is in force
    assert f"revision {good}" in check["detail"] and "reload failed (1 so far)" in check["detail"]
    assert f"{directory / 'roles.rego'}:3:" in check["detail"]
    assert f"{directory / 'extra.rego'}:3:6: unknown or unsupported built-in function net.cidr_contains()" in lint
    assert still.structured_content == {"result": 2}
    assert seen.last("tools/call").record.policy_revision == good


async def test_shadow_policy_is_compared_but_never_enforced(stateless_upstream: str, tmp_path, identities) -> None:
    principal, seen = identities
    principal.principal = user("dev", "developer")
    shadow = copy_policies(tmp_path / "candidate")
    data = orjson.loads((shadow / "data.json").read_bytes())
    data["settings"]["tool_roles"]["developer"] = ["echo"]
    (shadow / "data.json").write_bytes(orjson.dumps(data))
    config = config_for(stateless_upstream, copy_policies(tmp_path / "active"), policy__shadow_directory=str(shadow))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
        added = await client.call_tool("add", {"a": 1, "b": 2})
        echoed = await client.call_tool("echo", {"text": "hi"})
        report = await readyz(sidecar)
        metrics = await metrics_text(sidecar)
    assert "mcp_sidecar_policy_shadow_disagreements_total 1.0" in metrics
    assert added.structured_content == {"result": 3} and echoed.content[0].text == "hi"
    calls = [ctx for ctx in seen.contexts if ctx.method == "tools/call"]
    assert calls[0].record.extra["policy_shadow"]["allow"] is False
    assert "policy_shadow" not in calls[1].record.extra
    assert "1 of" in report["checks"]["policy_shadow"]["detail"] and " decisions disagreed" in (
        report["checks"]["policy_shadow"]["detail"])


async def test_on_load_error_deny_starts_closed(stateless_upstream: str, tmp_path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.rego").write_text("package mcp\ndecision := {\n")
    config = config_for(stateless_upstream, tmp_path / "p", policy__on_load_error="deny")
    async with run_sidecar(config) as sidecar:
        _, body = await post(sidecar.url, modern_request("tools/list"), modern_headers("tools/list"))
        report = await readyz(sidecar)
    assert orjson.loads(body)["error"]["message"] == "Denied by policy: policy could not be evaluated"
    assert report["ready"] is False and "bad.rego:2:" in report["checks"]["policy"]["detail"]


def test_serve_refuses_to_start_on_a_broken_policy(tmp_path, stateless_upstream: str) -> None:
    (tmp_path / "bad.rego").write_text("package mcp\n\ndecision := {\"allow\": true if {\n")
    env = child_env(MCP_SIDECAR__POLICY__ENGINE="rego", MCP_SIDECAR__POLICY__DIRECTORY=str(tmp_path),
                    MCP_SIDECAR__AUTH__MODE="off")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--upstream", stateless_upstream,
         "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}"],
        env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{tmp_path / 'bad.rego'}:3:" in result.stderr


HIDE_PROMPTS_AND_RESOURCES = '''package mcp
import rego.v1

default decision := {"allow": true}

decision := {"allow": false, "reasons": ["not for you"]} if input.mcp.prompt.name == "greet"

decision := {"allow": false, "reasons": ["not for you"]} if input.mcp.resource.uri == "demo://readme"

secret(item) if item.key == "greet"

secret(item) if item.key == "demo://readme"

visible contains item.key if {
	some item in input.mcp.list.items
	not secret(item)
}
'''


async def test_prompts_and_resources_are_filtered_and_hidden_like_unknown_ones(stateful_upstream: str,
                                                                                tmp_path) -> None:
    from mcp import MCPError

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "policy.rego").write_text(HIDE_PROMPTS_AND_RESOURCES)

    async def answers(url: str) -> dict:
        async with Client(url, mode="legacy", cache=None) as client:
            seen = {"prompts": [p.name for p in (await client.list_prompts()).prompts],
                    "resources": [str(r.uri) for r in (await client.list_resources()).resources]}
            for kind, call in (("prompt", lambda n: client.get_prompt(n, {"name": "x"})),
                               ("resource", client.read_resource)):
                for name in (("greet", "nope") if kind == "prompt" else ("demo://readme", "demo://nope")):
                    try:
                        await call(name)
                        seen[name] = "answered"
                    except MCPError as error:
                        seen[name] = (error.code, error.message)
            return seen

    direct = await answers(stateful_upstream)
    async with run_sidecar(config_for(stateful_upstream, tmp_path / "p")) as sidecar:
        proxied = await answers(sidecar.url)
    assert "greet" in direct["prompts"] and "demo://readme" in direct["resources"]
    assert "greet" not in proxied["prompts"] and "demo://readme" not in proxied["resources"]
    assert direct["greet"] == "answered" and direct["demo://readme"] == "answered"
    # hidden answers exactly like the upstream's answer for a name that does not exist
    assert proxied["greet"] == (direct["nope"][0], direct["nope"][1].replace("nope", "greet"))
    assert proxied["demo://readme"] == (direct["demo://nope"][0],
                                        direct["demo://nope"][1].replace("demo://nope", "demo://readme"))
