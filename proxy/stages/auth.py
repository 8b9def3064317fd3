"""Auth stage: the caller's principal on the context (or a 401/403 challenge), its raw credentials dropped, and a
2025 session kept with the principal that opened it. Who calls is the shared Authenticator's (proxy/auth/)."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from proxy import mcp
from proxy.auth.authenticator import Authenticator
from proxy.auth.identity import IdentityMinter
from proxy.auth.sessions import SessionOwners
from proxy.config import AuthConfig, UpstreamIdentityConfig, signing_key
from proxy.context import ANONYMOUS, CallContext, Principal
from proxy.errors import SessionNotOwnedError
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.stages.deps import Deps

log = structlog.get_logger("proxy.auth")


class AuthStage:
    name = "auth"

    def __init__(self, authenticator: Authenticator, identity: tuple[str, IdentityMinter] | None = None) -> None:
        self.authenticator = authenticator
        self.identity = identity  # (header name, minter) for the upstream
        self.sessions = SessionOwners()

    @classmethod
    def from_config(cls, auth: AuthConfig, deps: Deps) -> AuthStage | None:
        if deps.authenticator is None:
            return None
        return cls(deps.authenticator, _identity(auth.upstream_identity, deps.config.upstream.http_url or ""))

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        principal = await self.authenticator.principal_of(ctx)
        if not principal.authenticated:  # optional mode, no token
            return await self._in_session(ctx.evolve(principal=ANONYMOUS), call_next)
        return await self._in_session(self._admit(ctx, principal), call_next)

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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _identity(settings: UpstreamIdentityConfig | None, upstream_url: str) -> tuple[str, IdentityMinter] | None:
    if settings is None:
        return None
    minter = IdentityMinter(signing_key(settings.key_file, settings.algorithm), settings.algorithm,
                            issuer=settings.issuer, audience=settings.audience or upstream_url,
                            ttl_seconds=settings.ttl_seconds, key_id=settings.key_id)
    return settings.header, minter
