"""Traces and metrics."""

from __future__ import annotations

from pydantic import Field, field_validator

from proxy.config.base import Section


class TelemetryConfig(Section):
    """Traces and metrics. Unset keys fall back to the standard OTEL_* variables, then to the defaults."""

    enabled: bool = True
    service_name: str | None = None  # OTEL_SERVICE_NAME, else "mcp-sidecar"
    otlp_endpoint: str | None = None  # base URL (http://jaeger:4318); OTEL_EXPORTER_OTLP_ENDPOINT; None: no export
    otlp_headers: dict[str, str] = {}  # OTEL_EXPORTER_OTLP_HEADERS ("k=v,k2=v2") is merged under these
    sampling_ratio: float | None = Field(default=None, ge=0, le=1)  # OTEL_TRACES_SAMPLER_ARG, else 1.0
    otlp_metrics: bool = True  # also push metrics over OTLP when an endpoint is set
    metric_export_interval_seconds: float = Field(default=15.0, gt=0)
    prometheus: bool = True  # serve Prometheus text on the admin listener's /metrics
    # With server.workers > 1: where the workers share their metrics, so that /metrics (answered by any one of them)
    # reports the sum of all. None: a temporary directory the supervisor makes and removes.
    worker_metrics_dir: str | None = None
    worker_metrics_publish_seconds: float = Field(default=5.0, gt=0)  # how stale another worker's share may be
    # The sidecar's trace context into the forwarded params._meta and the traceparent header, so the upstream's spans
    # join the trace. Off: the upstream gets the message as the client sent it (an upstream without tracing, or
    # outside the trust boundary: trace ids are then not handed to it).
    propagate_upstream: bool = True
    record_arguments: bool = False  # gen_ai.tool.call.arguments on spans (sensitive; redactions apply)
    record_results: bool = False  # gen_ai.tool.call.result on spans (sensitive)
    resource_uri_in_span_name: bool = False  # opt-in: resource URIs are high-cardinality span names
    metric_label_limit: int = Field(default=200, gt=0)  # distinct tool/method label values before "_OTHER"

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (OTLP over HTTP)")
        return value
