"""A small MCP server for the quickstart and the tests, built on the official `mcp` SDK.

    python -m proxy.runtime.demo stdio
    python -m proxy.runtime.demo http --port 9000 [--stateless-json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer("mcp-sidecar-demo", version="0.1.0")
calls: Counter[str] = Counter()

READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> int:
    """Add two integers."""
    calls["add"] += 1
    return a + b


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Return the text unchanged."""
    calls["echo"] += 1
    return text


@server.tool(annotations=READ_ONLY)
def lookup(key: str) -> dict[str, object]:
    """A read-only lookup that reports how often it has been invoked (handy for cache checks)."""
    calls["lookup"] += 1
    return {"key": key, "value": key.upper(), "invocations": calls["lookup"]}


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def delete_file(path: str) -> str:
    """Pretend to delete a file (destructive)."""
    calls["delete_file"] += 1
    return f"deleted {path}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def slow_count(steps: int, ctx: Context, delay_ms: int = 100) -> str:
    """Count to `steps`, reporting progress after each step."""
    calls["slow_count"] += 1
    for step in range(1, steps + 1):
        await asyncio.sleep(delay_ms / 1000)
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted to {steps}"


@server.tool()
def fail(message: str = "boom") -> str:
    """Always fails: the result comes back with isError."""
    calls["fail"] += 1
    raise ValueError(message)


class Confirmation(BaseModel):
    confirm: bool


def ask_confirmation(action: str) -> Elicit[Confirmation]:
    return Elicit(f"Really {action}?", Confirmation)


@server.tool()
def confirm_action(action: str, answer: Annotated[ElicitationResult[Confirmation], Resolve(ask_confirmation)]) -> str:
    """Ask the user (elicitation) before doing something: a mid-call request in 2025 sessions,
    an input_required round trip in 2026-07-28."""
    calls["confirm_action"] += 1
    if isinstance(answer, AcceptedElicitation) and answer.data.confirm:
        return f"{action}: done"
    return f"{action}: cancelled"


@server.tool(annotations=READ_ONLY)
def invocations() -> dict[str, int]:
    """How many times each tool has been called in this process."""
    return dict(calls)


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Announce that the tool list changed: on `subscriptions/listen` streams (2026-07-28) and, for a 2025
    session, as a notification on its standalone GET stream."""
    calls["change_tools"] += 1
    await ctx.notify_tools_changed()
    if ctx.protocol_version is not None and ctx.protocol_version < "2026-07-28":
        await ctx.session.send_tool_list_changed()
    return "announced"


@server.resource("demo://readme", mime_type="text/plain")
def readme() -> str:
    """A short text resource."""
    return "This is the mcp-sidecar demo server."


@server.prompt()
def greet(name: str) -> str:
    """A prompt that greets someone."""
    return f"Say hello to {name}, warmly."


def export_spans_if_configured() -> None:
    """The SDK emits a SERVER span per message through the global tracer provider; in this (separate) process,
    install one exporting over OTLP/HTTP when OTEL_EXPORTER_OTLP_*ENDPOINT is set, so traces show the upstream."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       "mcp-sidecar-demo")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.runtime.demo")
    parser.add_argument("transport", choices=["stdio", "http", "sse"], nargs="?", default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--stateless-json", action="store_true", help="stateless legacy leg, JSON responses")
    args = parser.parse_args(argv)
    export_spans_if_configured()
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run("sse", host=args.host, port=args.port)
    else:
        server.run("streamable-http", host=args.host, port=args.port,
                   stateless_http=args.stateless_json, json_response=args.stateless_json)


if __name__ == "__main__":
    main()
