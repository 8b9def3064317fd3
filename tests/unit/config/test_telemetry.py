"""The telemetry section: OTLP over HTTP only, a sampling ratio in [0, 1], positive intervals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.config.telemetry import TelemetryConfig


def test_defaults_record_no_arguments_or_results() -> None:
    config = TelemetryConfig()
    assert config.enabled and config.prometheus and config.propagate_upstream
    assert config.record_arguments is False and config.record_results is False
    assert config.otlp_endpoint is None and config.sampling_ratio is None


@pytest.mark.parametrize("endpoint", ["http://jaeger:4318", "https://collector.example"])
def test_http_endpoints_are_kept(endpoint: str) -> None:
    assert TelemetryConfig(otlp_endpoint=endpoint).otlp_endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["grpc://jaeger:4317", "jaeger:4318", ""])
def test_non_http_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ValidationError, match="OTLP over HTTP"):
        TelemetryConfig(otlp_endpoint=endpoint)


@pytest.mark.parametrize(("ratio", "ok"), [(0, True), (1, True), (0.25, True), (-0.1, False), (1.01, False)])
def test_sampling_ratio_is_a_probability(ratio: float, ok: bool) -> None:
    if ok:
        assert TelemetryConfig(sampling_ratio=ratio).sampling_ratio == ratio
    else:
        with pytest.raises(ValidationError):
            TelemetryConfig(sampling_ratio=ratio)


@pytest.mark.parametrize("key", ["metric_export_interval_seconds", "worker_metrics_publish_seconds",
                                 "metric_label_limit"])
def test_intervals_and_limits_must_be_positive(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        TelemetryConfig.model_validate({key: 0})
