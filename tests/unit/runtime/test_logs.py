"""configure_logging: JSON lines on stderr with level, ISO UTC timestamp, context variables; filtered by level."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import orjson
import pytest
import structlog

from proxy.runtime import logs


@pytest.fixture
def stderr() -> Iterator[io.BytesIO]:
    """The bytes the sidecar's logs would write to stderr; structlog's configuration is restored afterwards."""
    saved = structlog.get_config()
    yield io.BytesIO()
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()


def configure_logging(level: str, buffer: io.BytesIO) -> None:
    """Configured while sys.stderr is the test's (set in the test itself: pytest's capture resets it after setup)."""
    real = sys.stderr
    sys.stderr = SimpleNamespace(buffer=buffer)  # type: ignore[assignment]
    try:
        logs.configure_logging(level)
    finally:
        sys.stderr = real


def lines(buffer: io.BytesIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_line_per_event_with_level_and_utc_time(stderr: io.BytesIO) -> None:
    configure_logging("info", stderr)
    structlog.get_logger("test").info("sidecar.started", port=8080)
    [event] = lines(stderr)
    assert (event["event"], event["level"], event["port"]) == ("sidecar.started", "info", 8080)
    assert event["timestamp"].endswith("Z") and "T" in event["timestamp"]


def test_events_below_the_level_are_dropped(stderr: io.BytesIO) -> None:
    configure_logging("warning", stderr)
    log = structlog.get_logger("test")
    log.info("quiet")
    log.warning("loud")
    log.error("louder")
    assert [event["event"] for event in lines(stderr)] == ["loud", "louder"]


def test_debug_level_shows_debug_events(stderr: io.BytesIO) -> None:
    configure_logging("debug", stderr)
    structlog.get_logger("test").debug("detail")
    assert [event["level"] for event in lines(stderr)] == ["debug"]


def test_context_variables_and_tracebacks_are_in_the_line(stderr: io.BytesIO) -> None:
    configure_logging("info", stderr)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("test").exception("failed")
    [event] = lines(stderr)
    assert event["request_id"] == "r-1" and "ValueError: boom" in event["exception"]


def test_an_unknown_level_is_refused(stderr: io.BytesIO) -> None:
    with pytest.raises(KeyError):
        configure_logging("trace", stderr)
