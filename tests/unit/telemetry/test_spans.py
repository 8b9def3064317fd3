"""The span recorder hands processors what the SDK's own tracer would, for the spans the sidecar makes."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from proxy.telemetry.spans import SpanRecorder

RESOURCE = Resource.create({"service.name": "s"})
REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
START = {"mcp.method.name": "tools/call", "jsonrpc.request.id": "7"}
END = {"http.response.status_code": 502, "mcp_sidecar.policy.reasons": ("a", "b")}


def recorder(ratio: float = 1.0) -> tuple[SpanRecorder, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return SpanRecorder(RESOURCE, TraceIdRatioBased(ratio), [SimpleSpanProcessor(exporter)], "mcp-sidecar"), exporter


def sdk_spans(parent: trace.Context | None) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, sampler=ParentBased(TraceIdRatioBased(1.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-sidecar")
    server = tracer.start_span("tools/call add", parent, SpanKind.SERVER, dict(START), [Link(REMOTE)])
    client = tracer.start_span("tools/call add", trace.set_span_in_context(server), SpanKind.CLIENT, dict(START))
    for span in (client, server):
        span.set_attributes(END)
        span.set_status(StatusCode.ERROR, "upstream said no")
        span.end()
    return list(exporter.get_finished_spans())


def recorded_spans(parent: trace.Context | None) -> list[ReadableSpan]:
    spans, exporter = recorder()
    server = spans.start("tools/call add", SpanKind.SERVER, dict(START), parent, [Link(REMOTE)])
    client = spans.start("tools/call add", SpanKind.CLIENT, dict(START), server.in_context(parent))
    for span in (client, server):
        span.end(dict(END), "upstream said no", error=True)
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("parent", [None, trace.set_span_in_context(NonRecordingSpan(REMOTE))])
def test_finished_spans_look_like_the_sdk_tracers(parent: trace.Context | None) -> None:
    def shape(span: ReadableSpan) -> tuple:
        parent_id = span.parent.span_id if span.parent else None
        return (span.name, span.kind, dict(span.attributes), span.status.status_code, span.status.description,
                span.resource, span.instrumentation_scope, span.context.trace_flags, span.context.trace_state,
                span.context.is_remote, parent_id is not None, [link.context for link in span.links],
                span.start_time <= span.end_time)

    ours, theirs = recorded_spans(parent), sdk_spans(parent)
    assert [shape(span) for span in ours] == [shape(span) for span in theirs]
    client, server = ours
    assert client.parent == server.context and client.context.trace_id == server.context.trace_id
    if parent is not None:
        assert server.parent == REMOTE and server.context.trace_id == REMOTE.trace_id


def test_a_sampled_out_span_has_a_context_and_records_nothing() -> None:
    spans, exporter = recorder(ratio=0.0)
    span = spans.start("tools/call add", SpanKind.SERVER, {})
    assert span.context.is_valid and not span.context.trace_flags.sampled
    span.end({"x": 1}, "no", error=True)
    assert exporter.get_finished_spans() == ()


def test_attribute_limits_from_the_environment_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    spans, exporter = recorder()
    spans.start("s", SpanKind.SERVER, {"a": "abcdef", "b": ("xyzw", 5)}).end({"c": "dropped"})
    [span] = exporter.get_finished_spans()
    assert dict(span.attributes) == {"a": "abc", "b": ("xyz", 5)}


def test_a_parent_that_was_not_sampled_is_followed_as_the_sdk_follows_it() -> None:
    unsampled = SpanContext(REMOTE.trace_id, REMOTE.span_id, is_remote=True, trace_flags=TraceFlags(2),
                            trace_state=REMOTE.trace_state)
    parent = trace.set_span_in_context(NonRecordingSpan(unsampled))
    spans, exporter = recorder()
    ours = spans.start("s", SpanKind.SERVER, {}, parent)
    ours.end({})
    theirs = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0))).get_tracer("t").start_span("s", parent)
    assert exporter.get_finished_spans() == () and not theirs.is_recording()
    assert (ours.context.trace_flags, ours.context.trace_state, ours.context.trace_id) == \
        (theirs.get_span_context().trace_flags, theirs.get_span_context().trace_state, REMOTE.trace_id)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 1.0])
def test_roots_are_sampled_as_the_ratio_sampler_decides(ratio: float) -> None:
    spans, exporter = recorder(ratio)
    roots = [spans.start("s", SpanKind.SERVER, {}) for _ in range(200)]
    sampler = TraceIdRatioBased(ratio)
    decided = [sampler.should_sample(None, root.context.trace_id, "s").decision.is_sampled() for root in roots]
    assert [root.context.trace_flags.sampled for root in roots] == decided
    assert ratio != 0.25 or 0 < sum(decided) < 200
    for root in roots:
        root.end({})
    assert len(exporter.get_finished_spans()) == sum(decided)
    assert not any(root.context.trace_state for root in roots)  # a root has no tracestate to carry
