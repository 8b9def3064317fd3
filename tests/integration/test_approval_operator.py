"""Approvals an operator can act on: what an approver sees (arguments as `show_arguments` allows, annotations,
reasons, RFC 3339 times), decisions bound to the argument hash, the approver in the audit event, and the
`mcp-sidecar approvals` CLI against a running sidecar."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import aiohttp
import pytest
from mcp import Client

from proxy.context import CallContext
from proxy.runtime.app import build_stages as real_build_stages
from proxy.stages import approval as approval_module
from tests.integration.test_admin_auth import TOKENS, tokens_file
from tests.kit import ROOT, bound, child_env, make_config, run_sidecar, wait_until

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
APPROVER = {"Authorization": f"Bearer {TOKENS['approver']}"}


class HoldsDeletes:
    """Stands in for a policy: delete_file needs approval, its `path` is a redacted path, with a reason."""

    name = "test-policy"

    async def __call__(self, ctx: CallContext, call_next):
        if ctx.target == "delete_file":
            ctx.record.redact = ("path",)
            ctx.record.policy_reasons = ("destructive tools need a human",)
            ctx = ctx.evolve(obligations={"require_approval": True})
        return await call_next(ctx)


def standin_policy(monkeypatch, standin) -> None:
    """`standin` (a stage setting obligations), then the approval stage, in the cache's place (without a policy
    engine the sidecar builds no approval stage)."""
    import proxy.runtime.app

    def build(config, deps):
        stages = real_build_stages(config, deps)
        at = next((i for i, stage in enumerate(stages) if stage.name == "cache"), len(stages))
        stage = approval_module.ApprovalStage(config.approval, deps.approvals, deps.catalog, deps.notifier)
        return [*stages[:at], standin, stage, *stages[at:]]

    monkeypatch.setattr(proxy.runtime.app, "build_stages", build)


@pytest.fixture
def held(monkeypatch):
    standin_policy(monkeypatch, HoldsDeletes())


async def first_pending(http: aiohttp.ClientSession, admin: str) -> dict:
    found: list[dict] = []

    async def listed() -> bool:
        async with http.get(admin + "/approvals", headers=APPROVER) as response:
            found[:] = (await response.json())["pending"]
        return bool(found)

    await wait_until(listed)
    return found[0]


@pytest.mark.parametrize(("mode", "shown"), [("redacted", {"path": "[redacted]"}), ("none", None),
                                             ("full", {"path": "/tmp/x"})])
async def test_approvers_see_what_show_arguments_allows(stateless_upstream, tmp_path, held, mode, shown) -> None:
    config = make_config(stateless_upstream, approval__show_arguments=mode,
                         admin__auth={"tokens_file": tokens_file(tmp_path)})
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http, \
            Client(sidecar.url, cache=None) as client:
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/x"}))
        item = await first_pending(http, sidecar.admin_url)
        async with http.get(f"{sidecar.admin_url}/approvals/{item['id']}", headers=APPROVER) as response:
            assert await response.json() == item
        async with http.post(f"{sidecar.admin_url}/approvals/{item['id']}/deny", headers=APPROVER,
                             json=bound(item)) as response:
            assert response.status == 200
        await asyncio.wait_for(call, 5)
    assert item["arguments"] == shown and item["arguments_shown"] == mode
    assert item["principal"] == "anonymous" and item["target"] == "delete_file"
    assert item["reasons"] == ["destructive tools need a human"]
    assert item["annotations"]["destructiveHint"] is True and item["annotations"]["readOnlyHint"] is False
    assert RFC3339.match(item["created"]) and RFC3339.match(item["expires"]) and item["expires"] > item["created"]


async def test_a_decision_for_other_arguments_releases_nothing(stateless_upstream, tmp_path, held) -> None:
    audit = tmp_path / "audit.jsonl"
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)},
                         audit__enabled=True, audit__sink="file", audit__path=str(audit))
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http, \
            Client(sidecar.url, cache=None) as client:
        first = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/harmless"}))
        harmless = await first_pending(http, sidecar.admin_url)
        second = asyncio.create_task(client.call_tool("delete_file", {"path": "/etc"}))
        await wait_until(lambda: len(sidecar.app.deps.approvals._pending) == 2)
        other = next(i for i in await sidecar.app.deps.approvals.pending() if i["id"] != harmless["id"])
        # The approver saw the harmless call; a decision naming its hash cannot release the other one.
        async with http.post(f"{sidecar.admin_url}/approvals/{other['id']}/approve", headers=APPROVER,
                             json=bound(harmless)) as response:
            assert response.status == 409
        async with http.post(f"{sidecar.admin_url}/approvals/{other['id']}/approve", headers=APPROVER,
                             json={}) as response:
            assert response.status == 400
        assert not second.done() and len(await sidecar.app.deps.approvals.pending()) == 2
        async with http.post(f"{sidecar.admin_url}/approvals/{harmless['id']}/approve", headers=APPROVER,
                             json=bound(harmless, note="checked")) as response:
            assert (await response.json())["approver"] == "approver-bot"
        approved = await asyncio.wait_for(first, 5)
        async with http.post(f"{sidecar.admin_url}/approvals/{other['id']}/deny", headers=APPROVER,
                             json=bound(other)) as response:
            assert response.status == 200
        denied = await asyncio.wait_for(second, 5)
    assert approved.is_error is False and denied.is_error is True
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    calls = {event["approval_id"]: event for event in events if event.get("approval_id")}
    assert calls[harmless["id"]]["approver"] == "approver-bot" and calls[harmless["id"]]["approval"] == "approved"
    assert calls[other["id"]]["approval"] == "denied"
    assert "/etc" not in audit.read_text()  # arguments stay out of the audit by default


async def cli(admin: str, token_file, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "approvals", "--admin", admin, "--token-file", str(token_file), *args,
        env=child_env(), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_the_approvals_cli_lists_shows_and_decides(stateless_upstream, tmp_path, held) -> None:
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)},
                         approval__show_arguments="full")
    approver, viewer = tmp_path / "approver.token", tmp_path / "viewer.token"
    approver.write_text(TOKENS["approver"] + "\n")
    viewer.write_text(TOKENS["viewer"])
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http, \
            Client(sidecar.url, cache=None) as client:
        admin = sidecar.admin_url
        assert (await cli(admin, approver, "list"))[1].strip() == "no calls are waiting"
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/cli"}))
        item = await first_pending(http, admin)
        status, out, _ = await cli(admin, approver, "list")
        assert status == 0 and item["id"] in out and '"/tmp/cli"' in out and "destructive" in out
        status, out, _ = await cli(admin, approver, "show", item["id"], "--json")
        assert json.loads(out) == item
        status, _, err = await cli(admin, viewer, "approve", item["id"])
        assert status == 1 and "HTTP 403" in err
        status, _, err = await cli(admin, approver, "approve", item["id"], "--arguments-hash", "sha256:other")
        assert status == 1 and "HTTP 409" in err
        status, out, err = await cli(admin, approver, "approve", item["id"], "--note", "ok")
        assert status == 0 and out.strip() == f"approved {item['id']} as approver-bot" and "/tmp/cli" in err
        result = await asyncio.wait_for(call, 5)
        assert result.is_error is False
        status, _, err = await cli(admin, approver, "deny", item["id"])
        assert status == 1 and "HTTP 404" in err
        status, _, err = await cli(admin, tmp_path / "missing", "list")
        assert status == 2 and "cannot read" in err
