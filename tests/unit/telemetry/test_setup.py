"""Tracing without sockets: settings from config and OTEL_*, parents, propagation, the spans of a chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy import jsonrpc, mcp
from proxy.config import TelemetryConfig
from proxy.context import CallContext, Principal
from proxy.errors import PolicyDeniedError, RateLimitedError
from proxy.pipeline import build_chain
from proxy.reply import Reply
from proxy.runtime.app import forward_to
from proxy.stages.tracing import TracingStage
from proxy.telemetry.setup import Telemetry, parent_context, parse_headers, resolve_settings, trace_carrier
from tests.kit import make_config, make_ctx

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
META_PARENT, HTTP_PARENT = "00f067aa0ba902b7", "1111111111111111"


def test_settings_come_from_otel_variables_unless_configured() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_SERVICE_NAME": "from-env",
           "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_EXPORTER_OTLP_HEADERS": "x-token=a%3Db, tenant=t1",
           "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
    settings = resolve_settings(TelemetryConfig(), env)
    assert settings.traces_endpoint == "http://collector:4318/v1/traces"
    assert settings.metrics_endpoint == "http://collector:4318/v1/metrics"
    assert (settings.service_name, settings.sampling_ratio, settings.metric_interval_seconds) == ("from-env", 0.25, 5)
    assert settings.headers == {"x-token": "a=b", "tenant": "t1"}

    configured = TelemetryConfig(otlp_endpoint="http://jaeger:4318", service_name="mine", sampling_ratio=1.0,
                                 otlp_headers={"tenant": "t2"}, otlp_metrics=False)
    settings = resolve_settings(configured, env)
    assert settings.traces_endpoint == "http://jaeger:4318/v1/traces" and settings.metrics_endpoint is None
    assert (settings.service_name, settings.sampling_ratio) == ("mine", 1.0)
    assert settings.headers == {"x-token": "a=b", "tenant": "t2"}
    assert resolve_settings(TelemetryConfig(), {}).traces_endpoint is None  # nothing configured: no export


def test_bad_settings_fail_at_load_time() -> None:
    with pytest.raises(ValueError, match="http"):
        TelemetryConfig(otlp_endpoint="grpc://collector:4317")
    with pytest.raises(ValueError):
        TelemetryConfig(sampling_ratio=1.5)
    assert parse_headers("novalue,k=v") == {"k": "v"}


def with_trace_context(ctx: CallContext, meta_parent: str | None, http_parent: str | None) -> CallContext:
    if meta_parent:
        ctx = ctx.with_meta(traceparent=f"00-{TRACE}-{meta_parent}-01")
    if http_parent:
        ctx = ctx.evolve(headers={"traceparent": f"00-{TRACE}-{http_parent}-01"})
    return ctx


@pytest.mark.parametrize(("meta", "http", "parent", "linked"), [
    (META_PARENT, None, META_PARENT, None),
    (None, HTTP_PARENT, HTTP_PARENT, None),
    (META_PARENT, HTTP_PARENT, META_PARENT, HTTP_PARENT),  # _meta wins; the HTTP context becomes a link
    (None, None, None, None),
])
def test_parent_comes_from_meta_then_http(meta: str | None, http: str | None, parent: str | None,
                                          linked: str | None) -> None:
    context, links = parent_context(with_trace_context(make_ctx(), meta, http))
    found = trace.get_current_span(context).get_span_context() if context is not None else None
    assert (format(found.span_id, "016x") if found else None) == parent
    assert [format(link.context.span_id, "016x") for link in links] == ([linked] if linked else [])


def test_garbage_trace_context_is_ignored() -> None:
    ctx = make_ctx().with_meta(traceparent=12345, tracestate=["x"])
    assert parent_context(ctx) == (None, [])
    assert parent_context(make_ctx().with_meta(traceparent="00-zz-yy-01")) == (None, [])


class FakeUpstream:
    name = "fake"

    def __init__(self, result: dict[str, Any] | None = None, status: int = 200) -> None:
        self.result = result if result is not None else {"content": [], "isError": False}
        self.status = status
        self.sent: list[CallContext] = []

    async def send(self, ctx: CallContext) -> Reply:
        self.sent.append(ctx)
        return Reply.json(jsonrpc.result_message(ctx.request_id, self.result), status=self.status)


class Refuse:
    """Stands in for the policy / rate-limit stages: writes its decision and refuses."""

    name = "refuse"

    def __init__(self, error: Exception, **record: Any) -> None:
        self.error, self.record = error, record

    async def __call__(self, ctx: CallContext, call_next: Any) -> Reply:
        for key, item in self.record.items():
            setattr(ctx.record, key, item)
        raise self.error


def traced(**telemetry: Any) -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    config = make_config(**{f"telemetry__{key}": value for key, value in telemetry.items()})
    return Telemetry.from_config(config, env={}, span_processors=[SimpleSpanProcessor(exporter)]), exporter


async def run(telemetry: Telemetry, ctx: CallContext, upstream: FakeUpstream, *inner: Any) -> Reply:
    chain = build_chain([TracingStage(telemetry), *inner], forward_to(upstream, telemetry))
    reply = await chain(ctx)
    await reply.finish()  # what the transport does once the reply was written
    return reply


async def test_allowed_call_server_and_client_spans_and_forwarded_context() -> None:
    telemetry, exporter = traced()
    upstream = FakeUpstream()
    ctx = with_trace_context(make_ctx(arguments={"a": 1}), META_PARENT, None)
    await run(telemetry, ctx, upstream)
    assert "_meta" in ctx.params
    client, server = exporter.get_finished_spans()
    assert (server.name, server.kind, client.name, client.kind) == \
        ("tools/call add", SpanKind.SERVER, "tools/call add", SpanKind.CLIENT)
    assert format(server.parent.span_id, "016x") == META_PARENT
    assert client.parent.span_id == server.context.span_id
    forwarded = upstream.sent[0]
    expected = f"00-{TRACE}-{format(client.context.span_id, '016x')}-01"
    assert mcp.meta_of(forwarded.params)["traceparent"] == expected
    assert forwarded.upstream_headers["traceparent"] == expected
    assert forwarded.body is None  # the message changed, so it is re-serialised
    assert server.attributes["mcp_sidecar.outcome"] == "allowed"
    assert server.status.status_code is StatusCode.UNSET
    assert "gen_ai.tool.call.arguments" not in server.attributes


async def test_a_message_without_meta_gets_the_context_in_the_header_only() -> None:
    telemetry, exporter = traced()
    upstream = FakeUpstream()
    ctx = make_ctx("tools/list", target=None)
    await run(telemetry, ctx, upstream)
    client, _ = exporter.get_finished_spans()
    forwarded = upstream.sent[0]
    assert forwarded.message == ctx.message and forwarded.body is ctx.body  # the message is left as it came
    assert forwarded.upstream_headers["traceparent"].split("-")[2] == format(client.context.span_id, "016x")



async def test_trace_state_and_baggage_from_the_caller_go_upstream() -> None:
    telemetry, _ = traced()
    upstream = FakeUpstream()
    ctx = make_ctx().with_meta(traceparent=f"00-{TRACE}-{META_PARENT}-01", tracestate="vendor=v1",
                               baggage="tenant=acme")
    await run(telemetry, ctx, upstream)
    forwarded = upstream.sent[0]
    for carrier in (mcp.meta_of(forwarded.params), forwarded.upstream_headers):
        assert carrier["traceparent"].startswith(f"00-{TRACE}-")
        assert (carrier["tracestate"], carrier["baggage"]) == ("vendor=v1", "tenant=acme")

async def test_policy_denial_is_on_the_span_and_no_upstream_span_exists() -> None:
    telemetry, exporter = traced()
    refuse = Refuse(PolicyDeniedError("delete_file is not allowed"), policy_decision="deny",
                    policy_reasons=("destructive tools need approval",), policy_revision="rev-7")
    ctx = make_ctx(target="delete_file", principal=Principal(subject="alice"))
    reply = await run(telemetry, ctx, FakeUpstream(), refuse)
    assert reply.message["result"]["isError"] is True
    [server] = exporter.get_finished_spans()
    attributes = server.attributes
    assert attributes["error.type"] == "policy_denied"
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "delete_file is not allowed"
    assert (attributes["mcp_sidecar.policy.decision"], attributes["mcp_sidecar.policy.revision"]) == ("deny", "rev-7")
    assert attributes["mcp_sidecar.policy.reasons"] == ("destructive tools need approval",)
    assert attributes["mcp_sidecar.outcome"] == "denied"
    assert attributes["mcp_sidecar.principal.subject"] == "alice"


async def test_rate_limit_state_and_cache_status_are_on_the_span() -> None:
    telemetry, exporter = traced()
    refuse = Refuse(RateLimitedError("slow down"), rate_limit={"bucket": "per-user", "remaining": 0, "limit": 10,
                                                          "retry_after_seconds": 1.5}, cache_status="miss")
    await run(telemetry, make_ctx("tools/list", target=None), FakeUpstream(), refuse)
    [server] = exporter.get_finished_spans()
    assert server.attributes["error.type"] == "rate_limited"
    assert server.attributes["rpc.response.status_code"] == str(jsonrpc.RATE_LIMITED)  # a JSON-RPC error here
    assert (server.attributes["mcp_sidecar.rate_limit.bucket"], server.attributes["mcp_sidecar.rate_limit.remaining"]) \
        == ("per-user", 0)
    assert server.attributes["mcp_sidecar.cache.status"] == "miss"


async def test_tool_error_and_json_rpc_error_from_upstream() -> None:
    telemetry, exporter = traced()
    await run(telemetry, make_ctx(), FakeUpstream({"content": [], "isError": True}))
    client, server = exporter.get_finished_spans()
    assert server.attributes["error.type"] == client.attributes["error.type"] == "tool_error"

    exporter.clear()

    class Failing(FakeUpstream):
        async def send(self, ctx: CallContext) -> Reply:
            return Reply.json(jsonrpc.error_message(ctx.request_id, -32602, "Unknown tool: nope"))

    await run(telemetry, make_ctx(target="nope"), Failing())
    _, server = exporter.get_finished_spans()
    assert (server.attributes["error.type"], server.attributes["rpc.response.status_code"]) == ("-32602", "-32602")
    assert server.status.description == "Unknown tool: nope"


async def test_arguments_are_recorded_only_when_enabled_and_redacted() -> None:
    telemetry, exporter = traced(record_arguments=True, record_results=True)
    ctx = make_ctx(arguments={"user": "bob", "credentials": {"password": "hunter2"}})
    ctx.record.redact = ("credentials.password",)
    await run(telemetry, ctx, FakeUpstream({"content": [{"type": "text", "text": "ok"}]}))
    _, server = exporter.get_finished_spans()
    assert server.attributes["gen_ai.tool.call.arguments"] == \
        '{"user":"bob","credentials":{"password":"[redacted]"}}'
    assert "ok" in server.attributes["gen_ai.tool.call.result"]


async def test_span_ends_even_when_a_stage_crashes() -> None:
    telemetry, exporter = traced()

    class Crash:
        name = "crash"

        async def __call__(self, ctx: CallContext, call_next: Any) -> Reply:
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await run(telemetry, make_ctx(), FakeUpstream(), Crash())
    [server] = exporter.get_finished_spans()
    assert server.attributes["error.type"] == "RuntimeError"


async def test_sampled_out_calls_still_propagate_context() -> None:
    telemetry, exporter = traced(sampling_ratio=0.0)
    upstream = FakeUpstream()
    await run(telemetry, make_ctx().with_meta(), upstream)
    assert exporter.get_finished_spans() == ()
    flags = mcp.meta_of(upstream.sent[0].params)["traceparent"].rsplit("-", 1)[1]
    assert int(flags, 16) & 1 == 0  # not sampled, yet the upstream joins the same (unrecorded) trace


async def test_disabled_telemetry_has_no_stage_and_usable_metrics() -> None:
    telemetry = Telemetry.from_config(make_config(telemetry__enabled=False))
    assert not telemetry.enabled and telemetry.prometheus is None
    telemetry.metrics.count("upstream_restarts")  # a no-op, never an error
    upstream = FakeUpstream()
    reply = await forward_to(upstream, telemetry)(make_ctx())
    assert reply.status == 200 and "_meta" not in upstream.sent[0].params


def test_otel_sdk_disabled_turns_telemetry_off_unless_the_config_says_otherwise() -> None:
    assert not Telemetry.from_config(make_config(), env={"OTEL_SDK_DISABLED": "true"}).enabled
    assert Telemetry.from_config(make_config(telemetry__enabled=True), env={"OTEL_SDK_DISABLED": "true"}).enabled




def test_trace_carrier_is_what_the_w3c_propagator_writes() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    for flags, state in ((TraceFlags(1), TraceState([("vendor", "v1"), ("b", "2")])), (TraceFlags(0), TraceState()),
                         (TraceFlags(3), None)):
        span = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0x00AD6B7169203331, is_remote=False,
                           trace_flags=flags, trace_state=state)
        expected: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(expected, context=trace.set_span_in_context(NonRecordingSpan(span)))
        assert trace_carrier(span) == expected


def test_metrics_are_shared_only_between_several_workers(tmp_path) -> None:
    """One worker with a configured directory keeps its metrics to itself: the directory is only emptied of an
    earlier run's files when the parent starts several workers, so summing it alone would add those for ever."""
    one = Telemetry.from_config(make_config(telemetry__worker_metrics_dir=str(tmp_path)), env={})
    several = Telemetry.from_config(make_config(telemetry__worker_metrics_dir=str(tmp_path), server__workers=2),
                                    env={})
    try:
        assert one.prometheus is not None and one.prometheus.shared is None and one.publisher is None
        assert several.prometheus is not None and several.prometheus.shared is not None
        assert several.publisher is not None
    finally:
        asyncio.run(several.shutdown())
        asyncio.run(one.shutdown())


def test_console_exporter_writes_each_span_as_a_json_line_on_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    telemetry = Telemetry.from_config(make_config(telemetry__exporter="console"), env={})
    assert telemetry.spans is not None
    telemetry.spans.start("tools/call add", SpanKind.SERVER, {"gen_ai.tool.name": "add"}).end({})
    asyncio.run(telemetry.shutdown())
    out, _ = capfd.readouterr()
    [line] = out.splitlines()
    assert '"name":"tools/call add"' in line and '"kind":"SERVER"' in line and '"gen_ai.tool.name":"add"' in line


def test_otlp_without_an_endpoint_exports_nothing() -> None:
    telemetry = Telemetry.from_config(make_config(), env={})
    assert telemetry.spans is not None and telemetry.spans.processors == ()
