"""Where telemetry goes: OTLP spans and metrics, Prometheus exposition, several workers' metrics merged."""
