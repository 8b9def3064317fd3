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
    admin_listen: str = "127.0.0.1:8081"
    mcp_path: str = "/mcp"
    # The sidecar's public URL of the MCP endpoint: OAuth resource and token audience. Default: from listen.
    public_url: str | None = None
    # Browser origins allowed to call; requests without Origin are always allowed. "*" allows any.
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Client connections held at once; past it a new one is answered 503 and closed. None: the open-file limit less
    # 256 (for upstream connections and files), at most 10,000.
    max_connections: int | None = Field(default=None, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # An event stream silent this long gets an SSE comment, so idle timeouts between client and sidecar (load
    # balancers, proxies: often 60 s) do not cut it. 0: none.
    stream_keepalive_seconds: float = Field(default=15.0, ge=0)
    workers: int = Field(default=1, ge=1, le=64)

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

    value: str | None = None
    env: str | None = None
    file: str | None = None  # re-read when it changes on disk (rotated Kubernetes secrets)
    prefix: str = ""  # e.g. "Bearer " when the secret holds the bare token

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
    name: str = "upstream"
    # Exactly one kind: a Streamable HTTP URL, a stdio command to spawn, or a legacy (2024-11-05) SSE URL.
    url: str | None = None  # Streamable HTTP endpoint of the MCP server
    command: tuple[str, ...] | None = None  # argv of a stdio MCP server; a string is split like a shell would
    sse_url: str | None = None  # legacy HTTP+SSE endpoint (GET stream, then the announced messages URL)
    env: dict[str, str] = {}  # extra variables for a spawned server (it gets only PATH, HOME, LANG... besides)
    cwd: str | None = None  # working directory of a spawned server
    timeout_seconds: float = Field(default=60.0, gt=0)  # response headers and JSON bodies
    tool_timeouts: dict[str, float] = {}  # per-tool override of timeout_seconds
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    stream_idle_timeout_seconds: float | None = Field(default=None, gt=0)  # None: streams may idle forever
    max_connections: int = Field(default=256, gt=0)
    # An upstream connection idle this long is not reused: below the 5 s after which uvicorn and Node close idle
    # connections, so a call is never sent on a connection the server is closing at that instant.
    idle_connection_seconds: float = Field(default=4.0, gt=0)
    max_event_bytes: int = Field(default=16 * 1024 * 1024, gt=0)  # also the longest stdio line accepted
    catalog_ttl_seconds: float = Field(default=300.0, ge=0)  # how long the sidecar trusts its tools/list view
    max_sessions: int = Field(default=32, gt=0)  # legacy client sessions, each with its own process/connection
    session_idle_seconds: float = Field(default=600.0, gt=0)  # an unused legacy session is closed after this
    startup_timeout_seconds: float = Field(default=15.0, gt=0)  # spawn/connect plus the first handshake
    restart_backoff_seconds: float = Field(default=0.2, gt=0)  # first delay before restarting the shared server
    restart_backoff_max_seconds: float = Field(default=10.0, gt=0)  # the delay doubles up to this
    shutdown_grace_seconds: float = Field(default=2.0, ge=0)  # after closing stdin, then after SIGTERM, before SIGKILL
    queue_limit: int = Field(default=256, gt=0)  # messages queued for one slow client stream before it is closed

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
    # The sidecar's own credentials for the upstream: header name -> {value|env|file, prefix}. Never the caller's.
    headers: dict[str, UpstreamHeader] = {}
    secret_check_seconds: float = Field(default=1.0, ge=0)  # how often header secret files are checked for changes

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
    sink: Literal["stdout", "file"] = "stdout"
    path: str | None = None
    log_arguments: bool = False  # arguments are sensitive: off unless asked for

    @model_validator(mode="after")
    def _file_needs_path(self) -> AuditConfig:
        if self.sink == "file" and not self.path:
            raise ValueError("audit.path is required when audit.sink is 'file'")
        return self


class ApprovalConfig(Section):
    timeout_seconds: float = Field(default=120.0, gt=0)  # unanswered approvals are denials
    max_pending: int = Field(default=1000, gt=0)  # per sidecar (memory) or for every sidecar sharing Redis
    # memory: pending approvals live in the process holding the call. redis: every worker and replica sharing the
    # Redis lists them and can decide them, whichever holds the call.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "mcp-sidecar:approval:"
    redis_timeout_seconds: float = Field(default=0.5, gt=0)  # connect and command timeout
    # A waiting call also looks for its decision this often, in case the published one was missed (a reconnect).
    recheck_seconds: float = Field(default=2.0, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
