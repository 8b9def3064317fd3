"""Calls policy marks require_approval wait for an approver on the admin listener."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from mcp import Client

from proxy.context import CallContext
from proxy.reply import Reply
from proxy.runtime.app import create_app
from proxy.stages import approval as approval_module
from tests.integration.policy_support import copy_policies
from tests.kit import bound, make_config, run_sidecar


class NeedsApproval:
    """Stands in for a policy decision carrying require_approval for one tool."""

    name = "test-policy"

    def __init__(self, tool: str) -> None:
        self.tool = tool

    async def __call__(self, ctx: CallContext, call_next: Callable[[CallContext], Awaitable[Reply]]) -> Reply:
        if ctx.target == self.tool:
            ctx = ctx.evolve(obligations={"require_approval": True})
        return await call_next(ctx)


def with_policy(monkeypatch, tool: str) -> None:
    """The stand-in policy, then the approval stage, in the cache's place (without a policy engine the sidecar builds
    no approval stage: nothing could ask for one)."""
    import proxy.runtime.app

    real = proxy.runtime.app.build_stages

    def build(config, deps):
        stages = real(config, deps)
        at = next((i for i, stage in enumerate(stages) if stage.name == "cache"), len(stages))
        approval = approval_module.ApprovalStage(config.approval, deps.approvals)
        return [*stages[:at], NeedsApproval(tool), approval, *stages[at:]]

    monkeypatch.setattr(proxy.runtime.app, "build_stages", build)


def test_no_approval_stage_without_a_policy_engine(tmp_path) -> None:
    assert "approval" not in [stage.name for stage in create_app(make_config()).stages]
    config = make_config(policy__engine="rego", policy__directory=str(copy_policies(tmp_path / "policies")))
    assert "approval" in [stage.name for stage in create_app(config).stages]


async def pending(http: aiohttp.ClientSession, admin: str) -> list[dict]:
    async with http.get(admin + "/approvals") as response:
        return (await response.json())["pending"]


async def test_approved_call_goes_through_and_denied_call_is_a_tool_error(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        async with Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/x"}))
            async with asyncio.timeout(5):
                while not (waiting := await pending(http, sidecar.admin_url)):
                    pass
            assert waiting[0]["target"] == "delete_file" and waiting[0]["arguments_hash"].startswith("sha256:")
            async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/approve",
                                 json=bound(waiting[0])) as response:
                assert response.status == 200
            approved = await asyncio.wait_for(call, 5)

            denied_call = asyncio.create_task(client.call_tool("delete_file", {"path": "/etc"}))
            async with asyncio.timeout(5):
                while not (waiting := await pending(http, sidecar.admin_url)):
                    pass
            async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/deny",
                                 json=bound(waiting[0], note="not on a Friday")) as response:
                assert response.status == 200
            denied = await asyncio.wait_for(denied_call, 5)
            unaffected = await client.call_tool("add", {"a": 1, "b": 1})
    assert approved.is_error is False and approved.content[0].text == "deleted /tmp/x"
    assert denied.is_error is True
    assert "not on a Friday" in denied.content[0].text and waiting[0]["id"] in denied.content[0].text
    assert unaffected.structured_content == {"result": 2}


async def test_unanswered_approval_times_out_as_a_denial(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, approval__timeout_seconds=0.3)
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        result = await client.call_tool("delete_file", {"path": "/tmp/y"})
        assert await sidecar.app.deps.approvals.pending() == []
    assert result.is_error is True and "no approval within 0.3s" in result.content[0].text


async def test_deciding_an_unknown_approval_is_404(stateless_upstream) -> None:
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(f"{sidecar.admin_url}/approvals/nope/approve",
                             json={"arguments_hash": "sha256:0"}) as response:
            assert response.status == 404
