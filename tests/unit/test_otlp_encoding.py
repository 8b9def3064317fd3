"""The hand-written OTLP trace encoding decodes to exactly what the OTLP exporter's protobuf objects say."""

from __future__ import annotations

from enum import StrEnum

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from proxy.otlp_encoding import SpanEncoder


class Color(StrEnum):
    RED = "red"


def finished_spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "s", "service.instance.id": "i"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-sidecar", "1.2", schema_url="https://opentelemetry.io/schemas/1.0")
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1"), ("other", "x")]))
    linked = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    values = {"s": "text", "empty": "", "long": "x" * 300, "t": True, "f": False, "zero": 0, "i": 42, "neg": -7,
              "big": 2**62, "d": 1.5, "strs": ["a", "b"], "ints": [1, 2], "enum": Color.RED}
    for n in range(300):  # past the per-key cache limit for "n"
        with tracer.start_as_current_span(f"tools/call t{n % 3}", kind=SpanKind.SERVER,
                                          attributes={**values, "n": str(n)},
                                          context=set_span_in_context(NonRecordingSpan(remote)),
                                          links=[Link(linked, {"why": "http"})]) as server:
            server.add_event("retry", {"attempt": 1})
            client = tracer.start_span("tools/call", kind=SpanKind.CLIENT, attributes={"server.port": 8080})
            client.set_status(StatusCode.ERROR, "upstream said no")
            client.end()
        other = provider.get_tracer("other-scope").start_span("internal")
        other.end()
    return list(exporter.get_finished_spans())


def test_encoding_matches_the_otlp_exporters_protobuf() -> None:
    spans = finished_spans()
    encoder = SpanEncoder()
    for _ in range(2):  # the second pass is served from the attribute cache
        ours = ExportTraceServiceRequest.FromString(encoder.request(spans))
        theirs = encode_spans(spans)
        assert ours == theirs
    server = next(span for span in ours.resource_spans[0].scope_spans[0].spans if span.kind == 2)
    assert server.parent_span_id.hex() == "b7ad6b7169203331" and server.trace_state == "vendor=v1,other=x"
