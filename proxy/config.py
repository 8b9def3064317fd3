"""The one typed configuration, validated once at startup.

Sources, lowest precedence first: built-in defaults, a YAML/JSON file, `MCP_SIDECAR__SECTION__KEY` environment
variables, command-line flags. Every problem is reported with its dotted path before anything listens.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jwt
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_UPSTREAM_HEADERS = frozenset(
    {"host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "mcp-session-id",
     "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id"}
)


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
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_UPSTREAM_HEADERS:
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

    @field_validator("engine", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @model_validator(mode="after")
    def _opa_needs_url(self) -> PolicyConfig:
        if self.engine == "opa" and not (self.opa_url or "").startswith(("http://", "https://")):
            raise ValueError("policy.opa_url (an http(s) URL) is required when policy.engine is 'opa'")
        return self


MIN_HMAC_SECRET_BYTES = 32
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class UpstreamIdentityConfig(Section):
    """A JWT the sidecar signs per caller for the upstream (never the caller's own token)."""

    header: str = "X-MCP-Identity"
    key_file: str  # PEM private key (RSA/EC/Ed25519) or an HMAC secret, matching `algorithm`
    algorithm: str = "RS256"
    key_id: str | None = None
    issuer: str = "mcp-sidecar"
    audience: str | None = None  # default: upstream.url
    ttl_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value) or value.lower() in _RESERVED_UPSTREAM_HEADERS:
            raise ValueError(f"{value!r} cannot be used as the identity header")
        return value

    @model_validator(mode="after")
    def _key_signs(self) -> UpstreamIdentityConfig:
        if self.algorithm not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"algorithm {self.algorithm!r} is not supported")
        try:
            key = signing_key(self.key_file, self.algorithm)
            jwt.encode({"probe": True}, key, algorithm=self.algorithm)
        except OSError as exc:
            raise ValueError(f"cannot read {self.key_file}: {exc.strerror}") from None
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ValueError(f"{self.key_file} cannot sign {self.algorithm}: {exc}") from None
        return self


def signing_key(path: str, algorithm: str) -> Any:
    """The private key (or HMAC secret) in a file, for minting tokens with `algorithm`."""
    data = Path(path).read_bytes()
    if algorithm in HMAC_ALGORITHMS:
        secret = data.rstrip(b"\r\n")
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise ValueError(f"an HMAC secret needs at least {MIN_HMAC_SECRET_BYTES} bytes")
        return secret
    return load_pem_private_key(data, password=None)


class AuthConfig(Section):
    """Bearer-token authentication: the sidecar is the OAuth resource server of the MCP server behind it."""

    mode: Literal["required", "optional", "off"] = "required"
    jwks_url: str | None = None
    public_key_files: tuple[str, ...] = ()
    hmac_secret_file: str | None = None
    algorithms: tuple[str, ...] = ()  # default: RS256 for JWKS/PEM keys, HS256 for an HMAC secret
    issuers: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()  # default: server.resource_url
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    roles_claim: str = "roles"  # a claim name, or a dotted path such as realm_access.roles
    required_scopes: tuple[str, ...] = ()
    jwks_lifespan_seconds: float = Field(default=300.0, gt=0)
    jwks_refetch_cooldown_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    # RFC 9728 protected resource metadata
    authorization_servers: tuple[str, ...] = ()  # default: issuers
    scopes_supported: tuple[str, ...] = ()  # default: required_scopes
    resource_documentation: str | None = None
    upstream_identity: UpstreamIdentityConfig | None = None  # a short-lived JWT telling the upstream who calls

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @field_validator("issuers", "audience", "algorithms", "public_key_files", "required_scopes",
                     "authorization_servers", "scopes_supported", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("public_key_files")
    @classmethod
    def _pem_keys(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            try:
                load_pem_public_key(Path(path).read_bytes())
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror}") from None
            except (ValueError, TypeError):
                raise ValueError(f"{path} is not a PEM public key") from None
        return paths

    @field_validator("hmac_secret_file")
    @classmethod
    def _hmac_secret(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                secret = Path(path).read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror}") from None
            if len(secret) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(f"{path}: an HMAC secret needs at least {MIN_HMAC_SECRET_BYTES} bytes")
        return path

    @field_validator("algorithms")
    @classmethod
    def _one_family(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        hmac = info.data.get("hmac_secret_file") is not None
        family = HMAC_ALGORITHMS if hmac else ASYMMETRIC_ALGORITHMS
        wrong = [alg for alg in value if alg not in family]
        if wrong:
            kind = "an HMAC secret" if hmac else "RSA/EC/EdDSA keys (never mixed with HMAC)"
            raise ValueError(f"{wrong} cannot be used with {kind}; choose from {sorted(family)}")
        return value

    @model_validator(mode="after")
    def _usable(self) -> AuthConfig:
        if self.mode == "off":
            return self
        sources = [bool(self.jwks_url), bool(self.public_key_files), self.hmac_secret_file is not None]
        if sum(sources) != 1:
            raise ValueError(
                f"mode {self.mode!r} needs exactly one key source: auth.jwks_url, auth.public_key_files (PEM)"
                " or auth.hmac_secret_file; or set auth.mode: off"
            )
        if not self.issuers:
            raise ValueError(f"mode {self.mode!r} needs auth.issuers (the token issuers to accept)")
        return self

    @property
    def allowed_algorithms(self) -> tuple[str, ...]:
        return self.algorithms or (("HS256",) if self.hmac_secret_file else ("RS256",))


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
    auth: AuthConfig  # always validated: an absent section means mode "required", which needs a key source
    policy: PolicyConfig = PolicyConfig()
    cache: CacheConfig = CacheConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    approval: ApprovalConfig = ApprovalConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    logging: LoggingConfig = LoggingConfig()


    @model_validator(mode="before")
    @classmethod
    def _auth_section(cls, data: Any) -> Any:
        if isinstance(data, dict) and "auth" not in data:
            data = {**data, "auth": {}}
        return data


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
