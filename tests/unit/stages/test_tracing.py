"""The tracing stage alone (tests/unit/telemetry/test_setup.py drives it with the upstream's CLIENT span): which
messages get a SERVER span, what it says about the caller and the sidecar's decisions, and that it fails open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from proxy import mcp
from proxy.context import CallContext, Principal
from proxy.reply import Reply
from proxy.stages.tracing import TracingStage
from proxy.telemetry.setup import Telemetry
from tests.kit import make_config, make_ctx


def traced(**settings: Any) -> tuple[TracingStage, Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    config = make_config(**{f"telemetry__{key}": value for key, value in settings.items()})
    telemetry = Telemetry.from_config(config, env={}, span_processors=[SimpleSpanProcessor(exporter)])
    return TracingStage(telemetry), telemetry, exporter


def counter(telemetry: Telemetry, name: str) -> float:
    assert telemetry.prometheus is not None
    text = telemetry.prometheus.render().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name)


class Terminal:
    """Answers with `result`; remembers the span that was current while it ran."""

    def __init__(self, result: Any = None) -> None:
        self.result = result if result is not None else {"content": []}
        self.current: list[trace.SpanContext] = []

    async def __call__(self, ctx: CallContext) -> Reply:
        self.current.append(trace.get_current_span().get_span_context())
        return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": self.result})


async def run(stage: TracingStage, ctx: CallContext, terminal: Terminal | None = None) -> Reply:
    reply = await stage(ctx, terminal or Terminal())
    await reply.finish()
    return reply


def test_no_stage_when_tracing_is_off() -> None:
    config = make_config(telemetry__enabled=False)
    deps: Any = type("DepsLike", (), {"telemetry": Telemetry.from_config(config, env={})})()
    assert TracingStage.from_config(config.telemetry, deps) is None


async def test_the_span_is_current_inside_and_ends_after_the_reply_is_done() -> None:
    stage, _, exporter = traced()
    terminal = Terminal()
    reply = await stage(make_ctx(target="add", request_id=4), terminal)
    assert exporter.get_finished_spans() == ()  # still open: the reply is not written yet
    await reply.finish()
    [span] = exporter.get_finished_spans()
    assert span.name == "tools/call add" and span.kind is SpanKind.SERVER
    assert terminal.current[0].span_id == span.context.span_id
    assert span.attributes["jsonrpc.request.id"] == "4" and span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is not StatusCode.ERROR


@pytest.mark.parametrize("kind", [mcp.Kind.STREAM, mcp.Kind.SESSION_END, mcp.Kind.RESPONSE])
async def test_streams_session_ends_and_client_responses_get_no_span(kind: mcp.Kind) -> None:
    stage, _, exporter = traced()
    await run(stage, make_ctx(kind=kind))
    assert exporter.get_finished_spans() == ()


async def test_notifications_get_a_span() -> None:
    stage, _, exporter = traced()
    await run(stage, make_ctx("notifications/initialized", target=None, request_id=None))
    [span] = exporter.get_finished_spans()
    assert span.name == "notifications/initialized" and "jsonrpc.request.id" not in span.attributes


async def test_the_authenticated_subject_is_on_the_span_anonymous_is_not() -> None:
    stage, _, exporter = traced()
    ctx = make_ctx()
    ctx.record.principal = Principal("alice")  # what the auth stage, inside this one, records
    await run(stage, ctx)
    await run(stage, make_ctx())
    first, second = exporter.get_finished_spans()
    assert first.attributes["mcp_sidecar.principal.subject"] == "alice"
    assert "mcp_sidecar.principal.subject" not in second.attributes


async def test_resource_uris_name_spans_only_when_configured() -> None:
    plain, _, plain_spans = traced()
    named, _, named_spans = traced(resource_uri_in_span_name=True)
    ctx = make_ctx("resources/read", target="file:///etc/motd")
    await run(plain, ctx)
    await run(named, ctx)
    assert plain_spans.get_finished_spans()[0].name == "resources/read"
    assert named_spans.get_finished_spans()[0].name == "resources/read file:///etc/motd"


async def test_results_are_recorded_only_when_asked() -> None:
    stage, _, exporter = traced(record_results=True)
    await run(stage, make_ctx(), Terminal({"content": [{"type": "text", "text": "42"}]}))
    assert '"42"' in exporter.get_finished_spans()[0].attributes["gen_ai.tool.call.result"]
    quiet, _, quiet_spans = traced()
    await run(quiet, make_ctx(arguments={"secret": 1}))
    attributes = quiet_spans.get_finished_spans()[0].attributes
    assert "gen_ai.tool.call.result" not in attributes and "gen_ai.tool.call.arguments" not in attributes


async def test_a_cancelled_call_still_ends_its_span_with_the_error() -> None:
    stage, _, exporter = traced()

    async def cancelled(ctx: CallContext) -> Reply:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await stage(make_ctx(), cancelled)
    [span] = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "CancelledError" and span.status.status_code is StatusCode.ERROR


async def test_a_telemetry_failure_is_counted_and_the_span_still_ends() -> None:
    stage, telemetry, exporter = traced(record_arguments=True)
    ctx = make_ctx(arguments={"not json": {1, 2}})  # cannot be serialised: describing the span fails
    reply = await run(stage, ctx)
    assert reply.status == 200
    assert len(exporter.get_finished_spans()) == 1
    assert counter(telemetry, "mcp_sidecar_telemetry_failures_total") == 1


async def test_a_finished_call_leaves_nothing_in_flight() -> None:
    stage, telemetry, _ = traced()
    await run(stage, make_ctx())
    assert counter(telemetry, "mcp_sidecar_in_flight") == 0
    assert counter(telemetry, "mcp_sidecar_calls_total") == 1


async def test_a_telemetry_failure_still_finishes_the_calls_metrics() -> None:
    stage, telemetry, _ = traced(record_arguments=True)
    await run(stage, make_ctx(arguments={"not json": {1, 2}}))
    assert counter(telemetry, "mcp_sidecar_in_flight") == 0
