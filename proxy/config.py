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


CACHE_HINTED_METHODS = ("server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
                        "resources/read")


class CacheToolConfig(Section):
    ttl_seconds: float = Field(gt=0)
    scope: Literal["public", "private"] = "private"
    key_claims: tuple[str, ...] = ()  # claims that, besides issuer and subject, tell callers apart


class CacheMethodConfig(Section):
    ttl_seconds: float | None = Field(default=None, gt=0)  # used when the upstream sends no ttlMs
    scope: Literal["public", "private", "none"] | None = None  # None: the upstream's cacheScope (private if absent)


class CacheConfig(Section):
    enabled: bool = False
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None  # redis://[:password@]host:port/db
    namespace: str = "mcp-sidecar:cache"  # key prefix in Redis; one per deployment (or per test)
    op_timeout_seconds: float = Field(default=0.25, gt=0, le=10)  # each Redis operation; slower = bypass
    max_entries: int = Field(default=10_000, gt=0)  # memory backend
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # memory backend, sum of stored entries
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)  # larger results are never stored
    default_ttl_seconds: float = Field(default=60.0, gt=0)  # obligations without ttl, read-only tools
    max_ttl_seconds: float = Field(default=3600.0, gt=0)  # caps every TTL, the upstream's ttlMs included
    single_flight_wait_seconds: float = Field(default=10.0, gt=0)  # how long identical calls wait for the first
    tools: dict[str, CacheToolConfig] = {}
    cache_read_only_tools: bool = False  # also cache tools whose trusted annotations say readOnlyHint: true
    methods: dict[str, CacheMethodConfig] = {}

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: dict[str, CacheMethodConfig]) -> dict[str, CacheMethodConfig]:
        unknown = sorted(set(value) - set(CACHE_HINTED_METHODS))
        if unknown:
            raise ValueError(f"cannot cache {unknown}; cacheable methods: {list(CACHE_HINTED_METHODS)}")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not value or any(char.isspace() for char in value):
            raise ValueError("must be non-empty without whitespace")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CacheConfig:
        if self.backend == "redis" and not (self.redis_url or "").startswith(("redis://", "rediss://")):
            raise ValueError("cache.redis_url (redis://host:port/db) is required when cache.backend is 'redis'")
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError("cache.max_entry_bytes cannot exceed cache.max_bytes")
        return self

class TelemetryConfig(Section):
    """Traces and metrics. Unset keys fall back to the standard OTEL_* variables, then to the defaults."""

    enabled: bool = True
    service_name: str | None = None  # OTEL_SERVICE_NAME, else "mcp-sidecar"
    otlp_endpoint: str | None = None  # base URL (http://jaeger:4318); OTEL_EXPORTER_OTLP_ENDPOINT; None: no export
    otlp_headers: dict[str, str] = {}  # OTEL_EXPORTER_OTLP_HEADERS ("k=v,k2=v2") is merged under these
    sampling_ratio: float | None = Field(default=None, ge=0, le=1)  # OTEL_TRACES_SAMPLER_ARG, else 1.0
    otlp_metrics: bool = True  # also push metrics over OTLP when an endpoint is set
    metric_export_interval_seconds: float = Field(default=15.0, gt=0)
    prometheus: bool = True  # serve Prometheus text on the admin listener's /metrics
    record_arguments: bool = False  # gen_ai.tool.call.arguments on spans (sensitive; redactions apply)
    record_results: bool = False  # gen_ai.tool.call.result on spans (sensitive)
    resource_uri_in_span_name: bool = False  # opt-in: resource URIs are high-cardinality span names
    metric_label_limit: int = Field(default=200, gt=0)  # distinct tool/method label values before "_OTHER"

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (OTLP over HTTP)")
        return value


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
    cache: CacheConfig = CacheConfig()
    telemetry: TelemetryConfig = TelemetryConfig()


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
