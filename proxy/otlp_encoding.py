"""OTLP trace export bodies written straight to protobuf wire format, and the span exporter that sends them.

The OTLP exporter builds a protobuf object per span, attribute and value (about 50 us per span here: most of the
export thread's CPU, two spans per call). Writing the bytes directly produces the same ExportTraceServiceRequest
(opentelemetry-proto trace.proto; field numbers below) at a fraction of that, and repeated attributes (method,
tool, protocol version, outcome...) are encoded once and reused.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind

log = logging.getLogger(__name__)

_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags, as the OTLP exporter sets them
_INT64 = (1 << 64) - 1
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_CACHE_LIMIT = 4096  # distinct (key, value) pairs kept encoded; cleared when full
_KEY_MISS_LIMIT = 256  # a key with more distinct values than this is not cached any more


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value & _INT64)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if value is None:
        return b""
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    for base in (str, bool, int, float):  # subclasses (enums...) as their base type
        if isinstance(value, base):
            return _any_value(base.__str__(value) if base is str else base(value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    return _field(b"\x0a", str(value).encode())


def _key_value(key: str, value: Any) -> bytes:
    """KeyValue: 1 key, 2 value."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


class SpanEncoder:
    """Encodes batches of finished spans; keeps the encoded form of repeated string attributes."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, Any], bytes] = {}
        self._misses: Counter[str] = Counter()

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """ExportTraceServiceRequest: 1 resource_spans (ResourceSpans: 1 resource, 2 scope_spans, 3 schema_url;
        ScopeSpans: 1 scope, 2 spans, 3 schema_url). Grouped by resource and scope object identity."""
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope
            scopes = groups.setdefault(id(resource), (resource, {}))[1]
            scopes.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", self.span(span)))
        body = []
        for resource, scopes in groups.values():
            parts = [_field(b"\x0a", self.attributes(b"\x0a", resource.attributes))]
            for scope, encoded in scopes.values():
                parts.append(_field(b"\x12", self._scope_spans(scope, encoded)))
            if resource.schema_url:
                parts.append(_field(b"\x1a", resource.schema_url.encode()))
            body.append(_field(b"\x0a", b"".join(parts)))
        return b"".join(body)

    def _scope_spans(self, scope: Any, spans: list[bytes]) -> bytes:
        """InstrumentationScope: 1 name, 2 version, 3 attributes."""
        if scope is None:
            return b"".join(spans)
        encoded = _field(b"\x0a", scope.name.encode())
        if scope.version:
            encoded += _field(b"\x12", scope.version.encode())
        encoded += self.attributes(b"\x1a", getattr(scope, "attributes", None))
        tail = _field(b"\x1a", scope.schema_url.encode()) if scope.schema_url else b""
        return _field(b"\x0a", encoded) + b"".join(spans) + tail

    def span(self, span: ReadableSpan) -> bytes:
        """Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind, 7/8 start/end (fixed64),
        9 attributes, 10 dropped attributes, 11 events, 12 dropped events, 13 links, 14 dropped links,
        15 status, 16 flags (fixed32)."""
        context = span.get_span_context()
        parent = span.parent
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        if context.trace_state:
            parts.append(_field(b"\x1a", context.trace_state.to_header().encode()))
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts += (_field(b"\x2a", span.name.encode()), b"\x30", _varint(_KIND[span.kind]),
                  b"\x39", _FIXED64(span.start_time or 0), b"\x41", _FIXED64(span.end_time or 0),
                  self.attributes(b"\x4a", _inner(span, "_attributes", "attributes")))
        parts.append(_count(b"\x50", span.dropped_attributes))
        # Event: 1 time (fixed64), 2 name, 3 attributes, 4 dropped attributes.
        for event in _inner(span, "_events", "events") or ():
            parts.append(_field(b"\x5a", b"\x09" + _FIXED64(event.timestamp) + _field(b"\x12", event.name.encode())
                                + self.attributes(b"\x1a", event.attributes)
                                + _count(b"\x20", event.dropped_attributes)))
        parts.append(_count(b"\x60", span.dropped_events))
        for link in _inner(span, "_links", "links") or ():
            parts.append(_field(b"\x6a", self._link(link.context, link.attributes, link.dropped_attributes)))
        parts.append(_count(b"\x70", span.dropped_links))
        parts += (_field(b"\x7a", _status(span.status)), b"\x85\x01", _FIXED32(_flags(parent)))
        return b"".join(parts)

    def _link(self, context: SpanContext, attributes: Any, dropped: int) -> bytes:
        """Link: 1 trace_id, 2 span_id, 3 trace_state, 4 attributes, 5 dropped attributes, 6 flags (fixed32)."""
        encoded = b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")
        if context.trace_state:
            encoded += _field(b"\x1a", context.trace_state.to_header().encode())
        return encoded + self.attributes(b"\x22", attributes) + _count(b"\x28", dropped) + b"\x35" + _FIXED32(
            _flags(context))

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Repeated KeyValue under `tag`. Short string values are encoded once per (key, value) and reused,
        except under keys seen with too many distinct values (request ids, decision ids)."""
        if not attributes:
            return b""
        cache, misses = self._attributes, self._misses
        parts = []
        # BoundedAttributes iterates through collections.abc (slow); its plain dict, where it has one, does not.
        for key, value in getattr(attributes, "_dict", attributes).items():
            if type(value) is str and len(value) <= 128 and misses[key] < _KEY_MISS_LIMIT:
                encoded = cache.get((key, value))
                if encoded is None:
                    misses[key] += 1
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()
                    encoded = cache[key, value] = _field(b"", _key_value(key, value))
                parts.append(tag + encoded)
            else:
                parts.append(_field(tag, _key_value(key, value)))
        return b"".join(parts)

def _inner(span: ReadableSpan, private: str, public: str) -> Any:
    """A finished span's own attributes/events/links container where the SDK keeps one: the public properties
    copy it (tuple, MappingProxyType over a locked BoundedAttributes) for every span."""
    value = getattr(span, private, None)
    return getattr(span, public) if value is None else value


def _count(tag: bytes, value: int) -> bytes:
    return tag + _varint(value) if value else b""


def _status(status: Any) -> bytes:
    """Status: 2 message, 3 code."""
    if status is None:
        return b""
    encoded = _field(b"\x12", status.description.encode()) if status.description else b""
    code = status.status_code.value
    return encoded + (b"\x18" + _varint(code) if code else b"")


def _flags(parent: SpanContext | None) -> int:
    return _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE


class FastOTLPSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter (endpoint, headers, compression, retries, timeouts all its own) whose request body is
    written by SpanEncoder instead of the protobuf objects."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or not hasattr(self, "_client"):  # shut down, or an SDK whose internals moved
            return super().export(spans)
        try:
            body = self._encoder.request(spans)
        except Exception:
            log.exception("Failed to encode span batch")
            return SpanExportResult.FAILURE
        result = self._client.export(body)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
