"""Core sections: the listeners, the upstream, the audit trail, approvals, logging."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import HEADER_NAME, RESERVED_UPSTREAM_HEADERS, Section, check_redis_url, parse_host_port


class ServerConfig(Section):
    listen: str = "127.0.0.1:8080"
    """HOST:PORT of the MCP endpoint (`--listen`)."""
    admin_listen: str = "127.0.0.1:8081"
    """HOST:PORT of the admin listener: /healthz, /readyz, /metrics, approvals, cache purge (`--admin-listen`)."""
    mcp_path: str = "/mcp"
    """Path of the MCP endpoint."""
    public_url: str | None = None
    """The sidecar's public URL of the MCP endpoint: the OAuth resource and the token audience. Unset:
    `http://<listen><mcp_path>`."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to call (`*`: any). Requests without `Origin`, and those from the sidecar's own origin
    (`http://<listen>`, `http://localhost:<port>` on loopback, the origin of `public_url`), are always allowed."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest request body; a larger one is answered 413."""
    max_connections: int | None = Field(default=None, gt=0)
    """Client connections held at once; past it a new connection is answered 503 (`Retry-After: 1`) and closed.
    Unset: the open-file limit less 256 (for upstream connections and files), at most 10,000."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """How long calls in flight may run after SIGTERM."""
    stream_keepalive_seconds: float = Field(default=15.0, ge=0)
    """An event stream to a client that has sent nothing this long gets an SSE comment (`: keepalive`), so idle
    timeouts of load balancers and proxies in between (often 60 s) do not cut it; it comes after 1 to 1.5 times this
    silence. 0: none."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes (`--workers`); more than 1 forks that many, all listening on `listen` and `admin_listen`
    (`SO_REUSEPORT`: the kernel spreads connections across them). See docs/performance.md."""

    @field_validator("listen", "admin_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_host_port(value)
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
        return f"http://{host}:{port}{self.mcp_path}"


class UpstreamHeader(Section):
    """One credential header for the upstream, from exactly one of: a literal value, an env variable, a file."""

    value: str | None = Field(default=None, json_schema_extra={"secret": True})
    """A literal value."""
    env: str | None = None
    """An environment variable, read at startup (startup fails if it is unset)."""
    file: str | None = None
    """A file, e.g. a mounted Kubernetes secret; a trailing newline is dropped; re-read when it changes on disk."""
    prefix: str = ""
    """Put before the value, e.g. `"Bearer "` when the secret holds the bare token."""

    @model_validator(mode="after")
    def _one_source(self) -> UpstreamHeader:
        given = [key for key in ("value", "env", "file") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of value, env, file")
        if self.env is not None and self.env not in os.environ:
            raise ValueError(f"environment variable {self.env} is not set")
        if self.file is not None and not os.access(self.file, os.R_OK):
            raise ValueError(f"cannot read {self.file}")
        return self


class UpstreamConfig(Section):
    """The MCP server behind the sidecar: set exactly one of `url`, `command`, `sse_url`."""

    name: str = "upstream"
    """Name used in policy input, metrics, audit and cache keys."""
    url: str | None = None
    """Streamable HTTP endpoint of the MCP server (`--upstream`)."""
    command: tuple[str, ...] | None = None
    """Argv of a stdio MCP server the sidecar spawns and supervises; a string is split like a shell would
    (`--upstream-command`)."""
    sse_url: str | None = None
    """Legacy HTTP+SSE (2024-11-05) endpoint: the GET stream, then the announced messages URL (`--upstream-sse`)."""
    env: dict[str, str] = Field(default={}, json_schema_extra={"secret": True})
    """Extra environment variables for a spawned server; it gets only these plus PATH, HOME, USER, LANG, LC_*,
    TZ, never the sidecar's own environment."""
    cwd: str | None = None
    """Working directory of a spawned server (must exist). Unset: the sidecar's."""
    headers: dict[str, UpstreamHeader] = {}
    """The sidecar's own credential headers for the upstream, never the caller's; see docs/upstreams.md."""
    secret_check_seconds: float = Field(default=1.0, ge=0)
    """How often header secret files are checked for rotation (0: on every request)."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Time allowed for response headers and a JSON body, and for each later message of a stdio or SSE answer;
    past it the caller gets a 504 and the server `notifications/cancelled` (checked by one 50 ms sweep: it fires up to
    50 ms late)."""
    tool_timeouts: dict[str, float] = {}
    """Per-tool override of `timeout_seconds`, e.g. `{slow_report: 300}`."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """TCP connect timeout."""
    stream_idle_timeout_seconds: float | None = Field(default=None, gt=0)
    """Close an SSE stream that is silent this long. Unset: streams may idle forever."""
    max_connections: int = Field(default=256, gt=0)
    """Connection pool size (Streamable HTTP)."""
    idle_connection_seconds: float = Field(default=4.0, gt=0)
    """An upstream connection idle this long is not reused: below the 5 s after which uvicorn and Node close idle
    connections, so a call is never sent on a connection the server is closing at that instant."""
    max_event_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest single message accepted from the upstream: an SSE event or a stdio line."""
    catalog_ttl_seconds: float = Field(default=300.0, ge=0)
    """How long the sidecar trusts its own `tools/list` view (policy input, cache rules); a
    `notifications/tools/list_changed` drops it at once."""
    max_sessions: int = Field(default=32, gt=0)
    """Legacy client sessions at once, each with its own child or connection (stdio, SSE); also caps `/sse`
    streams."""
    session_idle_seconds: float = Field(default=600.0, gt=0)
    """An unused legacy session is ended after this."""
    startup_timeout_seconds: float = Field(default=15.0, gt=0)
    """Spawn or connect plus the first handshake (stdio, SSE)."""
    restart_backoff_seconds: float = Field(default=0.2, gt=0)
    """First delay before the shared child or connection is restarted."""
    restart_backoff_max_seconds: float = Field(default=10.0, gt=0)
    """The restart delay doubles up to this."""
    shutdown_grace_seconds: float = Field(default=2.0, ge=0)
    """Wait after closing a child's stdin, and again after SIGTERM, before SIGKILL."""
    queue_limit: int = Field(default=256, gt=0)
    """Messages queued for one client stream before that client is cut off (slow clients)."""

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("cwd")
    @classmethod
    def _existing_dir(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"{value!r} is not a directory")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, UpstreamHeader]) -> dict[str, UpstreamHeader]:
        for name in headers:
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in RESERVED_UPSTREAM_HEADERS:
                raise ValueError(f"{name!r} is set by the sidecar itself and cannot be configured")
        return headers

    @model_validator(mode="after")
    def _one_kind(self) -> UpstreamConfig:
        kinds = [key for key in ("url", "command", "sse_url") if getattr(self, key)]
        if len(kinds) != 1:
            raise ValueError("set exactly one of upstream.url, upstream.command, upstream.sse_url "
                             f"(or --upstream URL / --upstream-command CMD), got {kinds or 'none'}")
        for key in ("url", "sse_url"):
            value = getattr(self, key)
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"upstream.{key} must be an http(s) URL")
        if self.command is not None and not self.command[0]:
            raise ValueError("upstream.command must name a program")
        if self.restart_backoff_max_seconds < self.restart_backoff_seconds:
            raise ValueError("upstream.restart_backoff_max_seconds must be >= restart_backoff_seconds")
        return self

    @property
    def kind(self) -> Literal["http", "stdio", "sse"]:
        return "stdio" if self.command else "sse" if self.sse_url else "http"

    def timeout_for(self, tool: str | None) -> float:
        return self.tool_timeouts.get(tool or "", self.timeout_seconds)


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

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Operational logs: JSON lines on stderr."""
