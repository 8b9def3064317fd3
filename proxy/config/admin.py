"""The admin listener's own settings: who may use it, the console, and where approval notifications go."""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import Section, check_key_file, check_redis_url

Permission = Literal["viewer", "approver", "admin"]
PERMISSIONS: tuple[Permission, ...] = ("viewer", "approver", "admin")  # each includes the ones before it


def _readable(path: str | None) -> str | None:
    if path is not None and not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {path}")
    return path


class AdminAuthConfig(Section):
    """Credentials of the admin listener: bearer tokens from a file and/or JWTs from `auth`'s issuers."""

    tokens_file: str | None = None
    """Static bearer tokens, one per line: `NAME PERMISSION TOKEN` (permission `viewer`, `approver` or `admin`;
    `#` starts a comment). NAME is what audit events record as the approver. Re-read when the file changes on disk
    (a rotated Kubernetes secret); tokens are compared in constant time."""
    jwt: bool = False
    """Also accept JWTs verified as `auth` verifies callers' tokens (same keys, issuers and audience); with
    `auth.mode: off` there is nothing to verify them with and every JWT is refused. The token's subject is the
    approver's name."""
    jwt_permissions: dict[Permission, str] = {"viewer": "mcp-sidecar:viewer", "approver": "mcp-sidecar:approver",
                                              "admin": "mcp-sidecar:admin"}
    """The role or scope a JWT must carry for each permission (roles from `auth.roles_claim`, scopes from
    `scope`/`scp`). The highest one held counts."""
    check_seconds: float = Field(default=1.0, ge=0)
    """How often `tokens_file` is checked for changes (0: on every request)."""

    @field_validator("tokens_file")
    @classmethod
    def _tokens_file(cls, value: str | None) -> str | None:
        return _readable(value)

    @model_validator(mode="after")
    def _some_source(self) -> AdminAuthConfig:
        if self.tokens_file is None and not self.jwt:
            raise ValueError("admin.auth needs tokens_file, jwt: true, or both")
        return self


class WebhookConfig(Section):
    """A JSON POST when a call starts waiting for approval and when it is decided."""

    url: str
    """Where notifications go (http/https)."""
    secret_file: str
    """The HMAC-SHA256 key (at least 32 bytes) signing each POST: `X-Sidecar-Signature: v1=<hex>` over
    `<X-Sidecar-Timestamp>.<body>`; see docs/admin.md."""
    format: Literal["json", "slack"] = "json"
    """`json`: the event as documented in docs/admin.md; `slack`: a Slack-compatible message (`text`, `blocks`)."""
    timeout_seconds: float = Field(default=5.0, gt=0)
    """One delivery attempt's deadline."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per notification, with backoff doubling from `backoff_seconds`; then it counts as failed."""
    backoff_seconds: float = Field(default=0.5, gt=0)
    """The first delay between attempts."""
    max_queue: int = Field(default=100, gt=0)
    """Notifications waiting to be sent; beyond it new ones are dropped and counted."""
    links_base_url: str | None = None
    """The admin listener's URL as the recipient reaches it (e.g. `https://sidecar-admin.example`): each
    notification of a waiting call then carries one-time approve and deny links. Unset: no links."""
    links_secret_file: str | None = None
    """The key (at least 32 bytes) signing one-time links; required with `links_base_url`. Keep it apart from
    `secret_file`, which the receiver holds."""

    @field_validator("url", "links_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("secret_file", "links_secret_file")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return check_key_file(value)

    @model_validator(mode="after")
    def _links(self) -> WebhookConfig:
        if self.links_base_url is not None and self.links_secret_file is None:
            raise ValueError("links_base_url needs links_secret_file")
        if self.links_secret_file is not None and self.links_secret_file == self.secret_file:
            raise ValueError("links_secret_file must not be the webhook's secret_file")
        return self


class AdminConfig(Section):
    auth: AdminAuthConfig | None = None
    """Authentication of every admin route but `/healthz`, `/readyz` (and `/metrics` unless
    `metrics_require_auth`). Unset: the admin listener must be on loopback (see `allow_unauthenticated`)."""
    allow_unauthenticated: bool = False
    """Let an admin listener on a non-loopback address run without `admin.auth` (anyone reaching it can approve
    calls and purge the cache). Off: such a listener refuses to start."""
    metrics_require_auth: bool = False
    """`/metrics` needs a `viewer` credential too."""
    console: bool = True
    """Serve the web console at `/console`."""
    recent_calls: int = Field(default=1000, ge=0, le=100_000)
    """Audit events kept for the console's recent calls (0: none); needs `audit.enabled`. In memory, per process,
    unless `recent_calls_redis_url` is set."""
    recent_calls_redis_url: str | None = None
    """Share recent calls between every worker and replica through a Redis stream capped at `recent_calls` (about:
    Redis trims in whole blocks). Unset: each process keeps its own."""
    recent_calls_key: str = "mcp-sidecar:recent-calls"
    """The stream's key; one per deployment."""
    console_roles: tuple[str, ...] = ()
    """Roles the console's tool inventory checks against the policy: for each, whether a caller holding only that
    role (authenticated, issued by the first of `auth.issuers`) would see, and so may call, each tool."""

    @field_validator("recent_calls_redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return check_redis_url(value) if value is not None else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
