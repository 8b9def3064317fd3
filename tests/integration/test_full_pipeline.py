"""Every stage at once, as a user runs it: deploy/sidecar.example.yaml (ports, URLs and paths substituted) in front
of the demo upstream, real JWTs from a local JWKS server, the shipped policies, memory rate limits and cache,
traces to an OTLP receiver, audit to a file, driven by the official SDK client for two principals."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from proxy.catalog import ToolCatalog
from proxy.config import Config, load_config
from tests.idp import ISSUER, JwksServer, claims_for, make_token, new_key, serve_jwks
from tests.integration.test_metrics_audit import read_events, scrape, value
from tests.kit import ROOT, bound, free_port, modern_headers, modern_request, run_sidecar
from tests.otlp_kit import CLIENT, SERVER, ReceivedSpan, Receiver, otlp_receiver
from tests.redis_kit import SHARED_URL, needs_shared_redis, unique_prefix

EXAMPLE = ROOT / "deploy" / "sidecar.example.yaml"
READER_TOOLS = ["add", "echo", "invocations", "lookup", "slow_count"]  # policies/data.json, role `reader`
OUTSIDE_SCRATCH = "delete_file: argument path must be a path in an allowed directory"


def example_config(upstream: str, jwks_url: str, otlp_url: str, audit_path: Path, **dotted: Any) -> Config:
    """The shipped example, with only what differs on a test machine substituted."""
    return load_config(EXAMPLE, env={}, overrides={
        "server.listen": f"127.0.0.1:{free_port()}", "server.admin_listen": f"127.0.0.1:{free_port()}",
        "upstream.url": upstream, "auth.jwks_url": jwks_url, "auth.issuers": [ISSUER],
        "policy.directory": str(ROOT / "policies"), "telemetry.otlp_endpoint": otlp_url,
        "audit.path": str(audit_path), **dotted})


@dataclass
class Stack:
    config: Config
    url: str
    admin_url: str
    idp: JwksServer
    receiver: Receiver
    audit_path: Path
    signing: Any
    metrics: dict = field(default_factory=dict)

    def token(self, sub: str, roles: list[str], plan: str | None = None) -> str:
        claims = claims_for(self.config.server.resource_url, sub=sub, realm_access={"roles": roles},
                            scope="openid mcp:tools", **({"plan": plan} if plan else {}))
        return make_token(self.signing, claims)

    def events(self) -> list[dict]:
        return read_events(self.audit_path)

    def bucket(self, name: str) -> int:
        return next(bucket.capacity for bucket in self.config.rate_limits.buckets if bucket.name == name)


@contextlib.asynccontextmanager
async def full_stack(upstream: str, tmp_path: Path, **dotted: Any) -> AsyncIterator[Stack]:
    """Yields while the sidecar runs; on exit the sidecar has shut down, so audit and spans are flushed."""
    key = new_key("realm-key")
    async with serve_jwks(key) as idp, otlp_receiver() as receiver:
        config = example_config(upstream, idp.url, receiver.url, tmp_path / "audit.jsonl", **dotted)
        async with run_sidecar(config) as sidecar:
            yield Stack(config, sidecar.url, sidecar.admin_url, idp, receiver, tmp_path / "audit.jsonl", key)


@contextlib.asynccontextmanager
async def client_as(url: str, token: str, mode: str, seen: list[httpx2.Response]) -> AsyncIterator[Client]:
    """The SDK client with a bearer token; every HTTP response it receives is noted (for the headers)."""

    async def note(response: httpx2.Response) -> None:
        seen.append(response)

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(10.0),
                                  event_hooks={"response": [note]}) as http, \
            Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
        yield client


def by_tool(events: list[dict], principal: str, tool: str) -> list[dict]:
    return [e for e in events if e["principal"] == principal and e["tool"] == tool and e["kind"] == "request"]


def trace_of(receiver: Receiver, event: dict) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.trace_id == event["trace_id"]]


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_two_principals_through_every_stage(stateful_upstream: str, tmp_path: Path, mode: str) -> None:
    key = f"k-{mode}"
    rita_headers: list[httpx2.Response] = []
    async with full_stack(stateful_upstream, tmp_path) as stack:
        rita = stack.token("rita", ["reader"])  # no plan claim: the free plan
        ada = stack.token("ada", ["admin"], plan="pro")
        async with client_as(stack.url, ada, mode, []) as client:
            ada_tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            denied = await client.call_tool("delete_file", {"path": "/etc/passwd"})
            async with client_as(stack.url, rita, mode, rita_headers) as rita_client:
                rita_tools = sorted(tool.name for tool in (await rita_client.list_tools()).tools)
                first = await rita_client.call_tool("lookup", {"key": key})
                second = await rita_client.call_tool("lookup", {"key": key})
                ada_lookup = await client.call_tool("lookup", {"key": key})
                allowed = 2  # rita's two lookups were charged (a cache hit still passed the rate limit)
                while allowed < stack.bucket("plan-free"):
                    assert not (await rita_client.call_tool("add", {"a": allowed, "b": 1})).is_error
                    allowed += 1
                limited = await rita_client.call_tool("add", {"a": 0, "b": 0})
        async with aiohttp.ClientSession() as http:
            body = orjson.dumps(modern_request("tools/list"))
            async with http.post(stack.url, data=body, headers=modern_headers("tools/list")) as anonymous:
                challenge = anonymous.status, anonymous.headers.get("WWW-Authenticate", "")
            stack.metrics = await scrape(http, stack.admin_url)
            async with http.get(stack.admin_url + "/readyz") as ready:
                readiness = ready.status, set((await ready.json())["checks"])

    # tools/list filtered per principal by the shipped roles and destructive rules
    assert rita_tools == READER_TOOLS
    assert {"delete_file", "fail", "confirm_action", *READER_TOOLS} <= set(ada_tools)
    # a denial the model can read, with the policy's reason
    assert denied.is_error and denied.content[0].text == f"Denied by policy: {OUTSIDE_SCRATCH}"
    # cached per caller: rita's second lookup never reached the upstream; ada's own miss did, once
    assert first.structured_content == second.structured_content
    assert ada_lookup.structured_content["invocations"] == first.structured_content["invocations"] + 1
    # the free plan's bucket (policy picked it from the absent plan claim) refuses the call after its capacity
    capacity = stack.bucket("plan-free")
    assert limited.is_error and limited.content[0].text.startswith(f"Rate limit 'plan-free' exceeded ({capacity} per")
    refused = [r.headers for r in rita_headers if "RateLimit" in r.headers][-1]  # legacy: a DELETE follows
    assert refused["RateLimit-Policy"].startswith(f'"plan-free";q={capacity};')
    assert refused["RateLimit"].startswith('"plan-free";r=0;') and int(refused["Retry-After"]) >= 1
    # no token: 401 with a challenge pointing at the resource metadata
    assert challenge[0] == 401 and challenge[1].startswith("Bearer ") and "resource_metadata=" in challenge[1]
    assert 'scope="mcp:tools"' in challenge[1]
    assert readiness == (200, {"upstream", "auth_keys", "policy"})
    # every charged call said how much was left
    remaining = [r.headers["RateLimit"].split(";t=")[0] for r in rita_headers if "RateLimit" in r.headers]
    assert remaining == [f'"plan-free";r={capacity - n}' for n in range(1, capacity + 1)] + ['"plan-free";r=0']

    events = stack.events()
    [deny] = by_tool(events, "ada", "delete_file")
    assert (deny["decision"], deny["outcome"], deny["error_type"]) == ("deny", "denied", "policy_denied")
    assert deny["reasons"] == [OUTSIDE_SCRATCH] and deny["policy_revision"]
    assert {e["policy_revision"] for e in events if e["decision"]} == {deny["policy_revision"]}
    [miss, hit] = by_tool(events, "rita", "lookup")
    assert (miss["cache"], hit["cache"], hit["outcome"]) == ("stored", "hit", "cached")
    assert [e["cache"] for e in by_tool(events, "ada", "lookup")] == ["stored"]
    rita_adds = by_tool(events, "rita", "add")
    assert [e["outcome"] for e in rita_adds] == ["allowed"] * (capacity - 2) + ["limited"]
    assert rita_adds[-1]["rate_limit"]["bucket"] == "plan-free" and rita_adds[-1]["error_type"] == "rate_limited"
    assert rita_adds[-1]["obligations"]["rate_limit"] == {"buckets": ["plan-free"], "cost": 1}
    [unauthenticated] = [e for e in events if e["outcome"] == "unauthenticated"]
    assert (unauthenticated["principal"], unauthenticated["http_status"]) == ("anonymous", 401)

    # one trace per call: SERVER span, and a CLIENT span under it only when the call went upstream
    denied_spans = trace_of(stack.receiver, deny)
    assert [(s.kind, s.attributes["error.type"]) for s in denied_spans] == [(SERVER, "policy_denied")]
    assert denied_spans[0].attributes["mcp_sidecar.principal.subject"] == "ada"
    assert denied_spans[0].attributes["mcp_sidecar.policy.revision"] == deny["policy_revision"]
    upstream_spans = {s.kind: s for s in trace_of(stack.receiver, miss)}
    assert set(upstream_spans) == {SERVER, CLIENT}
    assert upstream_spans[CLIENT].parent_span_id == upstream_spans[SERVER].span_id
    assert [s.kind for s in trace_of(stack.receiver, hit)] == [SERVER]
    assert trace_of(stack.receiver, hit)[0].attributes["mcp_sidecar.cache.status"] == "hit"
    assert [s.attributes["error.type"] for s in trace_of(stack.receiver, unauthenticated)] == ["unauthenticated"]
    assert {"mcp_sidecar.calls", "mcp.server.operation.duration"} <= stack.receiver.metric_names  # OTLP metrics
    limited_spans = trace_of(stack.receiver, rita_adds[-1])
    assert [(s.kind, s.attributes["error.type"]) for s in limited_spans] == [(SERVER, "rate_limited")]
    assert len({e["trace_id"] for e in events if e["kind"] == "request"}) == len(
        [e for e in events if e["kind"] == "request"])

    # /metrics counts every outcome
    calls = "mcp_sidecar_calls_total"
    metrics = stack.metrics
    assert value(metrics, calls, gen_ai_tool_name="delete_file", mcp_sidecar_outcome="denied") == 1
    assert value(metrics, calls, gen_ai_tool_name="add", mcp_sidecar_outcome="limited") == 1
    assert value(metrics, calls, gen_ai_tool_name="add", mcp_sidecar_outcome="allowed") == capacity - 2
    assert value(metrics, calls, gen_ai_tool_name="lookup", mcp_sidecar_outcome="cached") == 1
    assert value(metrics, calls, gen_ai_tool_name="lookup", mcp_sidecar_outcome="allowed") == 2
    assert value(metrics, calls, mcp_sidecar_outcome="unauthenticated") == 1


async def test_operator_call_waits_for_an_approver(stateful_upstream: str, tmp_path: Path) -> None:
    """policies/destructive.rego: an operator's destructive call carries require_approval; an admin approves it."""
    async with full_stack(stateful_upstream, tmp_path) as stack, aiohttp.ClientSession() as http:
        otto = stack.token("otto", ["operator"], plan="pro")
        async with client_as(stack.url, otto, "2026-07-28", []) as client:
            call = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/tmp/scratch/old.log"}))
            pending: list[dict] = []

            async def poll() -> bool:
                async with http.get(stack.admin_url + "/approvals") as response:
                    pending[:] = (await response.json())["pending"]
                return bool(pending)

            async with asyncio.timeout(5):
                while not await poll():
                    await asyncio.sleep(0.02)
            [approval] = pending
            assert (approval["principal"], approval["target"]) == ("otto", "delete_file")
            async with http.post(f"{stack.admin_url}/approvals/{approval['id']}/approve",
                                 json=bound(approval)) as response:
                assert response.status == 200
            result = await asyncio.wait_for(call, 5)
    assert not result.is_error and result.content[0].text == "deleted /tmp/scratch/old.log"
    [event] = by_tool(stack.events(), "otto", "delete_file")
    assert (event["approval_id"], event["approval"], event["outcome"]) == (approval["id"], "approved", "allowed")
    assert event["obligations"]["require_approval"] is True and event["cache"] == "bypass"
    assert event["rate_limit"]["bucket"] == "plan-pro"
    [server] = [s for s in trace_of(stack.receiver, event) if s.kind == SERVER]
    assert server.attributes["mcp_sidecar.approval.id"] == approval["id"]
    assert event["approver"] == "unauthenticated" == server.attributes["mcp_sidecar.approval.approver"]


async def test_a_hidden_tool_is_charged_to_the_bucket_policy_chose(stateful_upstream: str, tmp_path: Path) -> None:
    """A hidden tool's call still goes upstream (as a decoy, answered like an unknown tool), so it is charged, and
    to the bucket the policy picked for the caller: not to every bucket, as the `match` fallback would."""
    buckets = [{"name": name, "capacity": 50, "refill_per_second": 1, "key": ["subject"]}
               for name in ("plan-free", "plan-pro", "plan-enterprise")]  # no `match`: policy names the bucket
    seen: list[httpx2.Response] = []
    async with full_stack(stateful_upstream, tmp_path, **{"rate_limits.buckets": buckets}) as stack:
        async with client_as(stack.url, stack.token("rita", ["reader"]), "2026-07-28", seen) as client:
            probe = await client.call_tool("delete_file", {"path": "/tmp/scratch/x"})
    assert probe.is_error and probe.content[0].text == "Unknown tool: delete_file"
    [event] = by_tool(stack.events(), "rita", "delete_file")
    assert (event["outcome"], event["error_type"]) == ("denied", "policy_hidden")
    assert event["rate_limit"]["bucket"] == "plan-free"
    [charged] = [response.headers for response in seen if "RateLimit" in response.headers]
    assert charged["RateLimit-Policy"].startswith('"plan-free";q=50;') and "plan-pro" not in charged["RateLimit"]


async def test_policy_redactions_reach_audit_and_spans(stateful_upstream: str, tmp_path: Path) -> None:
    """A `redact` obligation masks those argument paths wherever arguments are recorded (audit, span)."""
    policies = shutil.copytree(ROOT / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns("*_test.rego"))
    (policies / "redact.rego").write_text('package mcp\n\nimport rego.v1\n\nobligations["redact"] := ["text"]\n')
    async with full_stack(stateful_upstream, tmp_path, **{
            "policy.directory": str(policies), "audit.log_arguments": True,
            "telemetry.record_arguments": True}) as stack:
        async with client_as(stack.url, stack.token("rita", ["reader"]), "2026-07-28", []) as client:
            echoed = await client.call_tool("echo", {"text": "s3cret"})
    assert echoed.content[0].text == "s3cret"  # the call itself is untouched
    [event] = by_tool(stack.events(), "rita", "echo")
    assert event["obligations"]["redact"] == ["text"] and event["arguments"] == {"text": "[redacted]"}
    [server] = [s for s in trace_of(stack.receiver, event) if s.kind == SERVER]
    assert orjson.loads(server.attributes["gen_ai.tool.call.arguments"]) == {"text": "[redacted]"}


async def test_a_legacy_session_belongs_to_the_principal_that_opened_it(stateful_upstream: str,
                                                                      tmp_path: Path) -> None:
    """The upstream never sees tokens, so only the sidecar can bind a 2025 session to its caller: another valid
    token presenting the session id is answered as for an unknown session (404), on POST, GET and DELETE."""
    seen: list[httpx2.Response] = []
    async with full_stack(stateful_upstream, tmp_path) as stack, aiohttp.ClientSession() as http:
        ada = {"Authorization": f"Bearer {stack.token('ada', ['admin'], plan='pro')}"}
        async with client_as(stack.url, stack.token("rita", ["reader"]), "legacy", seen) as client:
            await client.list_tools()
            session = next(r.headers["mcp-session-id"] for r in seen if "mcp-session-id" in r.headers)
            legacy = {"Mcp-Session-Id": session, "MCP-Protocol-Version": client.protocol_version,
                      "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
            body = orjson.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
            async with http.post(stack.url, data=body, headers={**legacy, **ada}) as hijack:
                posted = hijack.status, await hijack.json()
            async with http.get(stack.url, headers={**legacy, **ada, "Accept": "text/event-stream"}) as stream:
                streamed = stream.status
            async with http.delete(stack.url, headers={**legacy, **ada}) as ended:
                deleted = ended.status
            still_hers = await client.call_tool("add", {"a": 1, "b": 2})
    assert posted[0] == 404 and posted[1]["error"]["message"] == "Session not found"
    assert (streamed, deleted) == (404, 404)
    assert still_hers.structured_content == {"result": 3}
    refused = [e for e in stack.events() if e["principal"] == "ada"]
    assert [(e["kind"], e["http_status"], e["error_type"]) for e in refused] == [
        ("request", 404, "session_not_owned"), ("stream", 404, "session_not_owned"),
        ("session_end", 404, "session_not_owned")]


@needs_shared_redis
async def test_two_replicas_share_limits_and_cache_through_redis(stateful_upstream: str, tmp_path: Path) -> None:
    """The example's Redis variant: a second replica knows what the first one counted and cached for a caller."""
    redis = {"rate_limits.backend": "redis", "rate_limits.redis_url": SHARED_URL,
             "rate_limits.key_prefix": unique_prefix("full-rl"), "rate_limits.failure_mode": "fail_closed",
             "cache.backend": "redis", "cache.redis_url": SHARED_URL, "cache.namespace": unique_prefix("full-cache")}
    key = new_key("realm-key")
    async with serve_jwks(key) as idp, otlp_receiver() as receiver:
        configs = [example_config(stateful_upstream, idp.url, receiver.url, tmp_path / f"audit-{n}.jsonl", **redis)
                   for n in (1, 2)]
        token = make_token(key, claims_for(configs[0].server.resource_url, sub="rita", scope="mcp:tools",
                                           realm_access={"roles": ["reader"]}))
        capacity = next(b.capacity for b in configs[0].rate_limits.buckets if b.name == "plan-free")
        async with run_sidecar(configs[0]) as first, run_sidecar(configs[1]) as second:
            async with client_as(first.url, token, "2026-07-28", []) as client:
                looked_up = await client.call_tool("lookup", {"key": f"replicas-{tmp_path.name}"})
                for n in range(capacity - 2):
                    assert not (await client.call_tool("add", {"a": n, "b": 1})).is_error
            async with client_as(second.url, token, "2026-07-28", []) as client:
                again = await client.call_tool("lookup", {"key": f"replicas-{tmp_path.name}"})
                limited = await client.call_tool("add", {"a": 0, "b": 0})
    assert again.structured_content == looked_up.structured_content  # served from the shared cache
    assert limited.is_error and "Rate limit 'plan-free' exceeded" in limited.content[0].text
    second_events = read_events(tmp_path / "audit-2.jsonl")
    assert [(e["tool"], e["outcome"]) for e in second_events if e["tool"]] == [("lookup", "cached"), ("add", "limited")]


async def test_list_changed_refreshes_the_trusted_tool_view_with_the_cache_off(
        stateful_upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy judges tools by the sidecar's own tools/list; a change the upstream announces must drop that view
    whether or not the cache stage (which used to be the only listener) is on."""
    dropped: list[bool] = []
    real = ToolCatalog.invalidate
    monkeypatch.setattr(ToolCatalog, "invalidate", lambda self: (dropped.append(True), real(self))[1])
    async with full_stack(stateful_upstream, tmp_path, **{"cache.enabled": False}) as stack:
        async with client_as(stack.url, stack.token("ada", ["admin"], plan="pro"), "2026-07-28", []) as client:
            async with client.listen(tools_list_changed=True) as subscription:
                assert (await client.call_tool("change_tools", {})).content[0].text == "announced"
                async with asyncio.timeout(5):
                    event = await anext(aiter(subscription))  # relayed after the sidecar saw it
    assert type(event).__name__ == "ToolsListChanged"
    assert dropped


async def test_legacy_sse_streams_need_a_token_and_stay_with_their_opener(stateful_upstream: str,
                                                                        tmp_path: Path) -> None:
    """GET /sse holds one of upstream.max_sessions slots, so it is authenticated like /mcp; its messages URL is
    then usable only by the principal that opened the stream."""
    async with full_stack(stateful_upstream, tmp_path) as stack, aiohttp.ClientSession() as http:
        sse_url = stack.url.removesuffix("/mcp") + "/sse"
        async with http.get(sse_url) as anonymous:
            refused = anonymous.status, anonymous.headers.get("WWW-Authenticate", "")
        rita = {"Authorization": f"Bearer {stack.token('rita', ['reader'])}"}
        ada = {"Authorization": f"Bearer {stack.token('ada', ['admin'], plan='pro')}"}
        async with http.get(sse_url, headers=rita) as stream:
            assert stream.status == 200
            async with asyncio.timeout(5):
                endpoint = (await stream.content.readuntil(b"\n\n")).decode()
            messages = stack.url.removesuffix("/mcp") + endpoint.split("data: ", 1)[1].strip()
            ping = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
            json = {"Content-Type": "application/json"}
            async with http.post(messages, data=ping, headers={**json, **ada}) as foreign:
                strangers = foreign.status
            async with http.post(messages, data=ping, headers={**json, **rita}) as own:
                owners = own.status
    assert refused[0] == 401 and refused[1].startswith("Bearer ")
    assert (strangers, owners) == (404, 202)
