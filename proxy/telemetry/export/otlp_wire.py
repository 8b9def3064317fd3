"""Finished spans as an OTLP ExportTraceServiceRequest, written straight in protobuf wire format.

The OTLP exporter builds a protobuf object per span, attribute and value before serialising them (about 50 us per
span here, two spans per call, on the export thread and under the GIL). This writes the same bytes from the public
ReadableSpan properties, or, for the sidecar's own spans (spans.FinishedSpan), from the RecordedSpan's plain slots
(a property call per field cost more than the rest). `tests/unit/test_otlp_wire.py` decodes them with the
opentelemetry-proto classes and compares them with the exporter's own encoding. Field numbers are those of
opentelemetry-proto's trace.proto, common.proto and resource.proto; the grouping (resource, then scope) and the
optional fields follow the exporter.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceState

from proxy.telemetry.spans import UNSET, FinishedSpan, RecordedSpan

log = logging.getLogger(__name__)

_KIND = {SpanKind.INTERNAL: b"\x30\x01", SpanKind.SERVER: b"\x30\x02", SpanKind.CLIENT: b"\x30\x03",
         SpanKind.PRODUCER: b"\x30\x04", SpanKind.CONSUMER: b"\x30\x05"}  # Span.kind (field 6)
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)  # Span.flags (16, fixed32): HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)  # ... and IS_REMOTE (the parent came from elsewhere)
_LINK_FLAGS_LOCAL = b"\x35" + struct.pack("<I", 0x100)  # Link.flags (6, fixed32)
_LINK_FLAGS_REMOTE = b"\x35" + struct.pack("<I", 0x300)
_UNSET_STATUS = b"\x7a\x00"  # Span.status (15), an empty Status: the common case
_FIXED64 = struct.Struct("<Q").pack
# One call for the fields every span has: tag and length (two bytes, big-endian) before big-endian ids, a tag
# before each little-endian fixed64 time.
_IDS = struct.Struct(">HQQHQ").pack  # Span.trace_id (1, 16 bytes, as two halves) and span_id (2, 8 bytes)
_PARENT = struct.Struct(">HQ").pack  # Span.parent_span_id (4, 8 bytes)
_TIMES = struct.Struct("<BQBQ").pack  # Span.start_time_unix_nano (7) and end_time_unix_nano (8)
_LOW64 = (1 << 64) - 1
_KIND_BY_ID = {id(kind): field for kind, field in _KIND.items()}  # SpanKind hashes in Python (Enum.__hash__)
_DOUBLE = struct.Struct("<d").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_ENTRY_LIMIT = 4096  # encoded (tag, key, str or int value) attributes kept; all dropped when full
_DISTINCT_LIMIT = 64  # a key with more distinct values than this is not cached any more


_SMALL = [bytes((value,)) for value in range(0x80)]


class UnencodableValueError(ValueError):
    """An attribute value OTLP cannot carry (the exporter logs and skips those too)."""


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _string(tag: bytes, text: str) -> bytes:
    return _delimited(tag, text.encode())


def any_value(value: Any) -> bytes:
    """AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes (exact types first: the common
    case costs one type() lookup)."""
    kind = type(value)
    if kind is str:
        return _string(b"\x0a", value)
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return _int(value)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    return _other_value(value)


def _int(value: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise UnencodableValueError(f"{value} does not fit in int64")
    return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)  # negative numbers: two's complement, ten bytes


def _other_value(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):  # str subclasses (enums) as their text
        return _string(b"\x0a", str.__str__(value))
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(float(value))
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    if isinstance(value, Sequence):  # ArrayValue: 1 values
        return _delimited(b"\x2a", b"".join(_delimited(b"\x0a", any_value(item)) for item in value))
    if isinstance(value, Mapping):  # KeyValueList: 1 values
        return _delimited(b"\x32", b"".join(_delimited(b"\x0a", _key_value(str(key), item))
                                            for key, item in value.items()))
    raise UnencodableValueError(f"invalid type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    """KeyValue: 1 key, 2 value."""
    return _string(b"\x0a", key) + _delimited(b"\x12", any_value(value))


class TraceRequestEncoder:
    """Encodes batches of finished spans. Keeps the encoded form of repeated attributes, resources and scopes.
    Used by one thread at a time (the batch processor's)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[bytes, str, str | int], bytes] = {}
        self._distinct: Counter[str] = Counter()  # values cached per key
        self._keys: dict[str, bytes] = {}  # key -> KeyValue.key field and the tag of KeyValue.value
        self._names: dict[tuple[str, bytes], bytes] = {}
        self._resources: dict[int, tuple[Any, bytes]] = {}  # id -> (the object, so the id stays its own; bytes)
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """ExportTraceServiceRequest: 1 resource_spans. ResourceSpans: 1 resource, 2 scope_spans, 3 schema_url.
        ScopeSpans: 1 scope, 2 spans, 3 schema_url. Spans are grouped by resource and scope object, in order of
        appearance (one provider has one of each: hashing a Resource serialises it to JSON, per span). A span of
        the same resource and scope as the previous one (all of them, from one provider) goes to the same list."""
        pairs: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
        last_resource = last_scope = encoded = None
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope or None
            if encoded is None or resource is not last_resource or scope is not last_scope:
                last_resource, last_scope = resource, scope
                encoded = pairs.setdefault((id(resource), id(scope)), (resource, scope, []))[2]
            body = self.recorded(span.recorded) if type(span) is FinishedSpan else self.span(span)
            encoded += (b"\x12" + varint(len(body)), body)  # ScopeSpans.spans (2)
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for resource, scope, of_scope in pairs.values():
            groups.setdefault(id(resource), (resource, {}))[1][id(scope)] = (scope, of_scope)
        out = []
        for resource, scopes in groups.values():
            parts = [self._resource(resource)]
            for scope, encoded in scopes.values():
                schema = _string(b"\x1a", scope.schema_url) if scope is not None and scope.schema_url else b""
                parts.append(_delimited(b"\x12", self._scope(scope) + b"".join(encoded) + schema))
            if resource.schema_url:
                parts.append(_string(b"\x1a", resource.schema_url))
            out.append(_delimited(b"\x0a", b"".join(parts)))
        return b"".join(out)

    def span(self, span: ReadableSpan) -> bytes:
        """Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind, 7 start and 8 end time
        (fixed64), 9 attributes, 10 dropped attributes, 11 events, 12 dropped events, 13 links, 14 dropped links,
        15 status, 16 flags (fixed32)."""
        if type(span) is FinishedSpan:
            return self.recorded(span.recorded)
        context = span.get_span_context()
        parent = span.parent
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        if context.trace_state:
            parts.append(_string(b"\x1a", _trace_state(context)))
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts += (_string(b"\x2a", span.name), _KIND[span.kind])
        if span.start_time:
            parts += (b"\x39", _FIXED64(span.start_time))
        if span.end_time:
            parts += (b"\x41", _FIXED64(span.end_time))
        parts.append(self.attributes(b"\x4a", span.attributes))
        if span.dropped_attributes:
            parts += (b"\x50", varint(span.dropped_attributes))
        parts.extend(self._events(span.events))
        if span.dropped_events:
            parts += (b"\x60", varint(span.dropped_events))
        for link in span.links:
            parts.append(_delimited(b"\x6a", self._link(link.context, link.attributes, link.dropped_attributes)))
        if span.dropped_links:
            parts += (b"\x70", varint(span.dropped_links))
        status = span.status
        if status is not None:
            parts.append(_UNSET_STATUS if status.status_code is StatusCode.UNSET and not status.description
                         else _delimited(b"\x7a", _status(status)))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)

    def recorded(self, span: RecordedSpan) -> bytes:
        """The same Span message from a RecordedSpan's slots: no dropped counts (the recorder keeps none), names
        with their kind encoded once."""
        trace_id, span_id, state = span.ids
        parts = [_IDS(0x0A10, trace_id >> 64, trace_id & _LOW64, 0x1208, span_id)]
        if state:
            parts.append(_string(b"\x1a", _trace_state_header(state)))
        parent = span.parent
        if parent is not None:
            parts.append(_PARENT(0x2208, parent.span_id))
        parts.append(self._name_and_kind(span.name, _KIND_BY_ID[id(span.kind)]))
        parts.append(_TIMES(0x39, span.start_time, 0x41, span.end_time))
        parts.append(self.attributes(b"\x4a", span.attributes))
        if span.events:
            parts.extend(self._events(span.events))
        for link in span.links:
            parts.append(_delimited(b"\x6a", self._link(link.context, link.attributes, link.dropped_attributes)))
        status = span.status
        parts.append(_UNSET_STATUS if status is UNSET else _delimited(b"\x7a", _status(status)))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)

    def _events(self, events: Any) -> list[bytes]:
        """Span.events (11): Event 1 time (fixed64), 2 name, 3 attributes, 4 dropped attributes."""
        return [_delimited(b"\x5a", b"\x09" + _FIXED64(event.timestamp) + _string(b"\x12", event.name)
                           + self.attributes(b"\x1a", event.attributes)
                           + (b"\x20" + varint(event.dropped_attributes) if event.dropped_attributes else b""))
                for event in events]

    def _name_and_kind(self, name: str, kind: bytes) -> bytes:
        """Span.name (5) and the encoded kind (6), kept per pair: names repeat (method and tool)."""
        encoded = self._names.get((name, kind))
        if encoded is None:
            if len(self._names) >= _ENTRY_LIMIT:
                self._names.clear()
            encoded = self._names[name, kind] = _string(b"\x2a", name) + kind
        return encoded

    def _link(self, context: SpanContext, attributes: Any, dropped: int) -> bytes:
        """Link: 1 trace_id, 2 span_id, 4 attributes, 5 dropped attributes, 6 flags (fixed32). Like the exporter,
        no trace_state (3)."""
        return (b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")
                + self.attributes(b"\x22", attributes) + (b"\x28" + varint(dropped) if dropped else b"")
                + (_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL))

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Repeated KeyValue under `tag`; a value OTLP cannot carry is logged and left out, as the exporter does.
        A string or int attribute is encoded once per (tag, key, value) and reused (method, tool, outcome, status
        code... repeat on every call), until its key showed too many distinct values (request and decision ids)."""
        if not attributes:
            return b""
        entries = self._entries
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            entry = entries.get((tag, key, value)) if kind is str or kind is int else None
            if entry is None:
                entry = self._entry(tag, key, value)
                if entry is None:
                    continue
            parts.append(entry)
        return b"".join(parts)

    def _entry(self, tag: bytes, key: str, value: Any) -> bytes | None:
        """One KeyValue field (tag, length, key and value), or None if the value is unencodable."""
        kind = type(value)
        entry = _short_string(tag, self._key(key), value) if kind is str else None
        if entry is None:
            try:
                encoded_value = any_value(value)
            except UnencodableValueError as error:
                log.error("Failed to encode key %s: %s", key, error)
                return None
            key_value = self._key(key) + varint(len(encoded_value)) + encoded_value
            entry = tag + varint(len(key_value)) + key_value
        if (kind is str or kind is int) and self._distinct[key] < _DISTINCT_LIMIT:
            if len(self._entries) >= _ENTRY_LIMIT:
                self._entries.clear()
                self._distinct.clear()
            self._distinct[key] += 1
            self._entries[tag, key, value] = entry
        return entry

    def _key(self, key: str) -> bytes:
        """KeyValue.key (1) and the tag of KeyValue.value (2), kept per key (ids miss the entry cache)."""
        encoded = self._keys.get(key)
        if encoded is None:
            if len(self._keys) >= _ENTRY_LIMIT:
                self._keys.clear()
            encoded = self._keys[key] = _string(b"\x0a", key) + b"\x12"
        return encoded

    def _resource(self, resource: Any) -> bytes:
        """ResourceSpans.resource (1). Resource: 1 attributes."""
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            cached = self._resources[id(resource)] = (resource, _delimited(b"\x0a", self.attributes(
                b"\x0a", resource.attributes)))
        return cached[1]

    def _scope(self, scope: Any) -> bytes:
        """ScopeSpans.scope (1), present even when empty. InstrumentationScope: 1 name, 2 version, 3 attributes."""
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            body = b""
            if scope is not None:
                body = (_string(b"\x0a", scope.name) if scope.name else b"") + (
                    _string(b"\x12", scope.version) if scope.version else b"") + self.attributes(
                    b"\x1a", scope.attributes)
            cached = self._scopes[id(scope)] = (scope, _delimited(b"\x0a", body))
        return cached[1]


def _trace_state(context: SpanContext) -> str:
    return _trace_state_header(context.trace_state)


def _trace_state_header(state: TraceState) -> str:
    return ",".join(f"{key}={value}" for key, value in state.items())


def _short_string(tag: bytes, key: bytes, text: str) -> bytes | None:
    """A KeyValue field with a string value, in one formatting step when every length fits in one byte (ids,
    the common miss); None otherwise. `key` is the key field and the value's tag (see _key)."""
    data = text.encode()
    size = len(key) + len(data) + 3  # + the AnyValue's length, its string tag and the string's length
    if size >= 0x80:
        return None
    return b"%b%c%b%c\n%c%b" % (tag, size, key, len(data) + 2, len(data), data)


def _status(status: Any) -> bytes:
    """Status: 2 message, 3 code (the field is present even when both are defaults, as the exporter writes it)."""
    encoded = _string(b"\x12", status.description) if status.description else b""
    code = status.status_code.value
    return encoded + (b"\x18" + varint(code) if code else b"")
