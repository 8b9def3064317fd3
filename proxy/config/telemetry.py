"""Traces and metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from proxy.config.base import Section


class TelemetryConfig(Section):
    """Traces and metrics. Unset keys fall back to the standard OTEL_* variables, then to the defaults."""

    enabled: bool = True
    """Spans and metrics at all (off: no tracing stage, `/metrics` answers 404); `OTEL_SDK_DISABLED=true` turns it
    off unless set here."""
    service_name: str | None = None
    """`service.name` of the sidecar's spans and metrics. Unset: `OTEL_SERVICE_NAME`, else `mcp-sidecar`."""
    exporter: Literal["otlp", "console", "file"] = "otlp"
    """Where spans go: `otlp` (to `otlp_endpoint`, when one is set), `console` (one JSON object per span and line on
    stdout) or `file` (the same lines appended to `file_path`); read them back as trees with
    `mcp-sidecar traces show FILE`. Metrics are not affected."""
    file_path: str = "traces.jsonl"
    """The JSON-lines file of `exporter: file` (made with its directory if missing; appended to)."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP base URL (`http://jaeger:4318`); `/v1/traces`, `/v1/metrics` are appended
    (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT` are used as given). Unset:
    `OTEL_EXPORTER_OTLP_ENDPOINT`, else spans are made (ids in the audit log, context propagated) but not
    exported."""
    otlp_headers: dict[str, str] = Field(default={}, json_schema_extra={"secret": True})
    """Headers for the collector (auth); merged over `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`)."""
    sampling_ratio: float | None = Field(default=None, ge=0, le=1)
    """`ParentBased(TraceIdRatioBased(ratio))`: a sampled parent is always followed. Unset:
    `OTEL_TRACES_SAMPLER_ARG`, else 1.0."""
    otlp_metrics: bool = True
    """Also push metrics over OTLP when an endpoint is set."""
    metric_export_interval_seconds: float = Field(default=15.0, gt=0)
    """OTLP metric push interval (`OTEL_METRIC_EXPORT_INTERVAL`, in ms, when unset here)."""
    prometheus: bool = True
    """Serve Prometheus text on the admin listener's `GET /metrics`."""
    worker_metrics_dir: str | None = None
    """With `server.workers` > 1: where the workers share their metrics, so that `/metrics` (answered by any one of
    them) reports the sum of all; emptied at start. Unset: a temporary directory the supervisor makes and
    removes."""
    worker_metrics_publish_seconds: float = Field(default=5.0, gt=0)
    """How often each worker publishes its metrics there (it also does when it answers a scrape)."""
    propagate_upstream: bool = True
    """Write the upstream call's trace context into the forwarded `params._meta` and `traceparent` header, so the
    upstream's spans join the trace. Off: the upstream gets the message as the client sent it (an upstream without
    tracing, or outside the trust boundary)."""
    record_arguments: bool = False
    """Put tool/prompt arguments on the SERVER span (sensitive; policy redactions apply)."""
    record_results: bool = False
    """Put tool results on the SERVER span (sensitive)."""
    resource_uri_in_span_name: bool = False
    """`resources/read demo://readme` instead of `resources/read` (unbounded span names)."""
    metric_label_limit: int = Field(default=200, gt=0)
    """Distinct tool/method label values per label before `_OTHER`, so client-chosen names cannot explode
    cardinality."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (OTLP over HTTP)")
        return value
