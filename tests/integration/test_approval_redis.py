"""Approvals shared through Redis (`approval.backend: redis`): any sidecar sharing the Redis lists and decides a call
that waits in another, the pending limit holds for all of them, and a Redis that is away fails closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis.asyncio as redis
import structlog
from mcp import Client
from redis.exceptions import TimeoutError as RedisTimeoutError

from proxy.approval import redis_book as approval_redis
from proxy.approval.book import Outcome
from proxy.approval.redis_book import RedisApprovalBook
from proxy.config import ApprovalConfig
from proxy.errors import ApprovalUnavailableError
from tests.integration.test_approval import with_policy
from tests.kit import (
    bound,
    child_env,
    make_config,
    modern_headers,
    modern_request,
    run_sidecar,
    serve_workers,
    wait_until,
)
from tests.redis_kit import SHARED_URL, needs_redis_server, needs_shared_redis, private_redis, unique_prefix


def redis_approvals(upstream: str, prefix: str, url: str = SHARED_URL, **extra):
    return make_config(upstream, approval__backend="redis", approval__redis_url=url, approval__key_prefix=prefix,
                       **extra)


async def listed(http: aiohttp.ClientSession, admin: str) -> list[dict]:
    async with http.get(admin + "/approvals") as response:
        assert response.status == 200
        return (await response.json())["pending"]


async def wait_listed(http: aiohttp.ClientSession, admin: str, count: int = 1) -> list[dict]:
    async with asyncio.timeout(5):
        while len(waiting := await listed(http, admin)) < count:
            await asyncio.sleep(0.02)
    return waiting


async def redis_keys(prefix: str) -> list[bytes]:
    async with redis.Redis.from_url(SHARED_URL) as raw:
        pending = await raw.zrange(prefix + "pending", 0, -1)
        return [*pending, *await raw.keys(prefix + "item:*"), *await raw.keys(prefix + "decision:*")]


@needs_shared_redis
async def test_a_call_waiting_in_one_sidecar_is_listed_and_decided_through_another(
        stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    prefix = unique_prefix("approval")
    async with (run_sidecar(redis_approvals(stateless_upstream, prefix)) as holder,
                run_sidecar(redis_approvals(stateless_upstream, prefix)) as other,
                aiohttp.ClientSession() as http, Client(holder.url, cache=None) as client):
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/shared"}))
        waiting = await wait_listed(http, other.admin_url)
        assert await listed(http, holder.admin_url) == waiting  # one book, whichever sidecar is asked
        async with http.post(f"{other.admin_url}/approvals/{waiting[0]['id']}/approve",
                             json=bound(waiting[0])) as response:
            assert response.status == 200
        approved = await asyncio.wait_for(call, 5)
        async with http.post(f"{holder.admin_url}/approvals/{waiting[0]['id']}/deny",
                             json=bound(waiting[0])) as response:
            assert response.status == 404  # decided once

        denied_call = asyncio.create_task(client.call_tool("delete_file", {"path": "/etc"}))
        second = await wait_listed(http, other.admin_url)
        async with http.post(f"{other.admin_url}/approvals/{second[0]['id']}/deny",
                             json=bound(second[0], note="not on a Friday")) as response:
            assert response.status == 200
        denied = await asyncio.wait_for(denied_call, 5)
        await wait_until(lambda: _no_keys(prefix))
    assert waiting[0]["target"] == "delete_file" and waiting[0]["arguments_hash"].startswith("sha256:")
    assert approved.is_error is False and approved.content[0].text == "deleted /tmp/shared"
    assert denied.is_error is True and "not on a Friday" in denied.content[0].text


async def _no_keys(prefix: str) -> bool:
    return await redis_keys(prefix) == []


@needs_shared_redis
async def test_the_pending_limit_counts_every_sidecar(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    prefix = unique_prefix("approval")
    configs = [redis_approvals(stateless_upstream, prefix, approval__max_pending=1) for _ in range(2)]
    async with (run_sidecar(configs[0]) as first, run_sidecar(configs[1]) as second, aiohttp.ClientSession() as http,
                Client(first.url, cache=None) as one, Client(second.url, cache=None) as two):
        held = asyncio.create_task(one.call_tool("delete_file", {"path": "/tmp/a"}))
        waiting = await wait_listed(http, second.admin_url)
        refused = await two.call_tool("delete_file", {"path": "/tmp/b"})
        async with http.post(f"{second.admin_url}/approvals/{waiting[0]['id']}/approve",
                             json=bound(waiting[0])) as response:
            assert response.status == 200
        assert (await asyncio.wait_for(held, 5)).is_error is False
    assert refused.is_error is True and "Approval queue is full" in refused.content[0].text


@needs_shared_redis
async def test_an_undecided_call_times_out_as_a_denial_and_cannot_be_decided_after(
        stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    prefix = unique_prefix("approval")
    config = redis_approvals(stateless_upstream, prefix, approval__timeout_seconds=0.4)
    async with (run_sidecar(config) as sidecar, aiohttp.ClientSession() as http,
                Client(sidecar.url, cache=None) as client):
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/late"}))
        waiting = await wait_listed(http, sidecar.admin_url)
        result = await asyncio.wait_for(call, 5)
        async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/approve",
                             json=bound(waiting[0])) as response:
            late = response.status
        assert await redis_keys(prefix) == []
    assert result.is_error is True and "no approval within 0.4s" in result.content[0].text
    assert late == 404


@needs_shared_redis
async def test_a_decision_whose_message_was_missed_is_found_by_the_waiting_call() -> None:
    """The decision is stored, but its published message never reaches the waiter (as during a reconnect)."""
    prefix = unique_prefix("approval")
    book = RedisApprovalBook(ApprovalConfig(backend="redis", key_prefix=prefix, recheck_seconds=0.1))
    await book.start()
    try:
        approval = await book.open({"method": "tools/call", "target": "delete_file"})
        assert approval is not None
        async with redis.Redis.from_url(SHARED_URL) as raw:
            decision = orjson.dumps({"id": approval.id, "approved": True, "note": "fine"})
            await raw.zrem(prefix + "pending", approval.id)
            await raw.set(f"{prefix}decision:{approval.id}", decision, px=10_000)  # stored, never published
        outcome = await asyncio.wait_for(book.wait(approval, within_seconds=5), 2)
        await wait_until(lambda: _no_keys(prefix))
    finally:
        await book.close()
    assert outcome == Outcome(True, "fine")


@needs_shared_redis
async def test_a_client_leaving_withdraws_its_approval_from_redis(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    prefix = unique_prefix("approval")
    async with run_sidecar(redis_approvals(stateless_upstream, prefix)) as sidecar, aiohttp.ClientSession() as http:
        body = modern_request("tools/call", {"name": "delete_file", "arguments": {"path": "/tmp/gone"}})
        response = await http.post(sidecar.url, json=body, headers=modern_headers("tools/call", "delete_file"))
        await wait_listed(http, sidecar.admin_url)
        response.close()  # before anyone decides
        await wait_until(lambda: _no_keys(prefix))
        assert await listed(http, sidecar.admin_url) == []


@needs_redis_server
async def test_redis_away_fails_closed_and_recovers(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    with private_redis() as server:
        prefix = unique_prefix("approval")
        config = redis_approvals(stateless_upstream, prefix, url=server.url, approval__redis_timeout_seconds=0.2,
                                 approval__recheck_seconds=0.1)
        async with (run_sidecar(config) as sidecar, aiohttp.ClientSession() as http,
                    Client(sidecar.url, cache=None) as client):
            server.stop()
            refused = await client.call_tool("delete_file", {"path": "/tmp/x"})
            unaffected = await client.call_tool("add", {"a": 2, "b": 3})
            async with http.get(sidecar.admin_url + "/approvals") as response:
                listing = response.status, await response.json()
            async with http.post(f"{sidecar.admin_url}/approvals/abc/approve",
                                 json={"arguments_hash": "sha256:0"}) as response:
                deciding = response.status
            async with http.get(sidecar.admin_url + "/readyz") as response:
                ready = response.status, (await response.json())["checks"]["approvals"]

            server.start()  # back: the subscription is restored and approvals work again
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/y"}))
            waiting = await wait_listed(http, sidecar.admin_url)
            async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/approve",
                                 json=bound(waiting[0])) as response:
                assert response.status == 200
            approved = await asyncio.wait_for(call, 5)
    assert refused.is_error is True and "approval store is unreachable" in refused.content[0].text
    assert unaffected.structured_content == {"result": 5}
    assert listing[0] == 503 and "unreachable" in listing[1]["error"]
    assert deciding == 503
    assert ready[0] == 200 and ready[1]["ok"] is True and "refused" in ready[1]["detail"]
    assert approved.is_error is False and approved.content[0].text == "deleted /tmp/y"


APPROVE_DELETES = """package mcp
import rego.v1

decision := {"allow": true, "obligations": {"require_approval": true}} if input.mcp.tool.name == "delete_file"

decision := {"allow": true} if not input.mcp.tool.name == "delete_file"

visible contains item.key if some item in input.mcp.list.items
"""


@needs_shared_redis
async def test_two_workers_share_the_book(stateless_upstream: str, tmp_path: Path) -> None:
    """The admin port is shared like the MCP port: each admin connection reaches either worker, and every one of them
    lists the waiting call and can approve it."""
    (tmp_path / "policy.rego").write_text(APPROVE_DELETES)
    prefix = unique_prefix("approval")
    env = child_env(MCP_SIDECAR__AUDIT__ENABLED="false", MCP_SIDECAR__AUTH__MODE="off",
                    MCP_SIDECAR__POLICY__ENGINE="rego", MCP_SIDECAR__POLICY__DIRECTORY=str(tmp_path),
                    MCP_SIDECAR__APPROVAL__BACKEND="redis", MCP_SIDECAR__APPROVAL__REDIS_URL=SHARED_URL,
                    MCP_SIDECAR__APPROVAL__KEY_PREFIX=prefix)
    with serve_workers(stateless_upstream, env) as workers:
        admin_url = workers.admin
        body = modern_request("tools/call", {"name": "delete_file", "arguments": {"path": "/tmp/w"}})
        async with aiohttp.ClientSession() as caller:
            json_only = {**modern_headers("tools/call", "delete_file"), "Accept": "application/json"}
            call = asyncio.create_task(_post_json(caller, workers.url, body, json_only))
            async with aiohttp.ClientSession() as first:
                waiting = await wait_listed(first, admin_url)
            seen = []
            for _ in range(12):  # a fresh connection each time, so the kernel picks a worker each time
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
                    seen.append(await listed(fresh, admin_url))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as approver, \
                    approver.post(f"{admin_url}/approvals/{waiting[0]['id']}/approve",
                                  json=bound(waiting[0])) as response:
                assert response.status == 200
            answer = await asyncio.wait_for(call, 5)
    assert all(listing == waiting for listing in seen)
    assert answer["result"]["content"][0]["text"] == "deleted /tmp/w"


async def _post_json(http: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> dict:
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200
        return await response.json()


def book_at(prefix: str, **extra) -> RedisApprovalBook:
    return RedisApprovalBook(ApprovalConfig(backend="redis", key_prefix=prefix, **extra))


async def drop_keys(prefix: str) -> None:
    """What a test's stubbed script left behind."""
    async with redis.Redis.from_url(SHARED_URL) as raw:
        if keys := await raw.keys(prefix + "*"):
            await raw.delete(*keys)


@needs_shared_redis
@pytest.mark.parametrize("failure", ["cancelled", "timed out"])
async def test_an_open_whose_answer_is_lost_leaves_no_approval_behind(failure: str) -> None:
    """OPEN ran in Redis, but its answer never came: the client left meanwhile, or the command timed out. The
    approval must not stay listed (an approver could grant a call that is gone) nor hold a pending slot."""
    prefix = unique_prefix("approval")
    book = book_at(prefix)
    script, answered = book._open, asyncio.Event()

    async def ran_unanswered(**command):
        await script(**command)
        if failure == "timed out":
            raise RedisTimeoutError("Timeout reading from redis")
        await answered.wait()  # never set: the answer is still on its way

    book._open = ran_unanswered
    try:
        opening = asyncio.create_task(book.open({"method": "tools/call", "target": "delete_file"}))
        if failure == "cancelled":
            await wait_until(lambda: redis_keys(prefix))
            opening.cancel()
        with pytest.raises((asyncio.CancelledError, ApprovalUnavailableError)):
            await asyncio.wait_for(opening, 2)
        await wait_until(lambda: _no_keys(prefix), timeout=2)
    finally:
        await book.close()


@needs_shared_redis
async def test_the_pending_set_expires_with_its_last_deadline() -> None:
    """A sidecar that dies with calls waiting leaves their ids in `pending`; the set must not outlive them."""
    prefix = unique_prefix("approval")
    book = book_at(prefix, timeout_seconds=5)
    try:
        approval = await book.open({"method": "tools/call", "target": "delete_file"})
        async with redis.Redis.from_url(SHARED_URL) as raw:
            ttl = await raw.pttl(prefix + "pending")
        if approval is not None:
            book.withdraw(approval)
    finally:
        await book.close()
    assert approval is not None and 0 < ttl <= 5000


@needs_shared_redis
async def test_a_decision_delivered_while_the_store_fails_at_the_deadline_is_kept() -> None:
    """The decision's message arrived (so it was recorded: its approver got 200) while the closing read failed."""
    prefix = unique_prefix("approval")
    book = book_at(prefix)
    try:
        approval = await book.open({"method": "tools/call", "target": "delete_file"})
        assert approval is not None

        async def message_then_failure(**_command):
            book._deliver(orjson.dumps({"id": approval.id, "approved": True, "note": "fine"}))
            raise RedisTimeoutError("Timeout reading from redis")

        book._close = message_then_failure
        outcome = await asyncio.wait_for(book.wait(approval, within_seconds=0.05), 2)
    finally:
        await book.close()
        await drop_keys(prefix)
    assert outcome == Outcome(True, "fine")


@needs_shared_redis
async def test_close_leaves_no_cleanup_running() -> None:
    prefix = unique_prefix("approval")
    book = book_at(prefix, redis_timeout_seconds=0.05)
    hung = asyncio.Event()

    async def never_answered(**_command):
        await hung.wait()

    approval = await book.open({"method": "tools/call", "target": "delete_file"})
    book._close = never_answered
    book.withdraw(approval)
    chores = set(book._chores)
    await asyncio.wait_for(book.close(), 2)
    await drop_keys(prefix)
    assert chores and all(chore.done() for chore in chores)


@needs_redis_server
async def test_a_refused_subscription_is_reported_once(monkeypatch) -> None:
    """SUBSCRIBE sent is not SUBSCRIBE granted (here an ACL refuses the channel): no 'restored' for it, so no
    lost/restored pair in the log at every attempt."""
    monkeypatch.setattr(approval_redis, "RESUBSCRIBE_SECONDS", 0.05)
    with private_redis() as server, structlog.testing.capture_logs() as logs:
        async with redis.Redis.from_url(server.url) as raw:
            await raw.execute_command("ACL", "SETUSER", "approver", "on", ">pw", "~*", "+@all", "resetchannels")
            book = book_at(unique_prefix("approval"), redis_url=f"redis://approver:pw@127.0.0.1:{server.port}/0")
            await book.start()
            try:
                await wait_until(lambda: refusals(raw, 3))
            finally:
                await book.close()
    assert [log["event"] for log in logs if log["event"].startswith("approval.subscription")] == [
        "approval.subscription_lost"]


async def refusals(raw: redis.Redis, count: int) -> bool:
    return sum(int(entry["count"]) for entry in await raw.acl_log()) >= count
