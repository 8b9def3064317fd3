"""The one typed configuration, validated once at startup.

Sources, lowest precedence first: built-in defaults, a YAML/JSON file, `MCP_SIDECAR__SECTION__KEY` environment
variables, command-line flags. Every problem is reported with its dotted path before anything listens.
"""

from __future__ import annotations

import json
import os
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
    url: str | None = None  # Streamable HTTP endpoint of the MCP server
    timeout_seconds: float = Field(default=60.0, gt=0)  # response headers and JSON bodies
    tool_timeouts: dict[str, float] = {}  # per-tool override of timeout_seconds
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    stream_idle_timeout_seconds: float | None = Field(default=None, gt=0)  # None: streams may idle forever
    max_connections: int = Field(default=256, gt=0)
    max_event_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    catalog_ttl_seconds: float = Field(default=300.0, ge=0)  # how long the sidecar trusts its tools/list view

    @model_validator(mode="after")
    def _one_kind(self) -> UpstreamConfig:
        if not self.url:
            raise ValueError("set upstream.url (or --upstream URL)")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("upstream.url must be an http(s) URL")
        return self

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
    max_pending: int = Field(default=1000, gt=0)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Section):
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig
    audit: AuditConfig = AuditConfig()
    approval: ApprovalConfig = ApprovalConfig()
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
