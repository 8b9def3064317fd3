"""Traces and metrics: providers, names (semantic conventions), the sidecar's spans and metrics."""
