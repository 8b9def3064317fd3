"""Approval webhooks against local receivers: signed notifications with one-time links, retries after failures, a
receiver that never answers (bounded queue, counted drops), and the Slack-compatible payload."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from mcp import Client

from proxy.approval.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LinkClaim,
    make_link_token,
    verify_webhook,
)
from proxy.config import Config, ConfigError
from tests.integration.test_approval_operator import held  # noqa: F401 (the fixture)
from tests.kit import free_port, make_config, run_sidecar, serve_app, wait_until

SECRET = b"webhook-secret-" + b"x" * 32
LINK_SECRET = b"link-secret-" + b"y" * 32


class Receiver:
    """Checks every signature; answers `failures` times with 500 first, or never when `hang`."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        self.failures = failures
        self.hang = hang
        self.attempts = 0
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if self.hang:
            await self.release.wait()
        if not verify_webhook(SECRET, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER], body):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500)
        self.events.append(orjson.loads(body))
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


def secrets(tmp_path) -> tuple[str, str]:
    hook, link = tmp_path / "hook.key", tmp_path / "link.key"
    hook.write_bytes(SECRET + b"\n")
    link.write_bytes(LINK_SECRET)
    return str(hook), str(link)


def webhook_config(upstream: str, tmp_path, hook_url: str, links: bool = False, **webhook) -> Config:
    hook, link = secrets(tmp_path)
    admin = f"127.0.0.1:{free_port()}"
    settings = {"url": hook_url, "secret_file": hook, "links_secret_file": link, "backoff_seconds": 0.05,
                **({"links_base_url": f"http://{admin}"} if links else {}), **webhook}
    return make_config(upstream, server__admin_listen=admin, approval__webhook=settings)


async def test_signed_notifications_and_one_time_links(stateless_upstream, tmp_path, held) -> None:  # noqa: F811
    receiver = Receiver()
    async with serve_app(receiver.app()) as base:
        config = webhook_config(stateless_upstream, tmp_path, base + "/hook", links=True)
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http, \
                Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/linked"}))
            await wait_until(lambda: receiver.events)
            pending = receiver.events[0]
            approve, deny = pending["links"]["approve"], pending["links"]["deny"]
            async with http.get(approve) as page:  # a preview fetch decides nothing
                assert page.status == 200 and "Approve this call?" in await page.text()
            assert not call.done()
            async with http.post(approve) as decided:
                assert decided.status == 200
            result = await asyncio.wait_for(call, 5)
            async with http.post(approve) as again, http.post(deny) as other:
                assert again.status == 410 and other.status == 410  # one decision per call: used twice, refused
            await wait_until(lambda: len(receiver.events) == 2)
    assert receiver.bad_signatures == 0 and result.is_error is False
    assert pending["type"] == "approval.pending" and pending["approval"]["target"] == "delete_file"
    assert pending["approval"]["arguments"] == {"path": "[redacted]"}
    decided_event = receiver.events[1]
    assert decided_event["type"] == "approval.decided"
    assert decided_event["decision"] == {"approved": True, "note": "decided from a one-time link", "approver": "link"}


async def test_links_for_another_call_forged_or_expired_are_refused(stateless_upstream, tmp_path,
                                                                    held) -> None:  # noqa: F811
    receiver = Receiver()
    async with serve_app(receiver.app()) as base:
        config = webhook_config(stateless_upstream, tmp_path, base + "/hook", links=True)
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http, \
                Client(sidecar.url, cache=None) as client:
            first = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/a"}))
            await wait_until(lambda: receiver.events)
            second = asyncio.create_task(client.call_tool("delete_file", {"path": "/etc"}))
            await wait_until(lambda: len(receiver.events) == 2)
            a, b = (event["approval"] for event in receiver.events)
            link = f"{sidecar.admin_url}/approvals/link/"
            later = time.time() + 60
            crossed = make_link_token(LINK_SECRET, LinkClaim(b["id"], a["arguments_hash"], True, later))
            expired = make_link_token(LINK_SECRET, LinkClaim(b["id"], b["arguments_hash"], True, time.time() - 1))
            forged = make_link_token(b"z" * 40, LinkClaim(b["id"], b["arguments_hash"], True, later))
            async with http.post(link + crossed) as response:
                assert response.status == 410  # the arguments it was minted for are not this call's
            for token in (expired, forged):
                async with http.post(link + token) as response:
                    assert response.status == 401
            assert not second.done()
            deny_b = receiver.events[1]["links"]["deny"]
            async with http.post(deny_b) as response, http.post(receiver.events[0]["links"]["deny"]) as other:
                assert response.status == 200 and other.status == 200
            results = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert all(result.is_error for result in results)


async def test_a_failing_receiver_gets_retries(stateless_upstream, tmp_path, held) -> None:  # noqa: F811
    receiver = Receiver(failures=2)
    async with serve_app(receiver.app()) as base:
        config = webhook_config(stateless_upstream, tmp_path, base + "/hook", max_attempts=3)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/r"}))
            await wait_until(lambda: receiver.events)
            waiting = await sidecar.app.deps.approvals.pending()
            await sidecar.app.deps.approvals.decide(waiting[0]["id"], waiting[0]["arguments_hash"],
                                                    _outcome(False))
            await asyncio.wait_for(call, 5)
            await wait_until(lambda: len(receiver.events) == 2)
            notifier = sidecar.app.deps.notifier
    assert receiver.attempts == 4 and notifier.delivered == 2 and notifier.failed == 0  # 2 failures + 2 deliveries
    assert "links" not in receiver.events[0]  # no links_base_url: no links


def _outcome(approved: bool):
    from proxy.approval.book import Outcome

    return Outcome(approved, "test", "tester")


async def test_a_receiver_that_never_answers_fills_a_bounded_queue(stateless_upstream, tmp_path) -> None:
    receiver = Receiver(hang=True)
    async with serve_app(receiver.app()) as base:
        config = webhook_config(stateless_upstream, tmp_path, base + "/hook", max_attempts=2, timeout_seconds=0.2,
                                max_queue=3)
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            deps = sidecar.app.deps
            for n in range(10):
                approval = await deps.approvals.open({"target": f"tool{n}", "arguments_hash": "sha256:0"})
                deps.notifier.pending(approval)
            notifier = deps.notifier
            assert notifier.dropped >= 6  # one in flight at most, three queued
            await wait_until(lambda: notifier.failed >= 1, timeout=5)
            async with http.get(sidecar.admin_url + "/readyz") as response:
                detail = (await response.json())["checks"]["webhook"]
            receiver.release.set()
    assert detail["ok"] is True and f"{notifier.dropped} dropped" in detail["detail"] and "failed" in detail["detail"]
    assert receiver.attempts >= 2  # the first notification was tried again after its timeout


async def test_slack_payload_has_text_and_link_buttons(stateless_upstream, tmp_path, held) -> None:  # noqa: F811
    receiver = Receiver()
    async with serve_app(receiver.app()) as base:
        config = webhook_config(stateless_upstream, tmp_path, base + "/hook", format="slack",
                                links=True)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/s"}))
            await wait_until(lambda: receiver.events)
            waiting = await sidecar.app.deps.approvals.pending()
            await sidecar.app.deps.approvals.decide(waiting[0]["id"], waiting[0]["arguments_hash"], _outcome(True))
            await asyncio.wait_for(call, 5)
            await wait_until(lambda: len(receiver.events) == 2)
    message, decided = receiver.events
    assert "wants to call `delete_file`" in message["text"]
    buttons = message["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"]
    assert all("/approvals/link/" in b["url"] for b in buttons)
    assert decided["text"].endswith("was approved by tester: test")


def test_links_need_their_own_key(tmp_path) -> None:
    hook, _ = secrets(tmp_path)
    with pytest.raises(ConfigError, match="needs links_secret_file"):
        make_config(approval__webhook={"url": "http://127.0.0.1:9/hook", "secret_file": hook,
                                       "links_base_url": "http://admin.example"})
    with pytest.raises(ConfigError, match="must not be the webhook"):
        make_config(approval__webhook={"url": "http://127.0.0.1:9/hook", "secret_file": hook,
                                       "links_base_url": "http://admin.example", "links_secret_file": hook})
