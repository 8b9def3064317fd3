"""Traces over real sockets: SDK client -> sidecar -> demo upstream, all exporting to a test OTLP receiver."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import aiohttp
import orjson
from aiohttp import web
from mcp import Client
from opentelemetry.sdk.trace import TracerProvider

from tests.kit import (
    child_env,
    free_port,
    make_config,
    modern_headers,
    modern_request,
    run_sidecar,
    serve_app,
    stop_process,
    wait_for_port,
    wait_until,
)
from tests.otlp_kit import CLIENT, SERVER, STATUS_ERROR, Receiver, otlp_receiver

DEMO_SERVICE = "demo-upstream"


@contextlib.contextmanager
def traced_upstream(receiver: Receiver, stateless: bool = True) -> Iterator[str]:
    """The demo server exporting its own SDK spans to the receiver."""
    port = free_port()
    args = [sys.executable, "-m", "proxy.runtime.demo", "http", "--port", str(port)]
    if stateless:
        args.append("--stateless-json")
    env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME=DEMO_SERVICE)
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(process)


def traced_config(upstream: str, receiver: Receiver, **dotted: object):
    return make_config(upstream, telemetry__otlp_endpoint=receiver.url, telemetry__service_name="sidecar-under-test",
                       **dotted)


async def test_one_trace_from_client_through_sidecar_to_upstream() -> None:
    root_provider = TracerProvider()  # the "host application" around the SDK client, not a process global
    async with otlp_receiver() as receiver:
        with traced_upstream(receiver) as upstream:
            async with run_sidecar(traced_config(upstream, receiver)) as sidecar:
                with root_provider.get_tracer("host").start_as_current_span("host turn") as root:
                    async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
                        added = await client.call_tool("add", {"a": 1, "b": 2})
                        failed = await client.call_tool("fail", {"message": "nope"})
            # The sidecar flushed on shutdown; the upstream exports every 200 ms.
            await wait_until(lambda: len(receiver.named("tools/call fail", DEMO_SERVICE)) == 1, timeout=8)
    assert added.structured_content == {"result": 3} and failed.is_error
    root_ctx = root.get_span_context()
    trace_id = format(root_ctx.trace_id, "032x")

    [server] = receiver.named("tools/call add", "sidecar-under-test", SERVER)
    [client_span] = receiver.named("tools/call add", "sidecar-under-test", CLIENT)
    [upstream_span] = receiver.named("tools/call add", DEMO_SERVICE)
    # The SDK client put the host's context in params._meta; the sidecar took its parent from there.
    assert server.parent_span_id == format(root_ctx.span_id, "016x")
    assert server.trace_id == client_span.trace_id == upstream_span.trace_id == trace_id
    assert client_span.parent_span_id == server.span_id
    # The upstream's own span hangs off the sidecar's CLIENT span: the forwarded _meta was rewritten.
    assert upstream_span.parent_span_id == client_span.span_id

    attributes = server.attributes
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "add"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["mcp.protocol.version"] == "2026-07-28"
    assert attributes["network.transport"] == "tcp"
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["mcp_sidecar.outcome"] == "allowed"
    assert attributes["jsonrpc.request.id"]
    assert "mcp.session.id" not in attributes  # never for 2026-07-28
    assert "error.type" not in attributes and server.status_code != STATUS_ERROR
    assert "gen_ai.tool.call.arguments" not in attributes  # opt-in only
    assert client_span.attributes["server.address"] == "127.0.0.1"

    [failed_server] = receiver.named("tools/call fail", "sidecar-under-test", SERVER)
    assert failed_server.attributes["error.type"] == "tool_error"
    assert failed_server.status_code == STATUS_ERROR
    [listed] = receiver.named("tools/list", "sidecar-under-test", SERVER)
    assert "gen_ai.operation.name" not in listed.attributes
    assert {"mcp.server.operation.duration", "mcp.client.operation.duration", "mcp_sidecar.calls"} \
        <= receiver.metric_names


async def test_legacy_session_spans_carry_the_session_id(stateful_upstream: str) -> None:
    async with otlp_receiver() as receiver:
        sidecar_running = run_sidecar(traced_config(stateful_upstream, receiver))
        async with sidecar_running as sidecar, Client(sidecar.url, mode="legacy", cache=None) as client:
            await client.read_resource("demo://readme")
            await client.get_prompt("greet", {"name": "Ada"})
        await wait_until(lambda: receiver.named("prompts/get greet"), timeout=5)
    [read] = receiver.named("resources/read", kind=SERVER)  # URIs stay out of span names by default
    assert read.attributes["mcp.resource.uri"] == "demo://readme"
    assert read.attributes["mcp.session.id"]
    assert read.attributes["mcp.protocol.version"] == "2025-11-25"
    [prompt] = receiver.named("prompts/get greet", kind=SERVER)
    assert prompt.attributes["gen_ai.prompt.name"] == "greet"
    assert receiver.named("initialize", kind=SERVER)


async def test_upstream_timeout_is_an_error_on_both_spans(stateful_upstream: str) -> None:
    async with otlp_receiver() as receiver:
        config = traced_config(stateful_upstream, receiver, upstream__tool_timeouts={"slow_count": 0.2})
        async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            with contextlib.suppress(Exception):
                await client.call_tool("slow_count", {"steps": 5, "delay_ms": 200})
        await wait_until(lambda: receiver.named("tools/call slow_count", kind=CLIENT), timeout=5)
    [server] = receiver.named("tools/call slow_count", kind=SERVER)
    [client_span] = receiver.named("tools/call slow_count", kind=CLIENT)
    for span in (server, client_span):
        assert span.attributes["error.type"] == "upstream_timeout"
        assert span.status_code == STATUS_ERROR
    assert server.attributes["mcp_sidecar.outcome"] == "upstream_error"


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], dict]]]]:
    """A raw JSON-RPC upstream that records what the sidecar forwards."""
    seen: list[tuple[dict[str, str], dict]] = []

    async def handle(request: web.Request) -> web.Response:
        message = orjson.loads(await request.read())
        seen.append((dict(request.headers), message))
        return web.json_response({"jsonrpc": "2.0", "id": message.get("id"), "result": {"tools": []}})

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with serve_app(app) as base:
        yield base + "/mcp", seen


async def test_http_traceparent_is_the_fallback_parent_and_the_forwarded_context_is_the_client_span() -> None:
    inbound_trace, inbound_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with otlp_receiver() as receiver, recording_upstream() as (upstream, seen):
        async with run_sidecar(traced_config(upstream, receiver)) as sidecar, aiohttp.ClientSession() as http:
            headers = {**modern_headers("tools/list"), "traceparent": f"00-{inbound_trace}-{inbound_span}-01",
                       "tracestate": "vendor=abc"}
            async with http.post(sidecar.url, data=orjson.dumps(modern_request("tools/list")), headers=headers) as r:
                assert r.status == 200
        await wait_until(lambda: receiver.named("tools/list", kind=CLIENT), timeout=5)
    [server] = receiver.named("tools/list", kind=SERVER)
    [client_span] = receiver.named("tools/list", kind=CLIENT)
    assert (server.trace_id, server.parent_span_id) == (inbound_trace, inbound_span)
    [(forwarded_headers, forwarded)] = seen
    expected = f"00-{inbound_trace}-{client_span.span_id}-01"
    assert forwarded["params"]["_meta"]["traceparent"] == expected
    assert forwarded_headers["traceparent"] == expected
    assert forwarded["params"]["_meta"]["tracestate"] == "vendor=abc"
    assert forwarded["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"


async def test_without_upstream_propagation_the_message_goes_as_the_client_sent_it() -> None:
    client_context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with otlp_receiver() as receiver, recording_upstream() as (upstream, seen):
        config = traced_config(upstream, receiver, telemetry__propagate_upstream=False)
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            message = modern_request("tools/list")
            message["params"]["_meta"]["traceparent"] = client_context
            async with http.post(sidecar.url, data=orjson.dumps(message), headers=modern_headers("tools/list")) as r:
                assert r.status == 200
        await wait_until(lambda: receiver.named("tools/list", kind=CLIENT), timeout=5)
    [(forwarded_headers, forwarded)] = seen
    assert forwarded == message  # the client's own context, nothing of the sidecar's
    assert "traceparent" not in forwarded_headers
    [server] = receiver.named("tools/list", kind=SERVER)
    assert server.trace_id == client_context.split("-")[1]  # the sidecar's spans still follow the client's trace


async def test_tracing_disabled_forwards_untouched_and_exports_nothing() -> None:
    async with otlp_receiver() as receiver, recording_upstream() as (upstream, seen):
        config = traced_config(upstream, receiver, telemetry__enabled=False)
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            body = orjson.dumps(modern_request("tools/list"))
            async with http.post(sidecar.url, data=body, headers=modern_headers("tools/list")) as reply:
                assert reply.status == 200
            async with http.get(sidecar.admin_url + "/metrics") as metrics:
                assert metrics.status == 404
    [(_, forwarded)] = seen
    assert "traceparent" not in forwarded["params"]["_meta"]
    assert receiver.spans == []


async def test_a_rate_limited_call_has_an_error_span_with_the_bucket_and_no_upstream_span(
        stateless_upstream: str) -> None:
    buckets = [{"name": "tool_calls", "capacity": 1, "refill_per_second": 0.001, "match": {"methods": ["tools/call"]}}]
    async with otlp_receiver() as receiver:
        config = traced_config(stateless_upstream, receiver, rate_limits__buckets=buckets)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            allowed = await client.call_tool("add", {"a": 1, "b": 2})
            limited = await client.call_tool("add", {"a": 1, "b": 2})
    assert not allowed.is_error and limited.is_error
    first, second = sorted(receiver.named("tools/call add", kind=SERVER),
                           key=lambda span: span.attributes["mcp_sidecar.outcome"])
    assert first.attributes["mcp_sidecar.outcome"] == "allowed"
    assert first.attributes["mcp_sidecar.rate_limit.bucket"] == "tool_calls"
    assert second.attributes["mcp_sidecar.outcome"] == "limited"
    assert second.attributes["error.type"] == "rate_limited" and second.status_code == STATUS_ERROR
    assert (second.attributes["mcp_sidecar.rate_limit.bucket"], second.attributes["mcp_sidecar.rate_limit.remaining"]) \
        == ("tool_calls", 0)
    [upstream_call] = receiver.named("tools/call add", kind=CLIENT)  # only the allowed call went upstream
    assert upstream_call.parent_span_id == first.span_id
