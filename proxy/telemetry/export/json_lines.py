"""Spans as JSON lines: one object per finished span, for a laptop without a collector (`telemetry.exporter:
console` or `file`). `read_spans` reads such a file back; `mcp-sidecar traces show` renders it as trees.

Each line holds the ids (hex, as the W3C traceparent writes them), the parent's span id (null for a root), name,
kind, the start as RFC 3339 and in ns, the duration in ms, the status, the attributes and the service name.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The JSON object of one finished span."""
    context, parent = span.context, span.parent
    start, end = span.start_time or 0, span.end_time or 0
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start": datetime.fromtimestamp(start / 1e9, UTC).isoformat(timespec="microseconds"),
        "start_unix_nano": start,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "status_message": span.status.description if span.status.status_code is StatusCode.ERROR else None,
        "service": span.resource.attributes.get("service.name"),
        "attributes": dict(span.attributes or {}),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Writes each span as one JSON line to a stream (console) or a file opened for appending."""

    def __init__(self, stream: IO[bytes], owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned  # a file this exporter opened, closed on shutdown
        self._lock = threading.Lock()
        self._stopped = False

    @classmethod
    def to_file(cls, path: str | Path) -> JsonLinesSpanExporter:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return cls(target.open("ab"), owned=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(span_record(span), default=str) + b"\n" for span in spans)
        with self._lock:
            if self._stopped:
                return SpanExportResult.FAILURE
            try:
                self._stream.write(lines)
                self._stream.flush()
            except (OSError, ValueError):
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._stopped = True
            if self._owned:
                self._stream.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is flushed as it is written


def read_spans(lines: Iterator[str] | Sequence[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """The span records of a JSON-lines file, and the numbers (1-based) of the lines that are not span records."""
    spans: list[dict[str, Any]] = []
    bad: list[int] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(number)
            continue
        if isinstance(record, dict) and {"trace_id", "span_id", "name"} <= record.keys():
            spans.append(record)
        else:
            bad.append(number)
    return spans, bad
