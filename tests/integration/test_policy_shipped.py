"""The shipped policies (policies/) governing real calls through the running sidecar, two principals each."""

from __future__ import annotations

import asyncio

import aiohttp
from mcp import Client

from tests.integration.policy_support import POLICIES, user
from tests.kit import bound, make_config, run_sidecar

MODE = "2026-07-28"


def policy_config(upstream: str, directory=POLICIES):
    return make_config(upstream, policy__engine="rego", policy__directory=str(directory), policy__reload=False)


async def tool_names(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


async def test_roles_decide_which_tools_a_caller_sees_and_calls(stateless_upstream: str, identities) -> None:
    principal, _ = identities
    async with run_sidecar(policy_config(stateless_upstream)) as sidecar:
        principal.principal = user("rita", "reader")
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            assert await tool_names(client) == ["add", "echo", "invocations", "lookup", "slow_count"]
            added = await client.call_tool("add", {"a": 2, "b": 3})
            hidden = await client.call_tool("delete_file", {"path": "/tmp/scratch/x"})
            unknown = await client.call_tool("no_such_tool", {})
        principal.principal = user("dev", "developer")
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            # developer: every tool by role, but not the destructive ones (delete_file; fail and confirm_action
            # carry no annotations, so MCP's defaults make them destructive)
            assert await tool_names(client) == ["add", "echo", "invocations", "lookup", "slow_count"]
            denied = await client.call_tool("delete_file", {"path": "/tmp/scratch/x"})
    assert added.structured_content == {"result": 5} and not added.is_error
    # A hidden tool is answered exactly like an unknown one, the upstream's own words.
    assert hidden.is_error and hidden.content[0].text == "Unknown tool: delete_file"
    assert unknown.is_error and unknown.content[0].text == "Unknown tool: no_such_tool"
    assert hidden.model_dump(exclude={"content"}) == unknown.model_dump(exclude={"content"})
    assert denied.is_error and denied.content[0].text == "Unknown tool: delete_file"


async def test_destructive_tools_need_an_elevated_role(stateful_upstream: str, identities) -> None:
    principal, seen = identities
    async with run_sidecar(policy_config(stateful_upstream)) as sidecar:
        principal.principal = user("ada", "admin")
        async with Client(sidecar.url, mode="legacy", cache=None) as client:
            assert "delete_file" in await tool_names(client)
            deleted = await client.call_tool("delete_file", {"path": "/tmp/scratch/old.log"})
            outside = await client.call_tool("delete_file", {"path": "/etc/passwd"})
        admin_obligations = dict(seen.last("tools/call").obligations)
        principal.principal = user("otto", "operator")
        async with Client(sidecar.url, mode="legacy", cache=None) as client, aiohttp.ClientSession() as http:
            call = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/tmp/scratch/old.log"}))
            waiting: list = []

            async def poll() -> None:
                async with http.get(sidecar.admin_url + "/approvals") as response:
                    waiting[:] = (await response.json())["pending"]

            async with asyncio.timeout(5):
                while not waiting:
                    await poll()
                    await asyncio.sleep(0.02)
            async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/approve",
                                 json=bound(waiting[0])) as response:
                assert response.status == 200
            approved = await asyncio.wait_for(call, 5)
        operator_obligations = dict(seen.last("tools/call").obligations)
    assert deleted.content[0].text == "deleted /tmp/scratch/old.log" and not deleted.is_error
    assert outside.is_error
    assert outside.content[0].text == (
        "Denied by policy: delete_file: argument path must be a path in an allowed directory")
    assert "require_approval" not in admin_obligations
    # The operator's call carried require_approval, waited for an approver, then went through.
    assert operator_obligations["require_approval"] is True
    assert waiting[0]["principal"] == "otto" and waiting[0]["target"] == "delete_file"
    assert not approved.is_error and approved.content[0].text == "deleted /tmp/scratch/old.log"


async def test_argument_constraints_on_sql_and_files(tools_upstream: str, identities) -> None:
    principal, _ = identities
    async with run_sidecar(policy_config(tools_upstream)) as sidecar:
        principal.principal = user("ann", "analyst")
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            assert await tool_names(client) == ["read_file", "run_query"]
            select = await client.call_tool("run_query", {"sql": "SELECT id FROM users"})
            drop = await client.call_tool("run_query", {"sql": "select 1; DROP TABLE users"})
            shared = await client.call_tool("read_file", {"path": "/srv/shared/q3.csv"})
            secret = await client.call_tool("read_file", {"path": "/srv/shared/../../etc/shadow"})
        principal.principal = user("rita", "reader")
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            assert await tool_names(client) == ["add"]
            reader_query = await client.call_tool("run_query", {"sql": "SELECT id FROM users"})
    assert select.content[0].text == "ran: SELECT id FROM users" and not select.is_error
    assert drop.is_error and drop.content[0].text == (
        "Denied by policy: run_query: argument sql must be a single SELECT statement")
    assert drop.structured_content["reasons"] == ["run_query: argument sql must be a single SELECT statement"]
    assert len(drop.structured_content["decision_id"]) == 32
    assert shared.content[0].text == "contents of /srv/shared/q3.csv"
    assert secret.is_error and "allowed directory" in secret.content[0].text
    assert reader_query.is_error and reader_query.content[0].text == "Unknown tool: run_query"


async def test_plan_claim_picks_the_rate_limit_obligation(stateless_upstream: str, identities) -> None:
    principal, seen = identities
    async with run_sidecar(policy_config(stateless_upstream)) as sidecar:
        obligations = {}
        for plan in ("pro", "free"):
            principal.principal = user(f"{plan}-user", "developer", plan=plan)
            async with Client(sidecar.url, mode=MODE, cache=None) as client:
                await client.call_tool("slow_count", {"steps": 1, "delay_ms": 1})
            ctx = seen.last("tools/call")
            obligations[plan] = dict(ctx.obligations)
            assert ctx.record.obligations == obligations[plan]
            assert ctx.record.policy_decision == "allow" and ctx.record.policy_revision.startswith("git:")
    assert obligations["pro"]["rate_limit"] == {"buckets": ["plan-pro"], "cost": 5}
    assert obligations["free"]["rate_limit"] == {"buckets": ["plan-free"], "cost": 5}


async def test_the_console_inventory_shows_what_each_role_may_call(stateless_upstream: str) -> None:
    config = make_config(stateless_upstream, policy__engine="rego", policy__directory=str(POLICIES),
                         policy__reload=False, admin__console_roles=["reader", "developer", "admin"])
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.admin_url + "/console/api/tools") as response:
            body = await response.json()
    callable_by = {role: sorted(tool["name"] for tool in body["tools"] if tool["roles"][role])
                   for role in body["roles"]}
    # The same lists as these roles' own tools/list (the test above): the inventory asks the policy, not a copy.
    assert callable_by["reader"] == ["add", "echo", "invocations", "lookup", "slow_count"]
    assert callable_by["developer"] == ["add", "echo", "invocations", "lookup", "slow_count"]
    assert "delete_file" in callable_by["admin"] and len(callable_by["admin"]) == len(body["tools"])
