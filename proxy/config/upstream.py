"""The upstream section: one class per kind of MCP server, chosen by the key that names it.

A config says which kind it fronts by giving exactly one of `url` (Streamable HTTP), `command` (a stdio program)
or `sse_url` (legacy HTTP+SSE); an optional `kind:` may say it outright. A new transport adds one class here (named
in KIND_KEYS and in the UpstreamConfig union) and one entry in proxy.upstream.upstream_classes (the factory).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from proxy.config.base import HEADER_NAME, RESERVED_UPSTREAM_HEADERS, Section
from proxy.config.tls import UpstreamTlsConfig


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


class UpstreamBase(Section):
    """What every kind shares: calls, messages, the catalog, and the legacy client sessions the sidecar serves."""

    name: str = "upstream"
    """Name used in policy input, metrics, audit and cache keys."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Time allowed for response headers and a JSON body, and for each later message of a stdio or SSE answer;
    past it the caller gets a 504 and the server `notifications/cancelled` (checked by one 50 ms sweep: it fires up to
    50 ms late)."""
    tool_timeouts: dict[str, float] = {}
    """Per-tool override of `timeout_seconds`, e.g. `{slow_report: 300}`."""
    max_event_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest single message accepted from the upstream: an SSE event or a stdio line (a longer answer fails its
    call at once)."""
    catalog_ttl_seconds: float = Field(default=300.0, ge=0)
    """How long the sidecar trusts its own `tools/list` view (policy input, cache rules); a
    `notifications/tools/list_changed` drops it at once."""
    max_sessions: int = Field(default=32, gt=0)
    """Legacy client sessions at once, each with its own child or connection (stdio, SSE); also caps `/sse`
    streams."""
    queue_limit: int = Field(default=256, gt=0)
    """Messages queued for one client stream before that client is cut off (slow clients)."""

    @property
    def http_url(self) -> str | None:
        """The Streamable HTTP endpoint, for kinds that have one (telemetry's server address, identity audience)."""
        return None

    def timeout_for(self, tool: str | None) -> float:
        return self.tool_timeouts.get(tool or "", self.timeout_seconds)


class HttpClientSettings(UpstreamBase):
    """Kinds reached over HTTP: a connection pool and the sidecar's own credential headers."""

    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """TCP connect timeout."""
    max_connections: int = Field(default=256, gt=0)
    """Connection pool size."""
    headers: dict[str, UpstreamHeader] = {}
    """The sidecar's own credential headers for the upstream, never the caller's; see docs/upstreams.md."""
    secret_check_seconds: float = Field(default=1.0, ge=0)
    """How often header secret files are checked for rotation (0: on every request)."""
    tls: UpstreamTlsConfig = UpstreamTlsConfig()
    """For an `https` upstream: the CAs to verify it against (unset: the system's) and a client certificate for
    upstreams that require mutual TLS; see docs/tls.md."""

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, UpstreamHeader]) -> dict[str, UpstreamHeader]:
        for name in headers:
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in RESERVED_UPSTREAM_HEADERS:
                raise ValueError(f"{name!r} is set by the sidecar itself and cannot be configured")
        return headers


class ChannelSettings(UpstreamBase):
    """Kinds the sidecar holds open itself (a process, an SSE connection): started, supervised, one per session."""

    session_idle_seconds: float = Field(default=600.0, gt=0)
    """An unused legacy session is ended after this."""
    startup_timeout_seconds: float = Field(default=15.0, gt=0)
    """Spawn or connect plus the first handshake."""
    restart_backoff_seconds: float = Field(default=0.2, gt=0)
    """First delay before the shared child or connection is restarted."""
    restart_backoff_max_seconds: float = Field(default=10.0, gt=0)
    """The restart delay doubles up to this."""

    @model_validator(mode="after")
    def _backoff_order(self) -> ChannelSettings:
        if self.restart_backoff_max_seconds < self.restart_backoff_seconds:
            raise ValueError("upstream.restart_backoff_max_seconds must be >= restart_backoff_seconds")
        return self


class HttpUpstreamConfig(HttpClientSettings):
    kind: Literal["http"] = "http"
    """Which kind of server: set by the key given (`url`, `command`, `sse_url`); may be written out, and must then
    agree."""
    url: str
    """Streamable HTTP endpoint of the MCP server (`--upstream`)."""
    stream_idle_timeout_seconds: float | None = Field(default=None, gt=0)
    """Close an SSE stream that is silent this long. Unset: streams may idle forever."""
    idle_connection_seconds: float = Field(default=4.0, gt=0)
    """An upstream connection idle this long is not reused: below the 5 s after which uvicorn and Node close idle
    connections, so a call is never sent on a connection the server is closing at that instant."""

    @model_validator(mode="after")
    def _http_url(self) -> HttpUpstreamConfig:
        _check_http_url("url", self.url)
        return self

    @property
    def http_url(self) -> str | None:
        return self.url


class StdioUpstreamConfig(ChannelSettings):
    kind: Literal["stdio"] = "stdio"
    """Which kind of server: set by the key given (`url`, `command`, `sse_url`); may be written out, and must then
    agree."""
    command: tuple[str, ...]
    """Argv of a stdio MCP server the sidecar spawns and supervises; a string is split like a shell would
    (`--upstream-command`)."""
    env: dict[str, str] = Field(default={}, json_schema_extra={"secret": True})
    """Extra environment variables for a spawned server; it gets only these plus PATH, HOME, USER, LANG, LC_*,
    TZ, never the sidecar's own environment."""
    cwd: str | None = None
    """Working directory of a spawned server (must exist). Unset: the sidecar's."""
    shutdown_grace_seconds: float = Field(default=2.0, ge=0)
    """Wait after closing a child's stdin, and again after SIGTERM, before SIGKILL."""

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
    def _names_a_program(self) -> StdioUpstreamConfig:
        if not self.command or not self.command[0]:
            raise ValueError("upstream.command must name a program")
        return self


class SseUpstreamConfig(HttpClientSettings, ChannelSettings):
    kind: Literal["sse"] = "sse"
    """Which kind of server: set by the key given (`url`, `command`, `sse_url`); may be written out, and must then
    agree."""
    sse_url: str
    """Legacy HTTP+SSE (2024-11-05) endpoint: the GET stream, then the announced messages URL (`--upstream-sse`)."""

    @model_validator(mode="after")
    def _http_url(self) -> SseUpstreamConfig:
        _check_http_url("sse_url", self.sse_url)
        return self


# kind -> the key that selects it and the class that holds it.
KIND_KEYS: dict[str, tuple[str, type[UpstreamBase]]] = {
    "http": ("url", HttpUpstreamConfig),
    "stdio": ("command", StdioUpstreamConfig),
    "sse": ("sse_url", SseUpstreamConfig),
}


def _check_http_url(key: str, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"upstream.{key} must be an http(s) URL")


def _choose_kind(data: Any) -> Any:
    """Set `kind` from the one selecting key given. Keys that belong only to other kinds are dropped, as they were
    ignored before the kinds were split, so configs that carry them keep loading."""
    if not isinstance(data, dict):
        return data
    given = [kind for kind, (key, _) in KIND_KEYS.items() if data.get(key)]
    explicit = data.get("kind")
    if explicit is not None and explicit not in KIND_KEYS:
        raise ValueError(f"upstream.kind must be one of {', '.join(KIND_KEYS)}, got {explicit!r}")
    if len(given) > 1 or not (given or explicit) or (given and explicit not in (None, given[0])):
        raise ValueError(_kind_problem(given, explicit))
    kind = explicit or given[0]
    own = KIND_KEYS[kind][1].model_fields
    foreign = {key for _, cls in KIND_KEYS.values() for key in cls.model_fields} - set(own)
    return {**{key: value for key, value in data.items() if key not in foreign}, "kind": kind}


def _kind_problem(given: list[str], explicit: Any) -> str:
    keys = [f"upstream.{KIND_KEYS[kind][0]}" for kind in given]
    if len(given) == 1:
        return f"upstream.kind is {explicit!r} but {keys[0]} is set (a {given[0]} upstream)"
    return ("set exactly one of upstream.url, upstream.command, upstream.sse_url "
            f"(or --upstream URL / --upstream-command CMD / --upstream-sse URL), got {keys or 'none'}")


UpstreamConfig = Annotated[
    Annotated[HttpUpstreamConfig | StdioUpstreamConfig | SseUpstreamConfig, Field(discriminator="kind")],
    BeforeValidator(_choose_kind),
]


def key_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error's location as the user wrote it: pydantic puts the kind's tag after `upstream`; no key is named so."""
    if len(loc) >= 2 and loc[0] == "upstream" and loc[1] in KIND_KEYS:
        return (loc[0], *loc[2:])
    return loc
