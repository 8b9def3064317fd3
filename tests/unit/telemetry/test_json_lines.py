"""The JSON-lines span exporter: one readable object per span, parents by id, and the reader's tolerance."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from proxy.telemetry.export.json_lines import JsonLinesSpanExporter, read_spans


def test_spans_are_json_lines_with_their_parent(tmp_path: Path) -> None:
    exporter = JsonLinesSpanExporter.to_file(tmp_path / "deep" / "spans.jsonl")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child") as child:
        child.set_attribute("gen_ai.tool.name", "add")
        child.set_status(Status(StatusCode.ERROR, "broke"))
    provider.shutdown()
    lines = (tmp_path / "deep" / "spans.jsonl").read_text().splitlines()
    first, second = (orjson.loads(line) for line in lines)
    assert first["name"] == "child" and second["name"] == "parent"  # in the order they ended
    assert first["parent_span_id"] == format(parent.get_span_context().span_id, "016x") == second["span_id"]
    assert second["parent_span_id"] is None
    assert first["trace_id"] == format(child.get_span_context().trace_id, "032x")
    assert first["attributes"] == {"gen_ai.tool.name": "add"}
    assert (first["status"], first["status_message"]) == ("ERROR", "broke")
    assert second["kind"] == "INTERNAL" and second["start"].endswith("+00:00") and second["duration_ms"] >= 0


def test_after_shutdown_exports_fail() -> None:
    stream = io.BytesIO()
    exporter = JsonLinesSpanExporter(stream)
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE
    assert not stream.closed  # console streams are not the exporter's to close


def test_reader_skips_what_is_not_a_span() -> None:
    good = orjson.dumps({"trace_id": "1", "span_id": "2", "name": "n"}).decode()
    spans, bad = read_spans([good, "", "{", '{"name": "x"}'])
    assert [span["name"] for span in spans] == ["n"] and bad == [3, 4]
