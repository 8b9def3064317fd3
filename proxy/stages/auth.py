"""The auth stage: a bearer token from `Authorization` becomes ctx.principal, or the call gets a 401/403 challenge."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from proxy import mcp
from proxy.auth.identity import IdentityMinter
from proxy.auth.jwt import TokenRejectedError, TokenVerifier
from proxy.auth.keys import HmacKey, JwksKeys, KeySource, KeysUnavailableError, PemKeys
from proxy.auth.sessions import SessionOwners
from proxy.config import AuthConfig, ServerConfig, UpstreamIdentityConfig, signing_key
from proxy.context import ANONYMOUS, CallContext, Principal
from proxy.errors import AuthUnavailableError, ForbiddenError, SessionNotOwnedError, UnauthenticatedError
from proxy.pipeline import Deps, Handler
from proxy.reply import Reply

log = structlog.get_logger("proxy.auth")

WELL_KNOWN = "/.well-known/oauth-protected-resource"
MAX_JWKS_BYTES = 1024 * 1024
_UNQUOTABLE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')  # RFC 6750 error_description characters


def metadata_url(server: ServerConfig) -> str:
    """RFC 9728 path form: the well-known prefix inserted before the resource's path."""
    parts = urlsplit(server.resource_url)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


class AuthStage:
    name = "auth"

    def __init__(self, verifier: TokenVerifier, *, mode: str, required_scopes: tuple[str, ...],
                 resource_metadata: str, jwks: JwksKeys | None = None, session: JwksSession | None = None,
                 identity: tuple[str, IdentityMinter] | None = None) -> None:
        self.verifier = verifier
        self.identity = identity  # (header name, minter) for the upstream
        self.optional = mode == "optional"
        self.required_scopes = frozenset(required_scopes)
        self.resource_metadata = resource_metadata
        self.jwks = jwks
        self._session = session
        self._prefetch: asyncio.Task[None] | None = None
        self.sessions = SessionOwners()

    @classmethod
    def from_config(cls, auth: AuthConfig, deps: Deps) -> AuthStage | None:
        if auth.mode == "off":
            return None
        server = deps.config.server
        jwks = session = None
        keys: KeySource
        if auth.jwks_url:
            session = JwksSession(auth.jwks_url, auth.jwks_timeout_seconds)
            keys = jwks = JwksKeys(session.fetch, lifespan=auth.jwks_lifespan_seconds,
                                   cooldown=auth.jwks_refetch_cooldown_seconds, timeout=auth.jwks_timeout_seconds,
                                   clock=deps.clock)
        elif auth.public_key_files:
            keys = PemKeys(auth.public_key_files)
        else:
            keys = HmacKey(auth.hmac_secret_file or "")
        verifier = TokenVerifier(keys, algorithms=auth.allowed_algorithms, issuers=auth.issuers,
                                 audience=auth.audience or (server.resource_url,), leeway=auth.leeway_seconds,
                                 roles_claim=auth.roles_claim)
        stage = cls(verifier, mode=auth.mode, required_scopes=auth.required_scopes,
                    resource_metadata=metadata_url(server), jwks=jwks, session=session,
                    identity=_identity(auth.upstream_identity, deps.config.upstream.url or ""))
        if jwks is not None:
            deps.readiness_checks["auth_keys"] = stage.readiness
        return stage

    async def start(self) -> None:
        if self._session is not None:
            await self._session.start()
        if self.jwks is not None:  # warm the key cache without delaying startup
            self._prefetch = asyncio.ensure_future(self.jwks.refresh())

    async def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prefetch
        if self._session is not None:
            await self._session.close()

    async def readiness(self) -> tuple[bool, str]:
        loaded = self.jwks.loaded if self.jwks is not None else 0
        return loaded > 0, f"{loaded} signing keys loaded"

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        principal = await self.principal_of(ctx)
        if not principal.authenticated:  # optional mode, no token
            return await self._in_session(ctx.evolve(principal=ANONYMOUS), call_next)
        return await self._in_session(self._admit(ctx, principal), call_next)

    async def principal_of(self, ctx: CallContext) -> Principal:
        """Who the bearer token says calls, holding the required scopes (ANONYMOUS without a token in optional
        mode); raises what the client gets otherwise. Also asked by GET /sse, which opens no upstream call."""
        token = self._bearer(ctx)
        if token is None:
            if self.optional:
                return ANONYMOUS
            log.info("auth.rejected", reason="no bearer token", method=ctx.method, http_method=ctx.http_method)
            raise UnauthenticatedError("Authentication required", headers=self._challenge())
        try:
            principal = await self.verifier.verify(token)
        except TokenRejectedError as rejected:
            log.info("auth.rejected", reason=rejected.reason, method=ctx.method, http_method=ctx.http_method)
            raise UnauthenticatedError(rejected.description, headers=self._challenge(
                error=rejected.error, error_description=rejected.description)) from None
        except KeysUnavailableError:
            log.warning("auth.keys_unavailable", method=ctx.method)
            raise AuthUnavailableError("Token signing keys are unavailable; try again later",
                                  headers={"Retry-After": "5"}) from None
        ctx.record.principal = principal
        missing = self.required_scopes - principal.scopes
        if missing:
            log.info("auth.forbidden", reason="insufficient scope", sub=principal.subject, missing=sorted(missing))
            description = "The access token lacks required scopes"
            raise ForbiddenError(description, data={"required_scopes": sorted(self.required_scopes)},
                            headers=self._challenge(error="insufficient_scope", error_description=description))
        return principal

    async def _in_session(self, ctx: CallContext, call_next: Handler) -> Reply:
        """A 2025 session stays with the principal that opened it: the upstream never sees tokens, so it cannot."""
        session, principal = ctx.session_id, ctx.principal
        if session is not None and not self.sessions.admits(session, principal):
            log.warning("auth.session_not_owned", sub=principal.subject, method=ctx.method,
                        http_method=ctx.http_method)
            raise SessionNotOwnedError("Session not found")
        first_seen = session is not None and not self.sessions.owned(session)  # sidecar restarted, other worker
        reply = await call_next(ctx)
        if ctx.kind is mcp.Kind.SESSION_END and session is not None:
            self.sessions.end(session)
        elif reply.status < 400:
            issued = _header(reply.headers, mcp.HEADER_SESSION_ID) if ctx.method == "initialize" else None
            if issued or first_seen:
                self.sessions.bind(issued or session or "", principal)
        return reply

    def _admit(self, ctx: CallContext, principal: Principal) -> CallContext:
        """The context later stages see: the principal, no raw credentials, and the upstream identity if asked for."""
        if self.identity is None:
            return ctx.evolve(principal=principal, credentials=None)
        header, minter = self.identity
        identity = {**ctx.upstream_headers, header: minter.token_for(principal)}
        return ctx.evolve(principal=principal, credentials=None, upstream_headers=identity)

    def _bearer(self, ctx: CallContext) -> str | None:
        """The token from `Authorization: Bearer <token>`; another scheme or an empty token is rejected."""
        if not ctx.credentials:
            return None
        scheme, _, token = ctx.credentials.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            log.info("auth.rejected", reason="not a bearer token", method=ctx.method)
            description = "Expected an Authorization: Bearer token"
            raise UnauthenticatedError(description, headers=self._challenge(error="invalid_token",
                                                                       error_description=description))
        return token

    def _challenge(self, **attributes: str) -> dict[str, str]:
        """A WWW-Authenticate header value; a missing token gets no error attribute (RFC 6750 section 3.1)."""
        if self.required_scopes:
            attributes["scope"] = " ".join(sorted(self.required_scopes))
        attributes["resource_metadata"] = self.resource_metadata
        rendered = ", ".join(f'{name}="{_UNQUOTABLE.sub("", value)}"' for name, value in attributes.items())
        return {"WWW-Authenticate": f"Bearer {rendered}"}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _identity(settings: UpstreamIdentityConfig | None, upstream_url: str) -> tuple[str, IdentityMinter] | None:
    if settings is None:
        return None
    minter = IdentityMinter(signing_key(settings.key_file, settings.algorithm), settings.algorithm,
                            issuer=settings.issuer, audience=settings.audience or upstream_url,
                            ttl_seconds=settings.ttl_seconds, key_id=settings.key_id)
    return settings.header, minter


class JwksSession:
    """Fetches the JWKS document with aiohttp (non-blocking); one small session of its own."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                              cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self) -> Mapping[str, Any]:
        assert self._session is not None, "auth stage not started"
        async with self._session.get(self.url, headers={"Accept": "application/json"}) as response:
            response.raise_for_status()
            body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
            return orjson.loads(body)
