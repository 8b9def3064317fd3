"""The one typed configuration, validated once at startup.

Sources, lowest precedence first: built-in defaults, a YAML/JSON file, `MCP_SIDECAR__SECTION__KEY` environment
variables, command-line flags. Every problem is reported with its dotted path before anything listens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from proxy.config.admin import PERMISSIONS, AdminAuthConfig, AdminConfig, Permission, WebhookConfig, is_loopback
from proxy.config.auth import MIN_HMAC_SECRET_BYTES, AuthConfig, UpstreamIdentityConfig, signing_key
from proxy.config.base import Section, parse_host_port
from proxy.config.cache import CacheConfig
from proxy.config.core import (
    ApprovalConfig,
    AuditConfig,
    LoggingConfig,
    ServerConfig,
)
from proxy.config.limits import BucketConfig, RateLimitsConfig
from proxy.config.policy import PolicyConfig
from proxy.config.telemetry import TelemetryConfig
from proxy.config.tools import ToolsConfig
from proxy.config.upstream import (
    ChannelSettings,
    HttpUpstreamConfig,
    SseUpstreamConfig,
    StdioUpstreamConfig,
    UpstreamBase,
    UpstreamConfig,
    UpstreamHeader,
    key_path,
)

__all__ = [
    "MIN_HMAC_SECRET_BYTES",
    "PERMISSIONS",
    "AdminAuthConfig",
    "AdminConfig",
    "ApprovalConfig",
    "AuditConfig",
    "AuthConfig",
    "BucketConfig",
    "CacheConfig",
    "ChannelSettings",
    "Config",
    "ConfigError",
    "HttpUpstreamConfig",
    "LoggingConfig",
    "Permission",
    "PolicyConfig",
    "RateLimitsConfig",
    "ServerConfig",
    "SseUpstreamConfig",
    "StdioUpstreamConfig",
    "TelemetryConfig",
    "UpstreamBase",
    "UpstreamConfig",
    "UpstreamHeader",
    "UpstreamIdentityConfig",
    "WebhookConfig",
    "load_config",
    "parse_host_port",
    "signing_key",
]

ENV_PREFIX = "MCP_SIDECAR__"


class Config(Section):
    server: ServerConfig = ServerConfig()
    """The MCP and admin listeners."""
    upstream: UpstreamConfig
    """The MCP server behind the sidecar: exactly one of `url`, `command` or `sse_url`, which sets its kind (keys
    only other kinds read are accepted and ignored)."""
    audit: AuditConfig = AuditConfig()
    """The audit trail: one JSON event per decided message."""
    auth: AuthConfig
    """Bearer-token authentication. Always validated: an absent section means mode `required`, which needs a key
    source."""
    policy: PolicyConfig = PolicyConfig()
    """Rego policy: who may call what."""
    cache: CacheConfig = CacheConfig()
    """Response caching, scoped to the caller unless a result is public."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """OpenTelemetry traces and metrics. Unset keys fall back to the standard `OTEL_*` variables."""
    approval: ApprovalConfig = ApprovalConfig()
    """Human approval of calls a policy marks `require_approval`."""
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    """Token-bucket rate limits."""
    logging: LoggingConfig = LoggingConfig()
    """Operational logs."""
    tools: ToolsConfig = ToolsConfig()
    """Tool pinning: the reviewed tools lock and what serving does with a tool that drifted from it."""

    admin: AdminConfig = AdminConfig()
    """The admin listener: its authentication, the console, recent calls."""

    @model_validator(mode="before")
    @classmethod
    def _auth_section(cls, data: Any) -> Any:
        if isinstance(data, dict) and "auth" not in data:
            data = {**data, "auth": {}}
        return data

    @model_validator(mode="after")
    def _admin_secured(self) -> Config:
        """Secure by default: approvals and purges are not offered beyond loopback without credentials."""
        host, _ = parse_host_port(self.server.admin_listen)
        if self.admin.auth is None and not self.admin.allow_unauthenticated and not is_loopback(host):
            raise ValueError(f"server.admin_listen {self.server.admin_listen} is not a loopback address: set "
                             "admin.auth (tokens_file or jwt), or admin.allow_unauthenticated: true to run it open")
        return self


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
            found[name[len(ENV_PREFIX) :].lower().replace("__", ".")] = _env_value(raw)
    return found


def _env_value(raw: str) -> Any:
    """A YAML scalar or list; a mapping only when written as one ({...}): `app:rl:` is a string, not {app:rl: null}."""
    try:
        value = yaml.safe_load(raw) if raw else raw
    except yaml.YAMLError:
        return raw
    return raw if isinstance(value, dict) and not raw.lstrip().startswith("{") else value


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
    location = ".".join(str(part) for part in key_path(error["loc"])) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"
