"""The wire-format trace encoding decodes, with the official opentelemetry-proto classes, to exactly what the OTLP
exporter's own encoder builds from the same spans."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
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

from proxy.telemetry.export.otlp_wire import TraceRequestEncoder, any_value, varint
from proxy.telemetry.spans import FinishedSpan
from tests.unit.telemetry.test_spans import recorder as span_recorder

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1"), ("other", "x")]))
LINKED = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))


class Color(StrEnum):
    RED = "red"


VALUES = {"s": "text", "empty": "", "unicode": "héllo ✓", "long": "x" * 300, "t": True, "f": False, "zero": 0,
          "i": 42, "neg": -7, "big": 2**62, "min": -(2**63), "d": 1.5, "nd": -0.25, "strs": ("a", "b"),
          "ints": (1, 2), "bools": (True, False), "floats": (0.5,), "enum": Color.RED}


def finished_spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "s", "service.instance.id": "i"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-sidecar", "1.2", schema_url="https://opentelemetry.io/schemas/1.0",
                                 attributes={"scope.attr": "yes"})
    for n in range(3):
        with tracer.start_as_current_span(f"tools/call t{n}", kind=SpanKind.SERVER, attributes={**VALUES, "n": n},
                                          context=set_span_in_context(NonRecordingSpan(REMOTE)),
                                          links=[Link(LINKED, {"why": "http"})]) as server:
            server.add_event("retry", {"attempt": 1})
            server.add_event("bare")
            client = tracer.start_span("tools/call", kind=SpanKind.CLIENT, attributes={"server.port": 8080})
            client.set_status(StatusCode.ERROR, "upstream said no")
            client.end()
        other = provider.get_tracer("other-scope").start_span("internal")  # no version, no schema
        other.set_status(StatusCode.OK)
        other.end()
    return list(exporter.get_finished_spans())


def test_encoding_matches_the_otlp_exporters_own() -> None:
    spans = finished_spans()
    encoder = TraceRequestEncoder()
    for _ in range(2):  # the second pass reuses the encoded keys, resource and scopes
        ours = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert ours == encode_spans(spans)
    [resource_spans] = ours.resource_spans
    assert [len(scope.spans) for scope in resource_spans.scope_spans] == [6, 3]
    server = next(span for span in resource_spans.scope_spans[0].spans if span.kind == 2)
    assert server.parent_span_id.hex() == "b7ad6b7169203331"
    assert (server.trace_state, server.flags) == ("vendor=v1,other=x", 0x300)


@pytest.mark.parametrize("parent", [None, set_span_in_context(NonRecordingSpan(REMOTE))])
def test_the_sidecars_own_spans_encode_from_their_slots_as_the_exporter_encodes_them(parent: Any) -> None:
    recorder, exporter = span_recorder()  # one recorder: one resource and scope object, grouped as the exporter does
    server = recorder.start("tools/call add", SpanKind.SERVER, {"id": "x" * 200, "port": 9, "same": "x"}, parent,
                            [Link(LINKED)])
    client = recorder.start("tools/call add", SpanKind.CLIENT, {"same": "x", "strs": ("a", "b")},
                            server.in_context(parent))
    client.end({"http.response.status_code": 502}, "upstream said no", error=True)
    server.end({"http.response.status_code": 200, "d": 1.5, "t": True})
    spans = list(exporter.get_finished_spans())
    assert {type(span) for span in spans} == {FinishedSpan}  # the fast path, not the properties
    encoder = TraceRequestEncoder()
    for _ in range(2):
        assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)


def test_many_distinct_values_of_a_key_encode_the_same_cached_or_not() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "s"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-sidecar")
    for n in range(150):  # past the per-key limit, for a string and an int key; "same" stays cached
        tracer.start_span("s", attributes={"id": f"r{n}", "port": n, "same": "x", "flag": n % 2 == 0}).end()
    spans = list(exporter.get_finished_spans())
    encoder = TraceRequestEncoder()
    for _ in range(2):
        assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)


def test_attributes_of_every_kind_decode_to_their_values() -> None:
    spans = finished_spans()
    ours = ExportTraceServiceRequest.FromString(TraceRequestEncoder().encode(spans))
    server = next(span for span in ours.resource_spans[0].scope_spans[0].spans if span.kind == 2)
    decoded = {item.key: item.value for item in server.attributes}
    assert decoded["unicode"].string_value == "héllo ✓" and decoded["min"].int_value == -(2**63)
    assert decoded["enum"].string_value == "red" and decoded["nd"].double_value == -0.25
    assert [value.bool_value for value in decoded["bools"].array_value.values] == [True, False]


def test_a_value_otlp_cannot_carry_is_left_out_alone() -> None:
    encoder = TraceRequestEncoder()
    assert encoder.attributes(b"\x4a", {"huge": 2**64, "ok": 1}) == encoder.attributes(b"\x4a", {"ok": 1})
    assert any_value({"nested": [1, "a"]})  # kvlist and arrays, which only events or links could carry


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)])
def test_integers_are_protobufs_varints(value: int) -> None:
    assert any_value(value) == AnyValue(int_value=value).SerializeToString()
    assert varint(value & (2**64 - 1)) == any_value(value)[1:]
