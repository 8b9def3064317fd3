"""User confirmation (`require_confirmation`) with the SDK client: a 2026-07-28 client that can elicit is asked and
its yes lets the call through; a no, a forged, replayed or foreign `requestState` is refused; a client that cannot
be asked (no elicitation, or a legacy session) waits for an approver instead."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from mcp import Client, types

from proxy.approval.confirmation import INPUT_KEY
from proxy.context import CallContext
from tests.integration.test_approval_operator import standin_policy
from tests.kit import bound, make_config, modern_headers, modern_request, run_sidecar, wait_until

MODERN = "2026-07-28"


class ConfirmDeletes:
    """Stands in for a policy putting `require_confirmation` on delete_file."""

    name = "test-policy"

    async def __call__(self, ctx: CallContext, call_next):
        if ctx.target == "delete_file":
            ctx = ctx.evolve(obligations={"require_confirmation": True})
        return await call_next(ctx)


@pytest.fixture
def confirming(monkeypatch):
    standin_policy(monkeypatch, ConfirmDeletes())


def answering(action: str, confirm: bool, asked: list[str]):
    async def answer(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action=action, content={"confirm": confirm} if action == "accept" else None)
    return answer


@pytest.mark.parametrize(("action", "confirm", "runs"), [("accept", True, True), ("accept", False, False),
                                                          ("decline", False, False)])
async def test_a_modern_client_is_asked_and_only_a_yes_runs_the_call(stateless_upstream, confirming, action,
                                                                     confirm, runs) -> None:
    asked: list[str] = []
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, Client(
            sidecar.url, mode=MODERN, cache=None, elicitation_callback=answering(action, confirm, asked)) as client:
        result = await client.call_tool("delete_file", {"path": "/tmp/c"})
        other = await client.call_tool("add", {"a": 1, "b": 2})
    assert asked == ["The tool 'delete_file' asks to run with these arguments. Run it?"]
    assert other.structured_content == {"result": 3}  # no obligation, no question
    if runs:
        assert result.is_error is False and result.content[0].text == "deleted /tmp/c"
    else:
        assert result.is_error is True and "the user did not confirm" in result.content[0].text


async def post(http: aiohttp.ClientSession, url: str, params: dict, request_id: int) -> dict:
    async with http.post(url, json=modern_request("tools/call", params, request_id),
                         headers=modern_headers("tools/call", params["name"])) as response:
        assert response.status == 200
        return await response.json()


async def test_forged_replayed_and_foreign_states_are_refused(stateless_upstream, confirming) -> None:
    call = {"name": "delete_file", "arguments": {"path": "/tmp/f"}}
    yes = {INPUT_KEY: {"action": "accept", "content": {"confirm": True}}}
    capabilities = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        def asked(params: dict) -> dict:
            message = modern_request("tools/call", params)
            message["params"]["_meta"].update(capabilities)
            return message

        async with http.post(sidecar.url, json=asked(call), headers=modern_headers("tools/call", "delete_file")) \
                as response:
            first = (await response.json())["result"]
        assert first["resultType"] == "input_required" and INPUT_KEY in first["inputRequests"]
        state = first["requestState"]
        payload = state.rsplit(".", 1)[0]
        forged = await post(http, sidecar.url, {**call, "requestState": payload + ".AAAA", "inputResponses": yes}, 2)
        foreign = await post(http, sidecar.url, {"name": "delete_file", "arguments": {"path": "/etc"},
                                                 "requestState": state, "inputResponses": yes}, 3)
        confirmed = await post(http, sidecar.url, {**call, "requestState": state, "inputResponses": yes}, 4)
        replayed = await post(http, sidecar.url, {**call, "requestState": state, "inputResponses": yes}, 5)
    assert "not valid" in forged["result"]["content"][0]["text"] and forged["result"]["isError"]
    assert "another call" in foreign["result"]["content"][0]["text"]
    assert confirmed["result"]["content"][0]["text"] == "deleted /tmp/f"
    assert "used already" in replayed["result"]["content"][0]["text"]


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
async def test_a_client_that_cannot_be_asked_waits_for_an_approver(stateful_upstream, confirming, mode) -> None:
    async with run_sidecar(make_config(stateful_upstream)) as sidecar, aiohttp.ClientSession() as http, \
            Client(sidecar.url, mode=mode, cache=None) as client:  # no elicitation callback: no capability
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/fallback"}))
        await wait_until(sidecar.app.deps.approvals.pending)
        waiting = await sidecar.app.deps.approvals.pending()
        async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/approve",
                             json=bound(waiting[0])) as response:
            assert response.status == 200
        result = await asyncio.wait_for(call, 5)
    assert result.is_error is False and result.content[0].text == "deleted /tmp/fallback"
