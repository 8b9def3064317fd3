"""Core sections: the listeners, the audit trail, approvals, logging (the upstream: proxy/config/upstream.py)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from proxy.config.admin import WebhookConfig
from proxy.config.base import Section, check_key_file, check_redis_url, parse_host_port
from proxy.config.tls import ServerTlsConfig


class ServerConfig(Section):
    listen: str = "127.0.0.1:8080"
    """HOST:PORT of the MCP endpoint (`--listen`)."""
    admin_listen: str = "127.0.0.1:8081"
    """HOST:PORT of the admin listener: /healthz, /readyz, /metrics, approvals, cache purge (`--admin-listen`)."""
    mcp_path: str = "/mcp"
    """Path of the MCP endpoint."""
    public_url: str | None = None
    """The sidecar's public URL of the MCP endpoint: the OAuth resource and the token audience. Unset:
    `http://<listen><mcp_path>` (`https://` with `tls`)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to call (`*`: any). Requests without `Origin`, and those from the sidecar's own origin
    (`http(s)://<listen>`, `http(s)://localhost:<port>` on loopback, the origin of `public_url`), are always
    allowed."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest request body; a larger one is answered 413."""
    max_connections: int | None = Field(default=None, gt=0)
    """Client connections held at once; past it a new connection is answered 503 (`Retry-After: 1`) and closed.
    Unset: the open-file limit less 256 (for upstream connections and files), at most 10,000."""
    request_head_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request's head (request line and headers) must arrive within this long of its first byte, however slowly it
    trickles in (a trickle would otherwise hold a connection for ever); past it: 408, and the connection closes
    (`mcp_sidecar_listener_request_timeouts_total{phase="head"}`). A new connection's first request must begin as
    soon (past it the connection is closed without an answer, `phase="start"`), and on HTTPS the TLS handshake gets
    as long. Enforced by the listener's sweep: a request gets its time and at most a quarter more."""
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Likewise for the body, from the end of the head (`phase="body"`)."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """How long calls in flight may run after SIGTERM."""
    stream_keepalive_seconds: float = Field(default=15.0, ge=0)
    """An event stream to a client that has sent nothing this long gets an SSE comment (`: keepalive`), so idle
    timeouts of load balancers and proxies in between (often 60 s) do not cut it; it comes after 1 to 1.5 times this
    silence. 0: none."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes (`--workers`); more than 1 forks that many, all listening on `listen` and `admin_listen`
    (`SO_REUSEPORT`: the kernel spreads connections across them). See docs/performance.md."""
    tls: ServerTlsConfig | None = None
    """HTTPS on the MCP listener (see docs/tls.md). Unset: plain HTTP. The admin listener stays plain HTTP."""

    @field_validator("listen", "admin_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s):// URL with a host")
        return value

    @field_validator("mcp_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @property
    def resource_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = parse_host_port(self.listen)
        host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
        return f"{self.scheme}://{host}:{port}{self.mcp_path}"

    @property
    def scheme(self) -> Literal["http", "https"]:
        return "https" if self.tls is not None else "http"


class AuditConfig(Section):
    enabled: bool = True
    """One JSON event per decided message."""
    sink: Literal["stdout", "file"] = "stdout"
    """Where audit events go."""
    path: str | None = None
    """The file for `sink: file`."""
    log_arguments: bool = False
    """Include tool arguments (after policy redactions). Arguments are sensitive: off unless asked for."""

    @model_validator(mode="after")
    def _file_needs_path(self) -> AuditConfig:
        if self.sink == "file" and not self.path:
            raise ValueError("audit.path is required when audit.sink is 'file'")
        return self


class ApprovalConfig(Section):
    timeout_seconds: float = Field(default=120.0, gt=0)
    """How long a call waits for a decision; an unanswered approval is a denial."""
    max_pending: int = Field(default=1000, gt=0)
    """Calls waiting at once (in this sidecar, or in all that share the Redis); beyond it calls are denied at once."""
    backend: Literal["memory", "redis"] = "memory"
    """`memory`: pending calls are known only to the process holding them; `redis`: one book for every worker and
    replica sharing the Redis, any of which lists and decides them."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """The shared book (`redis` backend)."""
    key_prefix: str = "mcp-sidecar:approval:"
    """Its Redis keys and channel; one per deployment."""
    redis_timeout_seconds: float = Field(default=0.5, gt=0)
    """Connect and command timeout."""
    recheck_seconds: float = Field(default=2.0, gt=0)
    """A waiting call also reads its stored decision this often, in case the published one was missed (a
    reconnect)."""
    show_arguments: Literal["redacted", "none", "full"] = "redacted"
    """What approvers (admin API, console, webhook) see of a waiting call's arguments: `redacted`, with the
    policy's `redact` paths masked; `none`; or `full`."""
    webhook: WebhookConfig | None = None
    """Notify a webhook when a call starts waiting and when it is decided."""
    confirmation_secret_file: str | None = None
    """The key (at least 32 bytes) signing the `requestState` of `require_confirmation` rounds; share it between
    workers and replicas. Unset: a random key per process, so a retry landing on another process is refused."""
    confirmation_ttl_seconds: float = Field(default=300.0, gt=0, le=3600)
    """How long a user has to confirm a call (`require_confirmation`) before the state expires."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    @field_validator("confirmation_secret_file")
    @classmethod
    def _confirmation_key(cls, path: str | None) -> str | None:
        return check_key_file(path)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Operational logs: JSON lines on stderr."""
