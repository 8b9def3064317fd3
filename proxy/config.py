"""The one typed configuration, validated once at startup.

Sources, lowest precedence first: built-in defaults, a YAML/JSON file, `MCP_SIDECAR__SECTION__KEY` environment
variables, command-line flags. Every problem is reported with its dotted path before anything listens.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "MCP_SIDECAR__"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ServerConfig(Section):
    listen: str = "127.0.0.1:8080"
    admin_listen: str = "127.0.0.1:8081"
    mcp_path: str = "/mcp"
    # The sidecar's public URL of the MCP endpoint: OAuth resource and token audience. Default: from listen.
    public_url: str | None = None
    # Browser origins allowed to call; requests without Origin are always allowed. "*" allows any.
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
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


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Section):
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig
    audit: AuditConfig = AuditConfig()
    logging: LoggingConfig = LoggingConfig()


class ConfigError(Exception):
    """Every problem in the configuration, one per line, each with its dotted path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Merge file, environment and overrides (dotted keys) into one validated, frozen Config."""
    data: dict[str, Any] = _read_file(Path(path)) if path else {}
    for dotted, value in _env_overrides(os.environ if env is None else env).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: not valid YAML/JSON: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    return data


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """MCP_SIDECAR__UPSTREAM__URL=... -> {"upstream.url": ...}; values are parsed as YAML scalars/lists."""
    found: dict[str, Any] = {}
    for name, raw in env.items():
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            try:
                found[dotted] = yaml.safe_load(raw) if raw else raw
            except yaml.YAMLError:
                found[dotted] = raw
    return found


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"
