"""The core sections besides the upstream (tests/unit/config/test_upstream.py): server, audit, approval, logging."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.config.core import ApprovalConfig, AuditConfig, LoggingConfig, ServerConfig


def test_server_defaults() -> None:
    server = ServerConfig()
    assert (server.listen, server.admin_listen, server.mcp_path) == ("127.0.0.1:8080", "127.0.0.1:8081", "/mcp")
    assert server.allowed_origins == () and server.max_connections is None and server.workers == 1


@pytest.mark.parametrize("key", ["listen", "admin_listen"])
@pytest.mark.parametrize("value", ["8080", "host:port", "host:70000"])
def test_listen_addresses_must_be_host_port(key: str, value: str) -> None:
    with pytest.raises(ValidationError, match="expected HOST:PORT") as caught:
        ServerConfig.model_validate({key: value})
    assert caught.value.errors()[0]["loc"] == (key,)


def test_mcp_path_must_be_absolute() -> None:
    with pytest.raises(ValidationError, match="must start with '/'"):
        ServerConfig(mcp_path="mcp")
    assert ServerConfig(mcp_path="/v1/mcp").mcp_path == "/v1/mcp"


def test_resource_url_comes_from_listen_and_path() -> None:
    assert ServerConfig(listen="0.0.0.0:9000", mcp_path="/x").resource_url == "http://0.0.0.0:9000/x"


def test_resource_url_prefers_public_url_without_its_trailing_slash() -> None:
    server = ServerConfig(public_url="https://mcp.example.com/mcp/")
    assert server.resource_url == "https://mcp.example.com/mcp"


def test_resource_url_of_an_ipv6_listen_address_keeps_its_brackets() -> None:
    assert ServerConfig(listen="[::1]:8080").resource_url == "http://[::1]:8080/mcp"


def test_public_url_must_be_an_http_url() -> None:
    with pytest.raises(ValidationError):
        ServerConfig(public_url="mcp.example.com/mcp")


@pytest.mark.parametrize(("key", "value"), [
    ("max_body_bytes", 0), ("max_connections", 0), ("shutdown_grace_seconds", -1),
    ("stream_keepalive_seconds", -0.5), ("workers", 0), ("workers", 65),
])
def test_server_bounds(key: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        ServerConfig.model_validate({key: value})
    assert caught.value.errors()[0]["loc"] == (key,)


def test_zero_keepalive_and_grace_are_allowed() -> None:
    server = ServerConfig(stream_keepalive_seconds=0, shutdown_grace_seconds=0)
    assert server.stream_keepalive_seconds == 0 and server.shutdown_grace_seconds == 0


def test_audit_defaults_to_stdout_without_arguments() -> None:
    audit = AuditConfig()
    assert audit.enabled and audit.sink == "stdout" and audit.log_arguments is False


def test_audit_file_sink_needs_a_path() -> None:
    with pytest.raises(ValidationError, match=r"audit\.path is required"):
        AuditConfig(sink="file")
    with pytest.raises(ValidationError, match=r"audit\.path is required"):
        AuditConfig(sink="file", path="")
    assert AuditConfig(sink="file", path="/tmp/audit.jsonl").path == "/tmp/audit.jsonl"


def test_audit_sink_is_one_of_two() -> None:
    with pytest.raises(ValidationError):
        AuditConfig(sink="syslog")  # type: ignore[arg-type]


def test_approval_defaults() -> None:
    approval = ApprovalConfig()
    assert approval.backend == "memory" and approval.timeout_seconds == 120 and approval.max_pending == 1000


@pytest.mark.parametrize("url", ["redis://r:6379/0", "rediss://r:6380/1", "unix:///run/redis.sock"])
def test_approval_redis_urls(url: str) -> None:
    assert ApprovalConfig(backend="redis", redis_url=url).redis_url == url


def test_approval_refuses_a_non_redis_url() -> None:
    with pytest.raises(ValidationError, match="redis://, rediss:// or unix://") as caught:
        ApprovalConfig(redis_url="http://r:6379")
    assert caught.value.errors()[0]["loc"] == ("redis_url",)


@pytest.mark.parametrize("key", ["timeout_seconds", "max_pending", "redis_timeout_seconds", "recheck_seconds"])
def test_approval_bounds(key: str) -> None:
    with pytest.raises(ValidationError):
        ApprovalConfig.model_validate({key: 0})


def test_logging_levels() -> None:
    assert LoggingConfig().level == "info"
    assert LoggingConfig(level="debug").level == "debug"
    with pytest.raises(ValidationError):
        LoggingConfig(level="trace")  # type: ignore[arg-type]
