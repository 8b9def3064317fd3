"""Authentication: token verification keys and rules, and the identity header minted for the upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import Field, ValidationInfo, field_validator, model_validator

from proxy.config.base import HEADER_NAME, MIN_KEY_BYTES, RESERVED_UPSTREAM_HEADERS, Section, check_key_file

MIN_HMAC_SECRET_BYTES = MIN_KEY_BYTES
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class UpstreamIdentityConfig(Section):
    """A JWT the sidecar signs per caller for the upstream (never the caller's own token)."""

    header: str = "X-MCP-Identity"
    """The header name."""
    key_file: str
    """Signing key: a PEM private key (RSA/EC/Ed25519), or an HMAC secret of at least 32 bytes for HS*. Checked at
    load time by signing a probe."""
    algorithm: str = "RS256"
    """Any of the algorithms `auth.algorithms` accepts."""
    key_id: str | None = None
    """`kid` in the token header."""
    issuer: str = "mcp-sidecar"
    """`iss` of the identity token."""
    audience: str | None = None
    """`aud` of the identity token. Unset: `upstream.url`."""
    ttl_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Lifetime, and never longer than the caller's own token."""

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.fullmatch(value) or value.lower() in RESERVED_UPSTREAM_HEADERS:
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
    """`required`: every request needs a valid token; `optional`: a request without one goes on as the anonymous
    principal (an invalid one still gets 401); `off`: no checks (YAML's bare `off` works)."""
    jwks_url: str | None = None
    """The IdP's JWKS endpoint (http/https). One key source only: this, `public_key_files` or
    `hmac_secret_file`."""
    public_key_files: tuple[str, ...] = ()
    """PEM public keys (RSA/EC/Ed25519); every file is tried, and each is re-read when it changes."""
    hmac_secret_file: str | None = None
    """A shared secret of at least 32 bytes (a trailing newline is ignored); re-read when it changes."""
    algorithms: tuple[str, ...] = ()
    """The allow-list of token algorithms: RS/PS/ES/EdDSA, or HS, never both. Unset: `[RS256]`, or `[HS256]` with
    an HMAC secret."""
    issuers: tuple[str, ...] = ()
    """Accepted `iss` values (a string or a list), matched exactly; required unless `mode` is `off`."""
    audience: tuple[str, ...] = ()
    """Accepted `aud` values; the token's `aud` must contain one of them. Unset: the sidecar's resource URL
    (`server.public_url`, else `http://<listen><mcp_path>`)."""
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    roles_claim: str = "roles"
    """Where roles come from: a claim name (namespaced names with dots work), or a dotted path such as
    `realm_access.roles`."""
    required_scopes: tuple[str, ...] = ()
    """Scopes every token must have (from `scope`, space-separated, or `scp`, a list or a string); otherwise 403."""
    jwks_lifespan_seconds: float = Field(default=300.0, gt=0)
    """How long a fetched JWKS is trusted before it is refetched."""
    jwks_refetch_cooldown_seconds: float = Field(default=30.0, ge=0)
    """At most one refetch per this interval for unknown `kid`s, which protects the IdP."""
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    """Timeout of one JWKS fetch."""
    authorization_servers: tuple[str, ...] = ()
    """`authorization_servers` in the RFC 9728 protected resource metadata. Unset: `issuers`."""
    scopes_supported: tuple[str, ...] = ()
    """`scopes_supported` in the resource metadata (left out when empty). Unset: `required_scopes`."""
    resource_documentation: str | None = None
    """`resource_documentation` in the resource metadata."""
    upstream_identity: UpstreamIdentityConfig | None = None
    """A short-lived JWT the sidecar signs per caller, telling the upstream who calls (never the caller's token)."""

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
        return check_key_file(path, "an HMAC secret")

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
