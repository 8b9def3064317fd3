"""An OTLP/HTTP receiver for tests: aiohttp on loopback, decoding the protobuf export requests."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.kit import free_port

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@dataclass
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    links: list[tuple[str, str]]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Receiver:
    url: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    def named(self, name: str, service: str | None = None, kind: int | None = None) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name and (service is None or span.service == service)
                and (kind is None or span.kind == kind)]


def value_of(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, which) if which else None


def _body(raw: bytes, request: web.Request) -> bytes:
    return gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw


@contextlib.asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        receiver.headers_seen.append(dict(request.headers))
        export = ExportTraceServiceRequest()
        export.ParseFromString(_body(await request.read(), request))
        for resource_spans in export.resource_spans:
            resource = {attr.key: value_of(attr.value) for attr in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    receiver.spans.append(ReceivedSpan(
                        service=resource.get("service.name", ""), name=span.name, kind=span.kind,
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={attr.key: value_of(attr.value) for attr in span.attributes},
                        status_code=span.status.code, status_message=span.status.message,
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        events=[(event.name, {attr.key: value_of(attr.value) for attr in event.attributes})
                                for event in span.events]))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest()
        export.ParseFromString(_body(await request.read(), request))
        for resource_metrics in export.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                receiver.metric_names.update(metric.name for metric in scope_metrics.metrics)
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
