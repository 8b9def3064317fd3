"""The OTLP span exporter over a real socket: what it sends, and when it retries, gives up or stops."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from proxy.telemetry.export.span_exporter import OtlpSpanExporter, compression_from
from tests.kit import free_port, serve_app, wait_until
from tests.unit.telemetry.export.test_otlp_wire import finished_spans


def receiver(answers: list[tuple[int, dict[str, str]]], seen: list[tuple[Mapping[str, str], bytes]]) -> web.Application:
    """Answers the queued (status, headers) in turn, then 200; records every request."""

    async def traces(request: web.Request) -> web.Response:
        seen.append((request.headers.copy(), await request.read()))  # case-insensitive names
        status, headers = answers.pop(0) if answers else (200, {})
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    return app


async def export(exporter: OtlpSpanExporter) -> SpanExportResult:
    return await asyncio.to_thread(exporter.export, finished_spans())


async def test_sends_the_batch_with_headers_and_gzip() -> None:
    seen: list[tuple[Mapping[str, str], bytes]] = []
    async with serve_app(receiver([], seen)) as url:
        exporter = OtlpSpanExporter.from_env(f"{url}/v1/traces", {"X-Tenant": "t1"},
                                             {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip"})
        assert await export(exporter) is SpanExportResult.SUCCESS
        exporter.shutdown()
    [(headers, body)] = seen
    assert (headers["Content-Type"], headers["Content-Encoding"], headers["X-Tenant"]) == \
        ("application/x-protobuf", "gzip", "t1")
    assert int(headers["Content-Length"]) < len(body)  # aiohttp inflated what came compressed
    request = ExportTraceServiceRequest.FromString(body)
    assert sum(len(scope.spans) for scope in request.resource_spans[0].scope_spans) == 9


async def test_transient_answers_are_retried_as_the_server_asks() -> None:
    seen: list[tuple[Mapping[str, str], bytes]] = []
    answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    async with serve_app(receiver(answers, seen)) as url:
        exporter = OtlpSpanExporter(f"{url}/v1/traces", {}, compression="deflate")
        assert await export(exporter) is SpanExportResult.SUCCESS
    assert len(seen) == 3 and seen[0][1] == seen[2][1] and seen[0][0]["Content-Encoding"] == "deflate"


async def test_a_permanent_refusal_is_not_retried() -> None:
    seen: list[tuple[Mapping[str, str], bytes]] = []
    async with serve_app(receiver([(400, {})], seen)) as url:
        exporter = OtlpSpanExporter(f"{url}/v1/traces", {})
        assert await export(exporter) is SpanExportResult.FAILURE
    assert len(seen) == 1


async def test_a_wait_longer_than_the_timeout_gives_up_and_shutdown_refuses_more() -> None:
    seen: list[tuple[Mapping[str, str], bytes]] = []
    async with serve_app(receiver([(503, {"Retry-After": "30"})], seen)) as url:
        exporter = OtlpSpanExporter(f"{url}/v1/traces", {}, timeout_seconds=2)
        assert await export(exporter) is SpanExportResult.FAILURE
        exporter.shutdown()
        assert await export(exporter) is SpanExportResult.FAILURE
    assert len(seen) == 1


def test_unknown_compression_falls_back_to_none() -> None:
    assert compression_from({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}) == "none"
    assert compression_from({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                             "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "deflate"}) == "deflate"


async def test_shutdown_ends_a_retry_wait() -> None:
    seen: list[tuple[Mapping[str, str], bytes]] = []
    async with serve_app(receiver([(503, {"Retry-After": "30"})], seen)) as url:
        exporter = OtlpSpanExporter(f"{url}/v1/traces", {}, timeout_seconds=60)
        exporting = asyncio.create_task(export(exporter))
        await wait_until(lambda: len(seen) == 1)
        exporter.shutdown()
        assert await asyncio.wait_for(exporting, 5) is SpanExportResult.FAILURE


async def test_an_unreachable_collector_is_a_failure_not_an_error() -> None:
    exporter = OtlpSpanExporter(f"http://127.0.0.1:{free_port()}/v1/traces", {}, timeout_seconds=0.5)
    assert await export(exporter) is SpanExportResult.FAILURE
