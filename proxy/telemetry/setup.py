"""OpenTelemetry for one sidecar: providers built from config and the OTEL_* variables, trace-context propagation
through `params._meta` (and HTTP headers), and the CLIENT span around the upstream call.

Providers are plain objects held by `deps.telemetry`, never installed as process globals, so several sidecars
(and the tests) can run side by side in one process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy import mcp
from proxy.config import Config, TelemetryConfig
from proxy.context import CallContext
from proxy.reply import Reply
from proxy.telemetry import semconv
from proxy.telemetry.export.json_lines import JsonLinesSpanExporter
from proxy.telemetry.export.metric_push import MetricPush
from proxy.telemetry.export.prometheus import PrometheusReader
from proxy.telemetry.export.worker_metrics import WorkerMetrics
from proxy.telemetry.metrics import SidecarMetrics
from proxy.telemetry.periodic import PeriodicThread
from proxy.telemetry.spans import SpanRecorder

SCOPE = "mcp-sidecar"
DEFAULT_SERVICE_NAME = "mcp-sidecar"
CONTEXT_KEYS = ("traceparent", "tracestate", "baggage")  # reserved _meta keys (SEP-414) and W3C headers
# GET streams and DELETEs are not messages; client responses to server requests are relayed untraced.
TRACED_KINDS = frozenset({mcp.Kind.REQUEST, mcp.Kind.NOTIFICATION})
BAGGAGE = W3CBaggagePropagator()
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), BAGGAGE])


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The exporter settings after config and OTEL_* variables were merged (config wins)."""

    service_name: str = DEFAULT_SERVICE_NAME
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    sampling_ratio: float = 1.0
    metric_interval_seconds: float = 15.0


def resolve_settings(config: TelemetryConfig, env: Mapping[str, str]) -> TelemetrySettings:
    base = config.otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") if config.otlp_endpoint is None else None
    metrics = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") if config.otlp_endpoint is None else None
    ratio = config.sampling_ratio
    if ratio is None:
        ratio = _ratio(env.get("OTEL_TRACES_SAMPLER_ARG"))
    interval = config.metric_export_interval_seconds
    if "metric_export_interval_seconds" not in config.model_fields_set and env.get("OTEL_METRIC_EXPORT_INTERVAL"):
        interval = float(env["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000
    return TelemetrySettings(
        service_name=config.service_name or env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        traces_endpoint=traces or (f"{base.rstrip('/')}/v1/traces" if base else None),
        metrics_endpoint=(metrics or (f"{base.rstrip('/')}/v1/metrics" if base else None)) if config.otlp_metrics
        else None,
        headers={**parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", "")), **config.otlp_headers},
        sampling_ratio=ratio,
        metric_interval_seconds=interval,
    )


def parse_headers(raw: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: `k1=v1,k2=v2`, values URL-encoded."""
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {unquote(key.strip()): unquote(value.strip()) for key, value in pairs}


def _ratio(raw: str | None) -> float:
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        return 1.0
    return min(max(value, 0.0), 1.0)


class Telemetry:
    """One sidecar's span recorder, meter, metrics and Prometheus reader; `disabled()` has no spans and a no-op
    meter."""

    def __init__(self, config: TelemetryConfig, spans: SpanRecorder | None = None,
                 meter_provider: MeterProvider | None = None, prometheus: PrometheusReader | None = None,
                 upstream_url: str | None = None, metric_push: MetricPush | None = None,
                 prometheus_only: bool = False, publisher: PeriodicThread | None = None) -> None:
        self.config = config
        self.metric_push = metric_push
        self.publisher = publisher  # this worker's metrics into the directory the workers share
        self.spans = spans
        self.meter_provider = meter_provider
        self.prometheus = prometheus
        meter = meter_provider.get_meter(SCOPE) if meter_provider else otel_metrics.NoOpMeter(SCOPE)
        # Durations aggregated by the sidecar when the Prometheus snapshot is what every consumer reads.
        self.metrics = SidecarMetrics(meter, config.metric_label_limit, prometheus if prometheus_only else None)
        parts = urlsplit(upstream_url or "")
        self.upstream_address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls(TelemetryConfig(enabled=False))

    @classmethod
    def from_config(cls, config: Config, env: Mapping[str, str] | None = None,
                    span_processors: Sequence[SpanProcessor] = (),
                    metric_readers: Sequence[MetricReader] = ()) -> Telemetry:
        section = config.telemetry
        env = os.environ if env is None else env
        sdk_disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if not section.enabled or (sdk_disabled and "enabled" not in section.model_fields_set):
            return cls(section)
        settings = resolve_settings(section, env)
        # service.instance.id tells apart the series of several workers or replicas.
        resource = Resource.create({"service.name": settings.service_name, "service.instance.id": uuid.uuid4().hex})
        processors = _span_processors(section, settings, env)
        spans = SpanRecorder(resource, TraceIdRatioBased(settings.sampling_ratio), [*processors, *span_processors],
                             SCOPE)
        readers = list(metric_readers)
        several = section.worker_metrics_dir and config.server.workers > 1  # the parent made and emptied it
        shared = WorkerMetrics(Path(section.worker_metrics_dir)) if several else None
        prometheus = PrometheusReader(shared) if section.prometheus else None
        if prometheus is not None:
            readers.append(prometheus)
        push = None
        if settings.metrics_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=settings.metrics_endpoint, headers=dict(settings.headers),
                                          timeout=10)
            if prometheus is not None and _cumulative_wanted(env):  # one aggregation for both exports
                push = MetricPush(prometheus, exporter, settings.metric_interval_seconds)
            else:
                readers.append(PeriodicExportingMetricReader(
                    exporter, export_interval_millis=settings.metric_interval_seconds * 1000))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        publisher = None
        if prometheus is not None and shared is not None:
            # A worker that no scrape reaches still has its share counted; its last one goes out on shutdown.
            publisher = PeriodicThread(prometheus.publish, section.worker_metrics_publish_seconds,
                                       "worker-metrics-publish", "metrics.publish_failed")
        return cls(section, spans, meter_provider, prometheus, config.upstream.http_url, push,
                   prometheus_only=prometheus is not None and readers == [prometheus], publisher=publisher)

    @property
    def enabled(self) -> bool:
        return self.spans is not None

    def upstream_call(self, ctx: CallContext) -> UpstreamCall:
        return UpstreamCall(self, ctx)

    async def shutdown(self) -> None:
        """Flush what is batched (spans, last metrics) off the event loop; exporters block on HTTP."""
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)
        if self.metric_push is not None:  # its last push reads the Prometheus reader: before the provider stops
            await asyncio.to_thread(self.metric_push.shutdown)
        if self.publisher is not None:  # likewise
            await asyncio.to_thread(self.publisher.stop, 5.0)
        if self.meter_provider is not None:
            await asyncio.to_thread(self.meter_provider.shutdown)


def _span_processors(section: TelemetryConfig, settings: TelemetrySettings,
                     env: Mapping[str, str]) -> list[SpanProcessor]:
    """The batch processor of the chosen span exporter; none for `otlp` without an endpoint."""
    if section.exporter == "console":
        exporter: SpanExporter = JsonLinesSpanExporter(sys.stdout.buffer)
    elif section.exporter == "file":
        exporter = JsonLinesSpanExporter.to_file(section.file_path)
    elif settings.traces_endpoint:
        from proxy.telemetry.export.span_exporter import OtlpSpanExporter  # requests, only when spans are exported

        # As the stock OTLP exporter: its TRACES_HEADERS variable under the configured (and general) headers.
        headers = {**parse_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")), **settings.headers}
        exporter = OtlpSpanExporter.from_env(settings.traces_endpoint, headers, env, timeout_seconds=10)
    else:
        return []
    return [BatchSpanProcessor(exporter, **_batch_settings(env))]


def _batch_settings(env: Mapping[str, str]) -> dict[str, int]:
    """Larger span batches than the SDK's 512 (two spans per call fill those several times a second under load):
    fewer export requests and wake-ups of the export thread. OTEL_BSP_* variables, when set, still win."""
    wanted = {"max_queue_size": ("OTEL_BSP_MAX_QUEUE_SIZE", 4096),
              "max_export_batch_size": ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1024)}
    return {name: default for name, (variable, default) in wanted.items() if not env.get(variable)}


def trace_carrier(span: SpanContext) -> dict[str, str]:
    """W3C traceparent (and tracestate) of a span, formatted as TraceContextTextMapPropagator.inject does,
    without its context lookups (the span is at hand)."""
    ids = span.trace_id, span.span_id, span.trace_flags
    carrier = {"traceparent": "00-%032x-%016x-%02x" % ids}  # noqa: UP031 (a third cheaper than the f-string)
    state = span.trace_state
    if state:
        carrier["tracestate"] = state.to_header()
    return carrier


def _cumulative_wanted(env: Mapping[str, str]) -> bool:
    """The Prometheus reader's snapshots are cumulative; a delta preference needs a reader of its own."""
    return env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative").strip().lower() == "cumulative"


def parent_context(ctx: CallContext) -> tuple[otel_context.Context | None, list[Link]]:
    """The SERVER span's parent: `params._meta` trace context first (MCP semconv), else the HTTP headers.
    When both are present the HTTP context becomes a link, as the conventions ask."""
    from_meta = _extract(mcp.meta_of(ctx.params))
    from_http = _extract(ctx.headers)
    if from_meta is None:
        return from_http, []
    if from_http is None:
        return from_meta, []
    http_span = trace.get_current_span(from_http).get_span_context()
    return from_meta, [Link(http_span)]


def _extract(carrier: Mapping[str, Any]) -> otel_context.Context | None:
    if not isinstance(carrier.get("traceparent"), str):  # the common case: one lookup, no dict built
        return None
    strings = {key: carrier[key] for key in CONTEXT_KEYS if isinstance(carrier.get(key), str)}
    extracted = PROPAGATOR.extract(strings)
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


class UpstreamCall:
    """The CLIENT span of one upstream call, child of the current (SERVER) span. Its trace context is written
    into the forwarded `params._meta` and the HTTP headers, so the upstream's own spans join the trace."""

    def __init__(self, telemetry: Telemetry, ctx: CallContext) -> None:
        self.telemetry = telemetry
        self.started = time.monotonic()
        attributes = semconv.call_attributes(ctx)
        host, port = telemetry.upstream_address
        if host:
            attributes.update({semconv.SERVER_ADDRESS: host, semconv.SERVER_PORT: port})
        assert telemetry.spans is not None  # only built when tracing is on (see app.forward_to)
        self.span = telemetry.spans.start(semconv.span_name(ctx), SpanKind.CLIENT, attributes)
        self.ctx = self._propagate(ctx) if telemetry.config.propagate_upstream else ctx

    def _propagate(self, ctx: CallContext) -> CallContext:
        carrier = trace_carrier(self.span.context)
        BAGGAGE.inject(carrier)  # the caller's baggage (current context), if it sent any
        headers = {**ctx.upstream_headers, **carrier}
        # Only into a _meta the client sent: creating one would change what the upstream sees (a 2026-07-28
        # server answers a request without _meta differently). The header carries the context regardless.
        meta = ctx.params.get("_meta")
        if not isinstance(meta, dict):
            return ctx.evolve(upstream_headers=headers)
        params = {**ctx.params, "_meta": {**meta, **carrier}}
        return ctx.evolve(message={**ctx.message, "params": params}, upstream_headers=headers)

    def failed(self, error_type: str, message: str | None) -> None:
        self._end(error_type, None, message, None)

    def finished(self, reply: Reply) -> None:
        error_type, code, description = semconv.reply_error(None, reply)
        self._end(error_type, code, description, reply.status)

    def _end(self, error_type: str | None, code: str | None, description: str | None, status: int | None) -> None:
        attributes: dict[str, Any] = {}
        if status is not None:
            attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status
        if code is not None:
            attributes[semconv.RPC_RESPONSE_STATUS_CODE] = code
        if error_type is not None:
            attributes[semconv.ERROR_TYPE] = error_type
        self.span.end(attributes, description, error=error_type is not None)
        self.telemetry.metrics.upstream_finished(self.ctx, error_type, time.monotonic() - self.started)
