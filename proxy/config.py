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

from proxy.limits import check_key_part

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


class PolicyConfig(Section):
    engine: Literal["rego", "opa", "off"] = "rego"
    directory: str = "policies"  # .rego files, data.json/data.yaml, optional .manifest
    reload: bool = True  # watch the directory and swap in a new bundle when it compiles
    reload_interval_seconds: float = Field(default=1.0, gt=0)
    # At startup a policy that does not load stops the sidecar (exit 2); "deny" starts and denies every call
    # until a reload succeeds.
    on_load_error: Literal["exit", "deny"] = "exit"
    shadow_directory: str | None = None  # candidate policy evaluated beside the active one, never enforced
    opa_url: str | None = None  # engine "opa": base URL of an OPA server, e.g. http://127.0.0.1:8181
    opa_timeout_seconds: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _opa_needs_url(self) -> PolicyConfig:
        if self.engine == "opa" and not (self.opa_url or "").startswith(("http://", "https://")):
            raise ValueError("policy.opa_url (an http(s) URL) is required when policy.engine is 'opa'")
        return self


class ApprovalConfig(Section):
    timeout_seconds: float = Field(default=120.0, gt=0)  # unanswered approvals are denials
    max_pending: int = Field(default=1000, gt=0)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class BucketMatch(Section):
    """Which calls a bucket applies to; every given condition must hold. Empty: every request."""

    methods: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None  # tools/call of these tools only
    claims: dict[str, tuple[str, ...]] | None = None  # dotted claim path -> accepted values (e.g. plan: [free])


class BucketConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    capacity: int = Field(gt=0)  # tokens when full: the burst a caller may spend at once
    refill_per_second: float = Field(gt=0)  # tokens added back per second
    key: tuple[str, ...] = ()  # subject | claim:<dotted.path> | tool | method | session | client; () = one bucket
    match: BucketMatch = BucketMatch()

    @field_validator("key")
    @classmethod
    def _key_parts(cls, parts: tuple[str, ...]) -> tuple[str, ...]:
        for part in parts:
            check_key_part(part)
        if len(set(parts)) != len(parts):
            raise ValueError("a key part is listed twice")
        return parts


class RateLimitsConfig(Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "mcp-sidecar:rl:"  # Redis keys: <key_prefix><bucket>:<key values>
    failure_mode: Literal["fail_open", "fail_closed"] = "fail_open"  # when Redis cannot answer
    redis_timeout_seconds: float = Field(default=0.25, gt=0)  # connect and command timeout
    redis_retry_seconds: float = Field(default=1.0, ge=0)  # after a failure, skip Redis this long
    max_keys: int = Field(default=100_000, gt=0)  # memory backend: buckets kept at most
    default_cost: int = Field(default=1, ge=0)  # tokens a call takes unless policy says otherwise
    buckets: tuple[BucketConfig, ...] = ()  # no buckets: the stage is off

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> RateLimitsConfig:
        seen: set[str] = set()
        for index, bucket in enumerate(self.buckets):
            if bucket.name in seen:
                raise ValueError(f"buckets.{index}.name: duplicate bucket name {bucket.name!r}")
            seen.add(bucket.name)
        return self


class Config(Section):
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig
    audit: AuditConfig = AuditConfig()
    policy: PolicyConfig = PolicyConfig()
    approval: ApprovalConfig = ApprovalConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
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
